import { NightshiftError } from '../common/errors.js';
import { IdTable } from '../common/id-table.js';
import type { Job } from '../common/types.js';
import { fingerprint } from '../jobs/fingerprint.js';
import { requestLine } from './lines.js';
import { costOptionsOf } from '../cost/cost.js';
import { PartFile, type BatchPart, type PartEntry } from './part-file.js';

export type { BatchPart, PartEntry } from './part-file.js';

/** The most requests the Batch API takes in one input file. */
export const BATCH_MAX_REQUESTS = 50_000;
/**
 * The most bytes nightshift puts in one input file. The API says 200 MB; read as decimal megabytes it is the lower
 * of the two readings, so a file within it is within the API's limit however the API counts.
 */
export const BATCH_MAX_BYTES = 200_000_000;

/** How {@link writeParts} splits jobs into parts. */
export interface PartOptions {
  /** The folder the parts' files are written to (made when missing); a part file already there is refused. */
  dir: string;
  /**
   * The most requests in one part: a whole number from 1 to {@link BATCH_MAX_REQUESTS}.
   * @default 50_000
   */
  maxRequests?: number;
  /**
   * The most bytes in one part's input file, newlines included: a whole number from 1 to {@link BATCH_MAX_BYTES}.
   * @default 200_000_000
   */
  maxBytes?: number;
}

/** {@link PartOptions} checked, with defaults applied. */
export type ResolvedPartOptions = Required<PartOptions>;

/** Checks the caps once, eagerly, naming a bad value (`E_USAGE`). */
export function resolvePartOptions(options: PartOptions): ResolvedPartOptions {
  const { dir, maxRequests = BATCH_MAX_REQUESTS, maxBytes = BATCH_MAX_BYTES } = options;
  checkCap('maxRequests', maxRequests, BATCH_MAX_REQUESTS);
  checkCap('maxBytes', maxBytes, BATCH_MAX_BYTES);
  return { dir, maxRequests, maxBytes };
}

function checkCap(name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new NightshiftError('E_USAGE', `Expected \`${name}\` to be a whole number from 1 to ${max}, got \`${value}\`.`, { [name]: value });
  }
}

/**
 * Writes the jobs to send as Batch API input files: one endpoint and one model per part (the API runs one model
 * per batch), each closed, and written whole to its file, as soon as it holds `maxRequests` requests or the next
 * line would take it past `maxBytes`. Jobs are read once, as `JobSource.open` or `pick` yield them, and never held:
 * with models interleaved, one part per endpoint and model stays open, each with a small buffer.
 *
 * Job ids must be unique among `jobs`, as validation makes them. Returns the parts in the order they were started. A job whose line alone is over `maxBytes` stops the split with
 * `E_VALIDATION` naming it; the files are then closed as they are, and are not a set of parts to send.
 */
export async function writeParts(jobs: AsyncIterable<Job | { position: number; job: Job }>, options: PartOptions): Promise<BatchPart[]> {
  const { dir, maxRequests, maxBytes } = resolvePartOptions(options);
  const open = new Map<string, PartFile>();
  const done: BatchPart[] = [];
  // A few bytes an id: a job given twice would be sent twice, or make the API refuse its part's whole batch.
  const seen = new IdTable();
  let started = 0;
  try {
    for await (const item of jobs) {
      const job = 'job' in item ? item.job : item;
      const known = seen.size;
      if (seen.add(job.id) < known) throw new Error(`job ${JSON.stringify(job.id)} was given twice to be split into batch parts`);
      const fp = fingerprint(job);
      const line = requestLine(job, fp);
      const text = JSON.stringify(line);
      const bytes = Buffer.byteLength(text) + 1;
      if (bytes > maxBytes) throw lineTooLarge(job, bytes, maxBytes);
      const group = `${job.endpoint}\n${job.model}`;
      let part = open.get(group);
      if (part !== undefined && part.bytes + bytes > maxBytes) {
        open.delete(group);
        done.push(await part.close());
        part = undefined;
      }
      if (part === undefined) {
        part = await PartFile.create(dir, ++started, job.endpoint, job.model);
        open.set(group, part);
      }
      await part.add(text, bytes, partEntry(job, line.custom_id, fp));
      // A part that can take no more is finished now, not when its model's next job comes, which may be never.
      if (part.requests === maxRequests || part.bytes === maxBytes) {
        open.delete(group);
        done.push(await part.close());
      }
    }
    for (const part of open.values()) done.push(await part.close());
    open.clear();
  } finally {
    // Reached with parts still open only when the split stopped on an error, which is what the caller hears of.
    await Promise.all([...open.values()].map((part) => part.abandon()));
  }
  return done.sort((a, b) => a.number - b.number);
}

/** What a part's id list keeps of `job` (see {@link PartEntry}). */
export function partEntry(job: Job, customId: string, fp: string): PartEntry {
  const { file, line } = job.source;
  const { n } = job.body;
  return {
    custom_id: customId,
    id: job.id,
    fingerprint: fp,
    kind: job.kind,
    tags: job.tags,
    source: { file, line },
    ...(job.output !== undefined ? { output: job.output } : {}),
    n: typeof n === 'number' ? n : 1,
    cost: costOptionsOf(job),
  };
}

function lineTooLarge(job: Job, bytes: number, maxBytes: number): NightshiftError {
  const { file, line } = job.source;
  return new NightshiftError(
    'E_VALIDATION',
    `${file}:${line}: job ${JSON.stringify(job.id)} is ${bytes} bytes as a Batch API line, more than the ${maxBytes} bytes a batch input file may hold.`,
    { jobId: job.id, file, line, bytes },
  );
}
