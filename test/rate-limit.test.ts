import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Clock } from '../src/common/clock.js';
import { loadJobs } from '../src/jobs/load.js';
import { DEFAULT_OUTPUT_BOUND } from '../src/cost/tokens.js';
import { countedTokens, requestTokens, tokenClaim } from '../src/run/rate-limit-tokens.js';
import { FIXED_PACE, LEARNED_PACE, parseDuration, RateScheduler, type Permit } from '../src/run/rate-limit.js';
import { zeroUsage } from '../src/common/types.js';
import type { Job } from '../src/common/types.js';
import type { OfflineServerOptions } from '../src/server/options.js';
import { startOfflineServer, type OfflineServer } from '../src/server/server.js';
import OpenAI from 'openai';
import { createPriceBook } from '../src/cost/prices.js';
import { runJobs } from '../src/run/run.js';
import { cli, journalLines, tempDir, writeJobs } from './helpers.js';

/** A clock that only moves when told to; sleeps end when time reaches them or their signal aborts. */
function manualClock(start = 1_000_000): Clock & { advance(ms: number): Promise<void>; runUntilIdle(): Promise<void>; step(): Promise<boolean> } {
  let now = start;
  const timers = new Set<{ at: number; done: () => void }>();
  const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
  const nextTimer = (until: number) => [...timers].filter((timer) => timer.at <= until).sort((a, b) => a.at - b.at)[0];
  return {
    now: () => now,
    sleep: (ms, signal) =>
      new Promise((resolve) => {
        if (ms <= 0 || signal?.aborted) return resolve();
        const timer = {
          at: now + ms,
          done: () => {
            timers.delete(timer);
            signal?.removeEventListener('abort', timer.done);
            resolve();
          },
        };
        timers.add(timer);
        signal?.addEventListener('abort', timer.done, { once: true });
      }),
    async advance(ms) {
      const end = now + ms;
      await settle();
      for (let timer = nextTimer(end); timer; timer = nextTimer(end)) {
        now = timer.at;
        timer.done();
        await settle();
      }
      now = end;
      await settle();
    },
    /** Moves to the next timer and fires it; false when there is none. */
    async step() {
      await settle();
      const timer = nextTimer(Infinity);
      if (timer === undefined) return false;
      now = Math.max(now, timer.at);
      timer.done();
      await settle();
      return true;
    },
    async runUntilIdle() {
      await settle();
      for (let timer = nextTimer(Infinity); timer; timer = nextTimer(Infinity)) {
        now = Math.max(now, timer.at);
        timer.done();
        await settle();
      }
    },
  };
}

/** Asks for `count` slots at once and records when each was granted. */
async function grantTimes(scheduler: RateScheduler, clock: ReturnType<typeof manualClock>, count: number, tokens = 0, model = 'gpt-4o-mini') {
  const times: number[] = [];
  const permits = Array.from({ length: count }, () =>
    scheduler.acquire(tokens, model).then((permit) => {
      times.push(clock.now());
      return permit;
    }),
  );
  await clock.runUntilIdle();
  await Promise.all(permits);
  return times;
}

const rateLimitHeaders = (fields: Record<string, string>): Headers =>
  new Headers(Object.fromEntries(Object.entries(fields).map(([key, value]) => [`x-ratelimit-${key}`, value])));

