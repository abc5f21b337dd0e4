import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Budget } from '../src/cost/budget.js';
import { startOfflineServer, type OfflineServer } from '../src/server/server.js';
import { cli, readCsv, tempDir, writeJobs } from './helpers.js';

describe('Budget', () => {
  it('refuses a reservation that would pass the cap, counting reservations in flight', () => {
    const budget = new Budget(1);
    expect(budget.tryReserve(0.4)).toBe(true);
    expect(budget.tryReserve(0.4)).toBe(true);
    expect(budget.tryReserve(0.4)).toBe(false);
  });

  it('frees the unused part of a reservation when the job settles below its worst case', () => {
    const budget = new Budget(1);
    budget.tryReserve(0.6);
    budget.settle(0.6, 0.1);
    expect(budget.tryReserve(0.9)).toBe(true);
    expect(budget.spentUsd).toBeCloseTo(0.1, 9);
  });

  it('counts what earlier runs spent against the cap', () => {
    const budget = new Budget(1, 0.95);
    expect(budget.tryReserve(0.06)).toBe(false);
    expect(budget.tryReserve(0.05)).toBe(true);
  });

  it('rejects a negative or non-finite cap', () => {
    expect(() => new Budget(-1)).toThrow(TypeError);
    expect(() => new Budget(Number.NaN)).toThrow(TypeError);
  });
});

describe('nightshift run --budget', () => {
  let server: OfflineServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('stops before the spend could pass the budget, exits 3, and a larger budget continues without resending', async () => {
    server = await startOfflineServer();
    const env = { OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: server.url };
    const dir = await tempDir();
    const jobs = Array.from({ length: 10 }, (_, i) => ({ id: `b${i + 1}`, model: 'gpt-4o-mini', prompt: `Budget question ${i + 1}`, max_completion_tokens: 100 }));
    const file = await writeJobs(dir, jobs);
    const out = join(dir, 'out');

    const first = await cli(['run', file, '--out', out, '--budget', '0.0001', '--concurrency', '3'], { env });
    expect(first.code).toBe(3);
    expect(first.stderr).toMatch(/--budget/);
    const rows = await readCsv(join(out, 'results.csv'));
    const spent = rows.reduce((sum, row) => sum + Number(row.cost_usd || 0), 0);
    expect(spent).toBeGreaterThan(0);
    expect(spent).toBeLessThanOrEqual(0.0001);
    const done = rows.filter((row) => row.status === 'ok').length;
    expect(done).toBeGreaterThan(0);
    expect(done).toBeLessThan(10);

    const second = await cli(['run', file, '--out', out, '--budget', '1'], { env });
    expect(second.code).toBe(0);
    const after = await readCsv(join(out, 'results.csv'));
    expect(after.every((row) => row.status === 'ok')).toBe(true);
    for (const job of jobs) expect(server.countByKey(job.prompt)).toBe(1);
  });

  it('refuses to start when a model has no price, sending nothing', async () => {
    server = await startOfflineServer();
    const env = { OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: server.url };
    const dir = await tempDir();
    const file = await writeJobs(dir, [{ id: 'x', model: 'my-local-model', prompt: 'hi' }]);
    const { code, stderr } = await cli(['run', file, '--out', join(dir, 'out'), '--budget', '1'], { env });
    expect(code).toBe(2);
    expect(stderr).toContain('my-local-model');
    expect(server.stats.requests).toBe(0);
  });
});

describe('--budget with jobs in flight', () => {
  it('waits for reservations in flight to settle instead of stopping while money is left', async () => {
    const dir = await tempDir();
    // Worst cases (reasoning models without max_completion_tokens) are far above actual costs: with several
    // in flight, the next job only fits once earlier ones settle.
    const { code } = await cli(['run', 'jobs/chat.jsonl', '--out', join(dir, 'out'), '--offline', '--budget', '0.5', '--concurrency', '4']);
    expect(code).toBe(0);
    const rows = await readCsv(join(dir, 'out', 'results.csv'));
    expect(rows.every((row) => row.status === 'ok')).toBe(true);
  });
});
