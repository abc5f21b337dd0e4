import { join } from 'node:path';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import type { Clock } from '../src/common/clock.js';
import { loadJobs } from '../src/jobs/load.js';
import { createPriceBook } from '../src/cost/prices.js';
import type { RunEvent } from '../src/run/options.js';
import { runJobs } from '../src/run/run.js';
import { startOfflineServer, type OfflineServer } from '../src/server/server.js';
import { fakeClock, tempDir, waitFor, writeJobs } from './helpers.js';

let server: OfflineServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});


async function setup(jobCount: number) {
  const dir = await tempDir();
  const file = await writeJobs(
    dir,
    Array.from({ length: jobCount }, (_, i) => ({ id: `j${i + 1}`, model: 'gpt-4o-mini', prompt: `Prompt ${i + 1}` })),
  );
  const { jobs, problems } = await loadJobs([file]);
  expect(problems).toEqual([]);
  const client = new OpenAI({ apiKey: 'offline', baseURL: server!.url, maxRetries: 0 });
  return { dir, jobs, client, file };
}

describe('retry timing', () => {
  it('waits exactly the retry-after-ms the server asks for after a 429, then succeeds', async () => {
    server = await startOfflineServer({ faults: [{ status: 429, times: 1, retryAfterMs: 1500 }] });
    const { dir, jobs, client, file } = await setup(1);
    const clock = fakeClock();
    const events: RunEvent[] = [];
    const summary = await runJobs(jobs, {
      outDir: join(dir, 'out'), client, prices: createPriceBook(), concurrency: 1, maxAttempts: 3, timeoutMs: 10_000,
      files: [file], clock, onEvent: (event) => events.push(event),
    });
    expect(summary.ok).toBe(1);
    expect(clock.sleeps).toEqual([1500]);
    expect(events.filter((event) => event.type === 'retry')).toHaveLength(1);
    expect(server.stats.requests).toBe(2);
  });

  it('reads retry-after in seconds when retry-after-ms is absent', async () => {
    server = await startOfflineServer({ faults: [{ status: 429, times: 1, retryAfterSeconds: 7 }] });
    const { dir, jobs, client, file } = await setup(1);
    const clock = fakeClock();
    await runJobs(jobs, { outDir: join(dir, 'out'), client, prices: createPriceBook(), concurrency: 1, maxAttempts: 3, timeoutMs: 10_000, files: [file], clock });
    expect(clock.sleeps).toEqual([7000]);
  });

  it('backs off exponentially without a retry-after, and gives up after --max-attempts', async () => {
    server = await startOfflineServer({ faults: [{ status: 503 }] });
    const { dir, jobs, client, file } = await setup(1);
    const clock = fakeClock();
    const summary = await runJobs(jobs, {
      outDir: join(dir, 'out'), client, prices: createPriceBook(), concurrency: 1, maxAttempts: 4, timeoutMs: 10_000,
      files: [file], clock, random: () => 0.999999,
    });
    expect(summary.failed).toBe(1);
    expect(server.stats.requests).toBe(4);
    expect(clock.sleeps).toEqual([500, 1000, 2000]);
  });
});

describe('a job waiting to retry', () => {
  it('holds no other job back: free workers take the jobs after it', async () => {
    server = await startOfflineServer({ faults: [{ status: 503, times: 1, retryAfterMs: 60_000, match: { promptIncludes: 'Prompt 1' } }] });
    const { dir, jobs, client, file } = await setup(6);
    // Retry waits end only when the test says so.
    let endWait: (() => void) | undefined;
    const clock: Clock = {
      now: () => Date.now(),
      sleep: (ms, signal) => new Promise((resolve) => {
        endWait = () => resolve();
        signal?.addEventListener('abort', () => resolve(), { once: true });
      }),
    };
    const finished: string[] = [];
    const run = runJobs(jobs, {
      outDir: join(dir, 'out'), client, prices: createPriceBook(), concurrency: 3, maxAttempts: 2, timeoutMs: 10_000,
      files: [file], clock, onEvent: (event) => event.type === 'finished' && finished.push(event.job.id),
    });
    await waitFor(() => finished.length === 5, 10_000, 'the five other jobs to finish while j1 waits');
    expect(finished.sort()).toEqual(['j2', 'j3', 'j4', 'j5', 'j6']);
    endWait!();
    const summary = await run;
    expect(summary.ok).toBe(6);
    expect(finished.at(-1)).toBe('j1');
  });
});
