import { OFFLINE_ANSWER_HEADER } from '../common/offline-answer.js';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { ApiError, insufficientQuota, modelNotFound, notFound } from './api-error.js';
import { Batches } from './batches.js';
import { FaultInjector, faultAnswer, faultError, json, validateFaultRules, type AnswerText, type FaultRule } from './faults.js';
import { FileStore } from './file-store.js';
import { ApiFiles } from './files.js';
import { isClientGone, parseJson, readBody } from './http-request.js';
import { resolveOptions, type OfflineServerOptions, type ResolvedOptions } from './options.js';
import { PromptCache } from './prompt-cache.js';
import { RateLimiter, rateLimitError } from './rate-limit.js';
import { batchLineHandler, endpointRoutes, type AnswerContext, type Route } from './routes.js';
import { sendAnswer, sendError, sendJson } from './send.js';
import { STORE_PATH, storeAnswer, type StoreAnswer } from './store-routes.js';

export type { BatchLineFault, BatchOptions } from './batch-options.js';
export type { FaultRule } from './faults.js';
export type { OfflineServerOptions } from './options.js';

/** One API request the server received, in arrival order. */
export interface RequestRecord {
  /** Arrival time, in milliseconds since the epoch. */
  time: number;
  path: string;
  model?: string;
  /** The last user message's text (chat and vision) or the prompt (images); `''` for other requests. */
  key: string;
  /** The `service_tier` a chat request asked for, when it asked for one. */
  serviceTier?: string;
  /** The status answered; 0 while the request is pending and when no answer was sent (dropped, or the client left). */
  status: number;
}

/** Counters over API requests (paths under `/v1/`) since the start or the last `reset()`. */
export interface OfflineServerStats {
  requests: number;
  /** Requests received and not yet answered (or dropped). */
  inFlight: number;
  /** The most requests that were in flight at once. */
  maxInFlight: number;
  /** Answers by HTTP status; 0 counts requests that got no answer. */
  byStatus: Record<number, number>;
}

/** A running offline server. Point the OpenAI SDK at it with `baseURL: server.url`. */
export interface OfflineServer {
  /** Base URL of the API, ending in `/v1`, e.g. `http://127.0.0.1:34567/v1`. */
  readonly url: string;
  readonly port: number;
  /** Live counters: read them at any time, they are updated in place. */
  readonly stats: OfflineServerStats;
  /** The request log; stays empty when `recordRequests` is false. */
  readonly requests: readonly RequestRecord[];
  /** How many logged requests had this key (see {@link RequestRecord.key}); 0 when `recordRequests` is false. */
  countByKey(key: string): number;
  /**
   * How many times batches that started running their lines carried a line with this `custom_id` (and this
   * `body`, if given). A batch that failed validation carried none.
   */
  batchLinesSubmitted(customId: string, body?: unknown): number;
  /** The `custom_id` of every line body that batches carried more than once. */
  batchLinesSubmittedTwice(): string[];
  /** Replaces the fault rules; each starts with its full `times`. */
  setFaults(rules: FaultRule[]): void;
  /**
   * Forgets past traffic: stats, the log, the quota count, rate-limit buckets and the prompt cache.
   * Fault rules and their remaining `times` stay, and so do files, batches and their line counts.
   */
  reset(): void;
  /** Stops listening, drops open connections and pending answers; the process can then exit. */
  close(): Promise<void>;
}

/** Starts an OpenAI-compatible server for offline runs, tests and benchmarks; see {@link OfflineServerOptions}. */
export async function startOfflineServer(options: OfflineServerOptions = {}): Promise<OfflineServer> {
  const server = new OfflineHttpServer(resolveOptions(options));
  await server.listen();
  return server;
}

/**
 * What to do with a request once decided; it is done after the latency (plus a fault's delay). `fault` is the rule
 * that fired, for its headers and the way it sends the answer.
 */
type Outcome =
  | { drop: true; delayMs: number }
  | { drop: false; delayMs: number; status: number; answer: AnswerText; headers: Record<string, string>; fault?: FaultRule };

