import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { ApiError, invalidRequest } from './api-error.js';
import type { ApiFiles, FileWriter } from './files.js';
import { listPage, type ListPage } from './list-page.js';
import { asRecord, missing, requireString } from './request-fields.js';
import { randomStream } from './hash.js';

/** The endpoints the offline server runs batches for: the ones it answers live. */
export const BATCH_ENDPOINTS = ['/v1/chat/completions', '/v1/images/generations'] as const;

/** A line the server answers with an error instead of its real answer (see {@link BatchOptions.failLines}). */
export interface BatchLineFault {
  /** HTTP status of the line's answer, 400-599: 500 or 429 for what a client would retry, 400 for what it would not. */
  status: number;
  /** `error.type`; defaults as for {@link FaultRule}. */
  type?: string;
  /** `error.code`. */
  code?: string;
  /** `error.message`. */
  message?: string;
  /**
   * How many lines the rule fails, across batches, before it is spent (so a line sent again can succeed).
   * @default Infinity
   */
  times?: number;
  /** Fail only the lines matching every given field. */
  match?: {
    customId?: string;
    /** 1-based line number in the input file. */
    line?: number;
    /** A substring of the line's key: its last user message's text, or its image prompt. */
    promptIncludes?: string;
  };
}

/** A batch that ends early, with the lines answered so far kept (see {@link BatchOptions.expire}). */
export interface BatchEndEarly {
  /** Lines answered before the batch ends; the rest are reported in its error file. */
  afterLines: number;
  /**
   * How many batches this happens to, in the order they reach it.
   * @default Infinity
   */
  times?: number;
}

/**
 * How the offline server runs `/v1/batches`. A batch moves through its statuses on the server's clock: `validating`
 * for `validatingMs`, then `in_progress` with its lines answered evenly over `processingMs` (all at once when 0),
 * `finalizing` for `finalizingMs`, then `completed`. The status is brought up to date whenever a request reads
 * the batch, so with the defaults a batch is `validating` when created and `completed` when next retrieved.
 */
export interface BatchOptions {
  /** @default 0 */
  validatingMs?: number;
  /** @default 0 */
  processingMs?: number;
  /** @default 0 */
  finalizingMs?: number;
  /**
   * How long a cancelled batch stays `cancelling`.
   * @default 0
   */
  cancellingMs?: number;
  /**
   * When a batch expires after its creation (its `expires_at`): lines not answered by then are reported in its
   * error file with code `batch_expired`.
   * @default 86_400_000 (the 24h completion window)
   */
  expiresAfterMs?: number;
  /** @default 50_000 */
  maxRequests?: number;
  /** @default 209_715_200 (200 MB) */
  maxBytes?: number;
  /**
   * The most enqueued tokens per model: a batch whose lines would take the tokens of the model's unfinished
   * batches past it fails validation with `token_limit_exceeded` (line `null`), as the API refuses a batch when
   * the model's enqueued-token limit is full. A line counts as it would against a tokens-per-minute limit.
   * Unset: no limit.
   */
  enqueuedTokenLimit?: number;
  /** Lines answered with an error instead of their answer, checked in order, the first match applies. */
  failLines?: BatchLineFault[];
  /** The next batches (`times`, default all) fail validation with this error. */
  failValidation?: { code: string; message?: string; line?: number | null; times?: number };
  /** Batches expire after answering `afterLines` lines (status `expired`, the rest `batch_expired`). */
  expire?: BatchEndEarly;
  /** Batches are cancelled (as from the dashboard) after answering `afterLines` lines; the rest `batch_cancelled`. */
  cancel?: BatchEndEarly;
  /**
   * Output and error files list their lines in a shuffled order, as the API does not promise input order (the
   * shuffled files are held in memory).
   * @default false
   */
  shuffleOutput?: boolean;
}

/** Batch options with defaults applied. */
export type ResolvedBatchOptions = Required<Omit<BatchOptions, 'enqueuedTokenLimit' | 'failValidation' | 'expire' | 'cancel'>> &
  Pick<BatchOptions, 'enqueuedTokenLimit' | 'failValidation' | 'expire' | 'cancel'>;

/** What the server does with one line: its model and key (lenient), its tokens, and its answer. */
export interface LineHandler {
  describe(url: string, body: unknown): { model?: string; key: string };
  tokens(url: string, body: unknown): number;
  answer(url: string, body: unknown, requestId: string): { status: number; body: unknown };
}

type Status = 'validating' | 'failed' | 'in_progress' | 'finalizing' | 'completed' | 'expired' | 'cancelling' | 'cancelled';

interface BatchError {
  code: string;
  message: string;
  param: string | null;
  line: number | null;
}

