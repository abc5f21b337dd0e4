import { stringify } from 'csv-stringify/sync';
import { zeroUsage, type Job } from '../common/types.js';
import type { JobRecord, JobState } from './journal.js';
import { spreadsheetSafe } from './spreadsheet-safe.js';
import { formatUsd } from './usage-table.js';

/** Columns of `results.csv`, one row per job in input order. */
export const RESULT_COLUMNS = [
  'id',
  'kind',
  'model',
  'status',
  'attempts',
  'output',
  'finish_reason',
  'error',
  'input_tokens',
  'cached_input_tokens',
  'output_tokens',
  'reasoning_tokens',
  'total_tokens',
  'images',
  'cost_usd',
  'latency_ms',
  'request_id',
  'source',
  'tags',
  // Columns added after 0.1.0 come last, so that scripts reading its files by position keep working.
  'service_tier',
  'batch_id',
] as const;

/**
 * A job's status in the results: `ok`, `incomplete` (the answer was cut off) and `failed` come from the journal;
 * `pending` means the job has no outcome for its current request yet (the run stopped early, or the request changed
 * since it last ran).
 */
export type ResultStatus = 'ok' | 'incomplete' | 'failed' | 'pending';

const STATUS_OF: Readonly<Record<JobState, ResultStatus>> = { done: 'ok', incomplete: 'incomplete', failed: 'failed' };

/** What a `results.csv` row shows of the job itself. */
export interface ResultJob {
  id: string;
  kind: string;
  model: string;
  tags: readonly string[];
  /** `file:line`. */
  source: string;
}

/** One job's result: the fields of results.csv, in its column order, with their exact values (as in results.jsonl). */
export type ResultRow = {
  [K in (typeof RESULT_COLUMNS)[number]]: K extends 'tags' ? readonly string[] : string | number | null;
};

/** One `results.csv` row (as a CSV line) for a job and its current record. */
export const resultLine = (job: Job, record: JobRecord | undefined): string => csvOf(jobResult(job, record));

/** A job's result from the job and its current record (undefined: pending). */
export const jobResult = (job: Job, record: JobRecord | undefined): ResultRow => resultOf(resultJob(job), record);

/** A result as a `results.csv` line: text made spreadsheet-safe, unknowns empty, the cost as decimal dollars. */
export const resultCsvLine = (row: ResultRow): string => csvOf(row);

/** A result as a `results.jsonl` line: the exact values, numbers as numbers, unknowns as null. */
export const resultJsonLine = (row: ResultRow): string => `${JSON.stringify(row)}\n`;

/** The `results.csv` row of a finished job from its journal record alone, which names the job as it was when it ran. */
export const recordLine = (record: JobRecord): string => csvOf(resultOf(record, record));

const resultJob = (job: Job): ResultJob => ({ id: job.id, kind: job.kind, model: job.model, tags: job.tags, source: `${job.source.file}:${job.source.line}` });

function resultOf(job: ResultJob, record: JobRecord | undefined): ResultRow {
  // A state this version does not know is no success.
  const status: ResultStatus = record ? (STATUS_OF[record.state] ?? 'failed') : 'pending';
  const usage = record?.usage ?? zeroUsage();
  return {
    id: job.id,
    kind: job.kind,
    model: job.model,
    status,
    attempts: record?.attempts ?? 0,
    output: record ? (record.files.length > 0 ? record.files.map((file) => file.path).join(';') : record.output) : null,
    finish_reason: record?.finishReason ?? null,
    error: record?.error ?? null,
    input_tokens: usage.input_tokens,
    cached_input_tokens: usage.cached_input_tokens,
    output_tokens: usage.output_tokens,
    reasoning_tokens: usage.reasoning_tokens,
    total_tokens: usage.total_tokens,
    images: usage.images,
    cost_usd: record?.costUsd ?? null,
    latency_ms: record?.latencyMs ?? null,
    request_id: record?.requestId ?? null,
    source: job.source,
    tags: job.tags,
    service_tier: record?.serviceTier ?? null,
    batch_id: record?.batchId ?? null,
  };
}

function csvOf(row: ResultRow): string {
  return csvLine(
    RESULT_COLUMNS.map((column): string | number => {
      if (column === 'tags') return spreadsheetSafe(row.tags.join(';'));
      const value = row[column];
      if (column === 'cost_usd') return typeof value === 'number' ? formatUsd(value) : '';
      return typeof value === 'string' ? spreadsheetSafe(value) : (value ?? '');
    }),
  );
}

const NEEDS_QUOTES = /[",\n\r]/;

/**
 * One CSV line, quoted as csv-stringify quotes by default (a cell with a quote, comma or line break is quoted,
 * its quotes doubled). results.csv gets one per job, twice per run: building it by hand is several times faster.
 */
export function csvLine(cells: readonly (string | number)[]): string {
  let line = '';
  for (let index = 0; index < cells.length; index++) {
    const cell = cells[index]!;
    const text = typeof cell === 'number' ? String(cell) : cell;
    line += `${index > 0 ? ',' : ''}${NEEDS_QUOTES.test(text) ? `"${text.replaceAll('"', '""')}"` : text}`;
  }
  return `${line}\n`;
}

export const resultsHeader = (): string => stringify([[...RESULT_COLUMNS]]);