class OfflineHttpServer implements OfflineServer {
  url = '';
  port = 0;
  readonly stats: OfflineServerStats = { requests: 0, inFlight: 0, maxInFlight: 0, byStatus: {} };
  requests: RequestRecord[] = [];

  readonly #options: ResolvedOptions;
  readonly #http: Server;
  readonly #faults: FaultInjector;
  readonly #limiter: RateLimiter | undefined;
  readonly #promptCache = new PromptCache();
  readonly #files = new FileStore();
  /** `/v1/files` and `/v1/batches`, set up by `listen()` (their files live in a folder of their own). */
  #apiFiles: ApiFiles | undefined;
  #batches: Batches | undefined;
  /** Latency and fault-delay timers, cleared on close so pending answers cannot hold the process open. */
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #routes: Record<string, Route>;
  #keyCounts = new Map<string, number>();
  /** Successful answers promised so far; counted when decided, so concurrent requests cannot overshoot the quota. */
  #granted = 0;
  #sequence = 0;
  /** Set while `close()` waits for the last dropped request to be counted out. */
  #drained: (() => void) | undefined;

  constructor(options: ResolvedOptions) {
    this.#options = options;
    this.#faults = new FaultInjector(options.faults);
    this.#limiter = options.rateLimit && new RateLimiter(options.rateLimit, options.now);
    this.#http = createServer((request, response) => this.#handle(request, response));
    this.#routes = endpointRoutes(options, this.#promptCache, this.#files);
  }

  async listen(): Promise<void> {
    const { host, port } = this.#options;
    this.#apiFiles = await ApiFiles.open(this.#options.filesDir);
    const lines = batchLineHandler(this.#routes, this.#options, () => this.url.slice(0, -'/v1'.length));
    this.#batches = new Batches(this.#options.batch, this.#apiFiles, lines, this.#options.now);
    try {
      await new Promise<void>((resolve, reject) => {
        this.#http.once('error', reject);
        this.#http.listen(port, host, () => {
          this.#http.off('error', reject);
          resolve();
        });
      });
    } catch (error) {
      // A server that cannot listen (port taken) leaves no folder behind.
      await this.#apiFiles.close();
      throw error;
    }
    this.port = (this.#http.address() as AddressInfo).port;
    this.url = `http://${urlHost(host)}:${this.port}/v1`;
  }

  countByKey(key: string): number {
    return this.#keyCounts.get(key) ?? 0;
  }

  batchLinesSubmitted(customId: string, body?: unknown): number {
    return this.#batches?.linesSubmitted(customId, body) ?? 0;
  }

  batchLinesSubmittedTwice(): string[] {
    return this.#batches?.linesSubmittedTwice() ?? [];
  }

  setFaults(rules: FaultRule[]): void {
    this.#faults.set(validateFaultRules(rules, 'rules'));
  }

  reset(): void {
    this.stats.requests = 0;
    // Requests still in flight will finish and decrement, so the current count stays.
    this.stats.maxInFlight = this.stats.inFlight;
    this.stats.byStatus = {};
    this.requests = [];
    this.#keyCounts = new Map();
    this.#granted = 0;
    this.#limiter?.reset();
    this.#promptCache.clear();
  }

  async close(): Promise<void> {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    const closed = new Promise<void>((resolve) => this.#http.close(() => resolve()));
    this.#http.closeAllConnections();
    await closed;
    // Dropped responses report 'close' a tick later; wait so the stats are final once close() resolves.
    if (this.stats.inFlight > 0) await new Promise<void>((resolve) => (this.#drained = resolve));
    await this.#batches?.close();
    await this.#apiFiles?.close();
  }

  #handle(request: IncomingMessage, response: ServerResponse): void {
    const path = (request.url ?? '/').split('?', 1)[0] ?? '/';
    if (request.method === 'GET' && path === '/health') {
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    } else if (request.method === 'GET' && path.startsWith('/files/')) {
      this.#serveFile(path, response);
    } else if (path.startsWith('/v1/')) {
      this.#handleApi(request, response, path).catch((error: unknown) => {
        // Only a bug gets here: say so loudly, and answer the way the API reports its own failures.
        console.error('offline server: unexpected error', error);
        if (!response.headersSent) sendError(response, new ApiError(500, `Offline server bug: ${String(error)}`));
      });
    } else {
      sendError(response, notFound(request.method, path));
    }
  }