describe('fixed limits (--rpm, --tpm)', () => {
  it('paces requests at the --rpm rate after a burst of one second of the limit', async () => {
    const clock = manualClock();
    const start = clock.now();
    const scheduler = new RateScheduler({ rpm: 600, clock });
    const times = await grantTimes(scheduler, clock, 100);
    expect(times).toHaveLength(100);
    // 10 at once (one second of 600/min), then 90 more at 98% of 10 a second.
    expect(times.filter((time) => time === start)).toHaveLength(10);
    const expected = (90 / (10 * FIXED_PACE)) * 1000;
    expect(clock.now() - start).toBeGreaterThanOrEqual(expected - 1);
    expect(clock.now() - start).toBeLessThanOrEqual(expected + 100);
  });

  it('never lets more than --rpm requests through in any 60-second window', async () => {
    const clock = manualClock();
    const scheduler = new RateScheduler({ rpm: 60, clock });
    const times = await grantTimes(scheduler, clock, 200);
    for (const [index, time] of times.entries()) {
      expect(times.slice(index).filter((later) => later < time + 60_000).length).toBeLessThanOrEqual(60);
    }
  });

  it('limits by tokens with --tpm', async () => {
    const clock = manualClock();
    const start = clock.now();
    const scheduler = new RateScheduler({ tpm: 60_000, clock });
    // One second of 60,000/min is 1,000 tokens: two 500-token requests at once, the other 4,000 tokens at 980 a second.
    const times = await grantTimes(scheduler, clock, 10, 500);
    expect(times.filter((time) => time === start)).toHaveLength(2);
    const expected = (4000 / (1000 * FIXED_PACE)) * 1000;
    expect(clock.now() - start).toBeGreaterThanOrEqual(expected - 1);
    expect(clock.now() - start).toBeLessThanOrEqual(expected + 10);
  });

  it('lets a request larger than the burst through once the bucket is full, then waits off the debt', async () => {
    const clock = manualClock();
    const start = clock.now();
    const scheduler = new RateScheduler({ tpm: 6_000, clock });
    const times = await grantTimes(scheduler, clock, 2, 300);
    // Capacity is 100 tokens; each 300-token request needs a full bucket and leaves 200 owed.
    expect(times[0]).toBe(start);
    expect(times[1]! - start).toBeCloseTo((300 / (100 * FIXED_PACE)) * 1000, -1);
  });

  it('gives back tokens a request did not count when it is settled', async () => {
    const clock = manualClock();
    const scheduler = new RateScheduler({ tpm: 60_000, clock });
    const first = (await scheduler.acquire(1000, 'gpt-4o-mini'))!;
    let second: Permit | undefined;
    void scheduler.acquire(600, 'gpt-4o-mini').then((permit) => (second = permit));
    await clock.advance(0);
    expect(second).toBeUndefined();
    scheduler.settle(first, 400);
    await clock.advance(0);
    expect(second).toBeDefined();
  });

  it('counts a request\'s tokens only when a token limit applies', async () => {
    let counted = 0;
    const count = () => {
      counted++;
      return 100;
    };
    const clock = manualClock();
    expect((await new RateScheduler({ rpm: 600, clock }).acquire(count, 'gpt-4o-mini'))?.tokens).toBe(0);
    expect(counted).toBe(0);
    expect((await new RateScheduler({ tpm: 60_000, clock }).acquire(count, 'gpt-4o-mini'))?.tokens).toBe(100);
    expect(counted).toBe(1);
  });

  it('charges more when a request counted more than estimated', async () => {
    const clock = manualClock();
    const start = clock.now();
    const scheduler = new RateScheduler({ tpm: 60_000, clock });
    const first = (await scheduler.acquire(100, 'gpt-4o-mini'))!;
    scheduler.settle(first, 1000);
    // 900 tokens were left; the extra 900 charged leave 0, so the next 100 wait for the refill.
    const next = scheduler.acquire(100, 'gpt-4o-mini');
    await clock.runUntilIdle();
    await next;
    expect(clock.now() - start).toBeCloseTo((100 / (1000 * FIXED_PACE)) * 1000, -1);
  });
});

