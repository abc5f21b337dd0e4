/**
 * A spending cap kept by reservation: before a job is sent, its worst-case cost is reserved; when it
 * finishes, the reservation is replaced by what it actually cost. Because a job is only sent when its
 * worst case fits, the money spent can never pass the cap, however many jobs are in flight.
 */
export class Budget {
  private spentNano: number;
  private reservedNano = 0;
  /** Workers waiting for a reservation to be released. */
  private waiters: (() => void)[] = [];
  private readonly limitNano: number;

  /**
   * @param limitUsd The cap, in dollars.
   * @param alreadySpentUsd What earlier runs in the same output folder spent: the cap covers them too.
   */
  constructor(limitUsd: number, alreadySpentUsd = 0) {
    if (!Number.isFinite(limitUsd) || limitUsd < 0) throw new TypeError(`Expected \`budget\` to be a number >= 0, got \`${limitUsd}\``);
    this.limitNano = toNano(limitUsd);
    this.spentNano = toNano(alreadySpentUsd);
  }

  /** Reserves `worstCaseUsd` if it fits beside what is spent and reserved; returns whether it did. */
  tryReserve(worstCaseUsd: number): boolean {
    const amount = toNano(worstCaseUsd);
    if (this.spentNano + this.reservedNano + amount > this.limitNano) return false;
    this.reservedNano += amount;
    return true;
  }

  /**
   * Reserves `worstCaseUsd`, waiting while jobs in flight hold reservations that may yet settle below their
   * worst case. Resolves false when it cannot fit even with nothing in flight, or when `signal` aborts.
   */
  async reserve(worstCaseUsd: number, signal?: AbortSignal): Promise<boolean> {
    while (!signal?.aborted) {
      if (this.tryReserve(worstCaseUsd)) return true;
      if (this.reservedNano === 0) return false;
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          signal?.removeEventListener('abort', wake);
          resolve();
        };
        this.waiters.push(wake);
        signal?.addEventListener('abort', wake, { once: true });
      });
    }
    return false;
  }

  /** Releases a reservation and books the actual cost (0 for a failed request, which is not billed). */
  settle(reservedUsd: number, actualUsd: number): void {
    this.reservedNano -= toNano(reservedUsd);
    this.spentNano += toNano(actualUsd);
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  get reservedUsd(): number {
    return this.reservedNano / 1e9;
  }

  get spentUsd(): number {
    return this.spentNano / 1e9;
  }

  get limitUsd(): number {
    return this.limitNano / 1e9;
  }
}

// Whole nano-dollars keep sums exact, as in the cost module.
const toNano = (usd: number): number => Math.round(usd * 1e9);
