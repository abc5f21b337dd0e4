import { createHash } from 'node:crypto';
import { invalidRequest } from './api-error.js';
import type { BatchError } from './batch-object.js';
import { asRecord, missing } from './request-fields.js';

// What `/v1/batches` checks of a batch as the API does: its endpoint and fields at creation, its input lines at validation.

/** The endpoints the offline server runs batches for: the ones it answers live. */
export const BATCH_ENDPOINTS = ['/v1/chat/completions', '/v1/images/generations'] as const;

/** Problems kept in a failed batch's `errors`; the rest are not reported. */
export const MAX_REPORTED_ERRORS = 1000;

/** A hash of the body stands for it, so counting 100,000 lines costs little memory. */
export const submissionKey = (customId: string, body: unknown): string =>
  `${customId}\u0000${createHash('sha1').update(JSON.stringify(body)).digest('base64')}`;

/** Checks one input line as the API does; reports its problems and returns it when it can run. */
export function checkLine(
  text: string,
  line: number,
  endpoint: string,
  ids: Set<string>,
  report: (error: BatchError) => void,
): { customId: string; body: Record<string, unknown> } | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    report({ code: 'invalid_json_line', line, param: null, message: 'This line is not parseable as valid JSON.' });
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    report({ code: 'invalid_request', line, param: null, message: 'Each line must be a JSON object.' });
    return undefined;
  }
  const fields = value as Record<string, unknown>;
  let valid = true;
  const problem = (code: string, param: string, message: string): void => {
    report({ code, line, param, message });
    valid = false;
  };
  for (const name of ['custom_id', 'method', 'url', 'body']) {
    if (fields[name] === undefined || fields[name] === null) problem('missing_required_parameter', name, `Missing required parameter: '${name}'.`);
  }
  const { custom_id: customId, method, url, body } = fields;
  if (customId !== undefined && customId !== null) {
    if (typeof customId !== 'string' || customId === '') problem('invalid_request', 'custom_id', 'custom_id must be a non-empty string.');
    else if (ids.has(customId)) problem('duplicate_custom_id', 'custom_id', 'The custom_id for this request is a duplicate of another request. The custom_id parameter must be unique for each request in a batch.');
    else ids.add(customId);
  }
  if (method !== undefined && method !== null && method !== 'POST') problem('invalid_request', 'method', `Invalid method '${String(method)}': batch requests use 'POST'.`);
  if (url !== undefined && url !== null && url !== endpoint) problem('invalid_url', 'url', 'The URL provided for this request does not match the batch endpoint.');
  if (body !== undefined && body !== null && (typeof body !== 'object' || Array.isArray(body))) problem('invalid_request', 'body', 'body must be a JSON object.');
  return valid ? { customId: customId as string, body: body as Record<string, unknown> } : undefined;
}

/** `metadata`: at most 16 string values, keys of at most 64 characters, values of at most 512. */
export function readMetadata(value: unknown): Record<string, string> | null {
  if (value === undefined || value === null) return null;
  const entries = typeof value === 'object' && !Array.isArray(value) ? Object.entries(value) : undefined;
  const valid =
    entries !== undefined &&
    entries.length <= 16 &&
    entries.every(([key, item]) => key.length <= 64 && typeof item === 'string' && item.length <= 512);
  if (!valid) {
    throw invalidRequest("Invalid 'metadata': expected at most 16 keys of at most 64 characters, with string values of at most 512 characters.", 'metadata', 'invalid_value');
  }
  return Object.fromEntries(entries);
}

/** `output_expires_after`: `{anchor: 'created_at', seconds}` with 1 hour to 30 days; returns the seconds. */
export function readOutputExpiry(value: unknown): number | null {
  if (value === undefined || value === null) return null;
  const { anchor, seconds: after } = asRecord(value);
  if (anchor === undefined) throw missing('output_expires_after.anchor');
  if (anchor !== 'created_at') throw invalidRequest(`Invalid value for 'output_expires_after.anchor': '${String(anchor)}'. Supported values are: 'created_at'.`, 'output_expires_after.anchor', 'invalid_value');
  if (typeof after !== 'number' || !Number.isInteger(after) || after < 3600 || after > 2_592_000) {
    throw invalidRequest("Invalid 'output_expires_after.seconds': expected an integer from 3600 to 2592000.", 'output_expires_after.seconds', 'invalid_value');
  }
  return after;
}
