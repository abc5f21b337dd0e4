import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startOfflineServer, type OfflineServer } from '../src/server/server.js';
import { journalLines, readCsv, seeded, spawnCli, tempDir, waitFor, writeJobs } from './helpers.js';

let server: OfflineServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const JOBS = 40;
const PER_BATCH = 4;
const KILLS = 6;

describe('SIGKILL during batch submission and collection', () => {
  it('never runs a job in two batches, loses no result and leaves nothing on the account', async () => {
    const seed = Number(process.env.NIGHTSHIFT_CRASH_SEED ?? Date.now() % 1_000_000);
    const random = seeded(seed);
    // Each HTTP request takes a little time, so kills fall between the steps of a submission and inside a collection.
    server = await startOfflineServer({ latencyMs: 3, markAnswers: false, batch: { processingMs: 150 } });
    const dir = await tempDir();
    const out = join(dir, 'out');
    const jobs = Array.from({ length: JOBS }, (_, i) => ({ id: `b${i + 1}`, model: i % 3 === 0 ? 'gpt-5.4-mini' : 'gpt-4.1-mini', prompt: `Batch crash question ${i + 1}` }));
    const file = await writeJobs(dir, jobs);
    const args = ['run', file, '--out', out, '--batch', '--wait', '--poll-interval', '0.05', '--batch-max-requests', String(PER_BATCH), '--quiet'];
    const env = { OPENAI_API_KEY: 'sk-test-batch-crash-1234567890', OPENAI_BASE_URL: server.url };

    const landed: string[] = [];
    for (let kill = 0; kill < KILLS; kill++) {
      const before = server.stats.requests;
      // A run makes a few requests per part (upload, create, polls, downloads, deletes): kill after a random number.
      const afterRequests = Math.floor(random() * 40);
      const extraMs = Math.floor(random() * 5);
      const child = spawnCli(args, { cwd: dir, env });
      const finished = { value: false };
      void child.exited.then(() => (finished.value = true));
      await waitFor(() => finished.value || server!.stats.requests - before >= afterRequests, 20_000, 'requests');
      await new Promise((resolve) => setTimeout(resolve, extraMs));
      child.child.kill('SIGKILL');
      const { signal } = await child.exited;
      landed.push(signal === 'SIGKILL' ? `killed after ${server.stats.requests - before} requests` : 'finished before the kill');
    }

    const final = spawnCli(args, { cwd: dir, env });
    const { code } = await final.exited;
    expect(code, `final run (seed ${seed}): ${final.output().stderr}`).toBe(0);

    const rows = await readCsv(join(out, 'results.csv'));
    expect(rows.map((row) => row.id)).toEqual(jobs.map((job) => job.id));
    expect(rows.every((row) => row.status === 'ok' && (row.batch_id ?? '').startsWith('batch_'))).toBe(true);
    // No request body ran in two batches, and every answer was journaled once.
    expect(server.batchLinesSubmittedTwice(), `seed ${seed}: ${landed.join('; ')}`).toEqual([]);
    const done = (await journalLines(out)).filter((line) => line.type === 'job').map((line) => String(line.id));
    expect(done.length, `one record per job (seed ${seed})`).toBe(JOBS);
    expect(new Set(done).size).toBe(JOBS);
    // Every file uploaded or produced was deleted from the account, including uploads a kill left unrecorded.
    const files = (await (await fetch(`${server.url}/files`, { headers: { authorization: `Bearer ${env.OPENAI_API_KEY}` } })).json()) as { data: unknown[] };
    expect(files.data, `seed ${seed}`).toEqual([]);
    console.info(`batch crash test (seed ${seed}): ${landed.join('; ')}`);
  });
});

describe('Ctrl-C while waiting for batches', () => {
  it('stops waiting and leaves the batches running; the same command collects them later', async () => {
    server = await startOfflineServer({ markAnswers: false, batch: { processingMs: 1500 } });
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, Array.from({ length: 6 }, (_, i) => ({ id: `w${i + 1}`, model: 'gpt-4.1-mini', prompt: `Waiting question ${i + 1}` })));
    const env = { OPENAI_API_KEY: 'sk-test-batch-wait-1234567890', OPENAI_BASE_URL: server.url };
    const args = ['run', file, '--out', out, '--batch', '--wait', '--poll-interval', '0.05', '--quiet'];
    const child = spawnCli(args, { cwd: dir, env });
    await waitFor(() => child.output().stderr.length > 0 || server!.stats.requests >= 4, 20_000, 'the batch to be submitted');
    await new Promise((resolve) => setTimeout(resolve, 100));
    child.child.kill('SIGINT');
    const { code } = await child.exited;
    expect(code, child.output().stderr).toBe(130);
    const rows = await readCsv(join(out, 'results.csv'));
    expect(rows.every((row) => row.status === 'pending')).toBe(true);
    // The batch was not cancelled: it finishes on its own, and the next run collects it without sending anything again.
    const batches = (await (await fetch(`${server.url}/batches`, { headers: { authorization: `Bearer ${env.OPENAI_API_KEY}` } })).json()) as { data: { status: string }[] };
    expect(batches.data.map((batch) => batch.status)).toEqual([expect.stringMatching(/validating|in_progress/)]);
    const again = spawnCli(args, { cwd: dir, env });
    expect((await again.exited).code, again.output().stderr).toBe(0);
    expect((await readCsv(join(out, 'results.csv'))).every((row) => row.status === 'ok')).toBe(true);
    expect(server.batchLinesSubmittedTwice()).toEqual([]);
  });
});
