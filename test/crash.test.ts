import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startOfflineServer, type OfflineServer } from '../src/server/server.js';
import { journalLines, readCsv, spawnCli, succeededIds, tempDir, waitFor, writeJobs } from './helpers.js';

let server: OfflineServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** A small seeded generator (mulberry32), so a failing schedule of kills can be replayed from its seed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const JOBS = 80;
const CONCURRENCY = 8;
const KILLS = 5;

describe('SIGKILL at any moment', () => {
  it('completes on rerun with every job exactly once and never resends a job whose success was journaled', async () => {
    const seed = Number(process.env.NIGHTSHIFT_CRASH_SEED ?? Date.now() % 1_000_000);
    const random = seeded(seed);
    server = await startOfflineServer({ latencyMs: 40 });
    const dir = await tempDir();
    const out = join(dir, 'out');
    const prompts = Array.from({ length: JOBS }, (_, i) => `Crash test question ${i + 1}`);
    const file = await writeJobs(dir, prompts.map((prompt, i) => ({ id: `c${i + 1}`, model: 'gpt-4o-mini', prompt })));
    const args = ['run', file, '--out', out, '--concurrency', String(CONCURRENCY), '--quiet'];
    const env = { OPENAI_API_KEY: 'sk-test-crash-key-1234567890', OPENAI_BASE_URL: server.url };
    const countOf = (id: string): number => server!.countByKey(prompts[Number(id.slice(1)) - 1]!);

    /** Request counts, taken after a kill, of the jobs whose success the journal already held. */
    const sentWhenJournaled = new Map<string, number>();
    const landed: string[] = [];
    for (let kill = 0; kill < KILLS; kill++) {
      const left = JOBS - (await succeededIds(out)).size;
      const before = server.stats.requests;
      // Kill after a random number of requests of this run (0: during start-up; all: while it writes its outputs),
      // plus a random few milliseconds, so kills fall before, between and during journal writes.
      const afterRequests = Math.floor(random() * (left + 1));
      const extraMs = Math.floor(random() * 30);
      const child = spawnCli(args, { cwd: dir, env });
      const finished = { value: false };
      void child.exited.then(() => (finished.value = true));
      await waitFor(() => finished.value || server!.stats.requests - before >= afterRequests, 15_000, 'requests');
      await new Promise((resolve) => setTimeout(resolve, extraMs));
      child.child.kill('SIGKILL');
      const { signal } = await child.exited;
      landed.push(signal === 'SIGKILL' ? `killed after ${server.stats.requests - before} requests` : 'finished before the kill');

      for (const id of await succeededIds(out)) {
        const count = countOf(id);
        const earlier = sentWhenJournaled.get(id);
        if (earlier !== undefined) expect(count, `${id} was sent again after its success was journaled (seed ${seed})`).toBe(earlier);
        sentWhenJournaled.set(id, count);
      }
    }

    const final = spawnCli(args, { cwd: dir, env });
    const { code } = await final.exited;
    expect(code, `final run (seed ${seed}): ${final.output().stderr}`).toBe(0);

    const rows = await readCsv(join(out, 'results.csv'));
    expect(rows.map((row) => row.id)).toEqual(prompts.map((_, i) => `c${i + 1}`));
    expect(rows.every((row) => row.status === 'ok')).toBe(true);

    const done = (await journalLines(out)).filter((line) => line.type === 'job' && line.state === 'done').map((line) => String(line.id));
    expect(done.length, 'one success record per job').toBe(JOBS);
    expect(new Set(done).size).toBe(JOBS);

    for (const [id, count] of sentWhenJournaled) expect(countOf(id), `${id} resent (seed ${seed})`).toBe(count);
    const counts = prompts.map((_, i) => countOf(`c${i + 1}`));
    expect(Math.min(...counts)).toBeGreaterThanOrEqual(1);
    // Only what was under way when a process died may have been sent twice: the requests in flight (--concurrency at
    // most) and the answers on their way to the journal (at most one per worker).
    const resent = counts.reduce((sum, count) => sum + count - 1, 0);
    expect(resent).toBeLessThanOrEqual(KILLS * 2 * CONCURRENCY);
    await expect(access(join(out, 'nightshift.lock'))).rejects.toThrow();

    console.info(
      `crash test (seed ${seed}): ${landed.join('; ')}; ${server.stats.requests} requests for ${JOBS} jobs, ` +
        `${resent} resent (under way at a kill), max ${Math.max(...counts)} per job`,
    );
  });
});
