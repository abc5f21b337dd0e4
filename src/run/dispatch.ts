import { setMaxListeners } from 'node:events';
import type { Clock } from '../common/clock.js';
import { messageOf, NightshiftError } from '../common/errors.js';
import type { Job } from '../common/types.js';
import { Budget } from '../cost/budget.js';
import type { OutputFolder } from '../output/folder.js';
import type { JobRecord } from '../output/journal.js';
import { attemptJob, type AttemptContext } from './attempt.js';
import type { RunEvent, RunOptions, StopReason } from './options.js';
import { requestOf, type ToSend } from './plan.js';
import { RateScheduler } from './rate-limit.js';
import { ReadAhead } from './read-ahead.js';

/** A worker's last job record on its way to the journal. */
interface Outbox {
  recorded: Promise<void>;
}

/**
 * The live engine's dispatch loop: a fixed set of workers pulling from one queue of jobs to send, sharing one rate
 * scheduler (limits, and the pause after a 429) and one budget, each recording its jobs' outcomes in the folder.
 */
/** 404 answers in a row (not `model_not_found`) that stop a run: a wrong base URL, not a job's own failure. */
export const NOT_FOUND_IN_A_ROW = 10;

export class Dispatch implements AttemptContext {
  retries = 0;
  stopReason: StopReason | undefined;
  stopMessage: string | undefined;
  /** When the budget stopped the run: the smallest budget that lets the job it stopped at start. */
  nextBudgetUsd: number | undefined;
  /** Models the API said do not exist, each with how many of its jobs were then not sent. */
  readonly missingModels = new Map<string, number>();
  /** Requests answered 404 in a row (not `model_not_found`): see {@link noteNotFound}. */
  private notFoundInARow = 0;
  readonly rates: RateScheduler;
  /** What ended the run other than a stop: the job files changed under it. Thrown once requests in flight are done. */
  private failure: unknown;
  private readonly stopping = new AbortController();
  /** Mirrors the caller's `abortSignal`, so the listeners of every worker hang on a signal the run owns. */
  private readonly aborting = new AbortController();
  private readonly budget: Budget | undefined;
  /**
   * The jobs to send, up to one per worker read (and checked against the plan) ahead, so that an answer is followed
   * by the next request at once. A job read ahead but not sent when the run stops stays pending.
   */
  private readonly jobs: ReadAhead<ToSend>;

  constructor(
    private readonly queue: AsyncGenerator<ToSend>,
    private readonly folder: OutputFolder,
    readonly options: RunOptions,
    readonly clock: Clock,
    readonly redact: (text: string) => string,
    private readonly onEvent: (event: RunEvent) => void,
    /** What the folder paid before this run, which the budget covers too. */
    paidBeforeUsd = folder.index.spentUsd,
  ) {
    this.rates = new RateScheduler({ clock, ...(options.rpm !== undefined ? { rpm: options.rpm } : {}), ...(options.tpm !== undefined ? { tpm: options.tpm } : {}) });
    if (options.budget) this.budget = new Budget(options.budget.limitUsd, paidBeforeUsd);
    this.jobs = new ReadAhead(queue, Math.max(1, options.concurrency), this.stopping.signal);
  }

  get stopped(): AbortSignal {
    return this.stopping.signal;
  }

  get aborted(): AbortSignal {
    return this.aborting.signal;
  }

  emit(event: RunEvent): void {
    this.onEvent(event);
  }

  retrying(event: Extract<RunEvent, { type: 'retry' }>): void {
    this.retries++;
    this.emit(event);
  }

  /** Sends every job of the queue, or until the run stops; resolves once each worker's last record is on the disk. */
  async start(): Promise<void> {
    const { stopSignal, abortSignal, concurrency } = this.options;
    const onStop = (): void => this.stop('interrupted', 'Stopping: no new requests; waiting for those in flight.');
    const onAbort = (): void => {
      this.aborting.abort();
      this.stop('aborted', 'Abandoning requests in flight.');
    };
    // Each worker listens to these at most twice at a time (a rate-limit wait, a request): not a leak.
    setMaxListeners(2 * concurrency + 10, this.stopping.signal, this.aborting.signal);
    stopSignal?.addEventListener('abort', onStop, { once: true });
    abortSignal?.addEventListener('abort', onAbort, { once: true });
    if (stopSignal?.aborted) onStop();
    if (abortSignal?.aborted) onAbort();
    try {
      // Whichever worker is free takes the next job: each job goes to exactly one worker, in input order.
      await Promise.all(Array.from({ length: Math.max(1, concurrency) }, () => this.work()));
    } finally {
      stopSignal?.removeEventListener('abort', onStop);
      abortSignal?.removeEventListener('abort', onAbort);
      // Closes the job files when the run stopped before reading them to the end; a failure to close them changes
      // nothing of what was sent and recorded.
      await this.queue.return(undefined).catch(() => {});
    }
    if (this.failure !== undefined) throw this.failure;
  }

  stop(reason: StopReason, message: string): void {
    // An abort outranks a graceful stop; the first reason of equal rank is kept.
    if (this.stopReason && !(reason === 'aborted' && this.stopReason !== 'aborted')) return;
    this.stopReason = reason;
    this.stopMessage = message;
    this.stopping.abort();
    this.emit({ type: 'stopping', reason, message });
  }

  modelMissing(model: string): void {
    if (this.missingModels.has(model)) return;
    this.missingModels.set(model, 0);
    this.emit({ type: 'warning', message: `the API says model ${model} does not exist (404 model_not_found): no other job of it is sent` });
  }

