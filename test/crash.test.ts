import { createHash } from 'node:crypto';
import { access, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startOfflineServer, type OfflineServer } from '../src/server/server.js';
import { cli, journalLines, readCsv, seeded, spawnCli, succeededIds, tempDir, waitFor, writeJobs } from './helpers.js';

let server: OfflineServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

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

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/** Each job's latest record in the journal, by id. */
async function latestRecords(out: string): Promise<Map<string, Record<string, unknown>>> {
  const latest = new Map<string, Record<string, unknown>>();
  for (const line of await journalLines(out)) if (line.type === 'job') latest.set(String(line.id), line);
  return latest;
}

const filesOf = (record: Record<string, unknown> | undefined): { path: string; bytes: number; sha256: string }[] =>
  (record?.files ?? []) as { path: string; bytes: number; sha256: string }[];

/** The journal's size in bytes, 0 while there is none. */
const journalBytes = (out: string): Promise<number> => stat(join(out, 'journal.jsonl')).then((stats) => stats.size, () => 0);

describe('SIGKILL during image renames', () => {
  it('loses no image and sends nothing when the kills fall among renames of jobs trading names', async () => {
    const seed = Number(process.env.NIGHTSHIFT_CRASH_SEED ?? Date.now() % 1_000_000);
    const random = seeded(seed);
    const count = 40;
    server = await startOfflineServer();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const env = { OPENAI_API_KEY: 'sk-test-crash-key-1234567890', OPENAI_BASE_URL: server.url };
    // Jobs trade names in pairs (n1 <-> n2, n3 <-> n4, ...), back and forth from one run to the next.
    const jobsNamed = (swapped: boolean) =>
      Array.from({ length: count }, (_, i) => ({
        id: `m${i + 1}`,
        kind: 'image',
        model: 'dall-e-2',
        size: '256x256',
        prompt: `Crash test picture ${i + 1}`,
        output: `n${(swapped ? i ^ 1 : i) + 1}.png`,
      }));
    const file = await writeJobs(dir, jobsNamed(false));
    const args = ['run', file, '--out', out, '--quiet'];
    expect((await cli(args, { env })).code).toBe(0);
    expect(server.stats.requests).toBe(count);
    const original = new Map([...(await latestRecords(out))].map(([id, record]) => [id, filesOf(record)[0]!]));

    const landed: string[] = [];
    let swapped = false;
    for (let kill = 0; kill < 5; kill++) {
      swapped = !swapped;
      await writeJobs(dir, jobsNamed(swapped));
      // Killed a few milliseconds after the run record (journaled just before the renames start) or after the first
      // file stepped aside, so that kills fall before, among and after the renames and while they are journaled.
      const before = await journalBytes(out);
      const onAside = random() < 0.7;
      // Files set aside by an earlier kill are there from the start: a rename is one that changes the set.
      const aside = async (): Promise<string> => (await readdir(join(out, 'images'))).filter((name) => name.endsWith('.moving')).sort().join('/');
      const asideBefore = await aside();
      const child = spawnCli(args, { cwd: dir, env });
      const finished = { value: false };
      void child.exited.then(() => (finished.value = true));
      let started = false;
      const look = async (): Promise<boolean> => (onAside ? (await aside()) !== asideBefore : (await journalBytes(out)) > before);
      const poll = setInterval(() => void look().then((seen) => (started ||= seen)), 1);
      await waitFor(() => finished.value || started, 15_000, 'the renames').finally(() => clearInterval(poll));
      const delay = Math.floor(random() * 10);
      await new Promise((resolve) => setTimeout(resolve, delay));
      child.child.kill('SIGKILL');
      const { signal } = await child.exited;
      const moving = (await aside()).split('/').filter(Boolean).length;
      landed.push(signal === 'SIGKILL' ? `killed ${delay} ms after ${onAside ? 'a rename' : 'the run record'} (${moving} aside)` : 'finished before the kill');
    }

    const final = spawnCli(args, { cwd: dir, env });
    const { code } = await final.exited;
    expect(code, `final run (seed ${seed}): ${final.output().stderr}`).toBe(0);
    expect(server.stats.requests, `images made again (seed ${seed}, ${landed.join(', ')})`).toBe(count);
    const latest = await latestRecords(out);
    for (const [i, job] of jobsNamed(swapped).entries()) {
      const files = filesOf(latest.get(job.id));
      expect(files.map((f) => [f.path, f.sha256]), `${job.id} (seed ${seed})`).toEqual([[`images/${job.output}`, original.get(job.id)!.sha256]]);
      expect(sha256(await readFile(join(out, 'images', job.output))), `${job.id}'s image (seed ${seed}, job ${i})`).toBe(original.get(job.id)!.sha256);
    }
    expect((await readdir(join(out, 'images'))).filter((name) => !name.endsWith('.png'))).toEqual([]);
    console.info(`rename crash test (seed ${seed}): ${landed.join(', ')}`);
  });
});

