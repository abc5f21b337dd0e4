import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { basename, join, relative, resolve } from 'node:path';
import { systemClock, type Clock } from '../common/clock.js';
import { NightshiftError } from '../common/errors.js';
import type { Job } from '../common/types.js';
import { jobsInMemory, type JobSource } from '../jobs/source.js';
import { openOutputFolder, type OutputFolder } from '../output/folder.js';
import { apiOrigin, OFFLINE_ORIGIN } from '../output/journal.js';
import { addUsd, paidInJournals, setAsideJournals } from '../cost/money.js';
import { countPlan, jobsToSend, planJobs } from '../run/plan.js';
import type { RunOptions, RunSummary, StopReason } from '../run/options.js';
import { jobCounts, moneyAfter } from '../run/run.js';
import { BatchApi, BatchApiError, type Batch } from './api.js';
import { collectBatch } from './collect.js';
import { isOpen, Ledger, PARTS_DIR, type PartState } from './ledger.js';
import { writeParts, type BatchPart } from './parts.js';
import { customIdOf } from './lines.js';
import { customIdsOf, idsOf, removePartFiles, uploadName } from './local-parts.js';
import { recoverParts } from './recover.js';
import { ENDED, viewOf, type BatchEvent, type BatchView } from './view.js';

/** Everything `runBatch` needs: a live run's options, and how to split, wait for and clean up batches. */
export interface BatchRunOptions extends Omit<RunOptions, 'onEvent' | 'concurrency' | 'rpm' | 'tpm'> {
  /** Poll until every batch has ended and is collected (and what must be sent again is sent and collected). */
  wait: boolean;
  /** Between two polls, in milliseconds. */
  pollIntervalMs: number;
  /** Leave the input, output and error files on the account after collecting. @default false */
  keepFiles?: boolean;
  maxRequests?: number;
  maxBytes?: number;
  onEvent?: (event: Parameters<NonNullable<RunOptions['onEvent']>>[0] | BatchEvent) => void;
}

/** A batch run's outcome: a live run's summary, and where its batches stand. */
export interface BatchRunSummary extends RunSummary {
  batches: BatchView[];
  /** Jobs in batches that have not ended (or were not collected yet). */
  inBatches: number;
  /** Jobs submitted by this command. */
  submitted: number;
}

/**
 * Runs jobs through the Batch API, at its prices, with the outputs a live run writes. Each call first finds what
 * a killed process may have left (intents recorded in the ledger, looked for in the account's batch list by the
 * part's metadata), collects the batches that ended, plans exactly as a live run, then submits what is left to
 * send; with `wait`, it polls, collects and sends again what needs it until nothing is left running.
 */
export async function runBatch(jobs: readonly Job[] | JobSource, given: BatchRunOptions): Promise<BatchRunSummary> {
  const options = { ...given, origin: given.origin ?? apiOrigin(given.client.baseURL) };
  const source = Array.isArray(jobs) ? jobsInMemory(jobs) : (jobs as JobSource);
  const clock = options.clock ?? systemClock;
  const emit = options.onEvent ?? (() => {});
  const redact = options.redact ?? ((text: string) => text);
  const warn = (message: string): void => emit({ type: 'warning', message });
  const folder = await openOutputFolder(options.outDir, { ids: source.digests.ids, fresh: options.fresh ?? false, origin: options.origin });
  const ledger = await Ledger.open(options.outDir, warn);
  const api = new BatchApi({
    client: options.client,
    clock,
    maxAttempts: Math.max(options.maxAttempts, 5),
    timeoutMs: options.timeoutMs,
    redact,
    ...(options.abortSignal ? { signal: options.abortSignal } : {}),
    ...(options.random ? { random: options.random } : {}),
  });
  try {
    for (const message of folder.index.warnings) warn(message);
    // What the folder paid before this command: its journal, and the journals `--fresh` set aside (see cost/money.ts).
    const spentBefore = folder.index.spentUsd;
    const setAside = await paidInJournals(await setAsideJournals(options.outDir), options.origin);
    const engine = new BatchEngine(source, folder, ledger, api, { ...options, redact, paidElsewhere: setAside }, clock, emit);
    const planned = countPlan(await planJobs(source, folder, options));
    emit({ type: 'planned', ...planned });
    await folder.startRun({ startedAt: new Date(clock.now()).toISOString(), files: options.files, jobs: source.count, origin: options.origin });
    await engine.go();
    const written = await folder.writeResults(source);
    const { total } = written.usage;
    const views = engine.views();
    return {
      ...jobCounts(source.count, planned, total),
      retries: engine.resubmitted,
      money: moneyAfter(spentBefore, addUsd(spentBefore, setAside), folder.index.spentUsd, total.costUsd),
      unpricedModels: written.usage.unpricedModels(),
      missingModels: [],
      ...(engine.stopReason ? { stopReason: engine.stopReason, stopMessage: engine.stopMessage } : {}),
      ...(written.jobFilesChanged || engine.jobFilesChanged ? { jobFilesChanged: true } : {}),
      outDir: options.outDir,
      batches: views,
      inBatches: engine.inBatches(),
      submitted: engine.submitted,
    };
  } finally {
    await ledger.close();
    await folder.close();
  }
}

