import { describe, expect, it } from 'vitest';
import { ReadAhead } from '../src/run/read-ahead.js';

/** A source of `count` numbers that counts how many were read, and can fail at one of them. */
function numbers(count: number, failAt?: number) {
  const source = {
    read: 0,
    async *items(): AsyncGenerator<number> {
      for (let item = 1; item <= count; item++) {
        await new Promise((resolve) => setImmediate(resolve));
        if (item === failAt) throw new Error(`line ${item} changed`);
        source.read = item;
        yield item;
      }
    },
  };
  return source;
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('ReadAhead', () => {
  it('hands the items out in order to whoever asks first, then undefined', async () => {
    const source = numbers(5);
    const ahead = new ReadAhead(source.items(), 2, new AbortController().signal);
    const first = await Promise.all([ahead.take(), ahead.take(), ahead.take()]);
    expect(first).toEqual([1, 2, 3]);
    expect([await ahead.take(), await ahead.take(), await ahead.take(), await ahead.take()]).toEqual([4, 5, undefined, undefined]);
  });

  it('reads no more than depth items ahead of those taken', async () => {
    const source = numbers(100);
    const ahead = new ReadAhead(source.items(), 3, new AbortController().signal);
    expect(await ahead.take()).toBe(1);
    for (let turn = 0; turn < 20; turn++) await settle();
    expect(source.read).toBe(4);
    expect(await ahead.take()).toBe(2);
    for (let turn = 0; turn < 20; turn++) await settle();
    expect(source.read).toBe(5);
  });

  it('holds nothing back for a taker that is busy: the next item goes to the next one who asks', async () => {
    const ahead = new ReadAhead(numbers(4).items(), 4, new AbortController().signal);
    // One taker holds item 1 for as long as it likes; the others go on.
    expect(await ahead.take()).toBe(1);
    expect(await Promise.all([ahead.take(), ahead.take(), ahead.take()])).toEqual([2, 3, 4]);
  });

  it('reports a failure to read only once the items before it are taken, then to every taker', async () => {
    const ahead = new ReadAhead(numbers(10, 4).items(), 8, new AbortController().signal);
    for (let turn = 0; turn < 20; turn++) await settle();
    expect([await ahead.take(), await ahead.take(), await ahead.take()]).toEqual([1, 2, 3]);
    await expect(ahead.take()).rejects.toThrow('line 4 changed');
    await expect(ahead.take()).rejects.toThrow('line 4 changed');
  });

  it('stops reading when the signal aborts, drops what was read ahead and releases those waiting', async () => {
    const source = numbers(100);
    const stop = new AbortController();
    const ahead = new ReadAhead(source.items(), 2, stop.signal);
    expect(await ahead.take()).toBe(1);
    stop.abort();
    expect(await ahead.take()).toBeUndefined();
    for (let turn = 0; turn < 20; turn++) await settle();
    expect(source.read).toBeLessThanOrEqual(3);

    // Takers already waiting on an empty buffer when the stop comes are released with undefined.
    const slow = new AbortController();
    const never = new ReadAhead<number>({ next: () => new Promise(() => {}) }, 2, slow.signal);
    const waiting = Promise.all([never.take(), never.take()]);
    await settle();
    slow.abort();
    expect(await waiting).toEqual([undefined, undefined]);
  });

  it('reads nothing when the signal has aborted before the first take', async () => {
    const source = numbers(10);
    const stop = new AbortController();
    stop.abort();
    const ahead = new ReadAhead(source.items(), 4, stop.signal);
    expect(await ahead.take()).toBeUndefined();
    await settle();
    expect(source.read).toBe(0);
  });

  it('refuses a depth below 1', () => {
    expect(() => new ReadAhead(numbers(1).items(), 0, new AbortController().signal)).toThrow('Expected `depth` to be an integer >= 1, got `0`');
  });
});
