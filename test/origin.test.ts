import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, journalLines, offlineServerPerTest, readCsv, tempDir, writeJobs } from './helpers.js';

const KEY = 'sk-test-origin-key-1234567890';
const offline = offlineServerPerTest(KEY);

const chatJobs = (count: number, extra: Record<string, unknown> = {}): Record<string, unknown>[] =>
  Array.from({ length: count }, (_, i) => ({ id: `o${i + 1}`, model: 'gpt-4o-mini', prompt: `Origin question ${i + 1}`, ...extra }));

const jobRecords = async (out: string): Promise<Record<string, unknown>[]> => (await journalLines(out)).filter((line) => line.type === 'job');
const runRecords = async (out: string): Promise<Record<string, unknown>[]> => (await journalLines(out)).filter((line) => line.type === 'run');

/** A job file, and an output folder the built-in offline server (`--offline`) answered every job of. */
async function answeredOffline(jobs = chatJobs(3), exitCode = 0): Promise<{ dir: string; file: string; out: string }> {
  const dir = await tempDir();
  const file = await writeJobs(dir, jobs);
  const out = join(dir, 'out');
  expect((await cli(['run', file, '--offline', '--quiet', '--out', out])).code).toBe(exitCode);
  return { dir, file, out };
}

describe('where an answer came from', () => {
  it('is journaled: offline for --offline, the API origin (no path, no key) for a real run', async () => {
    const { file, out } = await answeredOffline();
    expect((await jobRecords(out)).map((record) => record.origin)).toEqual(['offline', 'offline', 'offline']);
    expect((await runRecords(out)).map((record) => record.origin)).toEqual(['offline']);

    // A served instance reached through OPENAI_BASE_URL stands for the real API.
    const env = await offline.serve();
    expect((await cli(['run', file, '--quiet', '--out', out], { env })).code).toBe(0);
    const origin = new URL(env.OPENAI_BASE_URL!).origin;
    expect((await jobRecords(out)).slice(3).map((record) => record.origin)).toEqual([origin, origin, origin]);
    expect((await runRecords(out)).map((record) => record.origin)).toEqual(['offline', origin]);
    expect(await readFile(join(out, 'journal.jsonl'), 'utf8')).not.toContain(KEY);
  });

  it('sends again, against the real API, every job only the offline server answered, and says so', async () => {
    const { file, out } = await answeredOffline();
    const env = await offline.serve();
    const real = await cli(['run', file, '--out', out], { env });
    expect(real.code).toBe(0);
    expect(offline.server.stats.requests).toBe(3);
    expect(real.stderr).toMatch(/3 answered by the offline server/);
    const rows = await readCsv(join(out, 'results.csv'));
    expect(rows.map((row) => row.status)).toEqual(['ok', 'ok', 'ok']);

    // The real answers are done now: nothing more is sent.
    expect((await cli(['run', file, '--quiet', '--out', out], { env })).code).toBe(0);
    expect(offline.server.stats.requests).toBe(3);
  });

  it('keeps the real answers on a later offline run', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(3));
    const out = join(dir, 'out');
    expect((await cli(['run', file, '--quiet', '--out', out], { env })).code).toBe(0);
    expect((await cli(['run', file, '--offline', '--quiet', '--out', out])).code).toBe(0);
    const origin = new URL(env.OPENAI_BASE_URL!).origin;
    expect((await jobRecords(out)).map((record) => record.origin)).toEqual([origin, origin, origin]);
    expect((await readCsv(join(out, 'results.csv'))).map((row) => row.status)).toEqual(['ok', 'ok', 'ok']);
  });

  it("never counts offline dollars against a real run's --budget", async () => {
    // Replies cut at 5 tokens: each job's worst case is about what it costs. Cut off, they are incomplete (exit 1).
    const { file, out } = await answeredOffline(chatJobs(10, { max_completion_tokens: 5 }), 1);
    const offlineUsd = (await readCsv(join(out, 'results.csv'))).reduce((sum, row) => sum + Number(row.cost_usd), 0);
    expect(offlineUsd).toBeGreaterThan(0);
    // Enough for the ten real jobs, not for them on top of the offline ones.
    const budget = ((offlineUsd * 15) / 10).toPrecision(6);
    const env = await offline.serve();
    const real = await cli(['run', file, '--quiet', '--out', out, '--budget', budget, '--concurrency', '1'], { env });
    // Every job sent and answered (cut off again: exit 1); a budget counting the offline dollars would stop it (exit 3).
    expect(real.code).toBe(1);
    expect(offline.server.stats.requests).toBe(10);
  });

  it('is shown apart by report: offline answers are not in the billed TOTAL or its CSV', async () => {
    const { dir, file, out } = await answeredOffline(chatJobs(3));
    const env = await offline.serve();
    await writeJobs(dir, chatJobs(2));
    expect((await cli(['run', file, '--quiet', '--out', out], { env })).code).toBe(0);
    const csv = join(dir, 'report.csv');
    const report = await cli(['report', out, '--csv', csv]);
    expect(report.code).toBe(0);
    const realUsd = (await readCsv(join(out, 'results.csv'))).reduce((sum, row) => sum + Number(row.cost_usd), 0);
    const total = (await readCsv(csv)).at(-1)!;
    expect(total).toMatchObject({ model: 'TOTAL', jobs: '2', ok: '2' });
    expect(Number(total.cost_usd)).toBeCloseTo(realUsd, 9);
    // The offline answers get a table (and a TOTAL) of their own.
    expect(report.stdout.split('\n').filter((line) => line.startsWith('TOTAL'))).toHaveLength(2);
  });

  it('is offline for answers of a served offline server (nightshift serve) too, whatever its address', async () => {
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(3));
    const out = join(dir, 'out');
    // As `nightshift serve` answers: marked, reached through OPENAI_BASE_URL like any API.
    const served = await offline.serve({ markAnswers: true });
    expect((await cli(['run', file, '--quiet', '--out', out], { env: served })).code).toBe(0);
    const origin = `offline@${new URL(served.OPENAI_BASE_URL!).origin}`;
    expect((await jobRecords(out)).map((record) => record.origin)).toEqual([origin, origin, origin]);
    // The same offline server again: its answers stand.
    expect((await cli(['run', file, '--quiet', '--out', out], { env: served })).code).toBe(0);
    expect(offline.server.stats.requests).toBe(3);
    // Any other address is taken for an API: it is sent every job.
    const real = await offline.serve();
    expect((await cli(['run', file, '--quiet', '--out', out], { env: real })).code).toBe(0);
    expect(offline.server.stats.requests).toBe(3);
  });

  it('lets a real --fresh run start over a folder of offline answers alone, and an offline one not', async () => {
    const { file, out } = await answeredOffline();
    // Offline again: those answers would be kept by a plain rerun, so --fresh asks for --force.
    expect((await cli(['run', file, '--offline', '--quiet', '--fresh', '--out', out])).code).toBe(2);
    const env = await offline.serve();
    expect((await cli(['run', file, '--quiet', '--fresh', '--out', out], { env })).code).toBe(0);
    expect(offline.server.stats.requests).toBe(3);
  });

  it('leaves no job out of estimate for being answered by the offline server: a real run pays for it', async () => {
    const { dir, file, out } = await answeredOffline();
    const csv = join(dir, 'estimate.csv');
    expect((await cli(['estimate', file, '--out', out, '--csv', csv])).code).toBe(0);
    expect((await readCsv(csv)).at(-1)).toMatchObject({ model: 'TOTAL', jobs: '3' });
  });

  it('counts answers journaled without an origin (nightshift 0.1.0) as real: they are not sent again', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(3));
    const out = join(dir, 'out');
    expect((await cli(['run', file, '--quiet', '--out', out], { env })).code).toBe(0);
    const old = (await journalLines(out)).map(({ origin: _, ...record }) => JSON.stringify(record));
    await writeFile(join(out, 'journal.jsonl'), `${old.join('\n')}\n`);
    expect((await cli(['run', file, '--quiet', '--out', out], { env })).code).toBe(0);
    expect(offline.server.stats.requests).toBe(3);
  });
});
