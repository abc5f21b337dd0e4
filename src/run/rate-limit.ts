import type { Clock } from '../common/clock.js';
import { DEFAULT_OUTPUT_BOUND } from '../cost/tokens.js';
import { Bucket, MINUTE_MS } from './rate-bucket.js';

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
 *
 * A request whose output has no bound (no `max_completion_tokens`) cannot be charged a bound: what the server
 * charges for it is learned per model. It starts at {@link DEFAULT_OUTPUT_BOUND} per choice (the most any server
 * charges it up front that nightshift knows of); each answer's `limit - remaining` tokens is at most what its request
 * cost the server (more when other requests were charged just before it), so once the server's bucket has room, the
 * headers show what it really charges, and the charge falls to it, halving at most once a second
 * ({@link OUTPUT_FALL_HALF_LIFE_MS}). An answer whose output was longer than the charge raises it at once to that
 * length, and its request is charged the difference, so a model whose answers suddenly get long slows down with the
 * requests already in flight as the only overshoot.
 */

/** What the scheduler is given; limits are per minute. */
export interface RateLimitOptions {
  /** Requests per minute for the whole run (`--rpm`). Unset: learned per model from `x-ratelimit-*-requests`. */
  rpm?: number;
  /** Tokens per minute for the whole run (`--tpm`). Unset: learned per model from `x-ratelimit-*-tokens`. */
  tpm?: number;
  clock: Clock;
}

/**
 * What a request counts against a token limit before it is sent: `known` tokens (its prompt and the output it bounds)
 * and `open` choices whose output has no bound, each charged what the scheduler has learned the server charges.
 */
export interface TokenClaim {
  readonly known: number;
  readonly open: number;
}

/** A granted request slot; hand it back to {@link RateScheduler.observe} and {@link RateScheduler.settle}. */
export interface Permit {
  readonly model: string;
  /** Tokens charged when it was granted; 0 when no token limit applied. */
  readonly tokens: number;
  /** What it claimed (none counted when no token limit applied), and what each open choice was charged. */
  readonly claim: TokenClaim;
  readonly perChoice: number;
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
 * Share of a learned limit nightshift paces at. A little lower than {@link FIXED_PACE}: a learned limit belongs to the
 * whole account, which other clients may share (its `remaining` headers then pull the bucket down), and prompt
 * tokens are estimated before the server counts them.
 */
export const LEARNED_PACE = 0.97;
/** How fast the charge learned for an unbounded output may fall: by half at most in this time. */
export const OUTPUT_FALL_HALF_LIFE_MS = 1_000;

type Dimension = 'requests' | 'tokens';
const DIMENSIONS: readonly Dimension[] = ['requests', 'tokens'];

interface Waiter {
  claim: () => TokenClaim;
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
  /** Tokens charged for each choice whose output has no bound, and when it was last looked at. */
  perChoice = DEFAULT_OUTPUT_BOUND;
  perChoiceAt: number;

  constructor(
    readonly model: string,
    now: number,
  ) {
    this.perChoiceAt = now;
  }

  tokensOf(claim: TokenClaim): number {
    return claim.known + claim.open * this.perChoice;
  }

  /** Lowers the charge per open choice toward `candidate`, no faster than it may fall; true when it fell. */
  lowerPerChoice(candidate: number, now: number): boolean {
    const elapsed = Math.min(OUTPUT_FALL_HALF_LIFE_MS, Math.max(0, now - this.perChoiceAt));
    const floor = this.perChoice * 0.5 ** (elapsed / OUTPUT_FALL_HALF_LIFE_MS);
    this.perChoiceAt = Math.max(this.perChoiceAt, now);
    const next = Math.max(1, Math.ceil(Math.max(candidate, floor)));
    if (next >= this.perChoice) return false;
    this.perChoice = next;
    return true;
  }

