import { openAsBlob } from 'node:fs';
import { Readable } from 'node:stream';
import { createInterface } from 'node:readline';
import type { OpenAI } from 'openai';
import type { Batch } from 'openai/resources/batches';
import type { Clock } from '../common/clock.js';
import type { Endpoint } from '../common/types.js';
import { backoffDelay, classifyError, type AttemptError } from '../run/retry.js';

/** The Batch API calls the engine makes, each retried by the one retry policy (`run/retry.ts`). */
export interface BatchApiContext {
  client: OpenAI;
  clock: Clock;
  /** Attempts per call, the first included. */
  maxAttempts: number;
  /** Per-call timeout, in milliseconds (an upload or a download of a large file included). */
  timeoutMs: number;
  redact: (text: string) => string;
  /** Aborted when the command is interrupted: a call waiting to be retried gives up. */
  signal?: AbortSignal;
  random?: () => number;
  onRetry?: (what: string, attempt: number, delayMs: number, error: AttemptError) => void;
}

/** A Batch API call that failed for good: what it was, and the error as the retry policy classified it. */
export class BatchApiError extends Error {
  override name = 'BatchApiError';

  constructor(
    readonly what: string,
    readonly error: AttemptError,
  ) {
    super(`${what}: ${error.message}`);
  }
}

/** The metadata nightshift puts on a batch: the part it runs, which the batch list finds it by after a kill. */
export const PART_METADATA = 'nightshift_part';
const FOLDER_METADATA = 'nightshift_folder';

export type { Batch };

/** The Batch API, as the engine uses it. */
export class BatchApi {
  constructor(private readonly context: BatchApiContext) {}

  /**
   * Uploads a part's input file (purpose `batch`) under `name`; returns its file id. The file goes as a Blob backed
   * by the file on disk, read as the request body is sent: a part of 200 MB is never held in memory.
   */
  async upload(path: string, name: string): Promise<string> {
    const file = await this.call(`uploading ${name}`, async (options) => {
      const blob = await openAsBlob(path, { type: 'application/jsonl' });
      return this.context.client.files.create({ file: new File([blob], name, { type: 'application/jsonl' }), purpose: 'batch' }, options);
    });
    return file.id;
  }

  /** Creates the batch of part `part` of the output folder `folder` (its name, shown on the dashboard). */
  create(fileId: string, endpoint: Endpoint, part: string, folder: string): Promise<Batch> {
    const metadata = { [PART_METADATA]: part, [FOLDER_METADATA]: folder.slice(-512) };
    return this.call(`creating the batch of part ${part}`, (options) =>
      this.context.client.batches.create({ input_file_id: fileId, endpoint, completion_window: '24h', metadata }, options),
    );
  }

  retrieve(batchId: string): Promise<Batch> {
    return this.call(`reading batch ${batchId}`, (options) => this.context.client.batches.retrieve(batchId, options));
  }

  cancel(batchId: string): Promise<Batch> {
    return this.call(`cancelling batch ${batchId}`, (options) => this.context.client.batches.cancel(batchId, options));
  }

  /**
   * The account's batches created at or after `since` (seconds since the epoch), newest first, a page at a time:
   * the list is read only as far back as needed.
   */
  async *listSince(since: number): AsyncGenerator<Batch> {
    let after: string | undefined;
    for (;;) {
      const page = await this.call('listing batches', (options) =>
        this.context.client.batches.list({ limit: 100, ...(after ? { after } : {}) }, options),
      );
      const batches = page.data;
      for (const batch of batches) {
        if (batch.created_at < since) return;
        yield batch;
      }
      const last = batches.at(-1);
      if (!page.has_more || last === undefined) return;
      after = last.id;
    }
  }

  /** The ids of the account's batch input files named `name` (an upload whose id a killed process never recorded). */
  async filesNamed(name: string): Promise<string[]> {
    const ids: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.call('listing files', (options) =>
        this.context.client.files.list({ purpose: 'batch', limit: 1000, ...(after ? { after } : {}) }, options),
      );
      for (const file of page.data) if (file.filename === name) ids.push(file.id);
      const last = page.data.at(-1);
      if (!page.has_more || last === undefined) return ids;
      after = last.id;
    }
  }

  /** The lines of a file (an output or error file), read as a stream. */
  async *lines(fileId: string): AsyncGenerator<string> {
    const response = await this.call(`downloading file ${fileId}`, (options) => this.context.client.files.content(fileId, options));
    if (response.body === null) return;
    const input = Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>);
    for await (const line of createInterface({ input, crlfDelay: Infinity })) {
      if (line.trim() !== '') yield line;
    }
  }

  /** Deletes a file from the account; one already gone is no error. */
  async deleteFile(fileId: string): Promise<void> {
    await this.call(`deleting file ${fileId}`, (options) => this.context.client.files.delete(fileId, options)).catch((error: unknown) => {
      if (error instanceof BatchApiError && error.error.status === 404) return;
      throw error;
    });
  }

  /** Runs `work` until it succeeds, fails for good, or its attempts run out, waiting between as the policy says. */
  private async call<T>(what: string, work: (options: { timeout: number; signal: AbortSignal }) => Promise<T>): Promise<T> {
    const { clock, maxAttempts, timeoutMs, redact, signal } = this.context;
    for (let attempt = 1; ; attempt++) {
      // A signal of its own for each call, dropped with it: the command's signal would gather a listener per call.
      const controller = new AbortController();
      const abort = (): void => controller.abort();
      signal?.addEventListener('abort', abort, { once: true });
      if (signal?.aborted) controller.abort();
      try {
        return await work({ timeout: timeoutMs, signal: controller.signal });
      } catch (error) {
        const classified = classifyError(error, clock.now(), redact);
        if (classified.verdict !== 'retry' || attempt >= maxAttempts || signal?.aborted) throw new BatchApiError(what, classified);
        const delayMs = classified.retryAfterMs ?? backoffDelay(attempt, this.context.random ? { random: this.context.random } : {});
        this.context.onRetry?.(what, attempt, delayMs, classified);
        await clock.sleep(delayMs, signal);
      } finally {
        signal?.removeEventListener('abort', abort);
      }
    }
  }
}
