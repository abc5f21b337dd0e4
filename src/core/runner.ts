import { setMaxListeners } from 'node:events';
import { appendFile, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type OpenAI from 'openai';
import { systemClock, type Clock } from './clock.js';
import { costOf, type CostOptions } from './cost.js';
import { NightshiftError } from './errors.js';
import { executeJob, safeTarget, type AttemptResult } from './execute.js';
import { fingerprint } from './fingerprint.js';
import { writeFileAtomic } from './fs-atomic.js';
import { JOURNAL_FILE, JournalWriter, readJournal, type JobRecord, type JournalState } from './journal.js';
import { acquireLock } from './lock.js';
import { decide, type Decision, type PlanMode } from './plan.js';
import type { PriceBook } from './prices.js';
import { resultLine, resultsHeader, UsageSummary, writeLinesAtomic } from './results.js';
import { backoffDelay, classifyError, type AttemptError } from './retry.js';
import { zeroUsage, type Job, type Usage } from './types.js';

/** Why a run ended before every job had an outcome. */
export type StopReason = 'quota' | 'interrupted' | 'aborted';

/** Progress and diagnostics, for the CLI's progress display. */
export type RunEvent =
  | { type: 'planned'; total: number; skipped: number; moved: number; rerun: number; fresh: number; left: number }
  | { type: 'warning'; message: string }
  | { type: 'retry'; job: Job; attempt: number; delayMs: number; error: AttemptError }
  | { type: 'finished'; job: Job; record: JobRecord }
  | { type: 'stopping'; reason: StopReason; message: string };

/** Everything `runJobs` needs; the CLI builds it from flags and the environment. */
export interface RunOptions {
  /** The output folder: journal, CSVs, images. */
  outDir: string;
  client: OpenAI;
  prices: PriceBook;
  /** Requests in flight at most. */
  concurrency: number;
  /** Attempts per job, the first included. */
  maxAttempts: number;
  /** Per-request timeout, in milliseconds. */
  timeoutMs: number;
  /** The job files, recorded in the journal. */
  files: string[];
  mode?: PlanMode;
  /** When aborted: dispatch nothing new, let requests in flight finish. */
  stopSignal?: AbortSignal;
  /** When aborted: abandon requests in flight too. */
  abortSignal?: AbortSignal;
  clock?: Clock;
  random?: () => number;
  /** Removes secrets from error text before it is stored. */
  redact?: (text: string) => string;
  /** Flush the journal to disk after each write (group-committed). @default true */
  durable?: boolean;
  onEvent?: (event: RunEvent) => void;
}

/** The outcome of a run, for the final summary and the exit status. */
export interface RunSummary {
  total: number;
  skipped: number;
  moved: number;
  rerun: number;
  fresh: number;
  ok: number;
  failed: number;
  pending: number;
  retries: number;
  usage: Usage;
  costUsd: number;
  unpricedModels: string[];
  stopReason?: StopReason;
  stopMessage?: string;
  outDir: string;
}

/**
 * Runs jobs against the API with bounded concurrency and retry, journaling each outcome before it counts.
 * Rerunning on the same folder sends only what the journal does not already hold for the same request.
 */
export async function runJobs(jobs: readonly Job[], options: RunOptions): Promise<RunSummary> {
  const clock = options.clock ?? systemClock;
  const emit = options.onEvent ?? (() => {});
  const redact = options.redact ?? ((text: string) => text);
  const { outDir } = options;

  await prepareOutDir(outDir);
  const release = await acquireLock(outDir);
  try {
    const journalPath = join(outDir, JOURNAL_FILE);
    const state = await readJournal(journalPath);
    for (const message of state.warnings) emit({ type: 'warning', message });

    const fingerprints = jobs.map((job) => fingerprint(job));
    const decisions: Decision[] = [];
    for (const [index, job] of jobs.entries()) {
      decisions.push(await decide(job, fingerprints[index]!, state.jobs.get(job.id), outDir, options.mode ?? {}));
    }
    const count = (action: Decision['action']): number => decisions.filter((d) => d.action === action).length;
    const planned = {
      total: jobs.length,
      skipped: count('skip'),
      moved: count('move'),
      rerun: count('rerun'),
      fresh: count('new'),
      left: count('leave'),
    };
    emit({ type: 'planned', ...planned });

    const journal = await JournalWriter.open(journalPath, { durable: options.durable ?? true });
    const resultsPath = join(outDir, 'results.csv');
    try {
      await journal.append({ type: 'run', startedAt: new Date(clock.now()).toISOString(), files: options.files, jobs: jobs.length });
      await applyMoves(jobs, decisions, state, journal, outDir, clock);
      // Start results.csv with what is already finished, in input order; rows are appended as jobs finish.
      await writeResults(resultsPath, jobs, fingerprints, state, { finishedOnly: true });

      const queue = jobs.filter((_, index) => {
        const action = decisions[index]!.action;
        return action === 'new' || action === 'rerun';
      });
      const run = new RunLoop(queue, options, clock, redact, emit, journal, state, resultsPath);
      await run.start();

      await writeResults(resultsPath, jobs, fingerprints, state, { finishedOnly: false });
      const usage = new UsageSummary();
      for (const [index, job] of jobs.entries()) usage.add(job, current(state, job, fingerprints[index]!));
      await writeFileAtomic(join(outDir, 'usage.csv'), usage.toCsv());

      const total = usage.total;
      return {
        total: jobs.length,
        skipped: planned.skipped,
        moved: planned.moved,
        rerun: planned.rerun,
        fresh: planned.fresh,
        ok: total.ok,
        failed: total.failed,
        pending: jobs.length - total.ok - total.failed,
        retries: run.retries,
        usage: total.usage,
        costUsd: total.costUsd,
        unpricedModels: usage.unpricedModels(),
        ...(run.stopReason ? { stopReason: run.stopReason, stopMessage: run.stopMessage } : {}),
        outDir,
      };
    } finally {
      await journal.close();
    }
  } finally {
    await release();
  }
}

function current(state: JournalState, job: Job, fp: string): JobRecord | undefined {
  const record = state.jobs.get(job.id);
  return record && record.fingerprint === fp ? record : undefined;
}

async function writeResults(
  path: string,
  jobs: readonly Job[],
  fingerprints: readonly string[],
  state: JournalState,
  { finishedOnly }: { finishedOnly: boolean },
): Promise<void> {
  function* lines(): Generator<string> {
    yield resultsHeader();
    for (const [index, job] of jobs.entries()) {
      const record = current(state, job, fingerprints[index]!);
      if (record || !finishedOnly) yield resultLine(job, record);
    }
  }
  await writeLinesAtomic(path, lines());
}

async function prepareOutDir(outDir: string): Promise<void> {
  try {
    await mkdir(join(outDir, 'images'), { recursive: true });
    // Prove the folder is writable now rather than after the first paid request.
    const probe = join(outDir, `.write-test-${process.pid}`);
    await writeFile(probe, '');
    await rm(probe, { force: true });
  } catch (error) {
    throw new NightshiftError('E_OUTPUT', `Cannot write to the output folder ${outDir}: ${(error as Error).message}`, { outDir }, { cause: error });
  }
}

/** Renames the images of jobs whose `output` changed but whose request did not: nothing is sent or paid. */
async function applyMoves(
  jobs: readonly Job[],
  decisions: readonly Decision[],
  state: JournalState,
  journal: JournalWriter,
  outDir: string,
  clock: Clock,
): Promise<void> {
  for (const [index, decision] of decisions.entries()) {
    if (decision.action !== 'move') continue;
    const job = jobs[index]!;
    const record = state.jobs.get(job.id)!;
    const files = [...record.files];
    for (const move of decision.moves) {
      const target = await safeTarget(join(outDir, 'images'), move.to.replace(/^images\//, ''));
      await mkdir(dirname(target), { recursive: true });
      await rename(join(outDir, move.from), target);
      const position = files.findIndex((file) => file.path === move.from);
      if (position >= 0) files[position] = { ...files[position]!, path: move.to };
    }
    // The moved record costs nothing new: the journal keeps the original record's cost for audit, and
    // this one marks that no request was sent.
    const moved: JobRecord = { ...record, files, source: `${job.source.file}:${job.source.line}`, attempts: 0, costUsd: 0, usage: zeroUsage(), finishedAt: new Date(clock.now()).toISOString() };
    await journal.append(moved);
    state.jobs.set(job.id, moved);
  }
}

/** The dispatch loop: a fixed set of workers pulling from one queue, sharing one pause after a 429. */
class RunLoop {
  retries = 0;
  stopReason: StopReason | undefined;
  stopMessage: string | undefined;
  private next = 0;
  private pausedUntil = 0;
  private readonly stopped = new AbortController();

  constructor(
    private readonly queue: readonly Job[],
    private readonly options: RunOptions,
    private readonly clock: Clock,
    private readonly redact: (text: string) => string,
    private readonly emit: (event: RunEvent) => void,
    private readonly journal: JournalWriter,
    private readonly state: JournalState,
    private readonly resultsPath: string,
  ) {}

  async start(): Promise<void> {
    const { stopSignal, abortSignal } = this.options;
    const onStop = (): void => this.stop('interrupted', 'Stopping: no new requests; waiting for those in flight.');
    const onAbort = (): void => this.stop('aborted', 'Abandoning requests in flight.');
    stopSignal?.addEventListener('abort', onStop, { once: true });
    abortSignal?.addEventListener('abort', onAbort, { once: true });
    // Every request in flight listens to the abort signal; that is expected, not a leak.
    if (abortSignal) setMaxListeners(this.options.concurrency + 10, abortSignal);
    if (stopSignal?.aborted) onStop();
    if (abortSignal?.aborted) onAbort();
    try {
      const workers = Math.max(1, Math.min(this.options.concurrency, this.queue.length));
      await Promise.all(Array.from({ length: workers }, () => this.work()));
    } finally {
      stopSignal?.removeEventListener('abort', onStop);
      abortSignal?.removeEventListener('abort', onAbort);
    }
  }

  private stop(reason: StopReason, message: string): void {
    // An abort outranks a graceful stop; the first reason of equal rank is kept.
    if (this.stopReason && !(reason === 'aborted' && this.stopReason !== 'aborted')) return;
    this.stopReason = reason;
    this.stopMessage = message;
    this.stopped.abort();
    this.emit({ type: 'stopping', reason, message });
  }

  private async work(): Promise<void> {
    while (!this.stopped.signal.aborted && this.next < this.queue.length) {
      const job = this.queue[this.next++]!;
      await this.runJob(job);
    }
  }

  private async runJob(job: Job): Promise<void> {
    const startedAt = this.clock.now();
    const fp = fingerprint(job);
    const { abortSignal } = this.options;
    let lastError: AttemptError | undefined;
    let attempts = 0;
    for (let attempt = 1; attempt <= this.options.maxAttempts; attempt++) {
      await this.waitForPause();
      // A graceful stop lets a job in flight finish, but does not start its next attempt.
      if (attempt > 1 && this.stopped.signal.aborted) return;
      if (abortSignal?.aborted) return;
      const attemptStart = this.clock.now();
      attempts = attempt;
      let result: AttemptResult;
      try {
        result = await executeJob(job, {
          client: this.options.client,
          outDir: this.options.outDir,
          timeoutMs: this.options.timeoutMs,
          ...(abortSignal ? { signal: abortSignal } : {}),
        });
      } catch (error) {
        if (abortSignal?.aborted) return;
        lastError = classifyError(error, this.clock.now());
        lastError.message = this.redact(lastError.message);
        if (lastError.verdict === 'stop-run') {
          // The job itself is fine; it stays pending so a rerun with credit sends it.
          this.stop('quota', `The account is out of credit (${lastError.message}). Add credit, then run the same command again to continue.`);
          return;
        }
        if (lastError.verdict === 'fail' || attempt === this.options.maxAttempts) break;
        const delayMs = lastError.retryAfterMs ?? backoffDelay(attempt, this.options.random ? { random: this.options.random } : {});
        // A rate limit concerns the whole account: every worker waits, not just this one.
        if (lastError.status === 429) this.pausedUntil = Math.max(this.pausedUntil, this.clock.now() + delayMs);
        this.retries++;
        this.emit({ type: 'retry', job, attempt, delayMs, error: lastError });
        await this.clock.sleep(delayMs, abortSignal);
        continue;
      }
      await this.finish(job, fp, {
        state: 'done',
        attempts: attempt,
        output: result.output,
        files: result.files,
        ...(result.finishReason ? { finishReason: result.finishReason } : {}),
        usage: result.usage,
        costUsd: costOf(result.usage, job.model, this.options.prices, costOptions(job)).usd,
        latencyMs: this.clock.now() - attemptStart,
        ...(result.requestId ? { requestId: result.requestId } : {}),
        startedAt,
      });
      return;
    }
    if (!lastError) return;
    await this.finish(job, fp, {
      state: 'failed',
      attempts,
      output: '',
      files: [],
      error: lastError.message,
      ...(lastError.status !== undefined ? { status: lastError.status } : {}),
      usage: zeroUsage(),
      // A failed request is not billed.
      costUsd: 0,
      latencyMs: this.clock.now() - startedAt,
      ...(lastError.requestId ? { requestId: lastError.requestId } : {}),
      startedAt,
    });
  }

  private async waitForPause(): Promise<void> {
    const { abortSignal } = this.options;
    while (!abortSignal?.aborted) {
      const wait = this.pausedUntil - this.clock.now();
      if (wait <= 0) return;
      await this.clock.sleep(wait, abortSignal);
    }
  }

  private async finish(
    job: Job,
    fp: string,
    outcome: Omit<JobRecord, 'type' | 'id' | 'fingerprint' | 'kind' | 'model' | 'tags' | 'source' | 'startedAt' | 'finishedAt'> & { startedAt: number },
  ): Promise<void> {
    const record: JobRecord = {
      type: 'job',
      id: job.id,
      fingerprint: fp,
      kind: job.kind,
      model: job.model,
      tags: job.tags,
      source: `${job.source.file}:${job.source.line}`,
      ...outcome,
      startedAt: new Date(outcome.startedAt).toISOString(),
      finishedAt: new Date(this.clock.now()).toISOString(),
    };
    try {
      await this.journal.append(record);
    } catch (error) {
      this.stop('aborted', `Cannot write the journal: ${(error as Error).message}`);
      throw new NightshiftError('E_OUTPUT', `Cannot write the journal in ${this.options.outDir}: ${(error as Error).message}`, { jobId: job.id }, { cause: error });
    }
    this.state.jobs.set(job.id, record);
    await appendFile(this.resultsPath, resultLine(job, record)).catch(() => {
      // results.csv is a view; the journal already holds the outcome and the final rewrite restores it.
    });
    this.emit({ type: 'finished', job, record });
  }
}

function costOptions(job: Job): CostOptions {
  const size = typeof job.body.size === 'string' ? job.body.size : undefined;
  const quality = typeof job.body.quality === 'string' ? job.body.quality : undefined;
  return { ...(size ? { size } : {}), ...(quality ? { quality } : {}) };
}