describe('limits learned from x-ratelimit headers', () => {
  it('sends freely until headers state a limit, then paces below it', async () => {
    const clock = manualClock();
    const scheduler = new RateScheduler({ clock });
    const start = clock.now();
    expect(await grantTimes(scheduler, clock, 50)).toEqual(Array(50).fill(start));

    const permit = (await scheduler.acquire(0, 'gpt-4o-mini'))!;
    scheduler.observe(
      rateLimitHeaders({ 'limit-requests': '600', 'remaining-requests': '599', 'reset-requests': '100ms', 'limit-tokens': '150000' }),
      permit,
    );
    expect(scheduler.limitsFor('gpt-4o-mini')).toEqual({ rpm: { limit: 600, fixed: false }, tpm: { limit: 150_000, fixed: false } });
    const times = await grantTimes(scheduler, clock, 100);
    const expected = (90 / (10 * LEARNED_PACE)) * 1000;
    expect(times.at(-1)! - start).toBeGreaterThanOrEqual(expected - 1);
    expect(times.at(-1)! - start).toBeLessThanOrEqual(expected + 200);
  });

  it('keeps each model to its own learned limits', async () => {
    const clock = manualClock();
    const scheduler = new RateScheduler({ clock });
    const permit = (await scheduler.acquire(0, 'gpt-image-1'))!;
    scheduler.observe(rateLimitHeaders({ 'limit-requests': '5' }), permit);
    expect(scheduler.limitsFor('gpt-image-1').rpm?.limit).toBe(5);
    expect(scheduler.limitsFor('gpt-4o-mini')).toEqual({});
    const start = clock.now();
    expect(await grantTimes(scheduler, clock, 20, 0, 'gpt-4o-mini')).toEqual(Array(20).fill(start));
  });

  it('slows down when the server has little left, even under a fixed limit', async () => {
    const paced = async (remaining: string) => {
      const clock = manualClock();
      const scheduler = new RateScheduler({ rpm: 600, clock });
      const permit = (await scheduler.acquire(0, 'gpt-4o-mini'))!;
      scheduler.observe(rateLimitHeaders({ 'limit-requests': '600', 'remaining-requests': remaining, 'reset-requests': '59.9s' }), permit);
      const start = clock.now();
      const times = await grantTimes(scheduler, clock, 5);
      return times.at(-1)! - start;
    };
    // Plenty left: the rest of the one-second burst goes at once.
    expect(await paced('590')).toBe(0);
    // Nothing left: each request waits for the refill.
    expect(await paced('0')).toBeGreaterThanOrEqual((5 / (10 * FIXED_PACE)) * 1000 - 1);
  });

  it('counts requests granted after the answered one as unseen by its headers', async () => {
    const clock = manualClock();
    const scheduler = new RateScheduler({ clock });
    const first = (await scheduler.acquire(0, 'gpt-4o-mini'))!;
    scheduler.observe(rateLimitHeaders({ 'limit-requests': '600', 'remaining-requests': '599' }), first);
    const answered = (await scheduler.acquire(0, 'gpt-4o-mini'))!;
    for (let i = 0; i < 4; i++) await scheduler.acquire(0, 'gpt-4o-mini');
    // The server had 4 left when `answered` arrived, and 4 requests went out since: nothing is left now.
    scheduler.observe(rateLimitHeaders({ 'limit-requests': '600', 'remaining-requests': '4', 'reset-requests': '59.6s' }), answered);
    let granted = false;
    void scheduler.acquire(0, 'gpt-4o-mini').then(() => (granted = true));
    await clock.advance(0);
    expect(granted).toBe(false);
    await clock.advance(120);
    expect(granted).toBe(true);
  });
});

describe('the charge of an unbounded output', () => {
  const claim = { known: 10, open: 1 };
  const learnedCharge = async (headers: Record<string, string>, answered: boolean) => {
    const clock = manualClock();
    const scheduler = new RateScheduler({ tpm: 60_000, clock });
    const permit = (await scheduler.acquire(claim, 'gpt-4o-mini'))!;
    // The answer comes a second later.
    await clock.advance(1_000);
    scheduler.observe(rateLimitHeaders(headers), permit, answered);
    return (await scheduler.acquire(claim, 'gpt-4o-mini'))!.tokens - claim.known;
  };

  it('starts at 256 a choice, and falls toward what an answer shows the server charged, by half at most in a second', async () => {
    expect(await learnedCharge({ 'limit-tokens': '60000', 'remaining-tokens': '59960' }, true)).toBe(DEFAULT_OUTPUT_BOUND / 2);
  });

  it('learns nothing from a refused request, which the server did not charge', async () => {
    expect(await learnedCharge({ 'limit-tokens': '60000', 'remaining-tokens': '60000' }, false)).toBe(DEFAULT_OUTPUT_BOUND);
  });
});