type Emit = NonNullable<BatchRunOptions['onEvent']>;

/** One command's work on the folder's batches. */
class BatchEngine {
  stopReason: StopReason | undefined;
  stopMessage: string | undefined;
  jobFilesChanged = false;
  submitted = 0;
  resubmitted = 0;
  /** Submissions of each job by this command: a job is sent at most `maxAttempts` times by one command. */
  readonly #attempts = new Map<string, number>();
  /** Jobs this command will not send again: failed for good, or left unfinished by a cancelled batch. */
  readonly #settled = new Set<string>();
  /** The last status seen of each part's batch. */
  readonly #seen = new Map<string, Batch>();
  #warnedPartial = false;
  /** Why nothing more is submitted: the next job does not fit in the budget. Said as the stop reason at the end. */
  #budgetReached: string | undefined;

  constructor(
    private readonly source: JobSource,
    private readonly folder: OutputFolder,
    private readonly ledger: Ledger,
    private readonly api: BatchApi,
    /** `paidElsewhere`: what the journals `--fresh` set aside paid, which counts against the budget too. */
    private readonly options: BatchRunOptions & { redact: (text: string) => string; origin: string; paidElsewhere: number },
    private readonly clock: Clock,
    private readonly emit: Emit,
  ) {}

  async go(): Promise<void> {
    try {
      await recoverParts(this.ledger, this.api, this.options.outDir, () => this.now());
      for (;;) {
        const collectedAny = await this.poll();
        if (this.stopped) break;
        await this.resubmitRefused(collectedAny);
        await this.submitNew();
        if (!this.options.wait || this.stopped || !this.ledger.parts().some(isOpen)) break;
        await this.clock.sleep(this.options.pollIntervalMs, this.options.stopSignal);
        if (this.options.stopSignal?.aborted) {
          this.stop('interrupted', 'Stopped waiting: the batches keep running. Run the same command again to collect them.');
          break;
        }
      }
      if (this.#budgetReached) this.stop('budget', this.#budgetReached);
    } catch (error) {
      if (error instanceof BatchApiError) this.apiFailed(error);
      else if (error instanceof NightshiftError && error.code === 'E_VALIDATION') this.jobFilesChanged = true;
      else throw error;
    }
  }

  private get stopped(): boolean {
    return this.stopReason !== undefined;
  }

  private stop(reason: StopReason, message: string): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    this.stopMessage = message;
    this.emit({ type: 'stopping', reason, message });
  }

  private apiFailed(error: BatchApiError): void {
    const { status, verdict } = error.error;
    const message = this.options.redact(error.message);
    if (status === 401) this.stop('unauthorized', `The API refused the key (${message}). Check OPENAI_API_KEY, then run the same command again to continue.`);
    else if (verdict === 'stop-run') this.stop('quota', `The account is out of credit (${message}). Add credit, then run the same command again to continue.`);
    else this.stop('api', `The Batch API failed while ${message}. Run the same command again to continue: what was submitted is on record.`);
  }

  /** Reads every running batch once; collects those that ended. True when any batch that ran was collected. */
  private async poll(): Promise<boolean> {
    let collected = false;
    for (const part of this.ledger.parts()) {
      // A process stopped between collecting a batch and deleting its files: deleted now.
      if (part.stage === 'collected' && !part.cleaned && !this.options.keepFiles && part.batchId) {
        const batch = await this.retrieve(part);
        if (batch) await this.clean(part, batch);
        continue;
      }
      if (part.stage !== 'submitted' || !part.batchId) continue;
      const batch = await this.retrieve(part);
      if (batch === undefined) continue;
      this.#seen.set(part.part, batch);
      this.emit({ type: 'batch-status', batch: viewOf(part, batch) });
      if (!ENDED.has(batch.status)) continue;
      // A refused batch ran nothing: it frees no room for the parts that wait.
      if (await this.collect(part, batch)) collected = true;
    }
    return collected;
  }

