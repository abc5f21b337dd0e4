import { APIConnectionError, APIError, APIUserAbortError } from 'openai';
import { BadAnswerError } from './answer.js';

/** What nightshift does about a failed attempt. */
export type Verdict =
  /** Try again, after `delayMs` when the server said how long to wait. */
  | 'retry'
  /** This job cannot succeed: record the failure and move on. */
  | 'fail'
  /** Nothing can succeed any more (the account is out of credit, or the key is refused): stop the whole run. */
  | 'stop-run';

/** A failed attempt, described by data rather than by message text. */
export interface AttemptError {
  verdict: Verdict;
  /** HTTP status, when the server answered. */
  status?: number;
  /** The error `type` from the response body (`rate_limit_exceeded`, `insufficient_quota`, ...). */
  type?: string;
  /** The error `code` from the response body. */
  code?: string;
  /** The server's request id (`x-request-id`). */
  requestId?: string;
  /** How long the server asked us to wait (`retry-after-ms`, else `retry-after`), in milliseconds. */
  retryAfterMs?: number;
  /** A one-line description for the `error` column. */
  message: string;
}

/** The key itself is refused: every further request would be refused the same way. */
const UNAUTHORIZED = 401;
/** Statuses that can never succeed on a retry, whatever the headers say. */
const NEVER_RETRY = new Set([400, 401, 403, 404, 422]);
/** Statuses worth another try: timeouts, conflicts, rate limits, server errors. */
const RETRY = (status: number): boolean => status === 408 || status === 409 || status === 429 || status >= 500;
/** The account has no credit left: every further request would fail the same way. */
const QUOTA_ERRORS = new Set(['insufficient_quota']);

/** Flex processing is out of capacity: the request was refused (and not billed), and may succeed later. */
const CAPACITY_ERRORS = new Set(['resource_unavailable']);

/**
 * A 429 that says flex processing lacks capacity, not that the account sent too much: it is retried with
 * {@link CAPACITY_BACKOFF}, and other requests (other jobs, other tiers) go on without pausing.
 */
export const isCapacityShortage = (error: Pick<AttemptError, 'status' | 'type' | 'code'>): boolean =>
  error.status === 429 && (CAPACITY_ERRORS.has(error.type ?? '') || CAPACITY_ERRORS.has(error.code ?? ''));

/** Backoff after a capacity shortage: capacity comes back in minutes, not in the half second a blip takes. */
export const CAPACITY_BACKOFF = { initialMs: 10_000, maxMs: 5 * 60_000 } as const satisfies BackoffOptions;

/** The longest server-requested wait we honour; a larger value is treated as absent. */
const MAX_RETRY_AFTER_MS = 10 * 60_000;

/**
 * Reads the wait the server asked for. `retry-after-ms` (OpenAI's, precise) wins over `retry-after`
 * (seconds or an HTTP date). Nonsense or absurd values are ignored so backoff takes over.
 */
export function parseRetryAfter(headers: Headers | undefined, now: number): number | undefined {
  if (!headers) return undefined;
  const ms = headers.get('retry-after-ms');
  if (ms !== null) {
    const value = Number.parseFloat(ms);
    if (Number.isFinite(value) && value >= 0 && value <= MAX_RETRY_AFTER_MS) return value;
  }
  const after = headers.get('retry-after');
  if (after !== null) {
    const seconds = Number(after);
    const value = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(after) - now;
    if (Number.isFinite(value) && value >= 0 && value <= MAX_RETRY_AFTER_MS) return value;
  }
  return undefined;
}

/**
 * Classifies a failed attempt by the SDK's error classes, HTTP status and the error body's `type`/`code`.
 * Message text is never inspected: it is for people, and servers reword it. What the server sent (message,
 * request id) passes through `redact` before anything else, so that no cut can leave part of a secret behind.
 */
