import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { NightshiftError } from '../common/errors.js';
import { describeFileSystemError, isFileSystemError } from '../common/fs-errors.js';
import type { Endpoint, JobKind } from '../common/types.js';
import type { CostOptions } from '../cost/cost.js';

/**
 * One entry of a part's id list: the job a custom_id stands for, with its full request fingerprint (the custom_id
 * holds only a tag of it) and what collecting its answer needs of the job without reading the job files again:
 * what its journal record shares, where its images go, how many it asked for and what prices it.
 */
export interface PartEntry {
  custom_id: string;
  id: string;
  fingerprint: string;
  kind: JobKind;
  tags: string[];
  source: { file: string; line: number };
  /** Image jobs: the file name pattern of their images. */
  output?: string;
  /** Images asked for (image jobs), choices (chat). */
  n: number;
  /** What the job's price depends on besides usage and model: image size and quality, the tier asked. */
  cost: CostOptions;
}

/** A Batch API input file written, and what it holds. */
export interface BatchPart {
  /** From 1, in the order the parts were started. */
  number: number;
  /** The input file: one Batch API request a line (`requestLine` in `lines.ts`). */
  file: string;
  /** The id list: line for line with `file`, a {@link PartEntry} for each request. */
  ids: string;
  endpoint: Endpoint;
  model: string;
  requests: number;
  /** Bytes of `file`, newlines included. */
  bytes: number;
  firstCustomId: string;
  lastCustomId: string;
}

/** Bytes a part holds in memory before they go to its files: memory stays flat however large the part. */
const FLUSH_BYTES = 64 * 1024;

/** One part being written: its input file and its id list, appended through a small buffer. */
export class PartFile {
  requests = 0;
  bytes = 0;
  #first = '';
  #last = '';
  readonly #lines: BufferedFile;
  readonly #ids: BufferedFile;

  private constructor(
    readonly description: Pick<BatchPart, 'number' | 'file' | 'ids' | 'endpoint' | 'model'>,
    lines: BufferedFile,
    ids: BufferedFile,
  ) {
    this.#lines = lines;
    this.#ids = ids;
  }

  /** Starts part `number` in `dir` (made when missing); a part file already there is refused, never overwritten. */
  static async create(dir: string, number: number, endpoint: Endpoint, model: string): Promise<PartFile> {
    await outputError(dir, () => mkdir(dir, { recursive: true }));
    const file = join(dir, `part-${number}.jsonl`);
    const ids = join(dir, `part-${number}.ids.jsonl`);
    const lines = await BufferedFile.create(file);
    const list = await BufferedFile.create(ids).catch(async (error: unknown) => {
      await lines.close();
      throw error;
    });
    return new PartFile({ number, file, ids, endpoint, model }, lines, list);
  }

  /** Appends one request line (`text`, without its newline, `bytes` long with it) and its id list entry. */
  async add(text: string, bytes: number, entry: PartEntry): Promise<void> {
    this.requests += 1;
    this.bytes += bytes;
    if (this.requests === 1) this.#first = entry.custom_id;
    this.#last = entry.custom_id;
    await this.#lines.write(`${text}\n`);
    await this.#ids.write(`${JSON.stringify(entry)}\n`);
  }

  /** Writes what is buffered, closes both files and describes the part. */
  async close(): Promise<BatchPart> {
    try {
      await this.#lines.flush();
      await this.#ids.flush();
    } finally {
      await this.abandon();
    }
    return { ...this.description, requests: this.requests, bytes: this.bytes, firstCustomId: this.#first, lastCustomId: this.#last };
  }

  /** Closes both files without writing what is buffered (an error stopped the split). */
  async abandon(): Promise<void> {
    await Promise.all([this.#lines.close(), this.#ids.close()]);
  }
}

/** A new file appended through a buffer of {@link FLUSH_BYTES}; file-system errors are `E_OUTPUT` naming it. */
class BufferedFile {
  #chunks: string[] = [];
  #buffered = 0;
  #handle: FileHandle | undefined;

  private constructor(
    readonly path: string,
    handle: FileHandle,
  ) {
    this.#handle = handle;
  }

  static async create(path: string): Promise<BufferedFile> {
    return new BufferedFile(path, await outputError(path, () => open(path, 'wx')));
  }

  async write(text: string): Promise<void> {
    this.#chunks.push(text);
    // Length in UTF-16 units: within a factor of three of the bytes, which is all a flush threshold needs.
    this.#buffered += text.length;
    if (this.#buffered >= FLUSH_BYTES) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.#chunks.length === 0) return;
    const text = this.#chunks.join('');
    this.#chunks = [];
    this.#buffered = 0;
    const handle = this.#handle;
    if (handle === undefined) throw new Error(`${this.path} is written after it was closed`);
    await outputError(this.path, () => handle.write(text));
  }

  /** Closes the file once; later calls do nothing. */
  async close(): Promise<void> {
    const handle = this.#handle;
    this.#handle = undefined;
    await handle?.close();
  }
}

async function outputError<T>(path: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (!isFileSystemError(error)) throw error;
    throw new NightshiftError('E_OUTPUT', `Cannot write ${path}: ${describeFileSystemError(error)}`, { path }, { cause: error });
  }
}
