import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { createPriceBook } from '../src/cost/prices.js';
import { loadJobs } from '../src/jobs/load.js';
import type { RunSummary } from '../src/run/options.js';
import { runJobs } from '../src/run/run.js';
import { startOfflineServer, type FaultRule, type OfflineServer } from '../src/server/server.js';
import { fakeClock, journalLines, tempDir, writeJobs } from './helpers.js';

let server: OfflineServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});


/** Runs `jobs` against a server with `faults`, 3 attempts each; returns the summary, the job records and the output folder. */
async function runWith(faults: FaultRule[], jobs: object[], timeoutMs = 10_000): Promise<{ summary: RunSummary; records: Record<string, unknown>[]; out: string }> {
  server = await startOfflineServer({ faults });
  const dir = await tempDir();
  const file = await writeJobs(dir, jobs);
  const loaded = await loadJobs([file]);
  expect(loaded.problems).toEqual([]);
  const out = join(dir, 'out');
  const client = new OpenAI({ apiKey: 'offline', baseURL: server.url, maxRetries: 0, timeout: timeoutMs });
  const summary = await runJobs(loaded.jobs, {
    outDir: out, client, prices: createPriceBook(), concurrency: 1, maxAttempts: 3, timeoutMs, files: [file], clock: fakeClock(),
  });
  const records = (await journalLines(out)).filter((line) => line.type === 'job');
  return { summary, records, out };
}

const chatJob = { id: 'q1', model: 'gpt-4o-mini', prompt: 'Name a colour' };
const imageJob = { id: 'pic', model: 'gpt-image-1', prompt: 'a red square', size: '1024x1024', quality: 'low', n: 2, output: 'pic-{index}.png' };

const imagesIn = async (out: string): Promise<string[]> => readdir(join(out, 'images'), { recursive: true }).catch(() => []);

describe('a connection that breaks after the headers', () => {
  it('is retried like a connection error, and the job succeeds on the next attempt', async () => {
    const { summary, records } = await runWith([{ reset: true, times: 1 }], [chatJob]);
    expect(summary.ok).toBe(1);
    expect(server!.stats.requests).toBe(2);
    expect(records).toMatchObject([{ id: 'q1', state: 'done', attempts: 2 }]);
  });

  it('fails the job after --max-attempts when it keeps breaking', async () => {
    const { summary, records } = await runWith([{ reset: true }], [chatJob]);
    expect(summary.failed).toBe(1);
    expect(server!.stats.requests).toBe(3);
    expect(records).toMatchObject([{ id: 'q1', state: 'failed', attempts: 3 }]);
  });
});

describe('--timeout', () => {
  it('bounds the whole request: a body that trickles in is cut at the timeout and retried', async () => {
    const started = Date.now();
    // Each answer would take minutes at one byte every 100 ms.
    const { summary, records } = await runWith([{ trickleMs: 100, times: 2 }], [chatJob], 400);
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(summary.ok).toBe(1);
    expect(server!.stats.requests).toBe(3);
    expect(records).toMatchObject([{ id: 'q1', state: 'done', attempts: 3 }]);
  });

  it('bounds an error answer too: a 500 whose body trickles in is cut at the timeout and retried', async () => {
    const started = Date.now();
    const { summary, records } = await runWith([{ status: 500, trickleMs: 100, times: 2 }], [chatJob], 400);
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(summary.ok).toBe(1);
    expect(records).toMatchObject([{ id: 'q1', state: 'done', attempts: 3 }]);
  });
});

describe('a 200 whose body is not an answer', () => {
  const broken = ['not-json', 'empty', 'html', 'choices-null', 'no-choices', 'no-message'] as const;

  it.each(broken)('(%s) is retried like a 5xx, and the job succeeds on the next attempt', async (body) => {
    const { summary, records } = await runWith([{ body, times: 1 }], [chatJob]);
    expect(summary.ok).toBe(1);
    expect(server!.stats.requests).toBe(2);
    expect(records).toMatchObject([{ id: 'q1', state: 'done', attempts: 2 }]);
  });

  it.each(broken)('(%s) fails the job with a one-line error after --max-attempts', async (body) => {
    const { summary, records } = await runWith([{ body }], [chatJob]);
    expect(summary.failed).toBe(1);
    expect(server!.stats.requests).toBe(3);
    expect(records).toMatchObject([{ id: 'q1', state: 'failed', attempts: 3, status: 200 }]);
    // An answer that is not JSON says nothing of a bill; one that reports its usage was billed, usable or not.
    if (['not-json', 'empty', 'html'].includes(body)) expect(records[0]?.costUsd).toBe(0);
    else expect(records[0]?.costUsd).toBeGreaterThan(0);
    const error = String(records[0]?.error);
    expect(error).not.toMatch(/TypeError|SyntaxError|undefined/);
    expect(error).not.toContain('\n');
    expect(error.length).toBeGreaterThan(10);
  });
});

describe('an image answer without the images asked for', () => {
  const broken = ['not-image', 'no-data', 'fewer-images'] as const;

  it.each(broken)('(%s) is retried, writes nothing to images/, and the job succeeds on the next attempt', async (body) => {
    const { summary, records, out } = await runWith([{ body, times: 1 }], [imageJob]);
    expect(summary.ok).toBe(1);
    expect(server!.stats.requests).toBe(2);
    expect(records).toMatchObject([{ id: 'pic', state: 'done', attempts: 2 }]);
    expect((await imagesIn(out)).sort()).toEqual(['pic-1.png', 'pic-2.png']);
  });

  it.each(broken)('(%s) fails the job after --max-attempts, with nothing in images/', async (body) => {
    const { summary, records, out } = await runWith([{ body }], [imageJob]);
    expect(summary.ok).toBe(0);
    expect(summary.failed).toBe(1);
    expect(server!.stats.requests).toBe(3);
    expect(records).toMatchObject([{ id: 'pic', state: 'failed', attempts: 3, files: [] }]);
    expect(await imagesIn(out)).toEqual([]);
  });

  it.each(['not-image', 'fewer-images'] as const)('(%s) billed (its usage says so) counts in the job\'s cost, on success and on failure', async (body) => {
    const once = await runWith([], [imageJob]);
    const single = once.records[0]!.costUsd as number;
    expect(single).toBeGreaterThan(0);
    await server!.close();
    const retried = await runWith([{ body, times: 1 }], [imageJob]);
    expect(retried.records).toMatchObject([{ state: 'done', attempts: 2 }]);
    // The unusable answer's images were billed but not made: its tokens, not its image count, add up.
    expect(retried.records[0]!.costUsd).toBeCloseTo(2 * single, 12);
    expect(retried.records[0]!.usage).toMatchObject({ images: 2 });
    await server!.close();
    const failed = await runWith([{ body }], [imageJob]);
    expect(failed.records).toMatchObject([{ state: 'failed', attempts: 3 }]);
    expect(failed.records[0]!.costUsd).toBeCloseTo(3 * single, 12);
    expect(failed.summary.costUsd).toBeCloseTo(3 * single, 12);
  });
});
