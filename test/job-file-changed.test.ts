import { writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { EXIT, exitStatusOfRun } from '../src/cli/exit.js';
import { createPriceBook } from '../src/cost/prices.js';
import { validateJobFiles } from '../src/jobs/load.js';
import { jobsInFiles, type JobSource } from '../src/jobs/source.js';
import type { RunOptions } from '../src/run/options.js';
import { runJobs } from '../src/run/run.js';
import { startOfflineServer, type OfflineServer } from '../src/server/server.js';
import { readCsv, tempDir, writeJobs } from './helpers.js';

let server: OfflineServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const job = (n: number): Record<string, unknown> => ({ id: `j${n}`, model: 'gpt-4o-mini', prompt: `Changed file question ${n}` });
const lines = (jobs: Record<string, unknown>[]): string => jobs.map((item) => JSON.stringify(item)).join('\n') + '\n';

/** The jobs of `file` as the CLI reads job files too large to keep: validated once, read again for each pass. */
async function fromFile(file: string): Promise<JobSource> {
  const { count, digests } = await validateJobFiles([file], { digests: true });
  return jobsInFiles([file], { count, digests: digests!, defaults: {} });
}

/** A folder where every one of `jobs` succeeded, streamed from their file, and the options to run it again. */
async function finishedFolder(jobs: Record<string, unknown>[], concurrency: number) {
  server = await startOfflineServer();
  const dir = await tempDir();
  const out = join(dir, 'out');
  const file = await writeJobs(dir, jobs);
  const client = new OpenAI({ apiKey: 'test', baseURL: server.url, maxRetries: 0 });
  const options = (onEvent: RunOptions['onEvent'] = () => {}): RunOptions => ({
    outDir: out, client, prices: createPriceBook(), concurrency, maxAttempts: 2, timeoutMs: 10_000, files: [file], onEvent,
  });
  expect((await runJobs(await fromFile(file), options())).ok).toBe(jobs.length);
  return { server, dir, out, file, options };
}

describe('a job file that changes under a run', () => {
  it('is reported, and results.csv still stands each reply beside its own job', async () => {
    const jobs = [1, 2, 3, 4, 5].map(job);
    const { server, dir, out, file, options } = await finishedFolder(jobs, 2);

    // A sixth job to send; once it is answered, a line is inserted at the top of the file.
    jobs.push(job(6));
    await writeJobs(dir, jobs);
    const onEvent: RunOptions['onEvent'] = (event) => {
      if (event.type === 'finished' && event.job.id === 'j6') writeFileSync(file, lines([job(0), ...jobs]));
    };
    const summary = await runJobs(await fromFile(file), options(onEvent));
    expect(summary).toMatchObject({ jobFilesChanged: true });
    expect(exitStatusOfRun(summary)).toBe(EXIT.invalid);
    expect(server.stats.requests).toBe(6);

    const rows = await readCsv(join(out, 'results.csv'));
    expect(rows.map((row) => `${row.id}:${row.status}`)).toEqual(['j0:pending', 'j1:ok', 'j2:ok', 'j3:ok', 'j4:ok', 'j5:ok', 'j6:ok']);
    for (const row of rows.slice(1)) expect(row.output).toContain(`Changed file question ${row.id!.slice(1)}`);
  });

  it('that was edited in place shows the edited job pending, not beside the reply to its old request', async () => {
    const jobs = [1, 2, 3].map(job);
    const { dir, out, file, options } = await finishedFolder(jobs, 1);

    jobs.push(job(4));
    await writeJobs(dir, jobs);
    const edited = [job(1), { ...job(2), prompt: 'An edited question' }, job(3), job(4)];
    const onEvent: RunOptions['onEvent'] = (event) => {
      if (event.type === 'finished' && event.job.id === 'j4') writeFileSync(file, lines(edited));
    };
    expect(await runJobs(await fromFile(file), options(onEvent))).toMatchObject({ jobFilesChanged: true });
    const rows = await readCsv(join(out, 'results.csv'));
    expect(rows.map((row) => `${row.id}:${row.status}`)).toEqual(['j1:ok', 'j2:pending', 'j3:ok', 'j4:ok']);
  });

  it('while the jobs to send are still being read from it stops the sending, and the views still show every answer by identity', async () => {
    // Long prompts: the file is read a chunk at a time, so the later jobs are read only after the change.
    const long = (n: number): Record<string, unknown> => ({ ...job(n), prompt: `Changed file question ${n} ${'padding '.repeat(500)}` });
    const jobs = [1, 2, 3].map(long);
    const { server, dir, out, file, options } = await finishedFolder(jobs, 1);

    // 200 more to send; once the first of them is answered, a line is inserted at the top.
    for (let n = 4; n <= 203; n++) jobs.push(long(n));
    await writeJobs(dir, jobs);
    const onEvent: RunOptions['onEvent'] = (event) => {
      if (event.type === 'finished' && event.job.id === 'j4') writeFileSync(file, lines([long(0), ...jobs]));
    };
    const summary = await runJobs(await fromFile(file), options(onEvent));
    expect(summary).toMatchObject({ jobFilesChanged: true });
    expect(exitStatusOfRun(summary)).toBe(EXIT.invalid);
    expect(server.stats.requests).toBeLessThan(203);
    const rows = await readCsv(join(out, 'results.csv'));
    // Every job of the file as it is now, in its order, each beside its own outcome.
    expect(rows.map((row) => row.id)).toEqual(['j0', ...jobs.map((item) => String(item.id))]);
    expect(rows.slice(0, 5).map((row) => `${row.id}:${row.status}`)).toEqual(['j0:pending', 'j1:ok', 'j2:ok', 'j3:ok', 'j4:ok']);
    expect(rows.at(-1)?.status).toBe('pending');
    expect(await readFile(join(out, 'usage.csv'), 'utf8')).toContain('TOTAL');
  });
});
