import { open, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Job, Problem } from '../common/types.js';
import { freeId } from './content-id.js';
import type { CliDefaults } from './defaults.js';
import { KEY_BYTES } from './digests.js';
import { toProblem } from './problems.js';
import { JOB_KINDS } from './job-fields.js';
import type { UniquenessCheck } from './unique.js';

/*
 * The validation of a large `.jsonl` file in byte ranges, one per thread: the calling thread validates the first
 * range itself while worker threads (`check-worker.ts`) validate the others, each posting its records' outcomes in
 * line order. A range starts at a line's first byte, so it starts at a record. The calling thread then takes the
 * outcomes range by range, in file order, and does what needs every record before it: ids used twice, the numbers
 * of identical id-less jobs, line numbers (a worker numbers its lines from the start of its range), digests.
 */

/**
 * The number a worker gives its range's first line: not 1, so that a U+FEFF at the start of a range is kept as text,
 * as it is on any line but the file's first.
 */
export const RANGE_FIRST_LINE = 2;
/** A record's kind in a {@link CheckedBatch}: something that could not be read as a record (bad JSON, not UTF-8). */
export const NOT_A_JOB = 254;
/** A record's kind in a {@link CheckedBatch}: a job record with problems. */
export const INVALID_JOB = 255;

/** How to validate large files in parallel. */
export interface ParallelOptions {
  /**
   * `.jsonl` files of at least this many bytes are split; smaller ones are validated in one thread (starting a worker
   * and loading the validation's modules in it takes a few hundred milliseconds).
   * @default 32 MiB
   */
  minBytes?: number;
  /**
   * Worker threads, besides the calling thread.
   * @default one less than the machine's cores, at least 1
   */
  workers?: number;
  /** The worker's script: the built `check-worker.js` beside this module. */
  workerUrl?: URL;
}

const DEFAULT_MIN_BYTES = 32 * 1024 * 1024;

/** What a worker is given: a byte range of a file, and how to normalize its jobs. */
export interface RangeTask {
  path: string;
  /** The file's name in jobs and problems. */
  name: string;
  start: number;
  /** The first byte after the range. */
  end: number;
  defaults: CliDefaults;
}

/**
 * The outcomes of consecutive records of a range, one entry per record in each array (`keys`: 16 bytes per record).
 * Lines are counted from the range's first line (0); `extras` holds, by record number, what few records have.
 */
export interface CheckedBatch {
  size: number;
  /** A job's kind (its index in `JOB_KINDS`), {@link NOT_A_JOB} or {@link INVALID_JOB}. */
  kinds: Uint8Array;
  lines: Int32Array;
  /**
   * The ids, one after the other: record `i`'s is `idText` from `idEnds[i - 1]` (0 for the first) to `idEnds[i]`:
   * the id a record claims, or a valid id-less job's content id (`fromContent`); `hasId` is 0 for none. One string
   * a batch, not one a record: the batches of the ranges after this thread's wait, a million records' worth, until
   * this thread gets to them.
   */
  idText: string;
  idEnds: Uint32Array;
  hasId: Uint8Array;
  fromContent: Uint8Array;
  /** Each record's model, as an index into `modelNames`. */
  models: Uint16Array;
  modelNames: string[];
  /** The first bytes of each valid job's request fingerprint. */
  keys: Uint8Array;
  /** By record number (`at`, in order): the problems of a record, or the image files an image job writes. */
  extras: { at: number; problems?: Problem[]; output?: string; n?: number }[];
}

/** What a worker posts: batches of outcomes, then its range's line breaks and whether it read local images. */
export type RangeMessage = { type: 'batch'; batch: CheckedBatch } | { type: 'end'; newlines: number; localImages: boolean };

/** One range in a worker: its batches in order, as they come. */
export class RangeRun {
  /** Line breaks in the range, once it is done. */
  newlines = 0;
  /** Some job of the range read a local image. */
  localImages = false;
  private readonly queue: CheckedBatch[] = [];
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private readonly worker: Worker;

