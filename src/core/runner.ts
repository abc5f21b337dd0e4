import { appendFile, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { APIError } from 'openai';
import type OpenAI from 'openai';
import { systemClock, type Clock } from './clock.js';
import { Budget } from './budget.js';
import { costOf, type CostOptions } from './cost.js';
import { NightshiftError } from './errors.js';
import { executeJob, safeTarget, type AttemptResult } from './execute.js';
import { fingerprint } from './fingerprint.js';
import { sweepTempFiles, writeFileAtomic } from './fs-atomic.js';
import { JOURNAL_FILE, JournalWriter, readJournal, type JobRecord, type JournalState } from './journal.js';
import { acquireLock } from './lock.js';
import { decide, type Decision, type PlanMode } from './plan.js';
import type { PriceBook } from './prices.js';
import { RateScheduler } from './rate-limit.js';
import { countedTokens, requestTokens } from './rate-limit-tokens.js';
import { resultLine, resultsHeader, UsageSummary, writeLinesAtomic } from './results.js';
import { backoffDelay, classifyError, type AttemptError } from './retry.js';
import { zeroUsage, type Job, type Usage } from './types.js';

/** Why a run ended before every job had an outcome. */
export type StopReason = 'quota' | 'budget' | 'interrupted' | 'aborted';

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
  /** Requests per minute to stay under, for the whole run. Unset: learned for each model from `x-ratelimit-*` headers. */
  rpm?: number;
  /** Tokens per minute (prompt plus output bound) to stay under, for the whole run. Unset: learned like `rpm`. */
  tpm?: number;
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
  /**
   * A spending cap in dollars for the output folder, earlier runs included. Each job's worst-case cost is
   * reserved before it is sent; when the next job does not fit, dispatching stops.
   */
  budget?: { limitUsd: number; worstCaseUsd: (job: Job) => number };
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
    await sweepTempFiles(outDir);
    const journalPath = join(outDir, JOURNAL_FILE);
    const state = await readJournal(journalPath);
    for (const message of state.warnings) emit({ type: 'warning', message });

    const fingerprints = jobs.map((job) => fingerprint(job));
    // A job answers with the success its current request already had, even if a later edit ran since:
    // undoing an edit must not pay for the same request twice.
    for (const [index, job] of jobs.entries()) {
      const success = state.successes.get(job.id)?.get(fingerprints[index]!);
      if (success) state.jobs.set(job.id, success);
    }
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

    const journal = await writeOutput(journalPath, () => JournalWriter.open(journalPath, { durable: options.durable ?? true }));
    const resultsPath = join(outDir, 'results.csv');
    try {
      const runRecord = { type: 'run', startedAt: new Date(clock.now()).toISOString(), files: options.files, jobs: jobs.length } as const;
      await writeOutput(journalPath, () => journal.append(runRecord));
      await writeOutput(join(outDir, 'images'), () => applyMoves(jobs, decisions, state, journal, outDir, clock));
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
      const usagePath = join(outDir, 'usage.csv');
      await writeOutput(usagePath, () => writeFileAtomic(usagePath, usage.toCsv()));

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
  await writeOutput(path, () => writeLinesAtomic(path, lines()));
}

/**
 * Runs one write to the output folder. Its failure (disk full, permissions, something in the way) is the
 * folder's problem, reported as `E_OUTPUT` (exit 4, no stack), not a bug; what the journal holds stays safe.
 */
async function writeOutput<T>(path: string, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (error) {
    if (error instanceof NightshiftError) throw error;
    throw new NightshiftError('E_OUTPUT', `Cannot write ${path}: ${(error as Error).message}`, { path }, { cause: error });
  }
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
  // Every destination is checked before anything moves, so a refused one leaves all files where they were.
  const planned: { job: Job; steps: { from: string; to: string; target: string }[] }[] = [];
  for (const [index, decision] of decisions.entries()) {
    if (decision.action !== 'move') continue;
    const steps = [];
    for (const move of decision.moves) {
      steps.push({ ...move, target: await safeTarget(join(outDir, 'images'), move.to.replace(/^images\//, '')) });
    }
    planned.push({ job: jobs[index]!, steps });
  }
  // A file whose name another file is about to take steps aside first, so that jobs trading output names
  // (a.png <-> b.png) do not overwrite each other's images.
  const targets = new Set(planned.flatMap(({ steps }) => steps.map((step) => step.to)));
  const aside = new Map<string, string>();
  for (const { steps } of planned) {
    for (const step of steps.filter((step) => targets.has(step.from))) {
      const temp = `${step.from}.${process.pid}.moving`;
      await rename(join(outDir, step.from), join(outDir, temp));
      aside.set(step.from, temp);
    }
  }
  for (const { job, steps } of planned) {
    const record = state.jobs.get(job.id)!;
    const files = [...record.files];
    for (const step of steps) {
      await rename(join(outDir, aside.get(step.from) ?? step.from), step.target);
      const position = files.findIndex((file) => file.path === step.from);
      if (position >= 0) files[position] = { ...files[position]!, path: step.to };
    }
    // The moved record keeps the usage and cost the images took, so results.csv and usage.csv still show them;
    // `attempts: 0` marks that no request was sent, so spending and the report count that cost once.
    const moved: JobRecord = { ...record, files, source: `${job.source.file}:${job.source.line}`, attempts: 0, finishedAt: new Date(clock.now()).toISOString() };
    await journal.append(moved);
    state.jobs.set(job.id, moved);
  }
}

/** The dispatch loop: a fixed set of workers pulling from one queue, sharing one rate scheduler (limits, and the pause after a 429). */
class RunLoop {
  retries = 0;
  stopReason: StopReason | undefined;
  stopMessage: string | undefined;
  private next = 0;
  private readonly rates: RateScheduler;
  private readonly stopped = new AbortController();
  private readonly budget: Budget | undefined;

  constructor(
    private readonly queue: readonly Job[],
    private readonly options: RunOptions,
    private readonly clock: Clock,
    private readonly redact: (text: string) => string,
    private readonly emit: (event: RunEvent) => void,
    private readonly journal: JournalWriter,
    private readonly state: JournalState,
    private readonly resultsPath: string,
  ) {
    this.rates = new RateScheduler({ clock, ...(options.rpm !== undefined ? { rpm: options.rpm } : {}), ...(options.tpm !== undefined ? { tpm: options.tpm } : {}) });
    if (options.budget) this.budget = new Budget(options.budget.limitUsd, state.spentUsd);
  }

  async start(): Promise<void> {
    const { stopSignal, abortSignal } = this.options;
    const onStop = (): void => this.stop('interrupted', 'Stopping: no new requests; waiting for those in flight.');
    const onAbort = (): void => this.stop('aborted', 'Abandoning requests in flight.');
    stopSignal?.addEventListener('abort', onStop, { once: true });
    abortSignal?.addEventListener('abort', onAbort, { once: true });
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
      const job = this.queue[this.next]!;
      const reserved = this.budget ? this.options.budget!.worstCaseUsd(job) : 0;
      if (this.budget && !this.budget.tryReserve(reserved)) {
        const { spentUsd, limitUsd } = this.budget;
        this.stop(
          'budget',
          `Budget reached: $${spentUsd.toFixed(4)} of $${limitUsd} spent in this folder, and job ${job.id} could cost up to $${reserved.toFixed(4)}. ` +
            'Run again with a larger --budget to continue.',
        );
        return;
      }
      this.next++;
      const actual = await this.runJob(job);
      this.budget?.settle(reserved, actual ?? 0);
    }
  }

  /** Runs a job to its outcome; returns what it cost, or undefined when it was not settled (stop, abort). */
  private async runJob(job: Job): Promise<number | undefined> {
    const startedAt = this.clock.now();
    const fp = fingerprint(job);
    // Counted only when a token limit applies, and once for all attempts.
    let tokens: number | undefined;
    const countTokens = (): number => (tokens ??= requestTokens(job));
    const { abortSignal } = this.options;
    let lastError: AttemptError | undefined;
    let attempts = 0;
    for (let attempt = 1; attempt <= this.options.maxAttempts; attempt++) {
      // A graceful stop lets a job in flight finish, but starts nothing new: no retry, and no job still waiting
      // for a rate-limit slot (it stays pending). An abort also stops `stopped`.
      const permit = await this.rates.acquire(countTokens, job.model, this.stopped.signal);
      if (!permit || abortSignal?.aborted) return undefined;
      const attemptStart = this.clock.now();
      attempts = attempt;
      let result: AttemptResult;
      const link = abortSignal ? linkSignal(abortSignal) : undefined;
      try {
        result = await executeJob(job, {
          client: this.options.client,
          outDir: this.options.outDir,
          timeoutMs: this.options.timeoutMs,
          ...(link ? { signal: link.signal } : {}),
        }).finally(() => link?.release());
      } catch (error) {
        if (abortSignal?.aborted) return undefined;
        if (error instanceof APIError) this.rates.observe(error.headers, permit);
        lastError = classifyError(error, this.clock.now());
        lastError.message = this.redact(lastError.message);
        if (lastError.verdict === 'stop-run') {
          // The job itself is fine; it stays pending so a rerun with credit sends it.
          this.stop('quota', `The account is out of credit (${lastError.message}). Add credit, then run the same command again to continue.`);
          return undefined;
        }
        if (lastError.verdict === 'fail' || attempt === this.options.maxAttempts) break;
        const delayMs = lastError.retryAfterMs ?? backoffDelay(attempt, this.options.random ? { random: this.options.random } : {});
        // A rate limit concerns the whole account: every worker waits, not just this one.
        if (lastError.status === 429) this.rates.pause(delayMs);
        this.retries++;
        this.emit({ type: 'retry', job, attempt, delayMs, error: lastError });
        // A stop ends the wait at once: no retry would follow it, and the job stays pending for the next run.
        await this.clock.sleep(delayMs, this.stopped.signal);
        continue;
      }
      this.rates.observe(result.headers, permit);
      const counted = countedTokens(job, result.usage);
      if (counted !== undefined) this.rates.settle(permit, counted);
      const costUsd = costOf(result.usage, job.model, this.options.prices, costOptions(job)).usd;
      await this.finish(job, fp, {
        state: 'done',
        attempts: attempt,
        output: result.output,
        files: result.files,
        ...(result.finishReason ? { finishReason: result.finishReason } : {}),
        usage: result.usage,
        costUsd,
        latencyMs: this.clock.now() - attemptStart,
        ...(result.requestId ? { requestId: result.requestId } : {}),
        startedAt,
      });
      return costUsd ?? undefined;
    }
    if (!lastError) return undefined;
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
    return 0;
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

/**
 * The SDK adds an abort listener to the signal of every request and never removes it: handing it the run's
 * long-lived signal would keep one closure per request for the whole run. Each attempt gets its own signal,
 * linked to the run's only until `release`.
 */
function linkSignal(runSignal: AbortSignal): { signal: AbortSignal; release: () => void } {
  const attempt = new AbortController();
  if (runSignal.aborted) attempt.abort();
  const forward = (): void => attempt.abort();
  runSignal.addEventListener('abort', forward, { once: true });
  return { signal: attempt.signal, release: () => runSignal.removeEventListener('abort', forward) };
}