/** The API's `Batch` object. */
interface BatchObject {
  id: string;
  object: 'batch';
  endpoint: string;
  model: string | null;
  errors: { object: 'list'; data: BatchError[] } | null;
  input_file_id: string;
  completion_window: '24h';
  status: Status;
  output_file_id: string | null;
  error_file_id: string | null;
  created_at: number;
  in_progress_at: number | null;
  expires_at: number;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  expired_at: number | null;
  cancelling_at: number | null;
  cancelled_at: number | null;
  request_counts: { total: number; completed: number; failed: number };
  usage: {
    input_tokens: number;
    input_tokens_details: { cached_tokens: number };
    output_tokens: number;
    output_tokens_details: { reasoning_tokens: number };
    total_tokens: number;
  };
  metadata: Record<string, string> | null;
}

/** A batch and what the server keeps of its run. */
interface BatchRun {
  object: BatchObject;
  /** Times in milliseconds on the server's clock. */
  createdMs: number;
  inProgressAtMs: number;
  cancellingAtMs: number;
  finalizingAtMs: number;
  outputExpiresSeconds: number | null;
  /** The input file, open from creation to the end, so deleting it meanwhile does not break the batch. */
  input: FileHandle | undefined;
  /** The input's lines, read on as the batch answers them. */
  lines: AsyncIterator<string> | undefined;
  lineNumber: number;
  answered: number;
  /** Enqueued tokens, counted at validation. */
  tokens: number;
  /** The injected early end that applies to this batch, decided when it starts. */
  endsEarly: { status: 'expired' | 'cancelled'; afterLines: number } | undefined;
  output: LineSink | undefined;
  errors: LineSink | undefined;
}

