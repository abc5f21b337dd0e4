import { isUtf8 } from 'node:buffer';
import { createReadStream, type Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { messageOf, NightshiftError } from '../common/errors.js';
import { createInterface } from 'node:readline';
import type { JobKind, Usage } from '../common/types.js';

/** The journal's file name inside an output folder. */
export const JOURNAL_FILE = 'journal.jsonl';

/**
 * Where a job stands. `done`, `incomplete` and `failed` are final for one request fingerprint: `incomplete` is an
 * answer cut off (at the token limit, or by the content filter), paid for but not whole. The Batch API adds
 * `submitted` (handed to a batch) and `collected` later: states are plain strings on the same record shape,
 * and readers keep the latest record per job, so new states need no rewrite of old journals.
 */
export type JobState = 'done' | 'incomplete' | 'failed';

/** A file a job produced, with what is needed to tell later whether it is still intact. */
export interface ProducedFile {
  /** Path relative to the output folder. */
  path: string;
  bytes: number;
  sha256: string;
}

/** One job's outcome: appended (and flushed) before the job counts as finished. */
export interface JobRecord {
  type: 'job';
  id: string;
  /** Hash of the exact request (endpoint and body, local image bytes included). */
  fingerprint: string;
  state: JobState;
  kind: JobKind;
  model: string;
  tags: string[];
  /** `file:line` of the job in its job file. */
  source: string;
  attempts: number;
  /** The reply text (chat, vision); empty for images. */
  output: string;
  /** Image files written, relative to the output folder. */
  files: ProducedFile[];
  finishReason?: string;
  error?: string;
  status?: number;
  usage: Usage;
  /** Dollars, or null when the model has no known price. */
  costUsd: number | null;
  latencyMs: number;
  requestId?: string;
  /**
   * The `service_tier` the answer reported (`default`, `flex`, `priority`...), which its cost follows. Absent when the
   * server reported none, and in journals written before nightshift knew tiers.
   */
  serviceTier?: string;
  /** The Batch API batch that answered the job (`batch_...`); absent for live answers. */
  batchId?: string;
  startedAt: string;
  finishedAt: string;
  /**
   * What this record's own requests cost, when it is less than `usage` and `costUsd`: only some of the job's images
   * were made again (the others missing or damaged), and `usage`, `costUsd` and `files` are those of all its images,
   * the kept ones paid by the earlier record of the same request. Spending and the report count this part alone.
   */
  paid?: { usage: Usage; costUsd: number | null };
  /**
   * Where the answer came from: {@link OFFLINE_ORIGIN} for the offline server of `--offline`, `offline@` and the
   * origin for an offline server reached at an address (`nightshift serve`: its answers say so), otherwise the API's
   * origin (`https://api.openai.com`: scheme, host and port, never a path, credentials or the key). Written last.
   * Absent from journals of nightshift 0.1.0, whose answers count as real ones (see {@link answeredOffline}).
   */
  origin?: string;
}

/** The origin of answers from the offline server that `--offline` starts: never done for a run against an API. */
export const OFFLINE_ORIGIN = 'offline';

/**
 * Whether a record's answer came from the offline server. A record without an origin (nightshift 0.1.0) counts as
 * real: 0.1.0 wrote offline runs to their own `-offline` folders by default, and taking a real answer for a fake one
 * would pay for it again.
 */
export const answeredOffline = (record: Pick<JobRecord, 'origin'>): boolean =>
  record.origin === OFFLINE_ORIGIN || (record.origin?.startsWith(`${OFFLINE_ORIGIN}@`) ?? false);

/** The origin to journal for an answer the offline server gave a run whose answers come from `runOrigin`. */
export const offlineOrigin = (runOrigin: string): string => (runOrigin === OFFLINE_ORIGIN ? OFFLINE_ORIGIN : `${OFFLINE_ORIGIN}@${runOrigin}`);

/**
 * Whether a run whose answers come from `runOrigin` may take a record's answer as its own. A real answer, yes; an
 * answer of the offline server only for an `--offline` run, or a run against that same offline server: never for a
 * run against an API, which would otherwise keep a fake reply and count fake dollars.
 */
export const answerCountsFor = (record: Pick<JobRecord, 'origin'>, runOrigin: string): boolean =>
  !answeredOffline(record) || runOrigin === OFFLINE_ORIGIN || record.origin === offlineOrigin(runOrigin);

/** The origin to journal for answers from the API at `baseURL`: scheme, host and port only. */
export const apiOrigin = (baseURL: string): string => new URL(baseURL).origin;

/** Where a record's line lies in journal.jsonl (newline excluded). */
export interface RecordLocation {
  offset: number;
  length: number;
}

/** Marks the start of a session of work on the folder (a first run or a resume). */
export interface RunRecord {
  type: 'run';
  startedAt: string;
  files: string[];
  jobs: number;
  /** Where this run's answers come from, as {@link JobRecord.origin}. */
  origin?: string;
}

export type JournalRecord = JobRecord | RunRecord;

/** Options of {@link readJournalRecords}. */
export interface ReadJournalOptions {
  /** Called with a `path:line: ...` message for each line skipped because it does not parse. */
  onWarning?: (warning: string) => void;
}

/**
 * Streams every record of a journal, oldest first, one line at a time (flat memory whatever the journal's size).
 * A missing or empty journal yields nothing. A line that is not a valid record (a torn last line, left by a process
 * killed mid-write, or a damaged one) is skipped with a warning naming it.
 */
export async function* readJournalRecords(path: string, options: ReadJournalOptions = {}): AsyncGenerator<JournalRecord> {
  for await (const { text, lineNumber } of journalLines(path)) {
    const record = text === undefined ? undefined : parseRecord(text);
    if (record) yield record;
    else options.onWarning?.(skippedLine(path, lineNumber));
  }
}

/**
 * The lines of a journal, oldest first, blank ones left out, with their numbers: each as its bytes read as latin1
 * (`latin1`, a character per byte) and as its text (`text`, undefined for a line that is not UTF-8: damaged, which no
 * record can be). A missing or empty journal has none.
 */
export async function* journalLines(path: string): AsyncGenerator<{ latin1: string; text: string | undefined; lineNumber: number }> {
  if ((await journalSize(path)) === 0) return;
  // Read as latin1, a character per byte, so that a line that is not UTF-8 (damaged) is told apart, not decoded.
  const lines = createInterface({ input: createReadStream(path, { encoding: 'latin1' }), crlfDelay: Infinity });
  let lineNumber = 0;
  for await (const raw of lines) {
    lineNumber++;
    if (raw.trim() === '') continue;
    // An ASCII line reads the same in latin1 and UTF-8: only others are decoded.
    if (!NOT_ASCII.test(raw)) yield { latin1: raw, text: raw, lineNumber };
    else {
      const bytes = Buffer.from(raw, 'latin1');
      yield { latin1: raw, text: isUtf8(bytes) ? bytes.toString('utf8') : undefined, lineNumber };
    }
  }
}

const NOT_ASCII = /[\x80-\xff]/;

/** The warning for a journal line left out because it is not a valid record. */
export const skippedLine = (path: string, lineNumber: number): string =>
  `${path}:${lineNumber}: skipped a journal line that is not a valid record (torn by a process killed while writing it, or damaged)`;

/**
 * The journal's size in bytes, 0 when there is none yet. Something other than a file in its place (a folder), or a
 * journal that cannot be read, makes the output folder unusable: `E_OUTPUT` naming it, never a crash.
 */
export async function journalSize(path: string): Promise<number> {
  let stats: Stats;
  try {
    stats = await stat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw new NightshiftError('E_OUTPUT', `Cannot read ${path}: ${messageOf(error)}`, { path }, { cause: error });
  }
  if (!stats.isFile()) throw new NightshiftError('E_OUTPUT', `Cannot read ${path}: it is not a file`, { path });
  return stats.size;
}

/**
 * One journal line as a record, or undefined when it is torn, damaged or not a record: job and run records must have
 * every field of the right type. Records of other types (to come) are taken as they are.
 */
export function parseRecord(line: string): JournalRecord | undefined {
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch (error) {
    // A torn, damaged or foreign line; anything but a syntax error would be a bug.
    if (error instanceof SyntaxError) return undefined;
    throw error;
  }
  if (!isObject(record) || typeof record.type !== 'string') return undefined;
  if (record.type === 'job') return isJobRecord(record) ? record : undefined;
  if (record.type === 'run') return isRunRecord(record) ? record : undefined;
  return record as unknown as JournalRecord;
}

/** Whether a parsed journal line is a job record with every field of the right type (a state is any string: new states come). */
/** Whether `value` is a job record, every field of its type (a damaged one is not). */
export function isJobRecord(value: unknown): value is JobRecord {
  if (!isObject(value) || value.type !== 'job') return false;
  const { id, fingerprint, state, kind, model, tags, source, attempts, output, files, usage, costUsd, latencyMs, startedAt, finishedAt } = value;
  return (
    [id, fingerprint, state, kind, model, source, output, startedAt, finishedAt].every((field) => typeof field === 'string') &&
    // Counts, tokens, bytes and dollars are never negative: one that is was damaged (and would lift a budget).
    [attempts, latencyMs].every(isCount) &&
    (costUsd === null || isCount(costUsd)) &&
    Array.isArray(tags) &&
    tags.every((tag) => typeof tag === 'string') &&
    Array.isArray(files) &&
    files.every(isProducedFile) &&
    isObject(usage) &&
    Object.values(usage).every(isCount) &&
    (['finishReason', 'error', 'requestId', 'serviceTier', 'batchId', 'origin'] as const).every((name) => value[name] === undefined || typeof value[name] === 'string') &&
    (value.status === undefined || isNumber(value.status)) &&
    (value.paid === undefined || (isObject(value.paid) && isObject(value.paid.usage) && Object.values(value.paid.usage).every(isCount) && (value.paid.costUsd === null || isCount(value.paid.costUsd))))
  );
}

/** What a record's own requests cost and used (see {@link JobRecord.paid}): its whole usage and cost, unless it kept images an earlier record paid for. */
export const paidBy = (record: Pick<JobRecord, 'usage' | 'costUsd' | 'paid'>): { usage: Usage; costUsd: number | null } =>
  record.paid ?? { usage: record.usage, costUsd: record.costUsd };

function isRunRecord(value: Record<string, unknown>): value is RunRecord & Record<string, unknown> {
  return typeof value.startedAt === 'string' && Array.isArray(value.files) && isNumber(value.jobs) && (value.origin === undefined || typeof value.origin === 'string');
}

const isProducedFile = (value: unknown): value is ProducedFile =>
  isObject(value) && typeof value.path === 'string' && isCount(value.bytes) && typeof value.sha256 === 'string';

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

const isNumber = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);

const isCount = (value: unknown): value is number => isNumber(value) && value >= 0;
