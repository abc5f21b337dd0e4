import { tmpdir } from 'node:os';
import { checkArray, checkBoolean, checkCount, checkFunction, checkInteger, checkNumber, checkObject, checkOneOf, checkString } from './checks.js';
import type { BatchLineFault, BatchOptions, ResolvedBatchOptions } from './batch-options.js';
import { validateFaultRules, type FaultRule } from './faults.js';
import type { RateLimits } from './rate-limit.js';

/**
 * How `startOfflineServer` behaves. Every option is checked when the server starts; a bad value throws a
 * `NightshiftError` with code `E_USAGE` that names it.
 *
 * What the server answers, for any model name (or, with `models`, for those models only):
 * - `POST /v1/chat/completions`: a reply derived from a hash of the prompt (same input, same reply) quoting the
 *   last user message; a JSON object for `response_format` JSON modes; `n` choices. `usage` counts the prompt as
 *   `nightshift estimate` does (the model's tokenizer, OpenAI's per-message overhead, `image_url` parts by the
 *   model's vision rule with sizes read from `data:` URLs), reasoning tokens for o-series and gpt-5 models, and
 *   cached tokens for repeated prompts of 1,024+ tokens. `max_completion_tokens` (or
 *   `max_tokens`) truncates with `finish_reason: 'length'`. Common mistakes get the real API's 400s.
 * - `POST /v1/images/generations`: real PNGs of the requested size drawn from the prompt. GPT image models
 *   answer `b64_json` with token `usage`; `dall-e-*` answer a `url` served at `GET /files/<id>.png` (the newest
 *   1,000 are kept) or `b64_json`. Bytes are PNG even for `output_format: 'jpeg'` or `'webp'` (the response
 *   still echoes the requested format), so detect the format from the bytes.
 * - `/v1/files` (multipart upload, retrieve, content, list, delete; kept on disk in a folder the server removes on
 *   close) and `/v1/batches` (create, retrieve, list, cancel) for chat, vision and image lines, answered as the live
 *   endpoints answer them; see {@link BatchOptions}.
 * - `GET /v1/models`, and `GET /health` (`ok`).
 * Every API answer carries `x-request-id` and `openai-processing-ms`; errors use OpenAI's
 * `{"error": {"message", "type", "param", "code"}}` shape.
 */
export interface OfflineServerOptions {
  /**
   * Interface to listen on.
   * @default '127.0.0.1'
   */
  host?: string;
  /**
   * Port to listen on; 0 picks a free one (read it back from `server.port`).
   * @default 0
   */
  port?: number;
  /**
   * Milliseconds added before every API answer, to make concurrency observable.
   * @default 0
   */
  latencyMs?: number;
  /**
   * Failures to inject, checked in order for each API request (see {@link FaultRule}). Replace them later with
   * `server.setFaults`.
   * @default []
   */
  faults?: FaultRule[];
  /**
   * Once `afterRequests` API requests were answered successfully, every API request gets
   * 429 `insufficient_quota`, as when an account runs out of credit. Unset: no quota.
   */
  quota?: { afterRequests: number };
  /**
   * Per-minute limits enforced with token buckets that start full and refill continuously. A request over a
   * limit gets 429 `rate_limit_exceeded` with `retry-after-ms` and `retry-after`; every API answer carries
   * `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` for the limits that are set. A request counts as its
   * prompt tokens plus `n` times `max_completion_tokens` (256 when absent); an image request as its prompt tokens
   * plus its output image tokens. With `charge: 'estimate'`, a chat request counts as OpenAI counts it (see
   * {@link RateLimits.charge}): an estimate on arrival, raised to what the answer used. Unset: no limits and no `x-ratelimit-*` headers.
   */
  rateLimit?: RateLimits;
  /**
   * Keep a log of requests in `server.requests` (and `countByKey`). Turn it off for long benchmarks so memory
   * stays flat.
   * @default true
   */
  recordRequests?: boolean;
  /**
   * Compress the answers of the chat and image endpoints with gzip (`content-encoding: gzip`) for requests that
   * accept it (`accept-encoding`), as the real API does.
   * @default false
   */
  gzip?: boolean;
  /**
   * Answer chat completions without `usage`, as some OpenAI-compatible servers do, to see how a client copes
   * with a cost it cannot know.
   * @default false
   */
  omitUsage?: boolean;
  /**
   * The models the account can use: `GET /v1/models` lists them, and a request for any other model gets the real
   * API's 404 `model_not_found` (type `invalid_request_error`). Unset: any model name is answered.
   */
  models?: readonly string[];
  /**
   * Mark every answer with the `x-nightshift-offline` header, so that nightshift journals it as an offline answer
   * (never taken for a real one by a run against the API) whatever the address the server was reached by. Tests that
   * stand the server in for the real API turn it off.
   * @default true
   */
  markAnswers?: boolean;
  /**
   * The folder in which the server makes a folder of its own for the files of `/v1/files` (removed on close).
   * @default os.tmpdir()
   */
  filesDir?: string;
  /** How batches run and fail; see {@link BatchOptions}. */
  batch?: BatchOptions;
  /**
   * The clock batches run on, in milliseconds since the epoch: tests move it forward to watch a batch progress.
   * @default Date.now
   */
  now?: () => number;
}

