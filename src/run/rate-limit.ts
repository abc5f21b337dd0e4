import type { Clock } from '../common/clock.js';

/**
 * Client-side pacing under OpenAI's per-minute limits, shared by every worker of a run.
 *
 * Each limit is a token bucket that refills continuously, which is how OpenAI describes its own limiter and how the
 * offline server enforces `rateLimit`. Nightshift's buckets are deliberately smaller and slower than the server's:
 * - capacity is one second of the limit, because OpenAI may enforce a per-minute limit over shorter periods
 *   ("quantized": 60,000 RPM as 1,000 per second), so a full minute's burst at start could be refused;
 * - the refill is a fraction of the limit ({@link FIXED_PACE}, {@link LEARNED_PACE}), so that burst plus a minute of
 *   refill never exceeds the limit in any 60-second window, and the server's own bucket keeps slack for requests
 *   that arrive bunched up after leaving evenly spaced.
 *
 * Limits come from `--rpm`/`--tpm` (fixed, for the whole run) or, for each dimension without a flag, from the
 * `x-ratelimit-limit-*` headers of each model's answers (OpenAI's limits are per model). Either way the
 * `x-ratelimit-remaining-*` headers pull a bucket down when the server has less left than nightshift thought
 * (another client on the same key, a run just before this one), so requests spread out at the refill rate.
 */

/** What the scheduler is given; limits are per minute. */
export interface RateLimitOptions {
  /** Requests per minute for the whole run (`--rpm`). Unset: learned per model from `x-ratelimit-*-requests`. */
  rpm?: number;
  /** Tokens per minute for the whole run (`--tpm`). Unset: learned per model from `x-ratelimit-*-tokens`. */
  tpm?: number;
  clock: Clock;
}

/** A granted request slot; hand it back to {@link RateScheduler.observe} and {@link RateScheduler.settle}. */
export interface Permit {
  readonly model: string;
  /** Tokens charged when it was granted; 0 when no token limit applied. */
  readonly tokens: number;
  /** When it was granted, in the clock's milliseconds. */
  readonly at: number;
  /** For each bucket that charged it, the bucket's running total just after: what a later header has not seen. */
  readonly marks: ReadonlyMap<Bucket, number>;
}

/** The limits in force for a model, per minute; `fixed` when they come from flags rather than headers. */
export interface EffectiveLimits {
  rpm?: { limit: number; fixed: boolean };
  tpm?: { limit: number; fixed: boolean };
}

/** Share of a fixed limit nightshift paces at: with the one-second burst, no 60-second window exceeds the limit. */
export const FIXED_PACE = 0.98;
/**
 * Share of a learned limit nightshift paces at. Lower than {@link FIXED_PACE}: a learned limit belongs to the whole
 * account, which other clients may share, and prompt tokens are estimated before the server counts them.
 */
export const LEARNED_PACE = 0.9;

const MINUTE_MS = 60_000;
/** Bucket capacity, as time of refill at the stated limit. */
const BURST_MS = 1_000;
const EPSILON = 1e-9;

type Dimension = 'requests' | 'tokens';
const DIMENSIONS: readonly Dimension[] = ['requests', 'tokens'];

/** A continuously refilling token bucket; a cost larger than its capacity waits for a full bucket and leaves a debt. */
class Bucket {
  limit = 0;
  capacity = 0;
  #perMs = 0;
  #level = 0;
  #updatedAt: number;
  /** Everything charged so far (settlements included), to tell which charges a header has not seen yet. */
  spent = 0;

  constructor(
    limit: number,
    private readonly pace: number,
    now: number,
  ) {
    this.setLimit(limit);
    this.#level = this.capacity;
    this.#updatedAt = now;
  }

  setLimit(limit: number): void {
    this.limit = limit;
    this.#perMs = (limit * this.pace) / MINUTE_MS;
    this.capacity = Math.max(1, (limit * BURST_MS) / MINUTE_MS);
    this.#level = Math.min(this.#level, this.capacity);
  }

  level(now: number): number {
    this.#level = Math.min(this.capacity, this.#level + Math.max(0, now - this.#updatedAt) * this.#perMs);
    this.#updatedAt = Math.max(this.#updatedAt, now);
    return this.#level;
  }

