import { setMaxListeners } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { lstat, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import { join } from 'node:path';
import { APIError } from 'openai';
import type OpenAI from 'openai';
import { systemClock, type Clock } from '../common/clock.js';
import { Budget } from '../cost/budget.js';
import { costOf, type CostOptions } from '../cost/cost.js';
import { messageOf, NightshiftError } from '../common/errors.js';
import { executeJob, ImageSaveError, safeTarget, type AttemptResult } from './execute.js';
import { fingerprint } from '../jobs/fingerprint.js';
import { JobDigests } from '../jobs/digests.js';
import { sweepTempFiles, writeFileAtomic } from '../output/atomic.js';
import { JOURNAL_FILE, JournalWriter, type JobRecord } from '../output/journal.js';
import { fingerprintKey, indexJournal, RecordReader, refOf, type JournalIndex, type RecordLocation, type RecordRef } from '../output/journal-index.js';
import { acquireLock } from '../output/lock.js';
import { decide, decideByFiles, type Decision } from './decide.js';
import type { PriceBook } from '../cost/prices.js';
import { RateScheduler } from './rate-limit.js';
import { ReadAhead } from './read-ahead.js';
import { countedTokens, requestTokens } from './rate-limit-tokens.js';
import { AtomicLines, recordLine, resultLine, resultsHeader, UsageSummary, writeLinesAtomic } from '../output/results.js';
import { backoffDelay, classifyError, type AttemptError } from './retry.js';
import { zeroUsage, type Job } from '../common/types.js';
import { jobsInMemory, type JobSource } from '../jobs/source.js';
import type { RunEvent, RunOptions, RunSummary, StopReason } from './options.js';

/** Each job's decision, one byte per job. */
const ACTIONS = ['skip', 'move', 'new', 'rerun', 'leave'] as const satisfies readonly Decision['action'][];
const SEND = new Set<number>([ACTIONS.indexOf('new'), ACTIONS.indexOf('rerun')]);

/** A job whose images are to be renamed, with the record that produced them. */
interface PlannedMove {
  job: Pick<Job, 'id' | 'source'>;
  moves: { from: string; to: string }[];
  record: JobRecord;
}

/** What planning found, in a byte per job: decisions by input position, and the image renames to make. */
interface Plan {
  actions: Uint8Array;
  moves: PlannedMove[];
}

/**
 * Runs jobs against the API with bounded concurrency and retry, journaling each outcome before it counts.
 * Rerunning on the same folder sends only what the journal does not already hold for the same request.
 * Memory stays flat in the number of jobs: they are streamed from `jobs`, and the journal is held as an index.
 */
export async function runJobs(jobs: readonly Job[] | JobSource, options: RunOptions): Promise<RunSummary> {
  const source = isJobSource(jobs) ? jobs : jobsInMemory(jobs);
  const clock = options.clock ?? systemClock;
  const emit = options.onEvent ?? (() => {});
  const redact = options.redact ?? ((text: string) => text);
  const { outDir } = options;

  await prepareOutDir(outDir);
  const release = await acquireLock(outDir);
  try {
    await sweepTempFiles(outDir);
    const journalPath = join(outDir, JOURNAL_FILE);
    // Numbered as validation numbered the jobs: records of ids no longer in the job files only count as spending.
    const index = await indexJournal(journalPath, { ids: source.digests.ids });
    for (const message of index.warnings) emit({ type: 'warning', message });

    const journal = await writeOutput(journalPath, () => JournalWriter.open(journalPath));
    const reader = await RecordReader.open(journalPath);
    const resultsPath = join(outDir, 'results.csv');
    const usagePath = join(outDir, 'usage.csv');
    try {
      // The CSVs are rewritten at the end: something in their way is found now, before anything is paid for.
      for (const path of [resultsPath, usagePath]) await writeOutput(path, () => replaceable(path));
      const plan = await planJobs(source, index, reader, outDir, options);
      const count = (action: Decision['action']): number => plan.actions.reduce((sum, code) => sum + (ACTIONS[code] === action ? 1 : 0), 0);
      const planned = {
        total: source.count,
        skipped: count('skip'),
        moved: count('move'),
        rerun: count('rerun'),
        fresh: count('new'),
        left: count('leave'),
      };
      emit({ type: 'planned', ...planned });

      const runRecord = { type: 'run', startedAt: new Date(clock.now()).toISOString(), files: options.files, jobs: source.count } as const;
      await writeOutput(journalPath, () => journal.append(runRecord));
      await writeOutput(join(outDir, 'images'), () => applyMoves(plan.moves, index, journal, outDir, clock));

      // results.csv starts with the jobs already finished, written while the first requests go out (a resume over a
      // million finished jobs should not wait for a million rows); rows of jobs finishing now follow them.
      const live = new LiveResults(resultsPath);
      // Records from here on are of jobs finishing now: their rows come as they finish, not in the prefill.
      const prefill = prefillResults(resultsPath, source.digests, index, reader, live, journal.bytes);
      let run: RunLoop;
      try {
        run = new RunLoop(jobsToSend(source, plan), options, clock, redact, emit, journal, index, live);
        await run.start();
      } finally {
        // Rebuilt in full below: a prefill still going is of no more use.
        live.abandonPrefill();
        await prefill;
        await live.close();
      }

      const usage = new UsageSummary();
      await writeOutput(resultsPath, () => writeResults(resultsPath, source, index, reader, usage));
      await writeOutput(usagePath, () => writeFileAtomic(usagePath, usage.toCsv()));

      const total = usage.total;
      return {
        total: source.count,
        skipped: planned.skipped,
        moved: planned.moved,
        rerun: planned.rerun,
        fresh: planned.fresh,
        ok: total.ok,
        failed: total.failed,
        pending: source.count - total.ok - total.failed,
        retries: run.retries,
        usage: total.usage,
        costUsd: total.costUsd,
        unpricedModels: usage.unpricedModels(),
        ...(run.stopReason ? { stopReason: run.stopReason, stopMessage: run.stopMessage } : {}),
        outDir,
      };
    } finally {
      await reader.close();
      await journal.close();
    }
  } finally {
    await release();
  }
}

const isJobSource = (jobs: readonly Job[] | JobSource): jobs is JobSource => !Array.isArray(jobs);

/** A job to send, with the fingerprint of its request (checked against the plan). */
interface ToSend {
  job: Job;
  fp: string;
}

/** The error for job files that no longer match what was validated and planned. */
const changedFiles = (): NightshiftError =>
  new NightshiftError('E_VALIDATION', 'The job files changed during the run; stopped. Run the same command again to validate and continue.');

/**
 * Decides what each job needs, from its digest and the journal index. The job files are read again only for the
 * jobs whose decision depends on their image files, and, with a budget, for the jobs to send (each must have a worst case).
 */
async function planJobs(
  source: JobSource,
  index: JournalIndex,
  reader: RecordReader,
  outDir: string,
  { mode = {}, budget }: Pick<RunOptions, 'mode' | 'budget'>,
): Promise<Plan> {
  const { digests } = source;
  const plan: Plan = { actions: new Uint8Array(source.count), moves: [] };
  // Jobs whose earlier success left image files, which decide: looked at with the job in hand.
  const byFiles = new Map<number, RecordRef>();
  for (let position = 0; position < source.count; position++) {
    const key = digests.key(position);
    const ref = index.answerOf(digests.ids, position, key);
    const decision = decide(ref && { state: ref.state, sameRequest: ref.key.equals(key), hasFiles: ref.hasFiles }, mode);
    if (decision === 'files') byFiles.set(position, { ...ref!, key: Buffer.from(ref!.key) });
    else plan.actions[position] = ACTIONS.indexOf(decision.action);
  }
  if (byFiles.size === 0 && !budget) return plan;

  const unpriced = new Set<string>();
  const wanted = (position: number): boolean => position >= source.count || byFiles.has(position) || (budget !== undefined && SEND.has(plan.actions[position]!));
  for await (const { position, job } of source.pick(wanted, firstWanted(wanted))) {
    if (position >= source.count || !fingerprintKey(fingerprint(job)).equals(digests.key(position))) throw changedFiles();
    const ref = byFiles.get(position);
    if (ref) {
      const record = await reader.read(ref);
      const decision = await decideByFiles(job, record.files, outDir, mode);
      plan.actions[position] = ACTIONS.indexOf(decision.action);
      if (decision.action === 'move') plan.moves.push({ job: { id: job.id, source: job.source }, moves: decision.moves, record });
    }
    if (budget && SEND.has(plan.actions[position]!) && budget.worstCaseUsd(job) === null) unpriced.add(job.model);
  }
  if (unpriced.size > 0) {
    const models = [...unpriced];
    throw new NightshiftError('E_USAGE', `A budget needs the worst-case cost of every job to send, and there is none for some jobs of ${models.join(', ')}.`, { models });
  }
  return plan;
}

/** The first position `wanted` accepts (one past the jobs planned when it accepts none of them). */
function firstWanted(wanted: (position: number) => boolean): number {
  let position = 0;
  while (!wanted(position)) position++;
  return position;
}

/**
 * results.csv's rows during a run: first those of the jobs already finished (the prefill), then each job as it
 * finishes. Rows that finish before the prefill is in place wait for it in memory. It is a view: a row that cannot
 * be written is dropped, since the rewrite at the end of the run restores every row from the journal.
 */
class LiveResults {
  private stream: WriteStream | undefined;
  private waiting: string[] | undefined = [];
  private abandoned = false;

  constructor(private readonly path: string) {}

  get prefillAbandoned(): boolean {
    return this.abandoned;
  }

  write(line: string): void {
    if (this.stream) this.stream.write(line);
    else this.waiting?.push(line);
  }

  /** The prefill is in place: rows go to the end of the file from now on. */
  open(): void {
    this.stream = createWriteStream(this.path, { flags: 'a' });
    this.stream.on('error', () => {});
    for (const line of this.waiting ?? []) this.stream.write(line);
    this.waiting = undefined;
  }

  /** The run is over: a prefill still going stops, and rows waiting for it are dropped. */
  abandonPrefill(): void {
    this.abandoned = true;
    this.waiting = undefined;
  }

  async close(): Promise<void> {
    if (!this.stream) return;
    this.stream.end();
    await finished(this.stream).catch(() => {});
  }
}

/** Rows the prefill writes between two turns of the event loop, so that requests keep going out meanwhile. */
const PREFILL_BATCH = 2048;

/**
 * Writes results.csv with the rows of the jobs finished before the run (records before `journalBytes`), in input
 * order, from their journal records alone, then hands it to `live`. Never fails: a view that cannot be written now
 * is rewritten at the end of the run.
 */
async function prefillResults(
  path: string,
  digests: JobDigests,
  index: JournalIndex,
  reader: RecordReader,
  live: LiveResults,
  journalBytes: number,
): Promise<void> {
  const results = new AtomicLines(path);
  try {
    await results.write(resultsHeader());
    for (let position = 0; position < digests.count; position++) {
      if (position % PREFILL_BATCH === 0) {
        await new Promise((resolve) => setImmediate(resolve));
        if (live.prefillAbandoned) return await results.discard();
      }
      const ref = index.currentOf(digests.ids, position, digests.key(position));
      if (ref && ref.offset < journalBytes) await results.write(recordLine(await reader.read(ref)));
    }
    if (live.prefillAbandoned) return await results.discard();
    await results.commit();
    live.open();
  } catch {
    // The rows waiting for it are dropped too (the rewrite at the end restores them): they must not pile up.
    live.abandonPrefill();
    await results.discard().catch(() => {});
  }
}

/**
 * The jobs to send, in input order. A job whose request differs from the one planned (its file changed since)
 * stops the run rather than be sent unplanned.
 */
async function* jobsToSend(source: JobSource, plan: Plan): AsyncGenerator<ToSend> {
  const wanted = (position: number): boolean => position >= plan.actions.length || SEND.has(plan.actions[position]!);
  for await (const { position, job } of source.pick(wanted, firstWanted(wanted))) {
    if (position >= plan.actions.length) throw changedFiles();
    const fp = fingerprint(job);
    if (!fingerprintKey(fp).equals(source.digests.key(position))) throw changedFiles();
    yield { job, fp };
  }
}

/** Rewrites results.csv with a row for every job, in input order, and counts each job in `usage`. */
async function writeResults(path: string, source: JobSource, index: JournalIndex, reader: RecordReader, usage: UsageSummary): Promise<void> {
  async function* lines(): AsyncGenerator<string> {
    yield resultsHeader();
    let position = 0;
    for await (const job of source.open()) {
      const ref = position < source.count ? index.currentOf(source.digests.ids, position, source.digests.key(position)) : undefined;
      position++;
      const record = ref && (await reader.read(ref));
      usage.add(job, record);
      yield resultLine(job, record);
    }
  }
  await writeLinesAtomic(path, lines());
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
    throw new NightshiftError('E_OUTPUT', `Cannot write ${path}: ${messageOf(error)}`, { path }, { cause: error });
  }
}