describe('pause and abort', () => {
  it('holds every waiting request until a 429 pause ends', async () => {
    const clock = manualClock();
    const scheduler = new RateScheduler({ clock });
    scheduler.pause(2000);
    const granted: string[] = [];
    const waits = ['gpt-4o-mini', 'gpt-4o-mini', 'gpt-4o'].map((model, index) =>
      scheduler.acquire(0, model).then(() => granted.push(`${model}#${index}`)),
    );
    await clock.advance(1999);
    expect(granted).toEqual([]);
    await clock.advance(1);
    await Promise.all(waits);
    expect(granted).toHaveLength(3);
  });

  it('extends a pause, never shortens it', async () => {
    const clock = manualClock();
    const scheduler = new RateScheduler({ clock });
    scheduler.pause(2000);
    scheduler.pause(500);
    let granted = false;
    void scheduler.acquire(0, 'gpt-4o-mini').then(() => (granted = true));
    await clock.advance(1000);
    expect(granted).toBe(false);
    await clock.advance(1000);
    expect(granted).toBe(true);
  });

  it('wakes a waiting request at once when its signal aborts, without charging it', async () => {
    const clock = manualClock();
    const scheduler = new RateScheduler({ rpm: 60, clock });
    await scheduler.acquire(0, 'gpt-4o-mini');
    const controller = new AbortController();
    const aborted = scheduler.acquire(0, 'gpt-4o-mini', controller.signal);
    let next: Permit | undefined;
    void scheduler.acquire(0, 'gpt-4o-mini').then((permit) => (next = permit));
    controller.abort();
    expect(await aborted).toBeUndefined();
    // The aborted request took no slot: the next one gets the slot it would have had.
    await clock.advance(Math.ceil(1000 / FIXED_PACE));
    expect(next).toBeDefined();
  });

  it('answers undefined at once for an already aborted signal', async () => {
    const scheduler = new RateScheduler({ rpm: 60, clock: manualClock() });
    expect(await scheduler.acquire(0, 'gpt-4o-mini', AbortSignal.abort())).toBeUndefined();
  });

  it('rejects a request whose token count throws, and grants the requests behind it', async () => {
    const clock = manualClock();
    const scheduler = new RateScheduler({ tpm: 60_000, clock });
    const broken = (): number => {
      throw new TypeError('cannot count');
    };
    await expect(scheduler.acquire(broken, 'gpt-4o-mini')).rejects.toThrow(TypeError);
    await scheduler.acquire(1000, 'gpt-4o-mini');
    const queued = scheduler.acquire(broken, 'gpt-4o-mini');
    const behind = scheduler.acquire(500, 'gpt-4o-mini');
    await expect(queued).rejects.toThrow(TypeError);
    await clock.runUntilIdle();
    expect((await behind)?.tokens).toBe(500);
  });

  it('rejects the waiting requests, rather than leaving them hanging, when waiting fails', async () => {
    const clock: Clock = { now: () => 1_000_000, sleep: () => Promise.reject(new Error('clock broke')) };
    const scheduler = new RateScheduler({ rpm: 60, clock });
    await scheduler.acquire(0, 'gpt-4o-mini');
    const waiting = [scheduler.acquire(0, 'gpt-4o-mini'), scheduler.acquire(0, 'gpt-4o-mini')];
    for (const request of waiting) await expect(request).rejects.toThrow('clock broke');
  });
});