  raisePerChoice(tokens: number, now: number): void {
    if (tokens <= this.perChoice) return;
    this.perChoice = Math.ceil(tokens);
    this.perChoiceAt = Math.max(this.perChoiceAt, now);
  }
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
   * Waits until a request to `model` costing `tokens` (a number: prompt plus the most it may generate; or a
   * {@link TokenClaim}) fits under every limit and no 429 pause is in force, then charges it. Requests to one model
   * are granted in the order they asked. `tokens` may be a function, called (once) only when a token limit applies,
   * since counting a prompt costs time. Resolves `undefined`, without charging, as soon as `signal` aborts.
   */
  acquire(tokens: number | TokenClaim | (() => number | TokenClaim), model: string, signal?: AbortSignal): Promise<Permit | undefined> {
    if (signal?.aborted) return Promise.resolve(undefined);
    const lane = this.#lane(model);
    let counted: TokenClaim | undefined;
    const cost = (): TokenClaim => (counted ??= asClaim(typeof tokens === 'function' ? tokens() : tokens));
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
        claim: cost,
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
   * Reconciles a granted request with what the answer says it counted (`actualTokens`, see `countedTokens`, with
   * `outputTokens` of it the output of its open choices): an underestimate is charged, an overestimate given back,
   * except what its open choices were charged, which the server is taken to have charged at least. An output longer
   * than that raises the model's charge per open choice at once.
   */
  settle(permit: Permit, actualTokens: number, outputTokens = 0): void {
    const lane = this.#lane(permit.model);
    const { open } = permit.claim;
    if (open > 0) lane.raisePerChoice(outputTokens / open, this.#clock.now());
    const charged = open > 0 ? actualTokens - outputTokens + Math.max(outputTokens, open * permit.perChoice) : actualTokens;
    const delta = charged - permit.tokens;
    const bucket = this.#bucket(lane, 'tokens');
    // A bucket learned after the request was granted never charged it; its headers account for it instead.
    if (bucket === undefined || !permit.marks.has(bucket) || !Number.isFinite(delta) || delta === 0) return;
    bucket.adjust(delta, this.#clock.now());
    if (delta < 0) this.#wakeAll();
  }

  /**
   * Learns from an answer's `x-ratelimit-*` headers (success or error): the model's limits when no flag fixes them,
   * and, from `remaining` and `reset`, how much the server has left now; when that is less than the bucket holds,
   * the bucket is lowered so requests spread out at the refill rate. `answered`: the server answered the request
   * (not an error), so its `remaining` counts what the request was charged, which bounds what an unbounded output costs.
   */
  observe(headers: Headers | undefined, permit: Permit, answered = false): void {
    if (headers === undefined) return;
    const now = this.#clock.now();
    const lane = this.#lane(permit.model);
    let raised = false;
    let lowered = false;
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
      // What the server took from its bucket up to this request is at most its charge: its open choices cost no more.
      if (answered && dimension === 'tokens' && permit.claim.open > 0 && mark !== undefined) {
        const { known, open } = permit.claim;
        lowered ||= lane.lowerPerChoice((serverLimit - remaining - known) / open, now);
      }
    }
    if (raised) this.#wakeAll();
    else if (lowered) lane.wake?.abort();
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
      lane = new Lane(model, this.#clock.now());
      this.#lanes.set(model, lane);
    }
    return lane;
  }

  #bucket(lane: Lane, dimension: Dimension): Bucket | undefined {
    return this.#fixed[dimension] ?? lane.learned[dimension];
  }

  #waitMs(lane: Lane, claim: () => TokenClaim): number {
    const now = this.#clock.now();
    const tokenBucket = this.#bucket(lane, 'tokens');
    return Math.max(
      this.#pausedUntil - now,
      this.#bucket(lane, 'requests')?.waitMs(1, now) ?? 0,
      tokenBucket?.waitMs(lane.tokensOf(claim()), now) ?? 0,
      0,
    );
  }

  #grant(lane: Lane, cost: () => TokenClaim): Permit {
    const marks = new Map<Bucket, number>();
    const requests = this.#bucket(lane, 'requests');
    const tokenBucket = this.#bucket(lane, 'tokens');
    const claim = tokenBucket === undefined ? NO_CLAIM : cost();
    const tokens = lane.tokensOf(claim);
    if (requests !== undefined) {
      requests.take(1);
      marks.set(requests, requests.spent);
    }
    if (tokenBucket !== undefined) {
      tokenBucket.take(tokens);
      marks.set(tokenBucket, tokenBucket.spent);
    }
    return { model: lane.model, tokens, claim, perChoice: lane.perChoice, at: this.#clock.now(), marks };
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
          wait = this.#waitMs(lane, head.claim);
          if (wait === 0) permit = this.#grant(lane, head.claim);
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

const NO_CLAIM: TokenClaim = { known: 0, open: 0 };

const asClaim = (tokens: number | TokenClaim): TokenClaim => (typeof tokens === 'number' ? { known: tokens, open: 0 } : tokens);

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
