import { createHash } from 'node:crypto';
import { KEY_BYTES } from '../jobs/digests.js';
import type { JobRecord, JobState, RecordLocation } from './journal.js';

/*
 * What the journal's index reads of a record without parsing it: the short key of its request fingerprint, where the
 * record lies, and the fields planning needs, checked by one regular expression over the whole line.
 */

/**
 * The short form of a request fingerprint that the index compares. A sha256 hex fingerprint keeps its first
 * 16 bytes; anything else (hand-written journals) is hashed first, so distinct strings stay distinct.
 */
export function fingerprintKey(fingerprint: string): Buffer {
  if (/^[0-9a-f]{64}$/.test(fingerprint)) return Buffer.from(fingerprint.slice(0, KEY_BYTES * 2), 'hex');
  return createHash('sha256').update(fingerprint).digest().subarray(0, KEY_BYTES);
}

/** What the index knows about one record without reading it back: enough to plan, not enough to show. */
export interface RecordRef extends RecordLocation {
  key: Buffer;
  state: JobState;
  /** The record lists produced files (images), which planning checks on disk. */
  hasFiles: boolean;
}

/** What indexing takes from a job record. */
export interface IndexedJob {
  id: string;
  ref: RecordRef;
  /** What the record's own requests cost (see `JobRecord.paid`): its contribution to spending. */
  costUsd: number | null;
  attempts: number;
  /** Where the answer came from (see {@link JobRecord.origin}). */
  origin?: string;
}

/**
 * A JSON string: no control character, no escape JSON does not have. Unrolled (runs of plain characters, then one
 * escape at a time): an escape begins with the one character the runs exclude, so there is a single way to match and a
 * line that fails is given up in linear time; and a long reply is one run, not one step of the engine per character
 * (which overflowed its stack on replies of a few megabytes).
 */
const STRING = String.raw`"[^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*)*"`;
/** A number that is not negative: counts, tokens, bytes, dollars (a negative one was damaged). */
const COUNT = String.raw`(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?`;
const NUMBER = `-?${COUNT}`;
const FILE = `\\{"path":${STRING},"bytes":${COUNT},"sha256":${STRING}\\}`;
const OBJECT_OF_COUNTS = `\\{(?:${STRING}:${COUNT}(?:,${STRING}:${COUNT})*)?\\}`;
const LIST_OF = (item: string): string => `\\[(?:${item}(?:,${item})*)?\\]`;

/**
 * A job record exactly as `run/attempt.ts` lays it out, every field of its type: the captures are the id, the
 * fingerprint, the state, the attempts, the files (empty when none), the cost, what the record's own request paid
 * (`paid.costUsd`, when it kept images an earlier record paid for) and the origin.
 */
const JOB_LINE = new RegExp(
  `\\{"type":"job","id":(${STRING}),"fingerprint":"([0-9a-f]{64})","kind":${STRING},"model":${STRING},"tags":${LIST_OF(STRING)},` +
    `"source":${STRING},"state":(${STRING}),"attempts":(${COUNT}),"output":${STRING},"files":\\[((?:${FILE}(?:,${FILE})*)?)\\]` +
    `(?:,"finishReason":${STRING})?(?:,"error":${STRING})?(?:,"status":${NUMBER})?,"usage":${OBJECT_OF_COUNTS},"costUsd":(${COUNT}|null),` +
    `"latencyMs":${COUNT}(?:,"requestId":${STRING})?(?:,"serviceTier":${STRING})?(?:,"batchId":${STRING})?(?:,"paid":\\{"usage":${OBJECT_OF_COUNTS},"costUsd":(${COUNT}|null)\\})?,"startedAt":${STRING},"finishedAt":${STRING}(?:,"origin":(${STRING}))?\\}`,
  'y',
);


/** The longest line {@link scanJobRecord} checks with {@link JOB_LINE}, far above any reply and far below a stack overflow. */
const MAX_SCANNED_LINE = 256 * 1024;

/**
 * The fields an index needs of a job record as nightshift writes it, checked by one regular expression rather than
 * parsed (its reply text is most of the line): faster than parsing a million records of short replies, about as
 * fast for replies of a few kilobytes, and a record that is damaged anywhere (a stray byte, a control character, a field of the wrong type) does not match.
 * Any line not laid out exactly so (written by hand, torn, damaged, another record type) gives undefined and is
 * parsed in full instead. `text` is `bytes` decoded as latin1; the line is `start`..`end` of both.
 */
