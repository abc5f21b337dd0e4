import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { extname } from 'node:path';
import { readJsonl } from './read-jsonl.js';
import { describeFileSystemError, isFileSystemError } from '../common/fs-errors.js';
import { problemRecord, type RawRecord } from './records.js';

/**
 * Job file formats, by file extension. The CSV and JSON readers (and csv-parse, jsonc-parser) are loaded when a file
 * of theirs is read: a run of `.jsonl` files starts without them.
 */
const FORMATS = {
  '.json': async () => (await import('./read-json.js')).readJson,
  '.jsonl': () => Promise.resolve(readJsonl),
  '.csv': async () => (await import('./read-csv.js')).readCsv,
} as const;

/** Where to start reading a file part-way through: at a line's first byte, with its line and record numbers. */
export interface ReadFrom {
  byte: number;
  line: number;
  index: number;
}

/** Options of {@link readRecords}. */
export interface ReadOptions {
  /** Start part-way through the file (`.jsonl` only: a line is a record, so any line start is a record start). */
  from?: ReadFrom;
  /** Stop before this byte, a line's first (`.jsonl` only): the file is read in byte ranges, one per thread. */
  to?: number;
  /** Sees every byte read, in order (to hash the file as it is read). */
  onBytes?: (chunk: Buffer) => void;
  /** Job records (by record number in the file) that no one wants: a `.jsonl` reader passes them over unparsed. */
  skip?: (index: number) => boolean;
  /** The file's name in records and problems, when it is not its path (`<stdin>` for standard input saved to a file). */
  name?: string;
}

/** True when {@link readRecords} can start part-way through files of this name. */
export const canReadFrom = (file: string): boolean => extname(file).toLowerCase() === '.jsonl';

/**
 * Reads one job file as a stream of raw records, chosen by extension (`.json`, `.jsonl`, `.csv`).
 * Never throws for a bad file: an unknown extension or an unreadable file is yielded as a `problem` record.
 */
export async function* readRecords(path: string, { from, to, onBytes, skip, name = path }: ReadOptions = {}): AsyncGenerator<RawRecord> {
  const file = name;
  const extension = extname(path).toLowerCase();
  if (!Object.hasOwn(FORMATS, extension)) {
    yield problemRecord(file, 0, `unsupported file type ${JSON.stringify(extension || file)}: use .json, .jsonl or .csv`);
    return;
  }
  if ((from || to !== undefined) && !canReadFrom(path)) throw new Error(`cannot read ${file} part-way through`);
  try {
    // Only regular files: reading a pipe waits for a writer forever, and a device such as /dev/zero never ends.
    const stats = await stat(path);
    if (!stats.isFile()) {
      yield problemRecord(file, 0, `cannot read the file: ${stats.isDirectory() ? 'it is a directory' : 'it is not a regular file (a pipe or a device)'}`);
      return;
    }
    // An empty range reads nothing: `end` is inclusive, and a stream from 0 to -1 would read the whole file.
    if (to !== undefined && to <= (from?.byte ?? 0)) return;
    const stream = createReadStream(path, { ...(from ? { start: from.byte } : {}), ...(to !== undefined ? { end: to - 1 } : {}) });
    const chunks = onBytes ? tap(stream, onBytes) : stream;
    if (extension === '.jsonl') yield* readJsonl(chunks, file, from, skip);
    else yield* (await FORMATS[extension as keyof typeof FORMATS]())(chunks, file);
  } catch (error) {
    if (!isFileSystemError(error)) throw error;
    yield problemRecord(file, 0, `cannot read the file: ${describeFileSystemError(error)}`);
  }
}

async function* tap(chunks: AsyncIterable<Buffer>, see: (chunk: Buffer) => void): AsyncGenerator<Buffer> {
  for await (const chunk of chunks) {
    see(chunk);
    yield chunk;
  }
}
