import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { stringify } from 'csv-stringify/sync';
import type { JobRecord } from './journal.js';
import { zeroUsage, type Job, type JobKind, type Usage } from './types.js';

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

/** Columns of `usage.csv`: one row per model and kind, then `TOTAL`. */
export const USAGE_COLUMNS = [
  'model',
  'kind',
  'jobs',
  'ok',
  'failed',
  'input_tokens',
  'cached_input_tokens',
  'output_tokens',
  'reasoning_tokens',
  'images',
  'cost_usd',
  'unpriced_jobs',
] as const;

/**
 * A job's status in the results: `ok` and `failed` come from the journal; `pending` means the job has no
 * outcome for its current request yet (the run stopped early, or the request changed since it last ran).
 */
export type ResultStatus = 'ok' | 'failed' | 'pending';

/** The record that answers for `job`, if its request is still the one that was sent. */
export function currentRecord(job: Job, fingerprint: string, record: JobRecord | undefined): JobRecord | undefined {
  return record && record.fingerprint === fingerprint ? record : undefined;
}

/** Formats a cost for a CSV cell: empty when unknown (never 0), otherwise decimal dollars to the nano-dollar the cost module keeps. */
export function formatUsd(usd: number | null): string {
  if (usd === null) return '';
  return usd.toFixed(9).replace(/\.?0+$/, '') || '0';
}

/** One `results.csv` row (as a CSV line) for a job and its current record. */
export function resultLine(job: Job, record: JobRecord | undefined): string {
  const status: ResultStatus = record ? (record.state === 'done' ? 'ok' : 'failed') : 'pending';
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
    `${job.source.file}:${job.source.line}`,
    job.tags.join(';'),
  ];
  return stringify([row]);
}

export const resultsHeader = (): string => stringify([[...RESULT_COLUMNS]]);

/** Running totals for one `usage.csv` row. */
export interface UsageGroup {
  model: string;
  kind: JobKind | '';
  jobs: number;
  ok: number;
  failed: number;
  usage: Usage;
  costUsd: number;
  unpricedJobs: number;
}

/** Sums jobs by model and kind, in first-seen order, with a TOTAL row at the end. */
export class UsageSummary {
  private readonly groups = new Map<string, UsageGroup>();
  readonly total: UsageGroup = emptyGroup('TOTAL', '');

  add(job: Pick<Job, 'model' | 'kind'>, record: JobRecord | undefined): void {
    const key = `${job.model}\u0000${job.kind}`;
    let group = this.groups.get(key);
    if (!group) {
      group = emptyGroup(job.model, job.kind);
      this.groups.set(key, group);
    }
    for (const target of [group, this.total]) addTo(target, record);
  }

  /** Models whose cost is unknown, for the warning that says so. */
  unpricedModels(): string[] {
    return [...this.groups.values()].filter((group) => group.unpricedJobs > 0).map((group) => group.model);
  }

  rows(): UsageGroup[] {
    return [...this.groups.values(), this.total];
  }

  toCsv(): string {
    const lines = this.rows().map((group) => [
      group.model,
      group.kind,
      group.jobs,
      group.ok,
      group.failed,
      group.usage.input_tokens,
      group.usage.cached_input_tokens,
      group.usage.output_tokens,
      group.usage.reasoning_tokens,
      group.usage.images,
      // A group with any unpriced job shows no cost for the model itself; the TOTAL shows the priced part
      // and `unpriced_jobs` says it is incomplete.
      group.unpricedJobs > 0 && group.model !== 'TOTAL' ? '' : formatUsd(group.costUsd),
      group.unpricedJobs,
    ]);
    return stringify([[...USAGE_COLUMNS], ...lines]);
  }
}

function emptyGroup(model: string, kind: JobKind | ''): UsageGroup {
  return { model, kind, jobs: 0, ok: 0, failed: 0, usage: zeroUsage(), costUsd: 0, unpricedJobs: 0 };
}

function addTo(group: UsageGroup, record: JobRecord | undefined): void {
  group.jobs++;
  if (!record) return;
  if (record.state === 'done') group.ok++;
  else group.failed++;
  for (const key of Object.keys(group.usage) as (keyof Usage)[]) group.usage[key] += record.usage[key];
  if (record.costUsd === null) group.unpricedJobs++;
  else group.costUsd = Math.round((group.costUsd + record.costUsd) * 1e9) / 1e9;
}

/**
 * Writes a CSV from an iterable of lines without holding it in memory: to a temporary file beside the
 * target, renamed over it at the end, so readers never see half a file.
 */
export async function writeLinesAtomic(path: string, lines: Iterable<string> | AsyncIterable<string>): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  const stream = createWriteStream(temp);
  try {
    for await (const line of lines) {
      if (!stream.write(line)) await once(stream, 'drain');
    }
    stream.end();
    await once(stream, 'finish');
    await rename(temp, path);
  } catch (error) {
    stream.destroy();
    await rm(temp, { force: true });
    throw error;
  }
}