describe('SIGKILL during a run of image jobs', () => {
  it('keeps every journaled image intact and resends only the jobs the journal does not hold', async () => {
    const seed = Number(process.env.NIGHTSHIFT_CRASH_SEED ?? Date.now() % 1_000_000);
    const random = seeded(seed);
    const count = 40;
    server = await startOfflineServer({ latencyMs: 30 });
    const dir = await tempDir();
    const out = join(dir, 'out');
    const prompts = Array.from({ length: count }, (_, i) => `Crash test image ${i + 1}`);
    const file = await writeJobs(
      dir,
      prompts.map((prompt, i) => ({ id: `p${i + 1}`, kind: 'image', model: 'dall-e-2', size: '256x256', prompt })),
    );
    const args = ['run', file, '--out', out, '--concurrency', '8', '--quiet'];
    const env = { OPENAI_API_KEY: 'sk-test-crash-key-1234567890', OPENAI_BASE_URL: server.url };

    const landed: string[] = [];
    for (let kill = 0; kill < 4; kill++) {
      const left = count - (await succeededIds(out)).size;
      const before = server.stats.requests;
      const afterRequests = Math.floor(random() * (left + 1));
      const child = spawnCli(args, { cwd: dir, env });
      const finished = { value: false };
      void child.exited.then(() => (finished.value = true));
      await waitFor(() => finished.value || server!.stats.requests - before >= afterRequests, 15_000, 'requests');
      await new Promise((resolve) => setTimeout(resolve, Math.floor(random() * 30)));
      child.child.kill('SIGKILL');
      const { signal } = await child.exited;
      landed.push(signal === 'SIGKILL' ? `killed after ${server.stats.requests - before} requests` : 'finished before the kill');

      for (const [id, record] of await latestRecords(out)) {
        if (record.state !== 'done') continue;
        for (const produced of filesOf(record)) {
          const bytes = await readFile(join(out, produced.path));
          expect(bytes.length, `${id} (seed ${seed})`).toBe(produced.bytes);
          expect(sha256(bytes), `${id} (seed ${seed})`).toBe(produced.sha256);
        }
      }
    }

    const journaled = await succeededIds(out);
    const counts = new Map(prompts.map((prompt, i) => [`p${i + 1}`, server!.countByKey(prompt)]));
    const final = spawnCli(args, { cwd: dir, env });
    const { code } = await final.exited;
    expect(code, `final run (seed ${seed}): ${final.output().stderr}`).toBe(0);
    for (const [id, before] of counts) {
      const after = server.countByKey(prompts[Number(id.slice(1)) - 1]!);
      expect(after - before, `${id} (seed ${seed}, ${landed.join('; ')})`).toBe(journaled.has(id) ? 0 : 1);
    }
    expect((await succeededIds(out)).size).toBe(count);
    console.info(`image crash test (seed ${seed}): ${landed.join('; ')}`);
  });
});
