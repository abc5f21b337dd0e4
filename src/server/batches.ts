import { open } from 'node:fs/promises';
import { ApiError, invalidRequest } from './api-error.js';
import { addUsage, ENQUEUED, newBatchObject, seconds, TERMINAL, type BatchError, type BatchObject } from './batch-object.js';
import { lineMatches, type ResolvedBatchOptions } from './batch-options.js';
import { LineSink } from './batch-output.js';
import { closeInput, nextLine, readLines, requireInput, type BatchRun } from './batch-run.js';
import { BATCH_ENDPOINTS, checkLine, MAX_REPORTED_ERRORS, readMetadata, readOutputExpiry, submissionKey } from './batch-validation.js';
import type { ApiFiles } from './files.js';
import { listPage, type ListPage } from './list-page.js';
import { asRecord, requireString } from './request-fields.js';
import { randomStream } from './hash.js';

/** What the server does with one line: its model and key (lenient), its tokens, and its answer. */
export interface LineHandler {
  describe(url: string, body: unknown): { model?: string; key: string };
  tokens(url: string, body: unknown): number;
  answer(url: string, body: unknown, requestId: string): { status: number; body: unknown };
}

/**
 * The batches of `/v1/batches`: created from an uploaded input file, validated as the API validates it, and
 * answered line by line with the server's own endpoint logic, into output and error files in {@link ApiFiles}.
 * Every operation runs alone (one lock), so statuses, counts and files never race.
 */
export class Batches {
  readonly #options: ResolvedBatchOptions;
  readonly #files: ApiFiles;
  readonly #handler: LineHandler;
  readonly #now: () => number;
  readonly #runs = new Map<string, BatchRun>();
  /** Line submissions by `custom_id` and body, counted when a batch starts running its lines. */
  readonly #submitted = new Map<string, number>();
  #lock: Promise<void> = Promise.resolve();
  #created = 0;
  #requests = 0;
  #failLinesLeft: number[];
  #failValidationLeft: number;
  #expireLeft: number;
  #cancelLeft: number;

  constructor(options: ResolvedBatchOptions, files: ApiFiles, handler: LineHandler, now: () => number) {
    this.#options = options;
    this.#files = files;
    this.#handler = handler;
    this.#now = now;
    this.#failLinesLeft = options.failLines.map((rule) => rule.times ?? Number.POSITIVE_INFINITY);
    this.#failValidationLeft = options.failValidation?.times ?? Number.POSITIVE_INFINITY;
    this.#expireLeft = options.expire?.times ?? Number.POSITIVE_INFINITY;
    this.#cancelLeft = options.cancel?.times ?? Number.POSITIVE_INFINITY;
  }