describe('parseDuration', () => {
  it.each([
    ['20ms', 20],
    ['1s', 1000],
    ['8.64s', 8640],
    ['6m0s', 360_000],
    ['1m30.5s', 90_500],
    ['1h2m3s', 3_723_000],
    ['2', 2000],
  ])('reads %s as %d ms', (text, ms) => {
    expect(parseDuration(text)).toBeCloseTo(ms, 6);
  });

  it.each(['', 'soon', '1x', '-1s', '1s extra'])('rejects %j', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe('request tokens', () => {
  it('counts the prompt and the output bound, and settles the bound with the real prompt', async () => {
    const dir = await tempDir();
    const file = await writeJobs(dir, [
      { id: 'a', model: 'gpt-4o-mini', prompt: 'Hello there', max_tokens: 100 },
      { id: 'b', model: 'gpt-4o-mini', prompt: 'Hello there' },
    ]);
    const { jobs } = await loadJobs([file]);
    const [bounded, unbounded] = jobs;
    // 3 priming, 3 for the message, its role and 2 tokens of text, plus the output bound.
    expect(requestTokens(bounded!)).toBe(9 + 100);
    expect(requestTokens(unbounded!)).toBe(9 + DEFAULT_OUTPUT_BOUND);
    const usage = { ...zeroUsage(), input_tokens: 9, output_tokens: 40, total_tokens: 49 };
    expect(countedTokens(bounded!, usage)).toBe(9 + 100);
    expect(countedTokens(unbounded!, { ...usage, output_tokens: 400, total_tokens: 409 })).toBe(9 + 400);
    expect(countedTokens(bounded!, zeroUsage())).toBeUndefined();
  });

  it('never throws for odd content, estimating what it cannot read from its characters', async () => {
    const dir = await tempDir();
    const file = await writeJobs(dir, [{ id: 'a', model: 'gpt-4o-mini', prompt: 'Hello there', max_tokens: 100 }]);
    const [job] = (await loadJobs([file])).jobs;
    const withMessages = (messages: unknown): number => requestTokens({ ...job!, body: { ...job!.body, messages } });
    const plain = withMessages([{ role: 'user', content: 'Hello there' }]);
    expect(plain).toBe(9 + 100);
    expect(withMessages([{ role: 'user', content: [null, 5] }])).toBeGreaterThan(100);
    expect(withMessages([{ role: 'user', content: [{ type: 'text', text: 'Hello there' }, 'x'.repeat(400)] }])).toBeGreaterThanOrEqual(plain + 100);
    expect(withMessages([{ role: 'user', content: [{ type: 'text', text: 42 }, { image_url: 'x' }, { type: 'image_url', image_url: null }] }])).toBeGreaterThan(100);
    expect(withMessages([null, 'Hello', [1, 2]])).toBeGreaterThan(100);
    expect(withMessages('not a list')).toBeGreaterThanOrEqual(100);
  });
});

describe('--rpm against the offline server', () => {
  let server: OfflineServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('stays under the server limit with --rpm 600: no 429, requests spread over time', async () => {
    server = await startOfflineServer({ rateLimit: { rpm: 600 } });
    const dir = await tempDir();
    const file = await writeJobs(
      dir,
      Array.from({ length: 25 }, (_, i) => ({ id: `j${i}`, model: 'gpt-4o-mini', prompt: `Prompt ${i}` })),
    );
    const started = Date.now();
    const { code } = await cli(['run', file, '--out', join(dir, 'out'), '--concurrency', '25', '--rpm', '600', '--quiet'], {
      env: { OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: server.url },
    });
    expect(code).toBe(0);
    expect(server.stats.byStatus[429]).toBeUndefined();
    expect(server.stats.byStatus[200]).toBe(25);
    // 10 at once, then 15 more at 9.8 a second.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
    // Any second holds at most the burst (10) and a second of refill (9.8); 2 more for requests that left in order
    // but arrived bunched up on a busy machine.
    const times = server.requests.map((request) => request.time);
    for (const time of times) expect(times.filter((other) => other >= time && other < time + 1000).length).toBeLessThanOrEqual(22);
  });
});

describe('what the offline server charges against its token limit', () => {
  let server: OfflineServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  /** Sends one chat request and reads what the server has left of its token limit, and the answer's usage. */
  const ask = async (body: Record<string, unknown>) => {
    const response = await fetch(`${server!.url}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer sk-test' },
      body: JSON.stringify({ model: 'gpt-4o-mini', ...body }),
    });
    const answer = (await response.json()) as { usage: { prompt_tokens: number; total_tokens: number } };
    return { remaining: Number(response.headers.get('x-ratelimit-remaining-tokens')), usage: answer.usage };
  };

  it('charges the prompt plus the output bound, 256 when a request sets none, by default', async () => {
    server = await startOfflineServer({ rateLimit: { tpm: 100_000 }, now: () => 1_000_000 });
    const { remaining, usage } = await ask({ messages: [{ role: 'user', content: 'Write a haiku about item 7.' }] });
    expect(100_000 - remaining).toBe(usage.prompt_tokens + DEFAULT_OUTPUT_BOUND);
  });

  it("charges, as OpenAI, an estimate from the request's characters (or its max_completion_tokens) at admission, raised to what the answer used", async () => {
    // The server's clock stands still: no refill between the charge and the headers.
    server = await startOfflineServer({ rateLimit: { tpm: 100_000, charge: 'estimate' }, now: () => 1_000_000 });
    const unbounded = await ask({ messages: [{ role: 'user', content: 'Write a haiku about item 7.' }] });
    // Far less than the prompt plus 256: the server charges what the answer actually used.
    expect(100_000 - unbounded.remaining).toBe(unbounded.usage.total_tokens);
    server.reset();
    const bounded = await ask({ messages: [{ role: 'user', content: 'Write a haiku about item 7.' }], max_completion_tokens: 5000 });
    // Unused output is not given back.
    expect(100_000 - bounded.remaining).toBe(5000);
  });
});

/**
 * Sends `jobs` over HTTP to an offline server with `options`, `concurrency` at a time, paced by one scheduler without
 * flags, as a run's workers are (a 429 pauses every worker, then the job is sent again). The scheduler and the
 * server's limiter share a manual clock that moves only while no request is in flight, so what the server sees does
 * not depend on how busy the machine is. Returns the server's statuses, the tokens it charged per minute of that
 * clock once pacing is under way (from the answer of the first third of the jobs to the last answer: the requests
 * sent before any header came, and the first second's burst, are not what a long run is made of), and the tokens
 * each request reserved when it was sent.
 */
async function sendOnOneClock(options: OfflineServerOptions, jobs: Job[], concurrency: number) {
  const clock = manualClock();
  const server = await startOfflineServer({ ...options, now: clock.now });
  const scheduler = new RateScheduler({ clock });
  const queue = [...jobs];
  const reserved: number[] = [];
  let inFlight = 0;
  /** When each answer came, and what the server charged for it. */
  const answers: Array<{ at: number; charged: number }> = [];
  const send = async (job: Job): Promise<void> => {
    for (;;) {
      const permit = (await scheduler.acquire(() => tokenClaim(job), job.model))!;
      reserved.push(permit.tokens);
      inFlight += 1;
      const response = await fetch(`${server.url}${job.endpoint.slice('/v1'.length)}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer sk-test' },
        body: JSON.stringify(job.body),
      });
      const answer = (await response.json()) as { usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number } };
      inFlight -= 1;
      scheduler.observe(response.headers, permit, response.status === 200);
      if (response.status === 429) {
        const wait = Number(response.headers.get('retry-after-ms'));
        scheduler.pause(wait);
        await clock.sleep(wait);
        continue;
      }
      const { prompt_tokens, completion_tokens, total_tokens } = answer.usage!;
      const usage = { ...zeroUsage(), input_tokens: prompt_tokens, output_tokens: completion_tokens, total_tokens };
      const counted = countedTokens(job, usage)!;
      scheduler.settle(permit, counted, completion_tokens);
      answers.push({ at: clock.now(), charged: options.rateLimit?.charge === 'estimate' ? total_tokens : counted });
      return;
    }
  };
  let done = false;
  const workers = Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let job = queue.shift(); job !== undefined; job = queue.shift()) await send(job);
    }),
  ).finally(() => (done = true));
  try {
    while (!done) {
      // Real time for the requests in flight; the clock moves only once none is.
      await new Promise((resolve) => setTimeout(resolve, 1));
      if (inFlight === 0) await clock.step();
    }
    await workers;
    const from = Math.floor(answers.length / 3);
    const charged = answers.slice(from + 1).reduce((sum, answer) => sum + answer.charged, 0);
    const minutes = (answers.at(-1)!.at - answers[from]!.at) / 60_000;
    return { byStatus: { ...server.stats.byStatus }, tokensPerMinute: charged / minutes, reserved };
  } finally {
    await server.close();
  }
}