/** Options with defaults applied, checked. */
export interface ResolvedOptions {
  host: string;
  port: number;
  latencyMs: number;
  faults: FaultRule[];
  quota: { afterRequests: number } | undefined;
  rateLimit: RateLimits | undefined;
  recordRequests: boolean;
  omitUsage: boolean;
  gzip: boolean;
  models: ReadonlySet<string> | undefined;
  markAnswers: boolean;
  filesDir: string;
  batch: ResolvedBatchOptions;
  now: () => number;
}

export function resolveOptions(options: OfflineServerOptions = {}): ResolvedOptions {
  const { host = '127.0.0.1', port = 0, latencyMs = 0, faults = [], quota, rateLimit, recordRequests = true, omitUsage = false, gzip = false, models, markAnswers = true, filesDir = tmpdir(), batch = {}, now = Date.now } =
    checkObject('options', options) as OfflineServerOptions;
  if (quota !== undefined) checkInteger('quota.afterRequests', checkObject('quota', quota).afterRequests, 0);
  if (rateLimit !== undefined) {
    checkObject('rateLimit', rateLimit);
    if (rateLimit.rpm !== undefined) checkInteger('rateLimit.rpm', rateLimit.rpm, 1);
    if (rateLimit.tpm !== undefined) checkInteger('rateLimit.tpm', rateLimit.tpm, 1);
    if (rateLimit.charge !== undefined) checkOneOf('rateLimit.charge', rateLimit.charge, ['bound', 'estimate']);
  }
  return {
    host: checkString('host', host),
    port: checkInteger('port', port, 0, 65_535),
    latencyMs: checkNumber('latencyMs', latencyMs),
    faults: validateFaultRules(faults),
    quota,
    rateLimit,
    recordRequests: checkBoolean('recordRequests', recordRequests),
    omitUsage: checkBoolean('omitUsage', omitUsage),
    gzip: checkBoolean('gzip', gzip),
    markAnswers: checkBoolean('markAnswers', markAnswers),
    models: models === undefined ? undefined : new Set(checkArray('models', models).map((model, index) => checkString(`models[${index}]`, model))),
    filesDir: checkString('filesDir', filesDir),
    batch: resolveBatchOptions(batch),
    now: checkFunction('now', now),
  };
}

function resolveBatchOptions(options: BatchOptions): ResolvedBatchOptions {
  const {
    validatingMs = 0,
    processingMs = 0,
    finalizingMs = 0,
    cancellingMs = 0,
    expiresAfterMs = 86_400_000,
    maxRequests = 50_000,
    maxBytes = 209_715_200,
    enqueuedTokenLimit,
    failLines = [],
    failValidation,
    expire,
    cancel,
    shuffleOutput = false,
  } = checkObject('batch', options) as BatchOptions;
  if (enqueuedTokenLimit !== undefined) checkInteger('batch.enqueuedTokenLimit', enqueuedTokenLimit, 0);
  checkArray('batch.failLines', failLines).forEach((value, index) => {
    const at = `batch.failLines[${index}]`;
    const rule = checkObject(at, value) as Partial<Record<keyof BatchLineFault, unknown>>;
    checkInteger(`${at}.status`, rule.status, 400, 599);
    for (const field of ['type', 'code', 'message'] as const) if (rule[field] !== undefined) checkString(`${at}.${field}`, rule[field]);
    if (rule.times !== undefined) checkCount(`${at}.times`, rule.times);
    if (rule.match !== undefined) {
      const match = checkObject(`${at}.match`, rule.match);
      if (match.customId !== undefined) checkString(`${at}.match.customId`, match.customId);
      if (match.line !== undefined) checkInteger(`${at}.match.line`, match.line, 1);
      if (match.promptIncludes !== undefined) checkString(`${at}.match.promptIncludes`, match.promptIncludes);
    }
  });
  if (failValidation !== undefined) {
    checkString('batch.failValidation.code', checkObject('batch.failValidation', failValidation).code);
    if (failValidation.message !== undefined) checkString('batch.failValidation.message', failValidation.message);
    if (failValidation.line !== undefined && failValidation.line !== null) checkInteger('batch.failValidation.line', failValidation.line, 1);
    if (failValidation.times !== undefined) checkCount('batch.failValidation.times', failValidation.times);
  }
  for (const [name, end] of [['expire', expire], ['cancel', cancel]] as const) {
    if (end === undefined) continue;
    checkInteger(`batch.${name}.afterLines`, checkObject(`batch.${name}`, end).afterLines, 0);
    if (end.times !== undefined) checkCount(`batch.${name}.times`, end.times);
  }
  return {
    validatingMs: checkNumber('batch.validatingMs', validatingMs),
    processingMs: checkNumber('batch.processingMs', processingMs),
    finalizingMs: checkNumber('batch.finalizingMs', finalizingMs),
    cancellingMs: checkNumber('batch.cancellingMs', cancellingMs),
    expiresAfterMs: checkNumber('batch.expiresAfterMs', expiresAfterMs),
    maxRequests: checkInteger('batch.maxRequests', maxRequests, 1),
    maxBytes: checkInteger('batch.maxBytes', maxBytes, 1),
    enqueuedTokenLimit,
    failLines,
    failValidation,
    expire,
    cancel,
    shuffleOutput: checkBoolean('batch.shuffleOutput', shuffleOutput),
  };
}
