/**
 * Items of an async source read ahead of those who take them, in order: whoever asks first gets the next one.
 * The run's workers take their jobs from it, so that a worker that frees up finds its next job already read and
 * checked, and a slow job (a retry wait, a long generation) holds no other job back.
 */
export class ReadAhead<T> {
  private readonly ready: T[] = [];
  /** Set once the source is done: `error` when reading it failed. */
  private end: { error?: unknown } | undefined;
  private reading = false;
  /** Takers waiting for an item, first come first served. */
  private readonly waiting: (() => void)[] = [];

  /**
   * @param source Read one item at a time, never by two readers at once.
   * @param depth Items read ahead at most.
   * @param signal When aborted, reading stops and `take` returns undefined: what was read ahead is dropped.
   */
  constructor(
    private readonly source: AsyncIterator<T>,
    private readonly depth: number,
    private readonly signal: AbortSignal,
  ) {
    if (!Number.isInteger(depth) || depth < 1) throw new TypeError(`Expected \`depth\` to be an integer >= 1, got \`${depth}\``);
    signal.addEventListener('abort', () => this.wakeAll(), { once: true });
  }

  /**
   * The next item, or undefined when the source is done or the signal aborted. When reading the source failed,
   * rejects with that error, once every item read before it has been taken.
   */
  async take(): Promise<T | undefined> {
    for (;;) {
      if (this.signal.aborted) return undefined;
      if (this.ready.length > 0) {
        const item = this.ready.shift()!;
        this.fill();
        return item;
      }
      if (this.end) {
        if ('error' in this.end) throw this.end.error;
        return undefined;
      }
      this.fill();
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  private fill(): void {
    if (this.reading || this.end || this.signal.aborted || this.ready.length >= this.depth) return;
    this.reading = true;
    void this.read();
  }

  private async read(): Promise<void> {
    try {
      while (this.ready.length < this.depth && !this.signal.aborted) {
        const next = await this.source.next();
        if (next.done) {
          this.end = {};
          break;
        }
        this.ready.push(next.value);
        this.waiting.shift()?.();
      }
    } catch (error) {
      this.end = { error };
    } finally {
      this.reading = false;
      // Those still waiting learn of the end (or of a stop), or start the next read.
      this.wakeAll();
    }
  }

  private wakeAll(): void {
    for (const wake of this.waiting.splice(0)) wake();
  }
}