  #serveFile(path: string, response: ServerResponse): void {
    const match = /^\/files\/([\w-]+)\.png$/.exec(path);
    const bytes = match?.[1] === undefined ? undefined : this.#files.get(match[1]);
    if (bytes === undefined) {
      sendError(response, new ApiError(404, 'File not found or expired.'));
      return;
    }
    response.writeHead(200, { 'content-type': 'image/png', 'content-length': bytes.length }).end(bytes);
  }

  async #handleApi(request: IncomingMessage, response: ServerResponse, path: string): Promise<void> {
    const started = Date.now();
    const requestId = `req_${(++this.#sequence).toString(16).padStart(12, '0')}`;
    const { stats } = this;
    stats.requests += 1;
    stats.inFlight += 1;
    stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
    const record: RequestRecord = { time: started, path, key: '', status: 0 };
    // 'close' fires once the answer is flushed or the connection dies, whichever comes first.
    response.once('close', () => {
      stats.inFlight -= 1;
      record.status = response.writableFinished ? response.statusCode : 0;
      stats.byStatus[record.status] = (stats.byStatus[record.status] ?? 0) + 1;
      if (stats.inFlight === 0) this.#drained?.();
    });

    if (STORE_PATH.test(path)) {
      this.#log(record);
      await this.#handleStore(request, response, path, requestId, started);
      return;
    }
    let body: Buffer | undefined;
    if (request.method === 'POST') {
      try {
        body = await readBody(request);
      } catch (error) {
        // The client went away mid-upload; 'close' has counted it.
        if (isClientGone(error)) return;
        throw error;
      }
    }
    const { host } = request.headers;
    const origin = host === undefined ? this.url.slice(0, -'/v1'.length) : `http://${host}`;
    const outcome = this.#decide(request.method ?? 'GET', path, body, record, { requestId, origin });
    this.#log(record);

    const delayMs = this.#options.latencyMs + outcome.delayMs;
    if (delayMs > 0) await this.#sleep(delayMs);
    if (response.destroyed) return;
    if (outcome.drop) {
      response.socket?.destroy();
      return;
    }
    const headers = {
      ...this.#limiter?.headers(),
      ...outcome.headers,
      'x-request-id': requestId,
      'openai-processing-ms': String(Date.now() - started),
      ...(this.#options.markAnswers ? { [OFFLINE_ANSWER_HEADER]: '1' } : {}),
      ...outcome.fault?.headers,
    };
    const gzip = this.#options.gzip && /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''));
    await sendAnswer(response, outcome.status, outcome.answer, headers, outcome.fault, (ms) => this.#sleep(ms), { gzip });
  }

  #log(record: RequestRecord): void {
    if (!this.#options.recordRequests) return;
    this.requests.push(record);
    this.#keyCounts.set(record.key, (this.#keyCounts.get(record.key) ?? 0) + 1);
  }

  /**
   * `/v1/files` and `/v1/batches`: fault rules and latency apply as to any API request; the answer may be a file
   * streamed from disk, and an upload is streamed to disk as it arrives.
   */
  async #handleStore(request: IncomingMessage, response: ServerResponse, path: string, requestId: string, started: number): Promise<void> {
    const fault = this.#faults.take({ path, key: '' });
    const delayMs = this.#options.latencyMs + (fault?.delayMs ?? 0);
    if (fault?.drop === true || fault?.status !== undefined) {
      // The request's body is not wanted: let it flow away rather than stall the connection.
      request.resume();
      if (delayMs > 0) await this.#sleep(delayMs);
      if (response.destroyed) return;
      if (fault.drop === true) {
        response.socket?.destroy();
        return;
      }
      const error = faultError({ ...fault, status: fault.status ?? 500 });
      sendJson(response, error.status, error.body(), { ...error.headers, 'x-request-id': requestId, ...fault.headers });
      return;
    }
    if (delayMs > 0) await this.#sleep(delayMs);
    let answer: StoreAnswer;
    try {
      const files = this.#apiFiles;
      const batches = this.#batches;
      if (files === undefined || batches === undefined) throw new Error('the server is not listening');
      answer = await storeAnswer(request, path, files, batches, () => this.#options.now());
    } catch (error) {
      if (isClientGone(error)) return;
      if (!(error instanceof ApiError)) throw error;
      answer = { status: error.status, json: error.body(), headers: error.headers };
    }
    if (response.destroyed) {
      answer.stream?.destroy();
      return;
    }
    const headers = { ...answer.headers, 'x-request-id': requestId, 'openai-processing-ms': String(Date.now() - started), ...fault?.headers };
    if (answer.stream === undefined) {
      sendJson(response, answer.status, answer.json, headers);
      return;
    }
    response.writeHead(200, { ...headers, 'content-type': 'application/octet-stream', 'content-length': answer.bytes ?? 0 });
    try {
      await pipeline(answer.stream, response);
    } catch (error) {
      // The client left mid-download; 'close' has counted the request.
      if (!isClientGone(error)) throw error;
    }
  }

  /** Decides the answer. Order: route, JSON body, injected faults, model, quota, validation, rate limit. */
  #decide(
    method: string,
    path: string,
    body: Buffer | undefined,
    record: RequestRecord,
    context: AnswerContext,
  ): Outcome {
    try {
      const route = this.#routes[`${method} ${path}`];
      if (route === undefined) throw notFound(method, path);
      const parsed = body === undefined ? undefined : parseJson(body);
      Object.assign(record, route.describe(parsed));

      const fault = this.#faults.take({ path, model: record.model, key: record.key, ...(record.serviceTier === undefined ? {} : { serviceTier: record.serviceTier }) });
      if (fault?.drop === true) return { drop: true, delayMs: fault.delayMs ?? 0 };
      if (fault?.status !== undefined) return errorOutcome(faultError({ ...fault, status: fault.status }), fault.delayMs ?? 0, fault);
      const { models } = this.#options;
      if (models !== undefined && record.model !== undefined && !models.has(record.model)) throw modelNotFound(record.model);
      const { quota } = this.#options;
      if (quota !== undefined && this.#granted >= quota.afterRequests) throw insufficientQuota();

      const prepared = route.prepare(parsed);
      const decision = this.#limiter?.take(prepared.tokens, prepared.estimate);
      if (decision?.allowed === false) throw rateLimitError(decision, record.model ?? 'this model');
      this.#granted += 1;
      const answer = prepared.respond(context);
      const headers = decision === undefined ? {} : this.#limiter!.reconcile(decision.charged, usedTokens(answer));
      if (fault === undefined) return { drop: false, delayMs: 0, status: 200, answer: json(answer), headers };
      return { drop: false, delayMs: fault.delayMs ?? 0, status: 200, answer: faultAnswer(fault, answer), headers, fault };
    } catch (error) {
      if (error instanceof ApiError) return errorOutcome(error, 0);
      throw error;
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        resolve();
      }, ms);
      this.#timers.add(timer);
    });
  }
}

/** The tokens an answer reports it used, prompt and output; `undefined` when it reports none. */
function usedTokens(answer: unknown): number | undefined {
  const usage = (answer as { usage?: { total_tokens?: unknown } } | undefined)?.usage;
  return typeof usage?.total_tokens === 'number' ? usage.total_tokens : undefined;
}

/** Host part of the URL clients should use: wildcard addresses are reached through loopback. */
function urlHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

const errorOutcome = (error: ApiError, delayMs: number, fault?: FaultRule): Outcome => ({
  drop: false,
  ...(fault === undefined ? {} : { fault }),
  delayMs,
  status: error.status,
  answer: json(error.body()),
  headers: { ...error.headers },
});