export function classifyError(error: unknown, now: number, redact: (text: string) => string = (text) => text, host?: string): AttemptError {
  const oneLine = (text: string): string => shorten(redact(text));
  if (error instanceof APIUserAbortError) {
    return { verdict: 'fail', message: 'aborted' };
  }
  // Connection errors (and their subclass, timeouts) never reached a whole answer: the request may be retried.
  if (error instanceof APIConnectionError) {
    // The SDK's words do not say where it went: the host (never the key, which is in no URL) and the system's code do.
    const code = systemErrorCode(error);
    return { verdict: 'retry', message: oneLine(`${host === undefined ? '' : `${host}: `}${error.message}${code === undefined ? '' : ` (${code})`}`) };
  }
  // A 200 that is not an answer is the server failing, like a 5xx.
  if (error instanceof BadAnswerError) {
    const retryAfterMs = parseRetryAfter(error.headers, now);
    return {
      verdict: 'retry',
      status: error.status,
      ...(error.requestId ? { requestId: redact(error.requestId) } : {}),
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      message: oneLine(error.message),
    };
  }
  if (error instanceof APIError && error.status !== undefined) {
    const status = error.status;
    const base = {
      status,
      ...(error.type ? { type: error.type } : {}),
      ...(error.code ? { code: error.code } : {}),
      ...(error.requestID ? { requestId: redact(error.requestID) } : {}),
      // The type is the server's text too: redacted and cut with the message.
      message: oneLine(`${status}${error.type ? ` ${error.type}` : ''}: ${errorBodyMessage(error)}`),
    };
    if (status === 429 && (QUOTA_ERRORS.has(error.type ?? '') || QUOTA_ERRORS.has(error.code ?? ''))) {
      return { ...base, verdict: 'stop-run' };
    }
    if (status === UNAUTHORIZED) return { ...base, verdict: 'stop-run' };
    if (NEVER_RETRY.has(status)) return { ...base, verdict: 'fail' };
    // The server may tell us explicitly; openai-node obeys the same header.
    const should = error.headers?.get('x-should-retry');
    const retryAfterMs = parseRetryAfter(error.headers, now);
    const withWait = retryAfterMs === undefined ? base : { ...base, retryAfterMs };
    if (should === 'false') return { ...withWait, verdict: 'fail' };
    if (should === 'true' || RETRY(status)) return { ...withWait, verdict: 'retry' };
    return { ...withWait, verdict: 'fail' };
  }
  if (error instanceof Error) return { verdict: 'fail', message: oneLine(error.message) };
  return { verdict: 'fail', message: oneLine(String(error)) };
}

/** Options of the backoff schedule. */
export interface BackoffOptions {
  /** First delay, in milliseconds. @default 500 */
  initialMs?: number;
  /** Longest delay, in milliseconds. @default 60000 */
  maxMs?: number;
  /** Source of randomness in [0, 1), injectable for tests. @default Math.random */
  random?: () => number;
}

/**
 * Capped exponential backoff with full jitter over the upper half, so simultaneous failures spread out
 * but no wait is shorter than half the nominal delay. `attempt` is the 1-based number of the failed attempt.
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}): number {
  const { initialMs = 500, maxMs = 60_000, random = Math.random } = options;
  const nominal = Math.min(maxMs, initialMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(nominal / 2 + (random() * nominal) / 2);
}

function errorBodyMessage(error: APIError): string {
  const body = error.error as { message?: unknown } | undefined;
  if (body && typeof body.message === 'string' && body.message) return body.message;
  return error.message;
}

/** One line of at most 500 characters. Only for text already redacted: a cut secret no longer matches. */
/** The system error code (`ECONNREFUSED`, `ENOTFOUND`, ...) somewhere along an error's causes, if any. */
function systemErrorCode(error: Error): string | undefined {
  const seen = new Set<unknown>();
  for (let cause: unknown = error.cause; cause instanceof Error && !seen.has(cause); cause = cause.cause) {
    seen.add(cause);
    const code = (cause as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z_]+$/.test(code)) return code;
  }
  return undefined;
}

function shorten(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 500 ? `${flat.slice(0, 497)}...` : flat;
}
