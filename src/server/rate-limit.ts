import { ApiError } from './api-error.js';

/** Per-minute limits, as OpenAI states them for an organization. */
export interface RateLimits {
  /** Requests per minute. */
  rpm?: number;
  /** Tokens per minute (prompt tokens plus the most the request may generate). */
  tpm?: number;
  /**
   * What a request is charged against `tpm`:
   * - `'bound'`: on arrival, its prompt tokens plus `n` times its `max_completion_tokens` (256 when absent), never
   *   reconciled;
   * - `'estimate'`: as OpenAI describes its limiter, on arrival the larger of `n` times `max_completion_tokens` and
   *   an estimate from the request's characters (about four a token), then, once answered, raised to the tokens the
   *   answer used (prompt and completion) when they were more. Unused output is not given back. A request without
   *   `max_completion_tokens` is charged about what it used, far less than the prompt plus 256.
   * Image requests are charged their prompt and output image tokens either way.
   * @default 'bound'
   */
  charge?: 'bound' | 'estimate';
}


/** What the limiter decided about one request. */
export type RateLimitDecision =
  | { allowed: true; headers: Record<string, string> }
  | {
      allowed: false;
      headers: Record<string, string>;
      /** Which limit was hit, as OpenAI's `error.type` names it. */
      limit: 'requests' | 'tokens';
      /** The limit and what the request asked for, for the error message. */
      capacity: number;
      requested: number;
      /** How long until the request would fit; undefined when it never will (asks for more than a minute's worth). */
      retryAfterMs: number | undefined;
    };

const MINUTE_MS = 60_000;

/**
 * Token buckets that refill continuously at `limit / minute`, starting full, which is how OpenAI describes
 * its limiter: a burst of `limit` is fine, then requests are let through at the refill rate.
 * `now` is injected so tests can move time.
 */
export class RateLimiter {
  readonly #requests: Bucket | undefined;
  readonly #tokens: Bucket | undefined;
  readonly #charge: 'bound' | 'estimate';

  constructor(limits: RateLimits, now: () => number = Date.now) {
    this.#requests = limits.rpm === undefined ? undefined : new Bucket(limits.rpm, now);
    this.#tokens = limits.tpm === undefined ? undefined : new Bucket(limits.tpm, now);
    this.#charge = limits.charge ?? 'bound';
  }

  /**
   * Lets the request through and charges it, or says how long to wait; the headers describe the state after.
   * `tokens` is the prompt plus the most the request may generate, `estimate` OpenAI's estimate on arrival (see
   * {@link RateLimits.charge}); `charged` is what it was charged, for {@link RateLimiter.reconcile}.
   */
  take(tokens: number, estimate = tokens): RateLimitDecision & { charged: number } {
    if (this.#charge === 'estimate') tokens = estimate;
    for (const [limit, bucket, cost] of [
      ['requests', this.#requests, 1],
      ['tokens', this.#tokens, tokens],
    ] as const) {
      if (bucket !== undefined && !bucket.has(cost)) {
        return {
          allowed: false,
          headers: this.headers(),
          limit,
          capacity: bucket.capacity,
          requested: cost,
          retryAfterMs: cost > bucket.capacity ? undefined : bucket.waitFor(cost),
          charged: 0,
        };
      }
    }
    this.#requests?.spend(1);
    this.#tokens?.spend(tokens);
    return { allowed: true, headers: this.headers(), charged: tokens };
  }

  /**
   * Once a request charged `charged` is answered having used `usedTokens`, charges the difference when it used more
   * (`'estimate'` only); gives nothing back. Returns the headers of the state after.
   */
  reconcile(charged: number, usedTokens: number | undefined): Record<string, string> {
    if (this.#charge === 'estimate' && usedTokens !== undefined && usedTokens > charged) this.#tokens?.spend(usedTokens - charged);
    return this.headers();
  }

  /** `x-ratelimit-*` headers for the configured limits, without charging anything. */
  headers(): Record<string, string> {
    const headers: Record<string, string> = {};
    for (const [suffix, bucket] of [
      ['requests', this.#requests],
      ['tokens', this.#tokens],
    ] as const) {
      if (bucket === undefined) continue;
      headers[`x-ratelimit-limit-${suffix}`] = String(bucket.capacity);
      headers[`x-ratelimit-remaining-${suffix}`] = String(Math.floor(bucket.level()));
      headers[`x-ratelimit-reset-${suffix}`] = formatDuration(bucket.waitFor(bucket.capacity));
    }
    return headers;
  }

  /** Refills every bucket. */
  reset(): void {
    this.#requests?.fill();
    this.#tokens?.fill();
  }
}

class Bucket {
  readonly capacity: number;
  readonly #perMs: number;
  readonly #now: () => number;
  #level: number;
  #updatedAt: number;

  constructor(capacity: number, now: () => number) {
    this.capacity = capacity;
    this.#perMs = capacity / MINUTE_MS;
    this.#now = now;
    this.#level = capacity;
    this.#updatedAt = now();
  }

  level(): number {
    const now = this.#now();
    this.#level = Math.min(this.capacity, this.#level + (now - this.#updatedAt) * this.#perMs);
    this.#updatedAt = now;
    return this.#level;
  }

  has(amount: number): boolean {
    return this.level() >= amount;
  }

  spend(amount: number): void {
    this.#level = this.level() - amount;
  }

  /** Milliseconds until the bucket holds `amount`. */
  waitFor(amount: number): number {
    return Math.max(0, Math.ceil((amount - this.level()) / this.#perMs));
  }

  fill(): void {
    this.#level = this.capacity;
    this.#updatedAt = this.#now();
  }
}

/** Formats milliseconds like OpenAI's `x-ratelimit-reset-*` headers: `20ms`, `1s`, `8.64s`, `6m0s`, `1m30.5s`. */
export function formatDuration(ms: number): string {
  // Whole milliseconds first, so seconds never round up to `60s`.
  const total = Math.round(ms);
  if (total < 1000) return `${total}ms`;
  const hours = Math.floor(total / 3_600_000);
  const minutes = Math.floor((total % 3_600_000) / MINUTE_MS);
  // Dividing whole milliseconds drops trailing zeros by itself: 30.5s, not 30.500s.
  const seconds = `${(total % MINUTE_MS) / 1000}s`;
  if (hours > 0) return `${hours}h${minutes}m${seconds}`;
  if (minutes > 0) return `${minutes}m${seconds}`;
  return seconds;
}

/** The 429 for a refused request, worded like OpenAI's, with `retry-after-ms` and `retry-after` when waiting helps. */
export function rateLimitError(decision: Extract<RateLimitDecision, { allowed: false }>, model: string): ApiError {
  const { limit, capacity, requested, retryAfterMs } = decision;
  const per = limit === 'requests' ? 'requests per min (RPM)' : 'tokens per min (TPM)';
  const headers = { ...decision.headers };
  const numbers = `in organization org-offline on ${per}: Limit ${capacity}, Requested ${requested}.`;
  let message: string;
  if (retryAfterMs === undefined) {
    message = `Request too large for ${model} ${numbers} The input or output tokens must be reduced.`;
  } else {
    headers['retry-after-ms'] = String(retryAfterMs);
    headers['retry-after'] = String(Math.ceil(retryAfterMs / 1000));
    message = `Rate limit reached for ${model} ${numbers} Please try again in ${formatDuration(retryAfterMs)}.`;
  }
  return new ApiError(429, message, { type: limit, code: 'rate_limit_exceeded', headers });
}
