import { existsSync, readFileSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { zeroUsage } from '../src/common/types.js';
import { fingerprint } from '../src/jobs/fingerprint.js';
import { loadJobs } from '../src/jobs/load.js';
import { jobsInMemory } from '../src/jobs/source.js';
import { openOutputFolder } from '../src/output/folder.js';
import { jobRecord } from '../src/output/job-record.js';
import { apiOrigin } from '../src/output/journal.js';
import { indexedJob, JournalIndex } from '../src/output/journal-index.js';
import { JournalWriter } from '../src/output/journal-writer.js';
import { OrderedResults } from '../src/output/ordered-results.js';
import { RecordReader } from '../src/output/record-reader.js';
import { cli, offlineServerPerTest, readCsv, seeded, spawnCli, tempDir, waitFor, writeJobs } from './helpers.js';

const offline = offlineServerPerTest('sk-test-ordered-key-1234567890');

const VIEWS = ['results.csv', 'results.jsonl', 'usage.csv'] as const;

const chatJobs = (count: number, prompt = (i: number): string => `Question number ${i}.`): Record<string, unknown>[] =>
  Array.from({ length: count }, (_, i) => ({ id: `q${i + 1}`, model: 'gpt-4o-mini', prompt: prompt(i + 1) }));

const readViews = async (out: string): Promise<string[]> => Promise.all(VIEWS.map((name) => readFile(join(out, name), 'utf8')));

/**
 * The views of `out` as the rewrite from the journal gives them, in a copy of the folder: every job's row read back
 * by id and request from the journal (the path of a run over job files, which keeps no view while it goes on).
 */
async function rebuiltViews(file: string, out: string, url: string): Promise<string[]> {
  const { jobs, problems } = await loadJobs([file]);
  expect(problems).toEqual([]);
  const source = { ...jobsInMemory(jobs), settled: false };
  const folder = await openOutputFolder(out, { ids: source.digests.ids, origin: apiOrigin(url) });
  try {
    await folder.writeResults(source);
  } finally {
    await folder.close();
  }
  return readViews(out);
}

describe('the views of a run over jobs in memory', () => {
  it('grow in input order while the run goes on, and are never replaced at its end (tail -f sees every row)', async () => {
    const env = await offline.serve({ faults: [{ delayMs: 1500, headers: { 'x-slow': 'yes' }, match: { promptIncludes: 'slow' } }] });
    const dir = await tempDir();
    const out = join(dir, 'out');
    const jobs = chatJobs(12, (i) => (i === 1 ? 'A slow question.' : `Question number ${i}.`));
    const file = await writeJobs(dir, jobs);
    const run = cli(['run', file, '--out', out, '--concurrency', '4', '--quiet', '--no-html'], { env });

    // The first job is still in flight while the others are answered and journaled.
    await waitFor(() => offline.server.stats.requests >= 10, 10_000, 'the fast jobs');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(offline.server.stats.inFlight).toBeGreaterThanOrEqual(1);
    const early = await readCsv(join(out, 'results.csv')).catch((): Record<string, string>[] => []);
    expect(early.map((row) => row.id)).toEqual([]);
    const follower = await open(join(out, 'results.csv'), 'r');

    const { code } = await run;
    expect(code).toBe(0);
    try {
      const followed = (await follower.readFile()).toString('utf8');
      expect(followed).toBe(await readFile(join(out, 'results.csv'), 'utf8'));
    } finally {
      await follower.close();
    }
    expect((await readCsv(join(out, 'results.csv'))).map((row) => `${row.id}:${row.status}`)).toEqual(jobs.map((job) => `${String(job.id)}:ok`));
  });

  it('end equal to the views rebuilt from the journal: resumed, rerun, edited, failed and new jobs, answered out of order', async () => {
    const env = await offline.serve({
      latencyMs: 5,
      faults: [
        { status: 400, times: 1, match: { promptIncludes: 'number 2.' } },
        { status: 400, match: { promptIncludes: 'number 15.' } },
        { delayMs: 300, headers: { 'x-slow': 'yes' }, match: { promptIncludes: 'number 11.' } },
        { delayMs: 150, headers: { 'x-slow': 'yes' }, match: { promptIncludes: 'edited' } },
      ],
    });
    const dir = await tempDir();
    const out = join(dir, 'out');
    const jobs = chatJobs(10);
    const file = await writeJobs(dir, jobs);
    expect((await cli(['run', file, '--out', out, '--quiet', '--no-html'], { env })).code).toBe(1);

    const more = chatJobs(40);
    more[2] = { ...more[2], prompt: 'An edited question.' };
    more[20] = { ...more[20], tags: ['a', '=b'], prompt: 'A reply, "quoted"\nover two lines.' };
    await writeJobs(dir, more);
    expect((await cli(['run', file, '--out', out, '--concurrency', '6', '--quiet', '--no-html'], { env })).code).toBe(1);
    const written = await readViews(out);
    const rows = await readCsv(join(out, 'results.csv'));
    expect(rows.map((row) => row.id)).toEqual(more.map((job) => job.id));
    expect(rows.filter((row) => row.status === 'failed').map((row) => row.id)).toEqual(['q15']);

    expect(await rebuiltViews(file, out, env.OPENAI_BASE_URL!)).toEqual(written);
  });
});

describe('SIGKILL while the views are written', () => {
  it('leaves views that the next run brings to what a clean run writes', async () => {
    const seed = Number(process.env.NIGHTSHIFT_CRASH_SEED ?? Date.now() % 1_000_000);
    const random = seeded(seed);
    const env = await offline.serve({ latencyMs: 2, faults: [{ delayMs: 80, headers: { 'x-slow': 'yes' }, match: { promptIncludes: '7.' } }] });
    const dir = await tempDir();
    const count = 300;
    const jobs = chatJobs(count);
    const file = await writeJobs(dir, jobs);
    const args = (out: string): string[] => ['run', file, '--out', out, '--concurrency', '8', '--quiet', '--no-html'];

    const clean = join(dir, 'clean');
    expect((await cli(args(clean), { env })).code).toBe(0);

    const out = join(dir, 'out');
    const landed: string[] = [];
    for (let kill = 0; kill < 4; kill++) {
      const before = offline.server.stats.requests;
      const afterRequests = Math.floor(random() * count * 0.6);
      const child = spawnCli(args(out), { cwd: dir, env });
      const ended = { value: false };
      void child.exited.then(() => (ended.value = true));
      await waitFor(() => ended.value || offline.server.stats.requests - before >= afterRequests, 20_000, 'requests');
      await new Promise((resolve) => setTimeout(resolve, Math.floor(random() * 20)));
      child.child.kill('SIGKILL');
      const { signal } = await child.exited;
      landed.push(signal === 'SIGKILL' ? `killed after ${offline.server.stats.requests - before} requests` : 'finished before the kill');
    }
    const final = await cli(args(out), { env });
    expect(final.code, `seed ${seed}: ${landed.join('; ')}: ${final.stderr}`).toBe(0);

    const views = await readViews(out);
    // What differs from one run to the next: when each answer came, and the server's request ids.
    const timeless = (text: string): string =>
      text.replace(/"latency_ms":\d+/g, '').replace(/"request_id":"[^"]*"/g, '').replace(/,\d+,req_[0-9a-f]+,/g, ',,');
    const cleanViews = await readViews(clean);
    expect(views.map(timeless), `seed ${seed}: ${landed.join('; ')}`).toEqual(cleanViews.map(timeless));
    expect(await rebuiltViews(file, out, env.OPENAI_BASE_URL!)).toEqual(views);
  });
});

describe('a job that holds the order back too long', () => {
  it('lets the rows after it come as jobs finish, and leaves the views to the rewrite from the journal', async () => {
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(6));
    const { jobs } = await loadJobs([file]);
    const source = jobsInMemory(jobs);
    const journalPath = join(dir, 'journal.jsonl');
    const journal = await JournalWriter.open(journalPath, { durable: false });
    const reader = await RecordReader.open(journalPath);
    const index = new JournalIndex(source.digests.ids);
    const csvPath = join(dir, 'results.csv');
    const view = new OrderedResults(csvPath, join(dir, 'results.jsonl'), source, () => true, index, reader, 2);
    const timing = { attempts: 1, startedAt: 0, finishedAt: 1, latencyMs: 1 };
    const outcome = { state: 'done' as const, output: 'An answer.', usage: zeroUsage(), costUsd: 0 };
    try {
      // The first job is still under way while the others finish, last to first.
      for (const job of [jobs[5]!, jobs[4]!, jobs[3]!, jobs[2]!]) {
        const record = jobRecord(job, fingerprint(job), timing, outcome, undefined);
        const location = await journal.append(record);
        index.take(indexedJob(record, location));
        view.add(job, record, location.offset);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await waitFor(() => existsSync(csvPath) && readFileSync(csvPath, 'utf8').split('\n').length === 6, 5000, 'the rows of the jobs that finished');
      expect((await readCsv(csvPath)).map((row) => row.id)).toEqual(['q6', 'q5', 'q4', 'q3']);
      expect(await view.finish()).toBeUndefined();
      expect(existsSync(join(dir, 'results.jsonl'))).toBe(false);
    } finally {
      await view.stop();
      await reader.close();
      await journal.close();
    }
  });
});
