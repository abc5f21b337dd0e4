import { stringify } from 'csv-stringify/sync';
import { zeroUsage, type Job } from '../common/types.js';
import type { JobRecord, JobState } from './journal.js';
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

/** One `results.csv` row (as a CSV line) for a job and its current record. */
export function resultLine(job: Job, record: JobRecord | undefined): string {
  return resultRow({ id: job.id, kind: job.kind, model: job.model, tags: job.tags, source: `${job.source.file}:${job.source.line}` }, record);
}

/** The `results.csv` row of a finished job from its journal record alone, which names the job as it was when it ran. */
export const recordLine = (record: JobRecord): string => resultRow(record, record);

function resultRow(job: ResultJob, record: JobRecord | undefined): string {
  // A state this version does not know is no success.
  const status: ResultStatus = record ? (STATUS_OF[record.state] ?? 'failed') : 'pending';
  const usage = record?.usage ?? zeroUsage();
  const row = [
    job.id,
    job.kind,
    job.model,
    status,
    record?.attempts ?? 0,
    record ? (record.files.length > 0 ? record.files.map((file) => file.path).join(';') : record.output) : '',
    record?.finishReason ?? '',
    record?.error ?? '',
    usage.input_tokens,
    usage.cached_input_tokens,
    usage.output_tokens,
    usage.reasoning_tokens,
    usage.total_tokens,
    usage.images,
    record ? formatUsd(record.costUsd) : '',
    record?.latencyMs ?? '',
    record?.requestId ?? '',
    job.source,
    job.tags.join(';'),
  ];
  return csvLine(row);
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