  /**
   * Stops the run when {@link NOT_FOUND_IN_A_ROW} requests in a row were answered 404 without `model_not_found`: the
   * API at the base URL has no such endpoint (a base URL missing its `/v1`, or naming another server), and every other
   * job would fail the same way. The jobs not sent stay pending for the run after the fix.
   */
  private noteNotFound(record: JobRecord): void {
    if (record.state !== 'failed' || record.status !== 404) {
      this.notFoundInARow = 0;
      return;
    }
    if (this.missingModels.has(record.model)) return;
    if (++this.notFoundInARow < NOT_FOUND_IN_A_ROW) return;
    this.stop(
      'api',
      `Stopping: the last ${NOT_FOUND_IN_A_ROW} requests were all answered 404 Not Found (${record.error ?? 'no message'}): the API at ` +
        `${withoutCredentials(this.options.client.baseURL)} does not have this endpoint. Check OPENAI_BASE_URL (OpenAI's ends in /v1), then run the same command again: the jobs not sent are pending.`,
    );
  }

  heldBack(job: Job): boolean {
    const held = this.missingModels.get(job.model);
    if (held === undefined) return false;
    this.missingModels.set(job.model, held + 1);
    return true;
  }

  /** Ends the run on an error it cannot go on after: requests in flight finish and journal, then it is thrown. */
  private fail(error: unknown): void {
    this.failure ??= error;
    this.stop('interrupted', `Stopping: ${messageOf(error)}`);
  }

  /** The next job to send, or undefined when there is none, the run stopped, or the job files can no longer be read. */
  private async take(): Promise<ToSend | undefined> {
    try {
      return await this.jobs.take();
    } catch (error) {
      // A run already stopping for another reason keeps that reason.
      if (!this.stopped.aborted) this.fail(error);
      return undefined;
    }
  }

  private async work(): Promise<void> {
    const outbox: Outbox = { recorded: Promise.resolve() };
    try {
      await this.workIn(outbox);
    } finally {
      // The run ends (and its outputs are written) only once the worker's last record is on the disk.
      await outbox.recorded;
    }
  }

  private async workIn(outbox: Outbox): Promise<void> {
    while (!this.stopped.aborted) {
      const next = await this.take();
      if (next === undefined || this.stopped.aborted) return;
      const { fp, partial } = next;
      // The request as sent: a job whose images are only partly made again asks for those alone.
      const job = requestOf(next);
      // A job of a model the API says does not exist is not sent: it reserves nothing of the budget either.
      if (this.heldBack(job)) continue;
      // Planning made sure every job to send has a worst case.
      const reserved = this.budget ? (this.options.budget!.worstCaseUsd(job) ?? 0) : 0;
      if (this.budget && !(await this.budget.reserve(reserved, this.stopped))) {
        if (this.stopped.aborted) return;
        const { spentUsd, limitUsd } = this.budget;
        this.nextBudgetUsd = budgetToStart(spentUsd, reserved);
        this.stop(
          'budget',
          `Budget reached: $${formatDollars(spentUsd)} of $${limitUsd} paid in all in this folder, and job ${job.id} could cost up to $${formatDollars(reserved)}. ` +
            `A --budget of ${this.nextBudgetUsd} or more lets it start.`,
        );
        return;
      }
      let actual: number | undefined;
      try {
        actual = await attemptJob(job, fp, this, (record) => this.record(outbox, job, record), partial);
      } catch (error) {
        // Whatever went wrong, the other workers' requests are paid for: let them finish and journal.
        this.fail(error);
        return;
      } finally {
        this.budget?.settle(reserved, actual ?? 0);
      }
    }
  }

  /**
   * Hands a job's record to the folder and returns without waiting for the disk, so that the worker sends its next
   * request at once: a slow disk holds back no request. The job counts as finished (index, results, progress) once
   * its record is on the disk. A worker has at most one record on its way: it waits for the previous one (written
   * long before, normally) before handing over the next, so a crash loses at most one answer per worker beside the
   * requests in flight.
   */
  private async record(outbox: Outbox, job: Job, record: JobRecord): Promise<void> {
    this.noteNotFound(record);
    await outbox.recorded;
    outbox.recorded = this.folder
      .record(job, record)
      .then(
        () => this.emit({ type: 'finished', job, record }),
        (error: unknown) => {
          if (!(error instanceof NightshiftError && error.code === 'E_OUTPUT')) throw error;
          // The output folder is unusable: nothing more is sent, and the requests in flight are abandoned at once, since
          // no answer could be recorded any more (the journal's failure is sticky). The run then fails with E_OUTPUT.
          this.failure ??= error;
          this.stop('aborted', `Cannot write the journal: ${messageOf(error.cause)}`);
          this.aborting.abort();
        },
      )
      .catch((error: unknown) => {
        // Whatever else went wrong once the record was written: the run stops; requests in flight finish and journal.
        try {
          this.fail(error);
        } catch {
          // `fail` throws only when an event handler does; the failure is on record and ends the run.
        }
      });
  }
}

/** The smallest budget, rounded up to a hundredth of a cent, that fits what was paid and a job's worst case. */
function budgetToStart(paidUsd: number, worstCaseUsd: number): number {
  // Nano-dollars first, so that a float just above a step does not round up past it.
  return Math.ceil(Math.round((paidUsd + worstCaseUsd) * 1e9) / 1e5) / 1e4;
}

/** Dollars to the hundredth of a cent, more digits when that would show a non-zero amount as 0. */
function formatDollars(usd: number): string {
  return usd > 0 && usd < 0.0001 ? usd.toPrecision(2) : usd.toFixed(4);
}

/** A base URL as it may be printed: user and password left out. */
function withoutCredentials(baseURL: string): string {
  const url = new URL(baseURL);
  return `${url.origin}${url.pathname}`;
}