/** Throws when `path` is there and is not a file, so that writing a new file over it would fail. */
async function replaceable(path: string): Promise<void> {
  const stats = await lstat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (stats && !stats.isFile() && !stats.isSymbolicLink()) throw new Error('something other than a file is in the way');
}

async function prepareOutDir(outDir: string): Promise<void> {
  try {
    await mkdir(join(outDir, 'images'), { recursive: true });
    // Prove the folder is writable now rather than after the first paid request.
    const probe = join(outDir, `.write-test-${process.pid}`);
    await writeFile(probe, '');
    await rm(probe, { force: true });
  } catch (error) {
    throw new NightshiftError('E_OUTPUT', `Cannot write to the output folder ${outDir}: ${messageOf(error)}`, { outDir }, { cause: error });
  }
}

/**
 * A success whose images were renamed: it keeps the usage and cost the images took, so results.csv and usage.csv
 * still show them; `attempts: 0` marks that no request was sent, so spending and the report count that cost once.
 */
function movedRecord(record: JobRecord, moves: readonly { from: string; to: string }[], job: Pick<Job, 'source'>, finishedAt: string): JobRecord {
  const files = [...record.files];
  for (const move of moves) {
    const position = files.findIndex((file) => file.path === move.from);
    if (position >= 0) files[position] = { ...files[position]!, path: move.to };
  }
  return { ...record, files, source: `${job.source.file}:${job.source.line}`, attempts: 0, finishedAt };
}