  /** Milliseconds until `cost` may be taken (0: now). */
  waitMs(cost: number, now: number): number {
    const need = Math.min(cost, this.capacity);
    const missing = need - this.level(now);
    return missing <= EPSILON ? 0 : Math.max(1, Math.ceil(missing / this.#perMs));
  }

  take(cost: number): void {
    this.#level -= cost;
    this.spent += cost;
  }

  /** Charges `delta` more (or gives it back when negative), never above capacity. */
  adjust(delta: number, now: number): void {
    this.#level = Math.min(this.capacity, this.level(now) - delta);
    this.spent += delta;
  }

  /** Lowers the level to what the server is believed to have left; never raises it. */
  lowerTo(level: number, now: number): void {
    if (level < this.level(now)) this.#level = level;
  }
}

interface Waiter {
  tokens: () => number;
  resolve: (permit: Permit | undefined) => void;
  reject: (error: unknown) => void;
}

/** One model's learned limits and its queue of requests waiting for a slot. */
class Lane {
  readonly learned: Partial<Record<Dimension, Bucket>> = {};
  readonly queue: Waiter[] = [];
  pumping = false;
  /** Aborted to wake the lane's pump early, when a slot may have opened up. */
  wake: AbortController | undefined;

  constructor(readonly model: string) {}
}

/**
 * Decides when each request may be sent so the run stays under its rate limits, and pauses every request
 * after a 429. One instance is shared by all workers of a run.
 */
export class RateScheduler {
  readonly #clock: Clock;
  readonly #fixed: Partial<Record<Dimension, Bucket>> = {};
  readonly #lanes = new Map<string, Lane>();
  #pausedUntil = 0;

  constructor(options: RateLimitOptions) {
    this.#clock = options.clock;
    const now = this.#clock.now();
    if (options.rpm !== undefined) this.#fixed.requests = new Bucket(checkLimit('rpm', options.rpm), FIXED_PACE, now);
    if (options.tpm !== undefined) this.#fixed.tokens = new Bucket(checkLimit('tpm', options.tpm), FIXED_PACE, now);
  }

  /**
   * Waits until a request to `model` costing `tokens` (prompt plus the most it may generate) fits under every limit
   * and no 429 pause is in force, then charges it. Requests to one model are granted in the order they asked.
   * `tokens` may be a function, called (once) only when a token limit applies, since counting a prompt costs time.
   * Resolves `undefined`, without charging, as soon as `signal` aborts.
   */
  acquire(tokens: number | (() => number), model: string, signal?: AbortSignal): Promise<Permit | undefined> {
    if (signal?.aborted) return Promise.resolve(undefined);
    const lane = this.#lane(model);
    let counted: number | undefined;
    const cost = typeof tokens === 'number' ? () => tokens : () => (counted ??= tokens());
    if (lane.queue.length === 0) {
      try {
        if (this.#waitMs(lane, cost) === 0) return Promise.resolve(this.#grant(lane, cost));
      } catch (error) {
        return Promise.reject(error as Error);
      }
    }
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        const position = lane.queue.indexOf(waiter);
        if (position < 0) return;
        lane.queue.splice(position, 1);
        if (position === 0) lane.wake?.abort();
        resolve(undefined);
      };
      const waiter: Waiter = {
        tokens: cost,
        resolve: (permit) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(permit);
        },
        reject: (error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(error as Error);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      lane.queue.push(waiter);
      // Nobody awaits the pump: an error it meets (a failing clock) goes to the requests still waiting on it.
      this.#pump(lane).catch((error: unknown) => {
        for (const stranded of lane.queue.splice(0)) stranded.reject(error);
      });
    });
  }

  /**
   * Reconciles a granted request with what the answer says it counted (`actualTokens`, see `countedTokens`):
   * an underestimate is charged, an overestimate given back.
   */
  settle(permit: Permit, actualTokens: number): void {
    const delta = actualTokens - permit.tokens;
    const bucket = this.#bucket(this.#lane(permit.model), 'tokens');
    // A bucket learned after the request was granted never charged it; its headers account for it instead.
    if (bucket === undefined || !permit.marks.has(bucket) || !Number.isFinite(delta) || delta === 0) return;
    bucket.adjust(delta, this.#clock.now());
    if (delta < 0) this.#wakeAll();
  }

  /**
   * Learns from an answer's `x-ratelimit-*` headers (success or error): the model's limits when no flag fixes them,
   * and, from `remaining` and `reset`, how much the server has left now; when that is less than the bucket holds,
   * the bucket is lowered so requests spread out at the refill rate.
   */
  observe(headers: Headers | undefined, permit: Permit): void {
    if (headers === undefined) return;
    const now = this.#clock.now();
    const lane = this.#lane(permit.model);
    let raised = false;
    for (const dimension of DIMENSIONS) {
      const limit = positive(headers.get(`x-ratelimit-limit-${dimension}`));
      if (this.#fixed[dimension] === undefined && limit !== undefined) {
        const learned = lane.learned[dimension];
        if (learned === undefined) lane.learned[dimension] = new Bucket(limit, LEARNED_PACE, now);
        else if (learned.limit !== limit) {
          raised ||= limit > learned.limit;
          learned.setLimit(limit);
        }
      }
      const bucket = this.#bucket(lane, dimension);
      const remaining = nonNegative(headers.get(`x-ratelimit-remaining-${dimension}`));
      if (bucket === undefined || remaining === undefined) continue;
      const serverLimit = limit ?? bucket.limit;
      const resetMs = parseDuration(headers.get(`x-ratelimit-reset-${dimension}`) ?? '');
      // The server refills to full by `reset`; linear refill is exact for a token bucket and conservative for a window.
      const refillPerMs =
        resetMs !== undefined && resetMs > 0 && serverLimit > remaining ? (serverLimit - remaining) / resetMs : serverLimit / MINUTE_MS;
      // `remaining` was measured when this request arrived; requests granted since then are not in it.
      const mark = permit.marks.get(bucket);
      const unseen = mark === undefined ? 0 : bucket.spent - mark;
      const serverLeft = Math.min(serverLimit, remaining + refillPerMs * Math.max(0, now - permit.at)) - unseen;
      bucket.lowerTo(serverLeft, now);
    }
    if (raised) this.#wakeAll();
  }

  /** Holds every request, waiting or not yet asked for, for `ms` (a 429 concerns the whole account). */
  pause(ms: number): void {
    if (Number.isFinite(ms) && ms > 0) this.#pausedUntil = Math.max(this.#pausedUntil, this.#clock.now() + ms);
  }

  /** The limits in force for `model`. */
  limitsFor(model: string): EffectiveLimits {
    const lane = this.#lanes.get(model);
    const describe = (dimension: Dimension) => {
      const fixed = this.#fixed[dimension];
      if (fixed) return { limit: fixed.limit, fixed: true };
      const learned = lane?.learned[dimension];
      return learned ? { limit: learned.limit, fixed: false } : undefined;
    };
    const rpm = describe('requests');
    const tpm = describe('tokens');
    return { ...(rpm ? { rpm } : {}), ...(tpm ? { tpm } : {}) };
  }

  #lane(model: string): Lane {
    let lane = this.#lanes.get(model);
    if (lane === undefined) {
      lane = new Lane(model);
      this.#lanes.set(model, lane);
    }
    return lane;
  }

  #bucket(lane: Lane, dimension: Dimension): Bucket | undefined {
    return this.#fixed[dimension] ?? lane.learned[dimension];
  }

  #waitMs(lane: Lane, tokens: () => number): number {
    const now = this.#clock.now();
    return Math.max(
      this.#pausedUntil - now,
      this.#bucket(lane, 'requests')?.waitMs(1, now) ?? 0,
      this.#bucket(lane, 'tokens')?.waitMs(tokens(), now) ?? 0,
      0,
    );
  }

  #grant(lane: Lane, cost: () => number): Permit {
    const marks = new Map<Bucket, number>();
    const requests = this.#bucket(lane, 'requests');
    const tokenBucket = this.#bucket(lane, 'tokens');
    const tokens = tokenBucket === undefined ? 0 : cost();
    if (requests !== undefined) {
      requests.take(1);
      marks.set(requests, requests.spent);
    }
    if (tokenBucket !== undefined) {
      tokenBucket.take(tokens);
      marks.set(tokenBucket, tokenBucket.spent);
    }
    return { model: lane.model, tokens, at: this.#clock.now(), marks };
  }

  /** Grants the lane's waiters in order, sleeping until the first one fits; one pump per lane at a time. */
  async #pump(lane: Lane): Promise<void> {
    if (lane.pumping) return;
    lane.pumping = true;
    try {
      for (let head = lane.queue[0]; head !== undefined; head = lane.queue[0]) {
        let wait: number;
        let permit: Permit | undefined;
        try {
          wait = this.#waitMs(lane, head.tokens);
          if (wait === 0) permit = this.#grant(lane, head.tokens);
        } catch (error) {
          // Counting this request's tokens failed: it alone fails, the requests behind it go on.
          lane.queue.shift();
          head.reject(error);
          continue;
        }
        if (permit !== undefined) {
          lane.queue.shift();
          head.resolve(permit);
          continue;
        }
        lane.wake = new AbortController();
        await this.#clock.sleep(wait, lane.wake.signal);
      }
    } finally {
      lane.wake = undefined;
      lane.pumping = false;
    }
  }

  #wakeAll(): void {
    for (const lane of this.#lanes.values()) lane.wake?.abort();
  }
}

/**
 * Parses the durations of OpenAI's `x-ratelimit-reset-*` headers (`20ms`, `1s`, `8.64s`, `6m0s`, `1m30.5s`, `1h2m`)
 * into milliseconds; `undefined` when the text is not one.
 */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (trimmed === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed) * 1000;
  const unit: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001, µs: 0.001, ns: 0.000_001 };
  let total = 0;
  let consumed = 0;
  for (const match of trimmed.matchAll(/(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)/g)) {
    if (match.index !== consumed) return undefined;
    total += Number(match[1]) * unit[match[2]!]!;
    consumed += match[0].length;
  }
  return consumed === trimmed.length ? total : undefined;
}

function checkLimit(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`Expected \`${name}\` to be a number > 0, got \`${value}\``);
  return value;
}

function positive(text: string | null): number | undefined {
  const value = text === null ? Number.NaN : Number(text);
  return Number.isFinite(value) && value > 0 ? value : undefined;
}

function nonNegative(text: string | null): number | undefined {
  const value = text === null || text.trim() === '' ? Number.NaN : Number(text);
  return Number.isFinite(value) && value >= 0 ? value : undefined;
}
