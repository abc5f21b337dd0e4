import { hash } from 'node:crypto';
import { offsetDeeperThan } from '../common/json-depth.js';
import type { Endpoint, Job } from '../common/types.js';
import { fingerprint } from '../jobs/fingerprint.js';

/*
 * The lines nightshift writes into Batch API input files, and reads back from output and error files.
 *
 * A custom_id is the job's id and a tag of its request fingerprint: `q-17~3f9c0a5be21d7c44`. It names the job
 * by itself, so an output file maps back to its jobs whichever part, run or batch listing it comes from (a batch
 * found after a crash, before its part was recorded, included), and the tag tells apart two requests of the same
 * id: a job edited between runs never takes the answer of its old request. A number per part and line would need
 * a table kept beside every batch to mean anything, and would name another job once parts are numbered again.
 *
 * OpenAI's reference sets no length for custom_id; other batch APIs refuse more than 64 characters, so nightshift
 * stays within 64 printable ASCII characters. An id that does not fit as it is (too long, spaces, non-ASCII, or
 * a leading `#`) is shown as `#` and a digest of it instead; the part's id list names the job for those.
 */

/** The most characters in a custom_id nightshift writes. */
export const CUSTOM_ID_MAX = 64;

/** Hex digits of the request fingerprint in a custom_id: 64 bits, so requests of one id never share a tag. */
const TAG_LENGTH = 16;
/** Characters of an id's digest (base64url of its sha256): 132 bits. */
const DIGEST_LENGTH = 22;
const SEPARATOR = '~';
const DIGEST_MARK = '#';
/** The longest id shown as it is. */
const PLAIN_MAX = CUSTOM_ID_MAX - SEPARATOR.length - TAG_LENGTH;
const PLAIN_ID = /^[\x21-\x7e]+$/;
const DIGEST_ID = /^#[A-Za-z0-9_-]{22}$/;
const CUSTOM_ID = /^(.+)~([0-9a-f]{16})$/;

/** One line of a Batch API input file. */
export interface BatchRequestLine {
  custom_id: string;
  method: 'POST';
  url: Endpoint;
  body: Record<string, unknown>;
}

/** What a custom_id says of its job: the id (or, for an id that does not fit, its digest) and its request's tag. */
export type CustomIdKey = ({ id: string } | { idDigest: string }) & { fingerprintTag: string };

/** The custom_id of the job `id` sending the request whose fingerprint is `fp` (hex, as {@link fingerprint} gives). */
export function customIdOf(id: string, fp: string): string {
  return `${showsPlain(id) ? id : idDigestOf(id)}${SEPARATOR}${fp.slice(0, TAG_LENGTH)}`;
}

/** How a custom_id names an id that does not fit in it as it is. */
export const idDigestOf = (id: string): string => `${DIGEST_MARK}${hash('sha256', id, 'base64url').slice(0, DIGEST_LENGTH)}`;

/** What a custom_id written by {@link customIdOf} says; undefined for any other. */
export function readCustomId(customId: string): CustomIdKey | undefined {
  const match = CUSTOM_ID.exec(customId);
  if (match === null) return undefined;
  const [, name = '', fingerprintTag = ''] = match;
  if (DIGEST_ID.test(name)) return { idDigest: name, fingerprintTag };
  return showsPlain(name) ? { id: name, fingerprintTag } : undefined;
}

const showsPlain = (id: string): boolean => id.length <= PLAIN_MAX && !id.startsWith(DIGEST_MARK) && PLAIN_ID.test(id);

/**
 * The job as a Batch API input line: its endpoint, and its body exactly as a live run sends it (the SDK sends the
 * body as JSON), so the batch runs the request the journal fingerprints. `fp` saves hashing the request again.
 */
export function requestLine(job: Pick<Job, 'id' | 'endpoint' | 'body'>, fp = fingerprint(job)): BatchRequestLine {
  return { custom_id: customIdOf(job.id, fp), method: 'POST', url: job.endpoint, body: job.body };
}

/** The error of a line that did not get its answer, as the endpoint (or the batch, for lines it never ran) gave it. */
export interface BatchLineError {
  /** `error.type` of the endpoint's answer (`rate_limit_exceeded`, `invalid_request_error`...). */
  type?: string;
  /** `error.code`: the endpoint's, or the batch's for a line it never ran (`batch_expired`, `batch_cancelled`). */
  code?: string;
  message?: string;
}

/** One line of an output or error file, as read. */
export type BatchResult =
  | { customId: string; ok: true; status: number; requestId?: string; body: Record<string, unknown> }
  | { customId: string; ok: false; status?: number; requestId?: string; error: BatchLineError };

/**
 * One line of an output or error file: `{id, custom_id, response: {status_code, request_id, body}, error}`. An
 * answer is a 2xx with a JSON object body; a line the endpoint refused has its status and the body's `error`;
 * a line the batch never ran has no response and the batch's `error`. Anything else is a `problem`, with the
 * custom_id when the line has one (its job is then known, its answer not): never an exception.
 */
export function parseResultLine(text: string): { result: BatchResult } | { problem: string; customId?: string } {
  // The answer is walked by whatever reads it next: what could overflow a walk stops here, before JSON.parse.
  if (offsetDeeperThan(text) !== undefined) return { problem: 'the line is nested too deep to be an answer' };
  let line: unknown;
  try {
    line = JSON.parse(text);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    return { problem: 'the line is not JSON' };
  }
  if (!isObject(line)) return { problem: 'the line is not a JSON object' };
  const customId = line['custom_id'];
  if (typeof customId !== 'string' || customId === '') return { problem: 'the line has no custom_id' };
  const { response, error } = line;
  if (response !== null && response !== undefined) {
    if (!isObject(response)) return { problem: 'the response is not an object', customId };
    return readResponse(response, customId);
  }
  if (isObject(error)) return { result: { customId, ok: false, error: errorFields(error) } };
  return { problem: 'the line has neither a response nor an error', customId };
}

function readResponse(response: Record<string, unknown>, customId: string): { result: BatchResult } | { problem: string; customId: string } {
  const { status_code: status, request_id: id, body } = response;
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 599) {
    return { problem: 'the response has no HTTP status', customId };
  }
  const requestId = typeof id === 'string' && id !== '' ? { requestId: id } : {};
  if (status >= 200 && status < 300) {
    if (!isObject(body)) return { problem: 'the answer is not a JSON object', customId };
    return { result: { customId, ok: true, status, ...requestId, body } };
  }
  const error = isObject(body) && isObject(body['error']) ? errorFields(body['error']) : {};
  return { result: { customId, ok: false, status, ...requestId, error } };
}

/** The string fields of an error object; others are left out rather than guessed. */
function errorFields(error: Record<string, unknown>): BatchLineError {
  const fields: BatchLineError = {};
  for (const key of ['type', 'code', 'message'] as const) {
    const value = error[key];
    if (typeof value === 'string') fields[key] = value;
  }
  return fields;
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
