/**
 * The token bucket a rate limit is kept with: it refills continuously at the limit times a pace, holds a second's
 * worth at most, and lets a cost larger than that wait for a full bucket and leave a debt.
 */

export const MINUTE_MS = 60_000;
/** Bucket capacity, as time of refill at the stated limit. */
const BURST_MS = 1_000;
const EPSILON = 1e-9;

/** A continuously refilling token bucket; a cost larger than its capacity waits for a full bucket and leaves a debt. */
export class Bucket {
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