  /** How many times batches that started running carried a line with this `custom_id` (and this body, if given). */
  linesSubmitted(customId: string, body?: unknown): number {
    if (body !== undefined) return this.#submitted.get(submissionKey(customId, body)) ?? 0;
    let count = 0;
    for (const [key, times] of this.#submitted) if (key.startsWith(`${customId}\u0000`)) count += times;
    return count;
  }

  /** Line bodies that batches carried more than once, by `custom_id`. */
  linesSubmittedTwice(): string[] {
    return [...this.#submitted].filter(([, times]) => times > 1).map(([key]) => key.slice(0, key.indexOf('\u0000')));
  }

  /** `POST /v1/batches`: answers the new batch, `validating`. */
  create(body: unknown): Promise<BatchObject> {
    return this.#exclusive(async () => {
      const fields = asRecord(body);
      const inputFileId = requireString(fields, 'input_file_id');
      const endpoint = requireString(fields, 'endpoint');
      const window = requireString(fields, 'completion_window');
      if (!(BATCH_ENDPOINTS as readonly string[]).includes(endpoint)) {
        throw invalidRequest(
          `Invalid value for 'endpoint': the offline server runs batches for ${BATCH_ENDPOINTS.map((e) => `'${e}'`).join(' and ')}.`,
          'endpoint',
          'invalid_value',
        );
      }
      if (window !== '24h') throw invalidRequest(`Invalid value for 'completion_window': '${window}'. Supported values are: '24h'.`, 'completion_window', 'invalid_value');
      const metadata = readMetadata(fields.metadata);
      const outputExpiresSeconds = readOutputExpiry(fields.output_expires_after);
      const file = this.#files.get(inputFileId);
      if (file.object.purpose !== 'batch') {
        throw invalidRequest(`The input file ${inputFileId} must be uploaded with purpose 'batch'.`, 'input_file_id', 'invalid_value');
      }
      const nowMs = this.#now();
      this.#created += 1;
      const id = `batch_${this.#created.toString(16).padStart(24, '0')}`;
      const run: BatchRun = {
        object: newBatchObject(id, endpoint, inputFileId, nowMs, nowMs + this.#options.expiresAfterMs, metadata),
        createdMs: nowMs,
        inProgressAtMs: nowMs + this.#options.validatingMs,
        cancellingAtMs: 0,
        finalizingAtMs: 0,
        outputExpiresSeconds,
        input: await open(file.path, 'r'),
        lines: undefined,
        lineNumber: 0,
        answered: 0,
        tokens: 0,
        endsEarly: undefined,
        output: undefined,
        errors: undefined,
      };
      this.#runs.set(id, run);
      return structuredClone(run.object);
    });
  }

  /** `GET /v1/batches/{id}`: the batch, brought up to date. */
  retrieve(id: string): Promise<BatchObject> {
    return this.#exclusive(async () => {
      const run = this.#get(id);
      await this.#advance(run, this.#now());
      return structuredClone(run.object);
    });
  }

  /** `GET /v1/batches`: newest first, paged with `after` and `limit`. */
  list(query: URLSearchParams): Promise<ListPage<BatchObject>> {
    return this.#exclusive(async () => {
      const page = listPage([...this.#runs.values()].reverse().map((run) => run.object), query, { default: 20, max: 100 });
      const now = this.#now();
      for (const batch of page.data) await this.#advance(this.#get(batch.id), now);
      return structuredClone(page);
    });
  }

  /** `POST /v1/batches/{id}/cancel`: the batch, `cancelling`; its finished lines are kept. */
  cancel(id: string): Promise<BatchObject> {
    return this.#exclusive(async () => {
      const run = this.#get(id);
      const now = this.#now();
      await this.#advance(run, now);
      const { status } = run.object;
      if (TERMINAL.has(status)) {
        throw invalidRequest(`Cannot cancel a batch with status '${status}'.`, null);
      }
      if (status !== 'cancelling') {
        run.object.status = 'cancelling';
        run.object.cancelling_at = seconds(now);
        run.cancellingAtMs = now;
        await this.#advance(run, now);
      }
      return structuredClone(run.object);
    });
  }

  /** Closes the input files of unfinished batches. */
  async close(): Promise<void> {
    await this.#lock;
    for (const run of this.#runs.values()) await closeInput(run);
  }

  #get(id: string): BatchRun {
    const run = this.#runs.get(id);
    if (run === undefined) throw new ApiError(404, `No batch found with id '${id}'.`, { param: 'batch_id' });
    return run;
  }

  /** Runs `work` after every operation before it; a failure goes to its caller and does not stop the next one. */
  #exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = this.#lock.then(work);
    this.#lock = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  /** Brings the batch's status up to `now`, answering the lines due by then. */
  async #advance(run: BatchRun, now: number): Promise<void> {
    const batch = run.object;
    if (batch.status === 'validating') {
      if (now < run.inProgressAtMs) return;
      await this.#validate(run);
    }
    if (batch.status === 'in_progress') {
      const { processingMs } = this.#options;
      const expiresMs = run.createdMs + this.#options.expiresAfterMs;
      let due = this.#dueLines(run, Math.min(now, expiresMs));
      if (run.endsEarly !== undefined) due = Math.min(due, run.endsEarly.afterLines);
      await this.#answerLines(run, due);
      const { total } = batch.request_counts;
      if (run.answered === total) {
        run.finalizingAtMs = run.inProgressAtMs + processingMs;
        batch.status = 'finalizing';
        batch.finalizing_at = seconds(run.finalizingAtMs);
      } else if (run.endsEarly !== undefined && run.answered >= run.endsEarly.afterLines) {
        await this.#end(run, run.endsEarly.status, now);
      } else if (now >= expiresMs) {
        await this.#end(run, 'expired', expiresMs);
      }
    }
    if (batch.status === 'finalizing' && now >= run.finalizingAtMs + this.#options.finalizingMs) {
      await this.#end(run, 'completed', run.finalizingAtMs + this.#options.finalizingMs);
    }
    if (batch.status === 'cancelling' && now >= run.cancellingAtMs + this.#options.cancellingMs) {
      await this.#end(run, 'cancelled', run.cancellingAtMs + this.#options.cancellingMs);
    }
  }

  #dueLines(run: BatchRun, now: number): number {
    const { total } = run.object.request_counts;
    const { processingMs } = this.#options;
    if (processingMs === 0) return total;
    return Math.min(total, Math.floor((total * Math.max(0, now - run.inProgressAtMs)) / processingMs));
  }

  /** Checks the input file as the API does; the batch then runs its lines, or fails with every problem found. */
  async #validate(run: BatchRun): Promise<void> {
    const batch = run.object;
    const errors: BatchError[] = [];
    const report = (error: BatchError): void => {
      if (errors.length < MAX_REPORTED_ERRORS) errors.push(error);
    };
    const { maxBytes, maxRequests } = this.#options;
    const { size: bytes } = await requireInput(run).stat();
    if (bytes > maxBytes) {
      report({ code: 'file_too_large', line: null, param: null, message: `The batch input file is larger than the ${maxBytes} maximum. Please try again with a smaller batch.` });
    }
    const ids = new Set<string>();
    const submissions: string[] = [];
    let requests = 0;
    let model: string | undefined;
    let lineNumber = 0;
    const countTokens = this.#options.enqueuedTokenLimit !== undefined;
    if (errors.length === 0) {
      for await (const text of readLines(requireInput(run))) {
        lineNumber += 1;
        if (text.trim() === '') continue;
        requests += 1;
        const line = checkLine(text, lineNumber, batch.endpoint, ids, report);
        if (line === undefined) continue;
        const lineModel = this.#handler.describe(batch.endpoint, line.body).model;
        model ??= lineModel;
        if (lineModel !== model) {
          report({ code: 'mismatched_model', line: lineNumber, param: 'body.model', message: `The model '${String(lineModel)}' of this request does not match the model '${String(model)}' of the batch's other requests: a batch takes one model.` });
        }
        submissions.push(submissionKey(line.customId, line.body));
        if (countTokens) run.tokens += this.#handler.tokens(batch.endpoint, line.body);
      }
    }
    if (requests > maxRequests) {
      report({ code: 'too_many_tasks', line: null, param: null, message: `The batch input file has ${requests} requests, more than the ${maxRequests} maximum. Please try again with a smaller batch.` });
    }
    if (errors.length === 0 && requests === 0) report({ code: 'empty_file', line: null, param: null, message: 'The batch input file is empty.' });
    batch.model = model ?? null;
    const injected = this.#options.failValidation;
    if (errors.length === 0 && injected !== undefined && this.#failValidationLeft > 0) {
      this.#failValidationLeft -= 1;
      report({ code: injected.code, line: injected.line ?? null, param: null, message: injected.message ?? `Injected validation failure: ${injected.code}.` });
    }
    if (errors.length === 0) await this.#checkEnqueuedTokens(run, report);

    const at = seconds(run.inProgressAtMs);
    if (errors.length > 0) {
      batch.status = 'failed';
      batch.failed_at = at;
      batch.errors = { object: 'list', data: errors };
      await closeInput(run);
      return;
    }
    for (const key of submissions) this.#submitted.set(key, (this.#submitted.get(key) ?? 0) + 1);
    batch.status = 'in_progress';
    batch.in_progress_at = at;
    batch.request_counts.total = requests;
    run.lines = readLines(requireInput(run))[Symbol.asyncIterator]();
    run.endsEarly = this.#endsEarly();
  }

  async #checkEnqueuedTokens(run: BatchRun, report: (error: BatchError) => void): Promise<void> {
    const limit = this.#options.enqueuedTokenLimit;
    if (limit === undefined) return;
    let enqueued = 0;
    for (const other of this.#runs.values()) {
      if (other === run || other.object.model !== run.object.model || !ENQUEUED.has(other.object.status)) continue;
      // A batch that has finished by now frees its tokens even if no one has looked at it since.
      await this.#advance(other, this.#now());
      if (ENQUEUED.has(other.object.status)) enqueued += other.tokens;
    }
    if (enqueued + run.tokens <= limit) return;
    report({
      code: 'token_limit_exceeded',
      line: null,
      param: null,
      message:
        `Enqueued token limit reached for ${String(run.object.model)} in organization org-offline. ` +
        `Limit: ${limit.toLocaleString('en-US')} enqueued tokens. Please try again once some in_progress batches have been completed.`,
    });
  }

  /** The injected early end for a batch starting now, using up one of its times. */
  #endsEarly(): BatchRun['endsEarly'] {
    const { expire, cancel } = this.#options;
    if (expire !== undefined && this.#expireLeft > 0) {
      this.#expireLeft -= 1;
      return { status: 'expired', afterLines: expire.afterLines };
    }
    if (cancel !== undefined && this.#cancelLeft > 0) {
      this.#cancelLeft -= 1;
      return { status: 'cancelled', afterLines: cancel.afterLines };
    }
    return undefined;
  }

  /** Answers the batch's next lines until `due` are answered. */
  async #answerLines(run: BatchRun, due: number): Promise<void> {
    const batch = run.object;
    while (run.answered < due) {
      const line = await nextLine(run);
      if (line === undefined) break;
      run.answered += 1;
      this.#requests += 1;
      const hex = this.#requests.toString(16).padStart(24, '0');
      const requestId = `req_batch_${hex}`;
      const { status, body } = this.#answerLine(batch.endpoint, line, requestId);
      const entry = { id: `batch_req_${hex}`, custom_id: line.customId, response: { status_code: status, request_id: requestId, body }, error: null };
      if (status === 200) {
        batch.request_counts.completed += 1;
        addUsage(batch.usage, body);
        await (run.output ??= await this.#sink(run)).write(entry);
      } else {
        batch.request_counts.failed += 1;
        await (run.errors ??= await this.#sink(run)).write(entry);
      }
    }
  }

  #answerLine(endpoint: string, line: { customId: string; number: number; body: unknown }, requestId: string): { status: number; body: unknown } {
    const { key } = this.#handler.describe(endpoint, line.body);
    const index = this.#options.failLines.findIndex((rule, at) => (this.#failLinesLeft[at] ?? 0) > 0 && lineMatches(rule, line, key));
    const rule = this.#options.failLines[index];
    if (rule === undefined) return this.#handler.answer(endpoint, line.body, requestId);
    this.#failLinesLeft[index] = (this.#failLinesLeft[index] ?? 0) - 1;
    const error = new ApiError(rule.status, rule.message ?? `Injected batch line failure: ${rule.status}.`, { type: rule.type, code: rule.code });
    return { status: rule.status, body: error.body() };
  }


  /** Ends the batch: lines not answered are reported as expired or cancelled, and the output files are listed. */
  async #end(run: BatchRun, status: 'completed' | 'expired' | 'cancelled', atMs: number): Promise<void> {
    const batch = run.object;
    if (status !== 'completed') {
      const code = status === 'expired' ? 'batch_expired' : 'batch_cancelled';
      const message =
        status === 'expired'
          ? 'This request could not be executed before the completion window expired.'
          : 'This request was not executed because the batch was cancelled.';
      for (let line = await nextLine(run); line !== undefined; line = await nextLine(run)) {
        this.#requests += 1;
        const entry = { id: `batch_req_${this.#requests.toString(16).padStart(24, '0')}`, custom_id: line.customId, response: null, error: { code, message } };
        await (run.errors ??= await this.#sink(run)).write(entry);
      }
    }
    await closeInput(run);
    const nowSeconds = seconds(atMs);
    const expiresAt = nowSeconds + (run.outputExpiresSeconds ?? 30 * 24 * 3600);
    if (run.output !== undefined) {
      batch.output_file_id = (await run.output.finish({ filename: `${batch.id}_output.jsonl`, purpose: 'batch_output', nowSeconds, expiresAt })).id;
    }
    if (run.errors !== undefined) {
      batch.error_file_id = (await run.errors.finish({ filename: `${batch.id}_error.jsonl`, purpose: 'batch_output', nowSeconds, expiresAt })).id;
    }
    batch.status = status;
    if (status === 'completed') batch.completed_at = nowSeconds;
    else if (status === 'expired') batch.expired_at = nowSeconds;
    else batch.cancelled_at = nowSeconds;
    if (status === 'cancelled' && batch.cancelling_at === null) batch.cancelling_at = nowSeconds;
  }

  async #sink(run: BatchRun): Promise<LineSink> {
    return new LineSink(await this.#files.start(), this.#options.shuffleOutput ? randomStream(run.createdMs + this.#created) : undefined);
  }
}
