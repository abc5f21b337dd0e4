import { APIError } from 'openai';
import type { Clock } from '../common/clock.js';
import { sumUsage, zeroUsage, type Job, type Usage } from '../common/types.js';
import { BadAnswerError } from './answer.js';
import { costOf, costOptionsOf } from '../cost/cost.js';
import { ImageSaveError } from '../output/images.js';
import { answerState } from '../output/answer.js';
import { jobRecord, type Outcome } from '../output/job-record.js';
import { OFFLINE_ORIGIN, offlineOrigin, type JobRecord } from '../output/journal.js';
import { executeJob, type AttemptResult } from './execute.js';
import type { RunEvent, RunOptions, StopReason } from './options.js';
import type { PartialImages } from './plan.js';
import type { RateScheduler, TokenClaim } from './rate-limit.js';
import { countedTokens, tokenClaim } from './rate-limit-tokens.js';
import { backoffDelay, CAPACITY_BACKOFF, classifyError, isCapacityShortage, type AttemptError } from './retry.js';

/** What one job's attempts need of the run that sends them. */
export interface AttemptContext {
  readonly options: RunOptions;
  readonly clock: Clock;
  /** Shared by every worker: the limits, and the pause after a 429. */
  readonly rates: RateScheduler;
  /** Aborted when the run stops: no new attempt, no retry. */
  readonly stopped: AbortSignal;
  /** Aborted when the run abandons the requests in flight. */
  readonly aborted: AbortSignal;
  redact(text: string): string;
  emit(event: RunEvent): void;
  /** A failed attempt is to be tried again: counted, and reported as the event. */
  retrying(event: Extract<RunEvent, { type: 'retry' }>): void;
  stop(reason: StopReason, message: string): void;
  /** The API said `model` does not exist: no further job of it is to be sent. */
  modelMissing(model: string): void;
  /** True (and counted) when `job` is not to be sent because its model does not exist; it stays pending. */
  heldBack(job: Job): boolean;
}

/** When the job started and how many attempts it took; latency counts from `latencyFrom`. */
interface Timing {
  attempts: number;
  latencyFrom: number;
}

/**
 * Sends a job until it has an outcome (or the run stops) and hands its record to `record`. Returns what the job
 * cost, or undefined when it has no outcome (stop, abort, quota): it stays pending for the next run. With `partial`,
 * `job` asks for the images to make again alone (see `requestOf`): its outcome is journaled with all the job's images,
 * the kept ones from `partial.record` (a failure too, so that the next run again makes only the lost ones), and what
 * it paid apart (`paid`).
 */