  /**
   * The part's batch as the API has it now. The offline server of `--offline` lives only as long as its command: a
   * batch it no longer knows is abandoned (its jobs planned again). An API that does not know a batch it created
   * stops the command: a key of another project cannot see it, and sending its jobs again could pay twice.
   */
  private async retrieve(part: PartState): Promise<Batch | undefined> {
    try {
      return await this.api.retrieve(part.batchId!);
    } catch (error) {
      if (!(error instanceof BatchApiError && error.error.status === 404)) throw error;
      if (this.options.origin !== OFFLINE_ORIGIN) {
        throw new NightshiftError(
          'E_CONFIG',
          `The API has no batch ${part.batchId}, which this folder submitted. Use the key and project (OPENAI_PROJECT_ID) that submitted it, or cancel it from the dashboard and start afresh with --fresh.`,
        );
      }
      this.emit({ type: 'warning', message: `batch ${part.batchId} was run by an offline server that has stopped; its jobs are sent again` });
      await this.ledger.append({ type: 'abandoned', part: part.part, reason: 'its offline server has stopped', at: this.now() });
      await removePartFiles(this.options.outDir, part);
      return undefined;
    }
  }

  /** Collects an ended batch; false when the API refused it (the part waits to be submitted again). */
  private async collect(part: PartState, batch: Batch): Promise<boolean> {
    const resumed = await this.markCollecting(part, batch);
    const result = await collectBatch(part, batch, {
      api: this.api,
      folder: this.folder,
      prices: this.options.prices,
      clock: this.clock,
      origin: this.options.origin,
      redact: this.options.redact,
      timeoutMs: this.options.timeoutMs,
      attemptsOf: (id) => this.#attempts.get(id) ?? 1,
      resumed,
      warn: (message) => this.emit({ type: 'warning', message }),
    });
    if (result.refused !== undefined) {
      await this.ledger.append({ type: 'refused', part: part.part, batchId: batch.id, error: result.refused, at: this.now() });
      this.emit({ type: 'batch-waiting', part: part.part, model: part.model, reason: result.refused });
      return false;
    }
    for (const id of result.failedForGood) this.#settled.add(id);
    // Lines a cancelled batch never ran stay pending: whoever cancelled it did not want them now.
    if (batch.status === 'cancelled') for (const id of result.again) this.#settled.add(id);
    for (const id of result.again) if ((this.#attempts.get(id) ?? 1) >= this.options.maxAttempts) this.#settled.add(id);
    const counts = batch.request_counts;
    await this.ledger.append({ type: 'collected', part: part.part, batchId: batch.id, status: batch.status, completed: counts?.completed ?? 0, failed: counts?.failed ?? 0, at: this.now() });
    await removePartFiles(this.options.outDir, part);
    this.emit({ type: 'batch-collected', batch: viewOf(part, batch), done: result.done + result.incomplete, failed: result.failed, again: result.again.length });
    if (!this.options.keepFiles) await this.clean(part, batch);
    return true;
  }

  /** Notes that collecting has begun, once; true when an earlier process began it (its lines may be journaled). */
  private async markCollecting(part: PartState, batch: Batch): Promise<boolean> {
    const key = `${part.part}\n${batch.id}`;
    if (this.ledger.collecting(key)) return true;
    await this.ledger.append({ type: 'collecting', part: part.part, batchId: batch.id, at: this.now() });
    return false;
  }

  /** Deletes the part's files from the account (input, and each batch's output and error files) and from the folder. */
  private async clean(part: PartState, batch: Batch): Promise<void> {
    const ids = [part.fileId, batch.output_file_id, batch.error_file_id].filter((id): id is string => typeof id === 'string' && id !== '');
    for (const id of ids) await this.api.deleteFile(id);
    await this.ledger.append({ type: 'cleaned', part: part.part, at: this.now() });
  }

  /**
   * Parts the API refused for the enqueued-token limit are submitted again (from the file already uploaded) once a
   * batch of their model has ended, or when none of their model is running.
   */
  private async resubmitRefused(collectedAny: boolean): Promise<void> {
    const running = new Set(this.ledger.parts().filter((part) => part.stage === 'submitted').map((part) => part.model));
    for (const part of this.ledger.parts()) {
      if (part.stage !== 'refused' || !part.fileId) continue;
      if (running.has(part.model) && !collectedAny) continue;
      await this.create(part, part.fileId);
      running.add(part.model);
    }
  }

  /** Plans as a live run would, and submits the jobs to send that no open part holds. */
  private async submitNew(): Promise<void> {
    if (this.options.stopSignal?.aborted || this.#budgetReached) return;
    const plan = await planJobs(this.source, this.folder, this.options);
    const inFlight = await customIdsOf(this.options.outDir, this.ledger.parts().filter(isOpen));
    const budget = this.options.budget;
    let reserved = this.ledger.parts().filter(isOpen).reduce((sum, part) => sum + (part.worstUsd ?? 0), 0) + this.folder.index.spentUsd + this.options.paidElsewhere;
    const worst = new Map<string, number>();
    const { source, options } = this;
    const settled = this.#settled;
    const attempts = this.#attempts;
    let budgetHit: string | undefined;
    const partialJobs: string[] = [];
    const countAttempt = (id: string): void => this.#countAttempt(id);
    async function* toSend(): AsyncGenerator<Job> {
      for await (const { job, fp, partial } of jobsToSend(source, plan)) {
        // Making some of a job's images again alone keeps the others in the same record: a live run does that.
        if (partial) {
          partialJobs.push(job.id);
          continue;
        }
        if (inFlight.has(customIdOf(job.id, fp)) || settled.has(job.id)) continue;
        if ((attempts.get(job.id) ?? 0) >= options.maxAttempts) continue;
        if (budget) {
          const cost = budget.worstCaseUsd(job) ?? 0;
          if (reserved + cost > budget.limitUsd) {
            budgetHit ??= `Budget reached: $${reserved.toFixed(4)} of $${budget.limitUsd} spent or held by batches in this folder, and job ${job.id} could cost up to $${cost.toFixed(4)}. Run again with a larger --budget to continue.`;
            continue;
          }
          reserved += cost;
          worst.set(job.id, cost);
        }
        countAttempt(job.id);
        yield job;
      }
    }
    const round = `${new Date(this.clock.now()).toISOString().replace(/[-:.TZ]/g, '').slice(0, 14)}-${randomBytes(3).toString('hex')}`;
    const dir = join(this.options.outDir, PARTS_DIR, round);
    const parts = await writeParts(toSend(), {
      dir,
      ...(this.options.maxRequests ? { maxRequests: this.options.maxRequests } : {}),
      ...(this.options.maxBytes ? { maxBytes: this.options.maxBytes } : {}),
    });
    if (parts.length === 0) await rm(dir, { recursive: true, force: true });
    for (const part of parts) {
      if (this.options.stopSignal?.aborted) break;
      await this.submit(part, `${round}-${part.number}`, budget ? await this.worstOf(part, worst) : undefined);
    }
    if (partialJobs.length > 0 && !this.#warnedPartial) {
      this.#warnedPartial = true;
      const shown = partialJobs.slice(0, 5).join(', ') + (partialJobs.length > 5 ? `, and ${partialJobs.length - 5} more` : '');
      this.emit({ type: 'warning', message: `${partialJobs.length} image job${partialJobs.length === 1 ? ' has' : 's have'} lost only some of their images (${shown}): run without --batch to make those alone; they are not sent in a batch` });
    }
    // Batches already submitted still run and are collected (and waited for): only sending more stops.
    if (budgetHit) this.#budgetReached ??= budgetHit;
  }

  /** The intent, the upload and the batch of a new part, each step on record before the next. */
  private async submit(part: BatchPart, key: string, worstUsd: number | undefined): Promise<void> {
    const rel = (path: string): string => relative(this.options.outDir, path);
    await this.ledger.append({
      type: 'part',
      part: key,
      endpoint: part.endpoint,
      model: part.model,
      requests: part.requests,
      bytes: part.bytes,
      file: rel(part.file),
      ids: rel(part.ids),
      ...(worstUsd !== undefined ? { worstUsd } : {}),
      at: this.now(),
    });
    const fileId = await this.api.upload(part.file, uploadName(key));
    await this.ledger.append({ type: 'uploaded', part: key, fileId, at: this.now() });
    const state = this.ledger.part(key)!;
    await this.create(state, fileId);
    this.submitted += part.requests;
  }

  /** A job handed to a part: one more submission of it by this command. */
  #countAttempt(id: string): void {
    const attempts = (this.#attempts.get(id) ?? 0) + 1;
    this.#attempts.set(id, attempts);
    if (attempts > 1) this.resubmitted++;
  }

  private async create(part: PartState, fileId: string): Promise<void> {
    const batch = await this.api.create(fileId, part.endpoint, part.part, basename(resolve(this.options.outDir)));
    await this.ledger.append({ type: 'submitted', part: part.part, batchId: batch.id, createdAt: batch.created_at, ...(batch.expires_at ? { expiresAt: batch.expires_at } : {}), at: this.now() });
    this.#seen.set(part.part, batch);
    this.emit({ type: 'batch-submitted', batch: viewOf(part, batch) });
  }

  /** What the budget holds for a part: the sum of its jobs' worst cases at Batch API rates. */
  private async worstOf(part: BatchPart, worst: ReadonlyMap<string, number>): Promise<number> {
    let sum = 0;
    for await (const id of idsOf(part.ids)) sum += worst.get(id) ?? 0;
    return sum;
  }

  /** Jobs in parts that are still open. */
  inBatches(): number {
    return this.ledger.parts().filter(isOpen).reduce((sum, part) => sum + part.requests, 0);
  }

  views(): BatchView[] {
    return this.ledger.parts().filter((part) => this.#seen.has(part.part)).map((part) => viewOf(part, this.#seen.get(part.part)));
  }

  private now(): string {
    return new Date(this.clock.now()).toISOString();
  }
}
