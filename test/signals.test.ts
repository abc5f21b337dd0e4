import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, journalLines, offlineServerPerTest, readCsv, spawnCli, tempDir, waitFor, writeJobs } from './helpers.js';

/** An offline server the CLI reaches over HTTP, as it would the real API. */
const offline = offlineServerPerTest('sk-test-signals-key-1234567890');
const serve = offline.serve;

async function setup(jobCount: number) {
  const dir = await tempDir();
  const out = join(dir, 'out');
  const prompts = Array.from({ length: jobCount }, (_, i) => `Signal test question ${i + 1}`);
  const file = await writeJobs(dir, prompts.map((prompt, i) => ({ id: `s${i + 1}`, model: 'gpt-4o-mini', prompt })));
  return { dir, out, file, prompts };
}

/** Sends `signal` and resolves with the exit and how long it took. */
async function stop(child: ReturnType<typeof spawnCli>, signal: NodeJS.Signals) {
  const sent = Date.now();
  child.child.kill(signal);
  const exit = await child.exited;
  return { ...exit, ms: Date.now() - sent };
}

/** Polls an asynchronous condition (a file being read) until it holds. */
async function waitUntil(condition: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const statuses = async (out: string): Promise<string[]> => (await readCsv(join(out, 'results.csv'))).map((row) => row.status!);
const lockGone = (out: string): Promise<void> => expect(access(join(out, 'nightshift.lock'))).rejects.toThrow();

describe('signals', () => {
  it.each(['SIGINT', 'SIGTERM'] as const)(
    'on %s lets requests in flight finish, writes every output, says how to resume and exits 130',
    async (signal) => {
      const env = await serve({ latencyMs: 400 });
      const { dir, out, file, prompts } = await setup(12);
      const child = spawnCli(['run', file, '--out', out, '--concurrency', '4'], { cwd: dir, env });
      // results.csv grows as jobs finish, before the run ends.
      await waitUntil(async () => (await statuses(out).catch((): string[] => [])).includes('ok'));
      await waitFor(() => offline.server.stats.inFlight === 4, 20_000, 'four requests in flight');

      const { code } = await stop(child, signal);
      expect(code, child.output().stderr).toBe(130);
      expect(child.output().stderr).toMatch(/same command again/);
      // Those in flight were answered and journaled; nothing else was sent.
      const sent = offline.server.stats.requests;
      expect(sent).toBeGreaterThanOrEqual(5);
      expect(sent).toBeLessThanOrEqual(12);
      expect(offline.server.stats.byStatus[200]).toBe(sent);
      expect(await statuses(out)).toEqual([...Array(sent).fill('ok'), ...Array(12 - sent).fill('pending')]);
      expect((await readCsv(join(out, 'usage.csv'))).at(-1)).toMatchObject({ jobs: '12', ok: String(sent) });
      await lockGone(out);

      const again = await cli(['run', file, '--out', out, '--quiet'], { env });
      expect(again.code).toBe(0);
      expect(offline.server.stats.requests).toBe(12);
      for (const prompt of prompts) expect(offline.server.countByKey(prompt)).toBe(1);
    },
  );

  it('abandons requests in flight at once on a second SIGINT, leaving a consistent journal', async () => {
    const env = await serve({ latencyMs: 10_000 });
    const { dir, out, file, prompts } = await setup(6);
    const child = spawnCli(['run', file, '--out', out, '--concurrency', '3'], { cwd: dir, env });
    await waitFor(() => offline.server.stats.inFlight === 3, 10_000, 'three requests in flight');
    child.child.kill('SIGINT');
    await waitFor(() => child.output().stderr.includes('SIGINT'), 5000, 'the first SIGINT to be noticed');

    const { code, ms } = await stop(child, 'SIGINT');
    expect(code, child.output().stderr).toBe(130);
    expect(ms).toBeLessThan(3000);
    expect(child.output().stderr).toMatch(/same command again/);
    const lines = await journalLines(out);
    expect(lines.map((line) => line.type)).toEqual(['run']);
    expect(await statuses(out)).toEqual(Array(6).fill('pending'));
    await lockGone(out);

    await offline.server.close();
    const fast = await serve();
    const again = await cli(['run', file, '--out', out, '--quiet'], { env: fast });
    expect(again.code).toBe(0);
    for (const prompt of prompts) expect(offline.server.countByKey(prompt)).toBe(1);
  });

  it('gives requests in flight no more than --grace seconds after the first signal', async () => {
    const env = await serve({ latencyMs: 10_000 });
    const { dir, out, file } = await setup(4);
    const child = spawnCli(['run', file, '--out', out, '--concurrency', '2', '--grace', '0.5'], { cwd: dir, env });
    await waitFor(() => offline.server.stats.inFlight === 2, 10_000, 'two requests in flight');

    const { code, ms } = await stop(child, 'SIGINT');
    expect(code, child.output().stderr).toBe(130);
    expect(ms).toBeGreaterThanOrEqual(400);
    expect(ms).toBeLessThan(3500);
    expect(await statuses(out)).toEqual(Array(4).fill('pending'));
    await lockGone(out);
  });

  it('does not wait out a retry delay after the first signal: a job waiting to retry stays pending', async () => {
    const env = await serve({ faults: [{ status: 503, retryAfterMs: 20_000 }] });
    const { dir, out, file } = await setup(2);
    const child = spawnCli(['run', file, '--out', out, '--concurrency', '2'], { cwd: dir, env });
    await waitFor(() => (offline.server.stats.byStatus[503] ?? 0) === 2, 10_000, 'two 503 answers');

    const { code, ms } = await stop(child, 'SIGINT');
    expect(code, child.output().stderr).toBe(130);
    expect(ms).toBeLessThan(3000);
    expect(offline.server.stats.requests).toBe(2);
    expect(await statuses(out)).toEqual(['pending', 'pending']);
  });
});
