import { createReadStream } from 'node:fs';
import { extname } from 'node:path';
import { readCsv } from './read-csv.js';
import { readJson } from './read-json.js';
import { readJsonl } from './read-jsonl.js';
import { describeFileSystemError, isFileSystemError } from './fs-errors.js';
import { problemRecord, type RawRecord } from './records.js';

/** Job file formats, by file extension. */
const FORMATS = {
  '.json': readJson,
  '.jsonl': readJsonl,
  '.csv': readCsv,
} as const;

/**
 * Reads one job file as a stream of raw records, chosen by extension (`.json`, `.jsonl`, `.csv`).
 * Never throws for a bad file: an unknown extension or an unreadable file is yielded as a `problem` record.
 */
export async function* readRecords(file: string): AsyncGenerator<RawRecord> {
  const extension = extname(file).toLowerCase();
  if (!Object.hasOwn(FORMATS, extension)) {
    yield problemRecord(file, 0, `unsupported file type ${JSON.stringify(extension || file)}: use .json, .jsonl or .csv`);
    return;
  }
  const reader = FORMATS[extension as keyof typeof FORMATS];
  try {
    yield* reader(createReadStream(file), file);
  } catch (error) {
    if (!isFileSystemError(error)) throw error;
    yield problemRecord(file, 0, `cannot read the file: ${describeFileSystemError(error)}`);
  }
}