/** Renames the images of jobs whose `output` changed but whose request did not: nothing is sent or paid. */
async function applyMoves(planned: readonly PlannedMove[], index: JournalIndex, journal: JournalWriter, outDir: string, clock: Clock): Promise<void> {
  // Every destination is checked before anything moves, so a refused one leaves all files where they were.
  const steps = new Map<PlannedMove, { from: string; to: string; target: string }[]>();
  for (const move of planned) {
    const list = [];
    for (const step of move.moves) list.push({ ...step, target: await safeTarget(join(outDir, 'images'), step.to.replace(/^images\//, '')) });
    steps.set(move, list);
  }
  // A file whose name another file is about to take steps aside first, so that jobs trading output names
  // (a.png <-> b.png) do not overwrite each other's images.
  const targets = new Set([...steps.values()].flatMap((list) => list.map((step) => step.to)));
  const aside = new Map<string, string>();
  for (const list of steps.values()) {
    for (const step of list.filter((step) => targets.has(step.from))) {
      const temp = `${step.from}.${process.pid}.moving`;
      await rename(join(outDir, step.from), join(outDir, temp));
      aside.set(step.from, temp);
    }
  }
  for (const [move, list] of steps) {
    for (const step of list) await rename(join(outDir, aside.get(step.from) ?? step.from), step.target);
    const moved = movedRecord(move.record, move.moves, move.job, new Date(clock.now()).toISOString());
    index.add(move.job.id, refOf(moved, await journal.append(moved)));
  }
}

/** The dispatch loop: a fixed set of workers pulling from one queue, sharing one rate scheduler (limits, and the pause after a 429). */
class RunLoop {
  retries = 0;
  stopReason: StopReason | undefined;
  stopMessage: string | undefined;
  /** What ended the run other than a stop: the job files changed under it. Thrown once requests in flight are done. */
  private failure: unknown;
  private readonly rates: RateScheduler;
  private readonly stopped = new AbortController();
  /** Mirrors the caller's `abortSignal`, so the listeners of every worker hang on a signal the run owns. */
  private readonly aborted = new AbortController();
  private readonly budget: Budget | undefined;
  private readonly signals = new RequestSignals(this.aborted.signal);
  /**
   * The jobs to send, up to one per worker read (and checked against the plan) ahead, so that an answer is followed
   * by the next request at once. A job read ahead but not sent when the run stops stays pending.
   */
  private readonly jobs: ReadAhead<ToSend>;

  constructor(
    private readonly queue: AsyncGenerator<ToSend>,
    private readonly options: RunOptions,
    private readonly clock: Clock,
    private readonly redact: (text: string) => string,
    private readonly emit: (event: RunEvent) => void,
    private readonly journal: JournalWriter,
    private readonly index: JournalIndex,
    private readonly results: LiveResults,
  ) {
    this.rates = new RateScheduler({ clock, ...(options.rpm !== undefined ? { rpm: options.rpm } : {}), ...(options.tpm !== undefined ? { tpm: options.tpm } : {}) });
    if (options.budget) this.budget = new Budget(options.budget.limitUsd, index.spentUsd);
    this.jobs = new ReadAhead(queue, Math.max(1, options.concurrency), this.stopped.signal);
  }

  async start(): Promise<void> {
    const { stopSignal, abortSignal } = this.options;
    const onStop = (): void => this.stop('interrupted', 'Stopping: no new requests; waiting for those in flight.');
    const onAbort = (): void => {
      this.aborted.abort();
      this.stop('aborted', 'Abandoning requests in flight.');
    };
    // Each worker listens to these at most twice at a time (a rate-limit wait, a request): not a leak.
    setMaxListeners(2 * this.options.concurrency + 10, this.stopped.signal, this.aborted.signal);
    stopSignal?.addEventListener('abort', onStop, { once: true });
    abortSignal?.addEventListener('abort', onAbort, { once: true });
    if (stopSignal?.aborted) onStop();
    if (abortSignal?.aborted) onAbort();
    try {
      // Whichever worker is free takes the next job: each job goes to exactly one worker, in input order.
      await Promise.all(Array.from({ length: Math.max(1, this.options.concurrency) }, () => this.work()));
    } finally {
      stopSignal?.removeEventListener('abort', onStop);
      abortSignal?.removeEventListener('abort', onAbort);
      // Closes the job files when the run stopped before reading them to the end.
      await this.queue.return(undefined).catch(() => {});
    }
    if (this.failure !== undefined) throw this.failure;
  }

  /** The next job to send, or undefined when there is none, the run stopped, or the job files can no longer be read. */
  private async take(): Promise<ToSend | undefined> {
    try {
      return await this.jobs.take();
    } catch (error) {
      // A run already stopping for another reason keeps that reason.
      if (this.stopped.signal.aborted) return undefined;
      this.failure ??= error;
      this.stop('interrupted', `Stopping: ${messageOf(error)}`);
      return undefined;
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
    const lane: Lane = { recorded: Promise.resolve() };
    try {
      await this.workIn(lane);
    } finally {
      // The run ends (and its outputs are written) only once the worker's last record is on the disk.
      await lane.recorded;
    }
  }

  private async workIn(lane: Lane): Promise<void> {
    while (!this.stopped.signal.aborted) {
      const next = await this.take();
      if (next === undefined || this.stopped.signal.aborted) return;
      const { job } = next;
      // Planning made sure every job to send has a worst case.
      const reserved = this.budget ? (this.options.budget!.worstCaseUsd(job) ?? 0) : 0;
      if (this.budget && !(await this.budget.reserve(reserved, this.stopped.signal))) {
        if (this.stopped.signal.aborted) return;
        const { spentUsd, limitUsd } = this.budget;
        this.stop(
          'budget',
          `Budget reached: $${spentUsd.toFixed(4)} of $${limitUsd} spent in this folder, and job ${job.id} could cost up to $${reserved.toFixed(4)}. ` +
            'Run again with a larger --budget to continue.',
        );
        return;
      }
      let actual: number | undefined;
      try {
        actual = await this.runJob(job, next.fp, lane);
      } catch (error) {
        // Whatever went wrong, the other workers' requests are paid for: let them finish and journal.
        this.failure ??= error;
        this.stop('interrupted', `Stopping: ${messageOf(error)}`);
        return;
      } finally {
        this.budget?.settle(reserved, actual ?? 0);
      }
    }
  }

  /** Runs a job to its outcome; returns what it cost, or undefined when it was not settled (stop, abort). */
  private async runJob(job: Job, fp: string, lane: Lane): Promise<number | undefined> {
    const startedAt = this.clock.now();
    // Counted only when a token limit applies, and once for all attempts.
    let tokens: number | undefined;
    const countTokens = (): number => (tokens ??= requestTokens(job));
    const abortSignal = this.aborted.signal;
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
      const link = this.signals.take();
      try {
        result = await executeJob(job, {
          client: this.options.client,
          outDir: this.options.outDir,
          timeoutMs: this.options.timeoutMs,
          signal: link.signal,
        }).finally(link.release);
      } catch (error) {
        if (abortSignal?.aborted) return undefined;
        if (error instanceof ImageSaveError) {
          this.rates.observe(error.headers, permit);
          return await this.failUnsaved(job, fp, lane, error, attempt, startedAt);
        }
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
      // Without reported usage the tokens reserved for the request stay charged: the best bound there is.
      const counted = result.usageReported ? countedTokens(job, result.usage) : undefined;
      if (counted !== undefined) this.rates.settle(permit, counted);
      // An answer without usage is paid for all the same: its cost is unknown (null), never 0.
      const costUsd = result.usageReported ? costOf(result.usage, job.model, this.options.prices, costOptions(job)).usd : null;
      if (!result.usageReported) this.emit({ type: 'warning', message: `job ${job.id}: the server reported no token usage; its cost is unknown` });
      await this.finish(job, fp, lane, {
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
      // A budget counts an answer of unknown cost at its worst case.
      return costUsd ?? this.options.budget?.worstCaseUsd(job) ?? undefined;
    }
    if (!lastError) return undefined;
    await this.finish(job, fp, lane, {
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

  /**
   * Journals a job whose images were generated, and billed, but not saved: failed, with the usage and cost of
   * the answer. A write failure means the output folder is unusable: the run stops (requests in flight finish).
   */
  private async failUnsaved(job: Job, fp: string, lane: Lane, error: ImageSaveError, attempts: number, startedAt: number): Promise<number | undefined> {
    const costUsd = costOf(error.usage, job.model, this.options.prices, costOptions(job)).usd;
    const cause = this.redact(error.message);
    await this.finish(job, fp, lane, {
      state: 'failed',
      attempts,
      output: '',
      files: [],
      error: `The image was generated (and billed) but could not be written: ${cause}`,
      usage: error.usage,
      costUsd,
      latencyMs: this.clock.now() - startedAt,
      ...(error.requestId ? { requestId: error.requestId } : {}),
      startedAt,
    });
    if (error.reason === 'write') {
      this.stop('output', `Stopping: images cannot be written in ${this.options.outDir} (${cause}). Fix the folder (space, permissions, what is in the way), then run the same command again.`);
    }
    return costUsd ?? undefined;
  }

  /**
   * Hands a job's record to the journal and returns without waiting for the disk, so that the worker sends its next
   * request at once: a slow disk holds back no request. The job counts as finished (index, results, progress) once
   * its record is on the disk. A worker has at most one record on its way: it waits for the previous one (written
   * long before, normally) before handing over the next, so a crash loses at most one answer per worker beside the
   * requests in flight.
   */
  private async finish(
    job: Job,
    fp: string,
    lane: Lane,
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
    await lane.recorded;
    lane.recorded = this.journal.append(record).then(
      (location: RecordLocation) => {
        this.index.add(job.id, refOf(record, location));
        this.results.write(resultLine(job, record));
        this.emit({ type: 'finished', job, record });
      },
      (error: unknown) => {
        // The output folder is unusable: nothing more is sent, and the requests in flight are abandoned at once, since
        // no answer could be recorded any more (the journal's failure is sticky). The run then fails with E_OUTPUT.
        this.failure ??= new NightshiftError('E_OUTPUT', `Cannot write the journal in ${this.options.outDir}: ${messageOf(error)}`, { jobId: job.id }, { cause: error });
        this.stop('aborted', `Cannot write the journal: ${messageOf(error)}`);
        this.aborted.abort();
      },
    ).catch((error: unknown) => {
      // Whatever else went wrong once the record was written: the run stops; requests in flight finish and journal.
      this.failure ??= error;
      try {
        this.stop('interrupted', `Stopping: ${messageOf(error)}`);
      } catch {
        // The failure is on record: the run ends with it once the workers are done.
      }
    });
  }
}

/** A worker's last job record on its way to the journal. */
interface Lane {
  recorded: Promise<void>;
}

function costOptions(job: Job): CostOptions {
  const size = typeof job.body.size === 'string' ? job.body.size : undefined;
  const quality = typeof job.body.quality === 'string' ? job.body.quality : undefined;
  return { ...(size ? { size } : {}), ...(quality ? { quality } : {}) };
}

/** Requests that share one signal, at most: each leaves a listener on it that the SDK never removes. */
const REQUESTS_PER_SIGNAL = 32;

/**
 * Signals for requests, aborted together when the run aborts. The SDK adds an abort listener to the signal of
 * every request and never removes it, so the run's own long-lived signal cannot be handed over (one closure per
 * request would stay for the whole run); one signal per request costs an AbortController each, which is not free
 * either. A signal serves {@link REQUESTS_PER_SIGNAL} requests, then a new one takes over and the old one is
 * dropped once its requests are done.
 */
class RequestSignals {
  private current = RequestSignals.controller();
  private uses = 0;
  /** Signals with requests still in flight, and how many. */
  private readonly live = new Map<AbortController, number>();

  constructor(private readonly run: AbortSignal) {
    run.addEventListener('abort', () => {
      this.current.abort();
      for (const controller of this.live.keys()) controller.abort();
    }, { once: true });
    if (run.aborted) this.current.abort();
  }

  private static controller(): AbortController {
    const controller = new AbortController();
    // The SDK adds a listener per attempt (more with its own retries on): bounded by the requests a signal serves.
    setMaxListeners(0, controller.signal);
    return controller;
  }

  /** A signal for one request; `release` once the request is done. */
  take(): { signal: AbortSignal; release: () => void } {
    if (this.uses === REQUESTS_PER_SIGNAL) {
      this.current = RequestSignals.controller();
      if (this.run.aborted) this.current.abort();
      this.uses = 0;
    }
    this.uses++;
    const controller = this.current;
    this.live.set(controller, (this.live.get(controller) ?? 0) + 1);
    return {
      signal: controller.signal,
      release: () => {
        const left = this.live.get(controller)! - 1;
        if (left === 0) this.live.delete(controller);
        else this.live.set(controller, left);
      },
    };
  }
}
