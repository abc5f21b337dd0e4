import type { Job } from '../common/types.js';
import type { JobRecord } from './journal.js';

/** What every record of a job shares, taken from the job: a live run has the job, a batch's collector its part's list. */
export type RecordedJob = Pick<Job, 'id' | 'kind' | 'model' | 'tags'> & { source: Pick<Job['source'], 'file' | 'line'> };

/** A job's outcome as the journal records it, less what every record of the job shares. */
export type Outcome = Pick<JobRecord, 'state' | 'usage' | 'costUsd'> &
  Partial<Pick<JobRecord, 'output' | 'files' | 'finishReason' | 'error' | 'status' | 'requestId' | 'serviceTier' | 'batchId' | 'paid' | 'origin'>>;

/** When the job's work started and ended (milliseconds since the epoch), its attempts and its latency. */
export interface Timing {
  attempts: number;
  startedAt: number;
  finishedAt: number;
  latencyMs: number;
}

/**
 * The one place a job's journal record is built, live or from a batch: what every record of the job shares, then its
 * outcome, fields in the order the journal's index reads them (`journal-index.ts`), absent rather than undefined.
 */
export function jobRecord(job: RecordedJob, fp: string, timing: Timing, outcome: Outcome, origin: string | undefined): JobRecord {
  const { finishReason, error, status, requestId, serviceTier, batchId } = outcome;
  const recordOrigin = outcome.origin ?? origin;
  return {
    type: 'job',
    id: job.id,
    fingerprint: fp,
    kind: job.kind,
    model: job.model,
    tags: job.tags,
    source: `${job.source.file}:${job.source.line}`,
    state: outcome.state,
    attempts: timing.attempts,
    output: outcome.output ?? '',
    files: outcome.files ?? [],
    ...(finishReason ? { finishReason } : {}),
    ...(error !== undefined ? { error } : {}),
    ...(status !== undefined ? { status } : {}),
    usage: outcome.usage,
    costUsd: outcome.costUsd,
    latencyMs: timing.latencyMs,
    ...(requestId ? { requestId } : {}),
    ...(serviceTier ? { serviceTier } : {}),
    ...(batchId ? { batchId } : {}),
    ...(outcome.paid ? { paid: outcome.paid } : {}),
    startedAt: new Date(timing.startedAt).toISOString(),
    finishedAt: new Date(timing.finishedAt).toISOString(),
    // Last: the layout the journal's index reads.
    ...(recordOrigin ? { origin: recordOrigin } : {}),
  };
}