export async function attemptJob(
  job: Job,
  fp: string,
  run: AttemptContext,
  record: (record: JobRecord) => Promise<void>,
  partial?: PartialImages,
): Promise<number | undefined> {
  const { options, clock, rates } = run;
  const startedAt = clock.now();
  const finish = ({ attempts, latencyFrom }: Timing, outcome: Outcome): Promise<void> => {
    const finishedAt = clock.now();
    const timing = { attempts, startedAt, finishedAt, latencyMs: finishedAt - latencyFrom };
    return record(jobRecord(job, fp, timing, partial ? withKeptImages(outcome, partial) : outcome, options.origin));
  };
  // Counted only when a token limit applies, and once for all attempts.
  let claim: TokenClaim | undefined;
  const countTokens = (): TokenClaim => (claim ??= tokenClaim(job));
  let lastError: AttemptError | undefined;
  let attempts = 0;
  // What answers the server billed but that could not be used cost: counted in the job's record, whatever its outcome.
  let wasted: Usage | undefined;
  const costOfUsage = (usage: Usage): number | null => costOf(usage, job.model, options.prices, costOptionsOf(job)).usd;
  for (let attempt = 1; attempt <= options.maxAttempts; attempt++) {
    if (run.heldBack(job)) return undefined;
    // A graceful stop lets a job in flight finish, but starts nothing new: no retry, and no job still waiting
    // for a rate-limit slot (it stays pending). An abort also stops `stopped`.
    const permit = await rates.acquire(countTokens, job.model, run.stopped);
    if (!permit || run.aborted.aborted) return undefined;
    const attemptStart = clock.now();
    attempts = attempt;
    let result: AttemptResult;
    try {
      const numbers = partial ? { imageNumbers: partial.images } : {};
      result = await executeJob(job, { client: options.client, outDir: options.outDir, timeoutMs: timeoutOf(job, options), signal: run.aborted, redact: run.redact, ...numbers });
    } catch (error) {
      if (run.aborted.aborted) return undefined;
      if (error instanceof ImageSaveError) {
        rates.observe(error.headers, permit);
        return await failUnsaved(job, run, error, (outcome) => finish({ attempts: attempt, latencyFrom: startedAt }, outcome));
      }
      if (error instanceof APIError) rates.observe(error.headers, permit);
      if (error instanceof BadAnswerError && error.usage) wasted = wasted ? sumUsage(wasted, error.usage) : error.usage;
      lastError = classifyError(error, clock.now(), run.redact, new URL(options.client.baseURL).host);
      if (lastError.verdict === 'stop-run') {
        // The job itself is fine; it stays pending so a rerun with credit, or with a key the API accepts, sends it.
        if (lastError.status === 401) {
          run.stop('unauthorized', `The API refused the key (${lastError.message}). Check OPENAI_API_KEY (and OPENAI_ORG_ID/OPENAI_PROJECT_ID), then run the same command again to continue.`);
        } else {
          run.stop('quota', `The account is out of credit (${lastError.message}). Add credit, then run the same command again to continue.`);
        }
        return undefined;
      }
      if (lastError.verdict === 'fail' || attempt === options.maxAttempts) break;
      const capacity = isCapacityShortage(lastError);
      const delayMs = lastError.retryAfterMs ?? backoffDelay(attempt, { ...(capacity ? CAPACITY_BACKOFF : {}), ...(options.random ? { random: options.random } : {}) });
      // A rate limit concerns the whole account: every worker waits, not just this one. Flex capacity concerns the request.
      if (lastError.status === 429 && !capacity) rates.pause(delayMs);
      run.retrying({ type: 'retry', job, attempt, delayMs, error: lastError });
      // A stop ends the wait at once: no retry would follow it, and the job stays pending for the next run.
      await clock.sleep(delayMs, run.stopped);
      continue;
    }
    rates.observe(result.headers, permit, true);
    // Without reported usage the tokens reserved for the request stay charged: the best bound there is.
    const counted = result.usageReported ? countedTokens(job, result.usage) : undefined;
    if (counted !== undefined) rates.settle(permit, counted, result.usage.output_tokens);
    // An answer without usage is paid for all the same: its cost is unknown (null), never 0.
    const { output, files, finishReason, requestId, serviceTier } = result;
    const usage = wasted ? sumUsage(result.usage, wasted) : result.usage;
    // Billed at the tier that served it, which the answer reports; without a report, at the tier asked for.
    const billing = { ...costOptionsOf(job), ...(serviceTier ? { serviceTier } : {}) };
    const costUsd = result.usageReported ? costOf(usage, job.model, options.prices, billing).usd : null;
    if (!result.usageReported) run.emit({ type: 'warning', message: `job ${job.id}: the server reported no token usage; its cost is unknown` });
    const state = answerState(finishReason);
    // The offline server says so on its answers, however it was reached: never taken for a real answer later.
    const origin = result.offline ? offlineOrigin(options.origin ?? OFFLINE_ORIGIN) : undefined;
    const answer = { state, output, files, finishReason, usage, costUsd, requestId, serviceTier, ...(origin ? { origin } : {}) };
    await finish({ attempts: attempt, latencyFrom: attemptStart }, answer);
    // A budget counts an answer of unknown cost at its worst case.
    return costUsd ?? options.budget?.worstCaseUsd(job) ?? undefined;
  }
  if (!lastError) return undefined;
  const { message: error, status, requestId } = lastError;
  // Before the record is written, so that no other worker starts a job of the model meanwhile.
  if (isModelNotFound(lastError)) run.modelMissing(job.model);
  // A failed request is not billed, but an answer the server billed and that could not be used is.
  const costUsd = wasted ? costOfUsage(wasted) : 0;
  await finish({ attempts, latencyFrom: startedAt }, { state: 'failed', error, status, usage: wasted ?? zeroUsage(), costUsd, requestId });
  return costUsd ?? options.budget?.worstCaseUsd(job) ?? undefined;
}

/**
 * Journals a job whose images were generated, and billed, but not saved: failed, with the usage and cost of
 * the answer. A write failure means the output folder is unusable: the run stops (requests in flight finish).
 */
async function failUnsaved(job: Job, run: AttemptContext, error: ImageSaveError, finish: (outcome: Outcome) => Promise<void>): Promise<number | undefined> {
  const costUsd = costOf(error.usage, job.model, run.options.prices, costOptionsOf(job)).usd;
  const cause = run.redact(error.message);
  await finish({
    state: 'failed',
    error: `The image was generated (and billed) but could not be written: ${cause}`,
    usage: error.usage,
    costUsd,
    requestId: error.requestId,
  });
  if (error.reason === 'write') {
    run.stop('output', `Stopping: images cannot be written in ${run.options.outDir} (${cause}). Fix the folder (space, permissions, what is in the way), then run the same command again.`);
  }
  return costUsd ?? undefined;
}

/**
 * The outcome of a request that made some of a job's images again (or failed to), as the job's record: every image
 * (the kept ones from the earlier record, the new ones at their numbers), the usage and cost of them all, and what
 * this request paid apart.
 */
function withKeptImages(answer: Outcome, { images, record }: PartialImages): Outcome {
  const files = [...record.files];
  (answer.files ?? []).forEach((file, position) => (files[images[position]! - 1] = file));
  const costUsd = record.costUsd === null || answer.costUsd === null ? null : record.costUsd + answer.costUsd;
  return { ...answer, files, usage: sumUsage(record.usage, answer.usage), costUsd, paid: { usage: answer.usage, costUsd: answer.costUsd } };
}

/** How long one request of `job` may take: flex requests queue, and get `flexTimeoutMs`. */
const timeoutOf = (job: Job, options: RunOptions): number =>
  job.body.service_tier === 'flex' ? (options.flexTimeoutMs ?? options.timeoutMs) : options.timeoutMs;

/** The API says the model does not exist, or that the key cannot use it: every job of it would fail the same way. */
const isModelNotFound = (error: AttemptError): boolean => error.status === 404 && error.code === 'model_not_found';
