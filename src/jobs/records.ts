import type { Problem, SourceLocation } from '../common/types.js';

/** A job as written in a `.json` or `.jsonl` file: any JSON value, validated later (not the journal's `JobRecord`, a job's outcome). */
export interface JsonJobRecord {
  type: 'job';
  source: SourceLocation;
  /** 1-based position among the file's records. */
  index: number;
  value: unknown;
}

/** A data row of a `.csv` file: the cell text keyed by header name, not yet typed. */
export interface RowRecord {
  type: 'row';
  source: SourceLocation;
  /** 1-based position among the file's rows. */
  index: number;
  cells: Record<string, string>;
}

/** The `defaults` object of a `.json` file; it comes before the file's jobs. */
export interface DefaultsRecord {
  type: 'defaults';
  source: SourceLocation;
  value: unknown;
}

/** The header row of a `.csv` file; it comes before the file's rows. */
export interface HeaderRecord {
  type: 'header';
  source: SourceLocation;
  columns: string[];
}

/** A job record passed over unread, because the reader was told no one wants it. */
export interface SkippedRecord {
  type: 'skipped';
}

/** Something that could not be read as a record at all (syntax error, not UTF-8, unreadable file). */
export interface ProblemRecord {
  type: 'problem';
  problem: Problem;
}

/**
 * What the format readers yield, in file order. Readers only parse; validation and
 * normalization happen record by record afterwards, so a file can be streamed.
 */
export type RawRecord = JsonJobRecord | RowRecord | DefaultsRecord | HeaderRecord | ProblemRecord | SkippedRecord;

/** A `problem` record for `line` of `file` (0 for the whole file). */
export const problemRecord = (file: string, line: number, message: string): ProblemRecord => ({
  type: 'problem',
  problem: { file, line, message },
});

/** True for a JSON object: not null, not an array. */
export const isJsonObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