describe('limits and charges learned from the headers alone, on one clock with the offline server', () => {
  const chatJobs = async (count: number, make: (index: number) => Record<string, unknown>): Promise<Job[]> => {
    const dir = await tempDir();
    return (await loadJobs([await writeJobs(dir, Array.from({ length: count }, (_, index) => ({ id: `j${index}`, ...make(index) })))])).jobs;
  };

  it('uses at least 95% of a token limit with bounded outputs, without a 429', async () => {
    const jobs = await chatJobs(120, (i) => ({ model: 'gpt-4o-mini', prompt: `Summarize item ${i} in a few sentences.`, max_tokens: 50 + (i % 5) * 50 }));
    const { byStatus, tokensPerMinute } = await sendOnOneClock({ rateLimit: { tpm: 6_000 } }, jobs, 8);
    expect(byStatus[429]).toBeUndefined();
    expect(tokensPerMinute / 6_000).toBeGreaterThanOrEqual(0.95);
    expect(tokensPerMinute / 6_000).toBeLessThanOrEqual(1.05);
  });

  it('uses at least 90% of a token limit when outputs are unbounded and the server charges what they use, without a 429', async () => {
    const jobs = await chatJobs(300, (i) => ({ model: 'gpt-4o-mini', prompt: `Write a haiku about item ${i}.` }));
    const { byStatus, tokensPerMinute } = await sendOnOneClock({ rateLimit: { tpm: 6_000, charge: 'estimate' } }, jobs, 8);
    expect(byStatus[429]).toBeUndefined();
    expect(tokensPerMinute / 6_000).toBeGreaterThanOrEqual(0.9);
    expect(tokensPerMinute / 6_000).toBeLessThanOrEqual(1.05);
  });

  it('keeps reserving the prompt plus 256 for an unbounded output when the server charges that much', async () => {
    const jobs = await chatJobs(60, (i) => ({ model: 'gpt-4o-mini', prompt: `Write a haiku about item ${i}.` }));
    const { byStatus, reserved } = await sendOnOneClock({ rateLimit: { tpm: 30_000 } }, jobs, 8);
    expect(byStatus[429]).toBeUndefined();
    expect(Math.min(...reserved.filter((tokens) => tokens > 0))).toBeGreaterThan(DEFAULT_OUTPUT_BOUND);
  });

  it('raises the charge at once when answers suddenly get long: at most a few 429s', async () => {
    // A reasoning model: minimal effort answers in a few dozen tokens, xhigh in several hundred.
    const jobs = await chatJobs(180, (i) => ({ model: 'gpt-5-mini', prompt: `Write a haiku about item ${i}.`, params: { reasoning_effort: i < 150 ? 'minimal' : 'xhigh' } }));
    const { byStatus, reserved } = await sendOnOneClock({ rateLimit: { tpm: 6_000, charge: 'estimate' } }, jobs, 8);
    expect(byStatus[200]).toBe(180);
    expect(byStatus[429] ?? 0).toBeLessThanOrEqual(3);
    // The last requests reserve what a long answer costs (at least 192 reasoning tokens), not a short answer's charge.
    expect(Math.min(...reserved.slice(-15))).toBeGreaterThan(192);
  });
});

