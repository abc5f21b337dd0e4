import { readFileSync } from 'node:fs';
import { appendFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { pickJobs, streamJobs, validateJobFiles } from '../src/jobs/load.js';
import { createPriceBook } from '../src/cost/prices.js';
import { jobsInMemory, type JobSource } from '../src/jobs/source.js';
import type { RunOptions } from '../src/run/options.js';
import { runJobs } from '../src/run/run.js';
import type { Job } from '../src/common/types.js';
import { startOfflineServer, type OfflineServer } from '../src/server/server.js';
import { cli, tempDir, writeJobs } from './helpers.js';

let server: OfflineServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const chatJobs = (count: number) => Array.from({ length: count }, (_, i) => ({ id: `s${i + 1}`, model: 'gpt-4o-mini', prompt: `Stream ${i + 1}` }));

async function setup(count: number): Promise<{ file: string; dir: string; options: (out: string) => RunOptions }> {
  server = await startOfflineServer({ markAnswers: false });
  const dir = await tempDir();
  const file = await writeJobs(dir, chatJobs(count));
  const client = new OpenAI({ apiKey: 'offline', baseURL: server.url, maxRetries: 0 });
  return {
    file,
    dir,
    options: (out) => ({ outDir: join(dir, out), client, prices: createPriceBook(), concurrency: 8, maxAttempts: 2, timeoutMs: 10_000, files: [file] }),
  };
}

/** A source that reads the files again for each pass, as the CLI does for job files too large to keep, counting passes and picked jobs. */
async function fromFiles(files: string[]): Promise<JobSource & { passes: number; picked: string[] }> {
  const { count, digests } = await validateJobFiles(files, { digests: true });
  const source = {
    count,
    digests: digests!,
    passes: 0,
    picked: [] as string[],
    open: () => (source.passes++, streamJobs(files)),
    pick: async function* (wanted: (position: number) => boolean) {
      source.passes++;
      for await (const picked of pickJobs(files, wanted)) {
        source.picked.push(picked.job.id);
        yield picked;
      }
    },
  };
  return source;
}

/** The results.csv rows without the columns that differ between two runs of the same jobs. */
async function stableRows(out: string): Promise<string[]> {
  const text = await readFile(join(out, 'results.csv'), 'utf8');
  return text
    .trim()
    .split('\n')
    .map((line) => line.split(',').slice(0, 6).join(','));
}

describe('jobs read from their files for each pass', () => {
  it('give the same results as jobs kept in memory, and a rerun sends nothing', async () => {
    const { file, dir, options } = await setup(40);
    const source = await fromFiles([file]);
    const streamed = await runJobs(source, options('streamed'));
    expect(streamed.ok).toBe(40);
    // Planning works from validation's digests; sending and rebuilding results.csv each read the file once.
    expect(source.passes).toBe(2);

    const { jobs } = await validateJobFiles([file], { keep: { maxBytes: 1 << 20 } });
    const kept = await runJobs(jobsInMemory(jobs!), options('kept'));
    expect(kept.ok).toBe(40);
    expect(await stableRows(join(dir, 'streamed'))).toEqual(await stableRows(join(dir, 'kept')));
    expect(server!.stats.requests).toBe(80);

    const again = await fromFiles([file]);
    expect((await runJobs(again, options('streamed'))).skipped).toBe(40);
    expect(server!.stats.requests).toBe(80);
    // Nothing to send: the sending pass normalized no job.
    expect(again.picked).toEqual([]);
  });

  it('normalize only the jobs to send on a resume', async () => {
    const { file, dir, options } = await setup(30);
    await runJobs(await fromFiles([file]), options('out'));
    const grown = await writeJobs(dir, chatJobs(33));
    const resume = await fromFiles([grown]);
    const summary = await runJobs(resume, { ...options('out'), files: [grown] });
    expect(summary).toMatchObject({ skipped: 30, fresh: 3, ok: 33 });
    expect(resume.picked).toEqual(['s31', 's32', 's33']);
    expect(server!.stats.requests).toBe(33);
  });

  it('list the jobs finished earlier in results.csv while new ones are still being answered', async () => {
    const { file, dir, options } = await setup(5);
    await runJobs(await fromFiles([file]), options('out'));
    await server!.close();
    // Slow answers: the prefill of the five finished rows has long been written when the first new job finishes.
    server = await startOfflineServer({ latencyMs: 300, markAnswers: false });
    const client = new OpenAI({ apiKey: 'offline', baseURL: server.url, maxRetries: 0 });
    const grown = await writeJobs(dir, chatJobs(7));
    let seen: string[] | undefined;
    const summary = await runJobs(await fromFiles([grown]), {
      ...options('out'),
      client,
      files: [grown],
      concurrency: 1,
      onEvent: (event) => {
        if (event.type === 'finished' && event.job.id === 's6') seen ??= readFileSync(join(dir, 'out', 'results.csv'), 'utf8').trim().split('\n');
      },
    });
    expect(summary).toMatchObject({ skipped: 5, fresh: 2, ok: 7 });
    // s6's own row may be written by then too; s7 has not been sent.
    expect(seen?.slice(0, 6).map((line) => line.split(',').slice(0, 4).join(','))).toEqual([
      'id,kind,model,status',
      ...['s1', 's2', 's3', 's4', 's5'].map((id) => `${id},chat,gpt-4o-mini,ok`),
    ]);
    expect(seen?.map((line) => line.split(',')[0])).not.toContain('s7');
    expect(await stableRows(join(dir, 'out'))).toHaveLength(8);
  });

  it.each([1, 3])('stop, sending nothing changed and saying the job files changed, when a request differs from the one planned (concurrency %i)', async (concurrency) => {
    const { file, options } = await setup(10);
    const { jobs } = await validateJobFiles([file], { keep: { maxBytes: 1 << 20 } });
    // The sending pass finds job s6's prompt edited since validation.
    const source: JobSource = {
      ...jobsInMemory(jobs!),
      pick: (wanted, first) => jobsInMemory(jobs!.map((job) => (job.id === 's6' ? edited(job) : job))).pick(wanted, first),
    };
    const stopped = await runJobs(source, { ...options('out'), concurrency });
    expect(stopped).toMatchObject({ jobFilesChanged: true });
    expect(stopped.stopReason).toBeUndefined();
    // Only jobs before the edited one went out: the first of them at once, the rest unless the stop came first.
    const sent = server!.requests.map((request) => request.key);
    expect(sent.slice(0, concurrency).sort()).toEqual(['Stream 1', 'Stream 2', 'Stream 3'].slice(0, concurrency));
    for (const key of sent) expect(['Stream 1', 'Stream 2', 'Stream 3', 'Stream 4', 'Stream 5']).toContain(key);
    // Nothing is lost: the run again, with the file as validated, sends each job not yet sent, once.
    const summary = await runJobs(jobsInMemory(jobs!), { ...options('out'), concurrency });
    expect(summary.ok).toBe(10);
    expect(server!.requests.map((request) => request.key).sort()).toEqual(chatJobs(10).map((job) => job.prompt).sort());
  });
});

describe('keeping validated jobs in memory', () => {
  it('keeps them when they fit, and drops them when they do not or when a record is invalid', async () => {
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(50));
    const kept = await validateJobFiles([file], { keep: { maxBytes: 1 << 20 } });
    expect(kept.jobs?.map((job) => job.id)).toEqual(chatJobs(50).map((job) => job.id));

    const tooSmall = await validateJobFiles([file], { keep: { maxBytes: 2_000 } });
    expect(tooSmall.jobs).toBeUndefined();
    expect(tooSmall.count).toBe(50);

    const invalid = await writeJobs(dir, [...chatJobs(3), { id: 'bad', model: 'gpt-4o-mini' }], 'invalid.jsonl');
    const withProblem = await validateJobFiles([invalid], { keep: { maxBytes: 1 << 20 } });
    expect(withProblem.problems).toHaveLength(1);
    expect(withProblem.jobs).toBeUndefined();
  });
});

