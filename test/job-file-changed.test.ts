import { writeFileSync } from 'node:fs';
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

describe('a job file that changes under a run', () => {
  it('is reported, and results.csv still stands each reply beside its own job', async () => {
    server = await startOfflineServer();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const jobs = [1, 2, 3, 4, 5].map(job);
    const file = await writeJobs(dir, jobs);
    const client = new OpenAI({ apiKey: 'test', baseURL: server.url, maxRetries: 0 });
    const options = (onEvent: RunOptions['onEvent'] = () => {}): RunOptions => ({
      outDir: out, client, prices: createPriceBook(), concurrency: 2, maxAttempts: 2, timeoutMs: 10_000, files: [file], onEvent,
    });
    expect((await runJobs(await fromFile(file), options())).ok).toBe(5);

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
    server = await startOfflineServer();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const jobs = [1, 2, 3].map(job);
    const file = await writeJobs(dir, jobs);
    const client = new OpenAI({ apiKey: 'test', baseURL: server.url, maxRetries: 0 });
    const options = (onEvent: RunOptions['onEvent'] = () => {}): RunOptions => ({
      outDir: out, client, prices: createPriceBook(), concurrency: 1, maxAttempts: 2, timeoutMs: 10_000, files: [file], onEvent,
    });
    expect((await runJobs(await fromFile(file), options())).ok).toBe(3);

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
});