const MAX_REPORTED_ERRORS = 1000;
const TERMINAL: ReadonlySet<Status> = new Set(['failed', 'completed', 'expired', 'cancelled']);
/** Statuses whose tokens count as enqueued. */
const ENQUEUED: ReadonlySet<Status> = new Set(['in_progress', 'finalizing', 'cancelling']);

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
        object: {
          id,
          object: 'batch',
          endpoint,
          model: null,
          errors: null,
          input_file_id: inputFileId,
          completion_window: '24h',
          status: 'validating',
          output_file_id: null,
          error_file_id: null,
          created_at: seconds(nowMs),
          in_progress_at: null,
          expires_at: seconds(nowMs + this.#options.expiresAfterMs),
          finalizing_at: null,
          completed_at: null,
          failed_at: null,
          expired_at: null,
          cancelling_at: null,
          cancelled_at: null,
          request_counts: { total: 0, completed: 0, failed: 0 },
          usage: { input_tokens: 0, input_tokens_details: { cached_tokens: 0 }, output_tokens: 0, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 0 },
          metadata,
        },
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
      const line = await this.#nextLine(run);
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

  /** The next request of the input, read on from where the batch left off. */
  async #nextLine(run: BatchRun): Promise<{ customId: string; number: number; body: unknown } | undefined> {
    for (;;) {
      const next = await run.lines?.next();
      if (next === undefined || next.done === true) return undefined;
      run.lineNumber += 1;
      if (next.value.trim() === '') continue;
      // The line passed validation, so it is a JSON object with a string custom_id and an object body.
      const { custom_id: customId, body } = JSON.parse(next.value) as { custom_id: string; body: unknown };
      return { customId, number: run.lineNumber, body };
    }
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
      for (let line = await this.#nextLine(run); line !== undefined; line = await this.#nextLine(run)) {
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

/** Lines of an output or error file: written through a buffer, or held and shuffled when the file is finished. */
class LineSink {
  readonly #file: FileWriter;
  readonly #random: (() => number) | undefined;
  #buffer: string[] = [];
  #buffered = 0;

  constructor(file: FileWriter, random: (() => number) | undefined) {
    this.#file = file;
    this.#random = random;
  }

  async write(entry: unknown): Promise<void> {
    const text = `${JSON.stringify(entry)}\n`;
    this.#buffer.push(text);
    this.#buffered += text.length;
    if (this.#random === undefined && this.#buffered > 1 << 20) await this.#flush();
  }

  async finish(details: Parameters<FileWriter['finish']>[0]) {
    const random = this.#random;
    if (random !== undefined) {
      for (let i = this.#buffer.length - 1; i > 0; i--) {
        const j = random() % (i + 1);
        [this.#buffer[i], this.#buffer[j]] = [this.#buffer[j] as string, this.#buffer[i] as string];
      }
    }
    await this.#flush();
    return this.#file.finish(details);
  }

  async #flush(): Promise<void> {
    if (this.#buffer.length === 0) return;
    const text = this.#buffer.join('');
    this.#buffer = [];
    this.#buffered = 0;
    await this.#file.write(text);
  }
}

const seconds = (ms: number): number => Math.floor(ms / 1000);

function requireInput(run: BatchRun): FileHandle {
  if (run.input === undefined) throw new Error(`batch ${run.object.id} has no open input file`);
  return run.input;
}

async function closeInput(run: BatchRun): Promise<void> {
  await run.lines?.return?.();
  run.lines = undefined;
  const { input } = run;
  run.input = undefined;
  await input?.close();
}

/** The lines of the file from its start; the handle stays open for another pass. */
function readLines(handle: FileHandle): AsyncIterable<string> {
  return createInterface({ input: handle.createReadStream({ start: 0, autoClose: false, encoding: 'utf8' }), crlfDelay: Infinity });
}

/** A hash of the body stands for it, so counting 100,000 lines costs little memory. */
const submissionKey = (customId: string, body: unknown): string =>
  `${customId}\u0000${createHash('sha1').update(JSON.stringify(body)).digest('base64')}`;

/** Checks one input line as the API does; reports its problems and returns it when it can run. */
function checkLine(
  text: string,
  line: number,
  endpoint: string,
  ids: Set<string>,
  report: (error: BatchError) => void,
): { customId: string; body: Record<string, unknown> } | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    report({ code: 'invalid_json_line', line, param: null, message: 'This line is not parseable as valid JSON.' });
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    report({ code: 'invalid_request', line, param: null, message: 'Each line must be a JSON object.' });
    return undefined;
  }
  const fields = value as Record<string, unknown>;
  let valid = true;
  const problem = (code: string, param: string, message: string): void => {
    report({ code, line, param, message });
    valid = false;
  };
  for (const name of ['custom_id', 'method', 'url', 'body']) {
    if (fields[name] === undefined || fields[name] === null) problem('missing_required_parameter', name, `Missing required parameter: '${name}'.`);
  }
  const { custom_id: customId, method, url, body } = fields;
  if (customId !== undefined && customId !== null) {
    if (typeof customId !== 'string' || customId === '') problem('invalid_request', 'custom_id', 'custom_id must be a non-empty string.');
    else if (ids.has(customId)) problem('duplicate_custom_id', 'custom_id', 'The custom_id for this request is a duplicate of another request. The custom_id parameter must be unique for each request in a batch.');
    else ids.add(customId);
  }
  if (method !== undefined && method !== null && method !== 'POST') problem('invalid_request', 'method', `Invalid method '${String(method)}': batch requests use 'POST'.`);
  if (url !== undefined && url !== null && url !== endpoint) problem('invalid_url', 'url', 'The URL provided for this request does not match the batch endpoint.');
  if (body !== undefined && body !== null && (typeof body !== 'object' || Array.isArray(body))) problem('invalid_request', 'body', 'body must be a JSON object.');
  return valid ? { customId: customId as string, body: body as Record<string, unknown> } : undefined;
}

function lineMatches({ match }: BatchLineFault, line: { customId: string; number: number }, key: string): boolean {
  if (match === undefined) return true;
  return (
    (match.customId === undefined || match.customId === line.customId) &&
    (match.line === undefined || match.line === line.number) &&
    (match.promptIncludes === undefined || key.includes(match.promptIncludes))
  );
}

/** Adds a line's `usage` (chat's or images') to the batch's. */
function addUsage(total: BatchObject['usage'], body: unknown): void {
  const usage = asRecord(asRecord(body).usage);
  const number = (value: unknown): number => (typeof value === 'number' ? value : 0);
  const input = number(usage.prompt_tokens) + number(usage.input_tokens);
  const output = number(usage.completion_tokens) + number(usage.output_tokens);
  total.input_tokens += input;
  total.input_tokens_details.cached_tokens += number(asRecord(usage.prompt_tokens_details).cached_tokens);
  total.output_tokens += output;
  total.output_tokens_details.reasoning_tokens += number(asRecord(usage.completion_tokens_details).reasoning_tokens);
  total.total_tokens += input + output;
}

/** `metadata`: at most 16 string values, keys of at most 64 characters, values of at most 512. */
function readMetadata(value: unknown): Record<string, string> | null {
  if (value === undefined || value === null) return null;
  const entries = typeof value === 'object' && !Array.isArray(value) ? Object.entries(value) : undefined;
  const valid =
    entries !== undefined &&
    entries.length <= 16 &&
    entries.every(([key, item]) => key.length <= 64 && typeof item === 'string' && item.length <= 512);
  if (!valid) {
    throw invalidRequest("Invalid 'metadata': expected at most 16 keys of at most 64 characters, with string values of at most 512 characters.", 'metadata', 'invalid_value');
  }
  return Object.fromEntries(entries);
}

/** `output_expires_after`: `{anchor: 'created_at', seconds}` with 1 hour to 30 days; returns the seconds. */
function readOutputExpiry(value: unknown): number | null {
  if (value === undefined || value === null) return null;
  const { anchor, seconds: after } = asRecord(value);
  if (anchor === undefined) throw missing('output_expires_after.anchor');
  if (anchor !== 'created_at') throw invalidRequest(`Invalid value for 'output_expires_after.anchor': '${String(anchor)}'. Supported values are: 'created_at'.`, 'output_expires_after.anchor', 'invalid_value');
  if (typeof after !== 'number' || !Number.isInteger(after) || after < 3600 || after > 2_592_000) {
    throw invalidRequest("Invalid 'output_expires_after.seconds': expected an integer from 3600 to 2592000.", 'output_expires_after.seconds', 'invalid_value');
  }
  return after;
}