describe('a run with unbounded outputs, on one clock with the offline server', () => {
  it('learns what the server charges for them and uses most of its token limit, without a 429', async () => {
    const clock = manualClock();
    const server = await startOfflineServer({ rateLimit: { tpm: 6_000, charge: 'estimate' }, now: clock.now });
    try {
      const dir = await tempDir();
      const file = await writeJobs(dir, Array.from({ length: 200 }, (_, i) => ({ id: `j${i}`, model: 'gpt-4o-mini', prompt: `Write a haiku about item ${i}.` })));
      const { jobs } = await loadJobs([file]);
      const client = new OpenAI({ apiKey: 'sk-test', baseURL: server.url, maxRetries: 0 });
      let finished = false;
      const run = runJobs(jobs, { outDir: join(dir, 'out'), client, prices: createPriceBook(), concurrency: 8, maxAttempts: 5, timeoutMs: 10_000, files: [file], clock }).finally(
        () => (finished = true),
      );
      // The clock moves only while the server has no request in flight: the run's own work takes no time on it.
      while (!finished) {
        await new Promise((resolve) => setTimeout(resolve, 1));
        if (server.stats.inFlight === 0) await clock.step();
      }
      expect((await run).ok).toBe(200);
      expect(server.stats.byStatus[429]).toBeUndefined();
      const answers = (await journalLines(join(dir, 'out')))
        .filter((line) => line.type === 'job')
        .map((line) => ({ at: Date.parse(line.finishedAt as string), tokens: (line.usage as { total_tokens: number }).total_tokens }))
        .sort((a, b) => a.at - b.at);
      // Once pacing is under way: from the answer of the first third of the jobs to the last.
      const from = Math.floor(answers.length / 3);
      const tokens = answers.slice(from + 1).reduce((sum, answer) => sum + answer.tokens, 0);
      const perMinute = (tokens / (answers.at(-1)!.at - answers[from]!.at)) * 60_000;
      expect(perMinute / 6_000).toBeGreaterThanOrEqual(0.9);
      expect(perMinute / 6_000).toBeLessThanOrEqual(1.05);
    } finally {
      await server.close();
    }
  });
});