export function scanJobRecord(bytes: Buffer, text: string, start: number, end: number, location: RecordLocation): IndexedJob | undefined {
  // The engine keeps a step of its stack per escape: a reply of megabytes is left to the full parse.
  if (end - start > MAX_SCANNED_LINE) return undefined;
  JOB_LINE.lastIndex = start;
  const match = JOB_LINE.exec(text);
  if (!match || JOB_LINE.lastIndex !== end) return undefined;
  const [, id, fingerprint, state, attempts, files, wholeCostUsd, paidUsd, origin] = match as unknown as string[];
  // Spending counts what the record's own request paid.
  const costUsd = paidUsd ?? wholeCostUsd;
  // Plain ASCII reads the same in latin1; anything else is decoded from the bytes (and unescaped, if need be).
  const idStart = match.index + JOB_START.length;
  const decoded = ASCII.test(id!) ? id!.slice(1, -1) : (JSON.parse(bytes.toString('utf8', idStart, idStart + id!.length)) as string);
  const jobState = (state!.includes('\\') ? JSON.parse(state!) : state!.slice(1, -1)) as JobState;
  return {
    id: decoded,
    ref: { key: fingerprintKey(fingerprint!), state: jobState, hasFiles: files !== '', ...location },
    costUsd: costUsd === 'null' ? null : Number(costUsd),
    attempts: Number(attempts),
    ...(origin !== undefined ? { origin: origin.includes('\\') ? (JSON.parse(origin) as string) : origin.slice(1, -1) } : {}),
  };
}

/** How a job record's line starts, up to the quote that opens its id. */
const JOB_START = '{"type":"job","id":';
const ASCII = /^"[\x20-\x5b\x5d-\x7e]*"$/;

/** What the money and charts of a page take of a job record (see `page/tally.ts`). */
export type RequestFields = Pick<JobRecord, 'model' | 'tags' | 'state' | 'attempts' | 'costUsd' | 'serviceTier' | 'batchId' | 'finishedAt' | 'origin'>;

/**
 * {@link JOB_LINE}'s layout, capturing what a tally of requests needs: the model, the tags, the state, the attempts,
 * the record's cost, the service tier, the batch, when it finished and the origin.
 */
const REQUEST_LINE = new RegExp(
  `\\{"type":"job","id":${STRING},"fingerprint":"[0-9a-f]{64}","kind":${STRING},"model":(${STRING}),"tags":(${LIST_OF(STRING)}),` +
    `"source":${STRING},"state":(${STRING}),"attempts":(${COUNT}),"output":${STRING},"files":\\[(?:${FILE}(?:,${FILE})*)?\\]` +
    `(?:,"finishReason":${STRING})?(?:,"error":${STRING})?(?:,"status":${NUMBER})?,"usage":${OBJECT_OF_COUNTS},"costUsd":(${COUNT}|null),` +
    `"latencyMs":${COUNT}(?:,"requestId":${STRING})?(?:,"serviceTier":(${STRING}))?(?:,"batchId":(${STRING}))?(?:,"paid":\\{"usage":${OBJECT_OF_COUNTS},"costUsd":(?:${COUNT}|null)\\})?,"startedAt":${STRING},"finishedAt":(${STRING})(?:,"origin":(${STRING}))?\\}`,
  'y',
);

/**
 * The fields of a job record that a tally of requests needs, checked as {@link scanJobRecord} checks a record (the
 * whole line, by one regular expression) rather than parsed: undefined for any line not laid out exactly as nightshift
 * writes it, which is then parsed in full. `line` is the record's bytes decoded as latin1, and they are UTF-8.
 */
export function scanRequest(line: string): RequestFields | undefined {
  if (line.length > MAX_SCANNED_LINE) return undefined;
  REQUEST_LINE.lastIndex = 0;
  const match = REQUEST_LINE.exec(line);
  if (!match || REQUEST_LINE.lastIndex !== line.length) return undefined;
  const [, model, tags, state, attempts, costUsd, serviceTier, batchId, finishedAt, origin] = match as unknown as (string | undefined)[];
  return {
    model: text(model!),
    tags: tags === '[]' ? [] : PLAIN.test(tags!) ? tags!.slice(2, -2).split('","') : (JSON.parse(utf8(tags!)) as string[]),
    state: text(state!) as JobState,
    attempts: Number(attempts),
    costUsd: costUsd === 'null' ? null : Number(costUsd),
    ...(serviceTier !== undefined ? { serviceTier: text(serviceTier) } : {}),
    ...(batchId !== undefined ? { batchId: text(batchId) } : {}),
    finishedAt: text(finishedAt!),
    ...(origin !== undefined ? { origin: text(origin) } : {}),
  };
}

/** Printable ASCII with no backslash: a JSON string's text is its characters, and a quote only closes one. */
const PLAIN = /^[\x20-\x5b\x5d-\x7e]*$/;

/** A captured JSON string's text, from its latin1 characters. */
const text = (json: string): string => (PLAIN.test(json) ? json.slice(1, -1) : (JSON.parse(utf8(json)) as string));

const utf8 = (latin1: string): string => Buffer.from(latin1, 'latin1').toString('utf8');