function edited(job: Job): Job {
  const messages = (job.body.messages as { role: string; content: string }[]).map((message) => ({ ...message, content: `${message.content} (edited)` }));
  return { ...job, body: { ...job.body, messages } };
}

describe('the CLI with job files too large to keep', () => {
  it('tells the process before reading them (to tune memory), and not for small files', async () => {
    const dir = await tempDir();
    const small = await writeJobs(dir, chatJobs(3), 'small.jsonl');
    const large = await writeJobs(dir, [{ id: 'long', model: 'gpt-4o-mini', prompt: 'word '.repeat(2_000_000) }], 'large.jsonl');
    const calls: string[] = [];
    for (const file of [small, large]) {
      const { code } = await cli(['validate', file], { onLargeJobs: () => calls.push(file) });
      expect(code).toBe(0);
    }
    expect(calls).toEqual([large]);
  });

  it('validate a large job file once per output folder: a resume validates and reads only the jobs added', async () => {
    server = await startOfflineServer({ markAnswers: false });
    const dir = await tempDir();
    // Long tags (not sent) make the file too large to keep in memory, as a million short jobs would.
    const tagged = (from: number, to: number) => chatJobs(to).slice(from).map((job) => ({ ...job, tags: `t${job.id};${'x'.repeat(300_000)}` }));
    const file = await writeJobs(dir, tagged(0, 30));
    const out = join(dir, 'out');
    const env = { OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: server.url };
    expect((await cli(['run', file, '--out', out, '--quiet'], { env })).code).toBe(0);
    expect((await readFile(join(out, '.nightshift', 'validated-jobs.bin'))).length).toBeGreaterThan(30 * 32);

    await appendFile(file, tagged(30, 32).map((job) => `${JSON.stringify(job)}\n`).join(''));
    const { code, stdout, stderr } = await cli(['run', file, '--out', out], { env });
    expect(code).toBe(0);
    expect(stdout).toMatch(/32 jobs/);
    // The user is told what is going on while a large file is checked, and that most of it was checked before.
    expect(stderr).toMatch(/^checking .*jobs\.jsonl \(\d+\.\d MB\)\n32 jobs valid \(30 checked by an earlier run, 2 new\) in \d+\.\d s\n/);
    expect(server.stats.requests).toBe(32);
    const rows = await stableRows(out);
    expect(rows).toHaveLength(33);
    expect(rows.at(-1)).toMatch(/^s32,chat,gpt-4o-mini,ok,1,/);

    const again = await cli(['run', file, '--out', out], { env });
    expect(again.stderr).toMatch(/\n32 jobs valid \(checked by an earlier run\) in /);
    expect(server.stats.requests).toBe(32);
  });
});