  constructor(task: RangeTask, url: URL) {
    this.worker = new Worker(url, { workerData: task });
    this.worker.on('message', (message: RangeMessage) => {
      if (message.type === 'batch') this.queue.push(message.batch);
      else {
        this.newlines = message.newlines;
        this.localImages = message.localImages;
        this.ended = true;
      }
      this.wake?.();
    });
    this.worker.on('error', (error: Error) => {
      this.failure = error;
      this.wake?.();
    });
    this.worker.on('exit', (code) => {
      if (!this.ended) this.failure ??= new Error(`the validation thread of ${task.name} stopped (exit code ${code}) before the end of its range`);
      this.wake?.();
    });
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<CheckedBatch> {
    for (;;) {
      const batch = this.queue.shift();
      if (batch) {
        yield batch;
        continue;
      }
      if (this.failure) throw this.failure;
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }

  /** Stops the worker (at once when it is still at work: its outcomes are no longer wanted). */
  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

/** A file split for validation: the calling thread validates bytes 0 to `mainEnd`, the workers the `ranges` after. */
export interface Split {
  mainEnd: number;
  ranges: RangeRun[];
}

/**
 * Splits `path` at line starts into one range for the calling thread and one for each worker, and starts the
 * workers; undefined for a file too small to be worth it (or that cannot be looked at: a validation in one thread
 * reports why).
 */
export async function splitForWorkers(path: string, name: string, defaults: CliDefaults, options: ParallelOptions): Promise<Split | undefined> {
  const size = await stat(path).then(
    (stats) => (stats.isFile() ? stats.size : 0),
    () => 0,
  );
  if (size === 0 || size < (options.minBytes ?? DEFAULT_MIN_BYTES)) return undefined;
  const workers = Math.max(1, options.workers ?? availableParallelism() - 1);
  const starts: number[] = [];
  const handle = await open(path, 'r');
  try {
    for (let part = 1; part <= workers; part++) {
      const start = await lineStartFrom(handle, Math.floor((size * part) / (workers + 1)), size);
      if (start < size && start > (starts.at(-1) ?? 0)) starts.push(start);
    }
  } finally {
    await handle.close();
  }
  if (starts.length === 0) return undefined;
  const url = options.workerUrl ?? new URL('./check-worker.js', import.meta.url);
  const ranges = starts.map((start, index) => new RangeRun({ path, name, start, end: starts[index + 1] ?? size, defaults }, url));
  return { mainEnd: starts[0]!, ranges };
}

/** The first byte of the first line that starts at or after `from` (`size` when none does). */
async function lineStartFrom(handle: Awaited<ReturnType<typeof open>>, from: number, size: number): Promise<number> {
  const window = Buffer.alloc(64 * 1024);
  // A line starts at `from` when the byte before it ends a line.
  for (let at = Math.max(0, from - 1); at < size; at += window.length) {
    const { bytesRead } = await handle.read(window, 0, window.length, at);
    if (bytesRead === 0) break;
    const newline = window.subarray(0, bytesRead).indexOf(0x0a);
    if (newline >= 0) return at + newline + 1;
  }
  return size;
}

/** What validation keeps of a valid job checked in a worker thread: enough to count it and digest it. */
export interface JobDigest extends Pick<Job, 'id' | 'kind' | 'model' | 'source'> {
  /** The first bytes of its request fingerprint. */
  key: Uint8Array;
}

/**
 * The outcomes of a batch of records checked in a worker thread, as `load.ts` gives those it checks itself:
 * lines numbered in the file (the range's first is `firstLine`), ids used twice and image files written twice
 * reported, identical id-less jobs numbered.
 */
export function* settleBatch(
  batch: CheckedBatch,
  file: string,
  firstLine: number,
  unique: UniquenessCheck | undefined,
  takenBefore: (at: number) => (candidate: string) => boolean,
  numbering: Map<string, number>,
  nextPosition: () => number,
): Generator<{ problems: Problem[] } | { digest: JobDigest }> {
  const inFile = (problems: readonly Problem[] = []): Problem[] =>
    problems.map((problem) => (problem.line === 0 ? problem : { ...problem, line: firstLine + problem.line }));
  let extra = 0;
  for (let at = 0; at < batch.size; at++) {
    const extras = batch.extras[extra]?.at === at ? batch.extras[extra++] : undefined;
    const kind = batch.kinds[at]!;
    if (kind === NOT_A_JOB) {
      yield { problems: inFile(extras?.problems) };
      continue;
    }
    const position = nextPosition();
    const source = { file, line: firstLine + batch.lines[at]! };
    let id = batch.hasId[at] ? batch.idText.slice(at === 0 ? 0 : batch.idEnds[at - 1], batch.idEnds[at]) : undefined;
    const problems = kind === INVALID_JOB ? inFile(extras?.problems) : [];
    if (id !== undefined && batch.fromContent[at]) id = freeId(id, takenBefore(position), numbering);
    const taken = id === undefined || !unique ? [] : unique.id(id, source);
    // A job with a taken id would also clash on its default file names: one problem is enough.
    if (unique && kind !== INVALID_JOB && taken.length === 0 && extras?.output !== undefined) {
      taken.push(...unique.files({ id: id!, source, output: extras.output, body: { n: extras.n } }));
    }
    problems.push(...taken.map((detail) => toProblem({ source, jobId: id, csv: false }, detail)));
    if (problems.length > 0) yield { problems };
    else yield { digest: { id: id!, kind: JOB_KINDS[kind]!, model: batch.modelNames[batch.models[at]!]!, source, key: batch.keys.subarray(at * KEY_BYTES, (at + 1) * KEY_BYTES) } };
  }
}
