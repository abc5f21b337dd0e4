import { readFile, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, journalLines, offlineServerPerTest, readCsv, tempDir, writeJobs } from './helpers.js';

const offline = offlineServerPerTest('sk-batch-test-key');
const EXAMPLES = ['jobs/chat.jsonl', 'jobs/vision.csv', 'jobs/images.json'];

/** `run --batch` against the served offline server, polling fast. */
const batchRun = (files: string[], out: string, env: Record<string, string>, ...flags: string[]) =>
  cli(['run', ...files, '--out', out, '--batch', '--poll-interval', '0.02', ...flags], { env });

const ledger = async (out: string): Promise<Record<string, unknown>[]> =>
  (await readFile(join(out, '.nightshift', 'batches.jsonl'), 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);

/** The image files of an output folder, relative to its images/ folder, sorted. */
const imageFiles = async (out: string): Promise<string[]> =>
  (await readdir(join(out, 'images'), { recursive: true, withFileTypes: true }))
    .filter((entry) => entry.isFile())
    .map((entry) => relative(join(out, 'images'), join(entry.parentPath, entry.name)))
    .sort();

const rowsById = async (out: string) => new Map((await readCsv(join(out, 'results.csv'))).map((row) => [row.id!, row]));

const jobRecordsOf = async (out: string) => (await journalLines(out)).filter((line) => line.type === 'job');

const chatJobs = (count: number, model = 'gpt-4.1-mini', prefix = 'q') =>
  Array.from({ length: count }, (_, index) => ({ id: `${prefix}${index + 1}`, model, prompt: `Question number ${prefix}${index + 1}` }));

describe('run --batch', () => {
  it('runs the example jobs with --wait: the ids and replies of a live run at exactly half its cost, images written', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    const live = join(dir, 'live');
    const batch = join(dir, 'batch');
    expect((await cli(['run', ...EXAMPLES, '--out', live, '--quiet'], { env })).code).toBe(0);
    // The same usage for both: the batch's prompts must not find the live run's in the server's prompt cache.
    offline.server.reset();
    const result = await batchRun(EXAMPLES, batch, env, '--wait');
    expect(result.code, result.stderr).toBe(0);

    const liveRows = await readCsv(join(live, 'results.csv'));
    const batchRows = await readCsv(join(batch, 'results.csv'));
    expect(batchRows.map((row) => row.id)).toEqual(liveRows.map((row) => row.id));
    expect(batchRows.map((row) => row.status)).toEqual(liveRows.map(() => 'ok'));
    expect(batchRows.map((row) => row.output)).toEqual(liveRows.map((row) => row.output));
    for (const [index, row] of batchRows.entries()) {
      expect(row.batch_id).toMatch(/^batch_/);
      expect(liveRows[index]!.batch_id).toBe('');
      expect(Number(row.cost_usd)).toBeCloseTo(Number(liveRows[index]!.cost_usd) / 2, 12);
    }
    const liveTotal = liveRows.reduce((sum, row) => sum + Number(row.cost_usd), 0);
    const batchTotal = batchRows.reduce((sum, row) => sum + Number(row.cost_usd), 0);
    expect(batchTotal).toBeGreaterThan(0);
    expect(batchTotal).toBeCloseTo(liveTotal / 2, 10);
    const images = await imageFiles(live);
    expect(images.length).toBeGreaterThan(0);
    expect(await imageFiles(batch)).toEqual(images);
    for (const name of images) {
      expect((await readFile(join(batch, 'images', name))).equals(await readFile(join(live, 'images', name)))).toBe(true);
    }
    // A rerun sends nothing: every job is done.
    const rerun = await batchRun(EXAMPLES, batch, env, '--wait');
    expect(rerun.code).toBe(0);
    expect((await ledger(batch)).filter((record) => record.type === 'part')).toHaveLength(4);
  });

  it('returns once submitted without --wait; the same command collects, sending nothing twice, and the account is cleaned', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    const file = await writeJobs(dir, [...chatJobs(4), ...chatJobs(2, 'gpt-5.4-mini', 'm')]);
    const out = join(dir, 'out');
    const first = await batchRun([file], out, env);
    expect(first.code).toBe(0);
    expect(first.stderr).toMatch(/Run the same command again to collect/);
    expect([...(await rowsById(out)).values()].map((row) => row.status)).toEqual(Array(6).fill('pending'));

    const second = await batchRun([file], out, env);
    expect(second.code, second.stderr).toBe(0);
    expect([...(await rowsById(out)).values()].map((row) => row.status)).toEqual(Array(6).fill('ok'));
    expect(offline.server.batchLinesSubmittedTwice()).toEqual([]);
    const steps = (await ledger(out)).map((record) => record.type);
    expect(steps.filter((type) => type === 'submitted')).toHaveLength(2);
    expect(steps.filter((type) => type === 'cleaned')).toHaveLength(2);
    // Input, output and error files are deleted from the account once collected.
    const files = await fetch(`${env.OPENAI_BASE_URL}/files`, { headers: { authorization: `Bearer ${env.OPENAI_API_KEY}` } });
    expect(((await files.json()) as { data: unknown[] }).data).toEqual([]);
    // The part files are gone from the folder too.
    expect(await readdir(join(out, '.nightshift', 'batches'))).toEqual([]);
  });

  it('stops (exit 2) rather than send again the jobs of a batch the API does not know: another key or project', async () => {
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(2));
    const out = join(dir, 'out');
    expect((await batchRun([file], out, await offline.serve())).code).toBe(0);
    // Another account: it has never seen the folder's batch.
    await offline.server.close();
    const other = await offline.serve();
    const result = await batchRun([file], out, other);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/has no batch batch_\w+, which this folder submitted/);
    // One request, the batch asked for: nothing uploaded, nothing submitted.
    expect(offline.server.stats.requests).toBe(1);
  });

  it('keeps the files on the account with --keep-files', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(2));
    const out = join(dir, 'out');
    expect((await batchRun([file], out, env, '--wait', '--keep-files')).code).toBe(0);
    const files = await fetch(`${env.OPENAI_BASE_URL}/files`, { headers: { authorization: `Bearer ${env.OPENAI_API_KEY}` } });
    expect(((await files.json()) as { data: unknown[] }).data.length).toBeGreaterThanOrEqual(2);
  });

  it('splits by model and by --batch-max-requests, one model per batch', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    const file = await writeJobs(dir, [...chatJobs(7), ...chatJobs(3, 'gpt-5.4-mini', 'm')]);
    const out = join(dir, 'out');
    expect((await batchRun([file], out, env, '--wait', '--batch-max-requests', '3')).code).toBe(0);
    const parts = (await ledger(out)).filter((record) => record.type === 'part');
    expect(parts.map((part) => [part.model, part.requests])).toEqual([
      ['gpt-4.1-mini', 3],
      ['gpt-4.1-mini', 3],
      ['gpt-4.1-mini', 1],
      ['gpt-5.4-mini', 3],
    ]);
    expect([...(await rowsById(out)).values()].every((row) => row.status === 'ok')).toBe(true);
  });

  it('maps shuffled output lines to their jobs by custom_id', async () => {
    const env = await offline.serve({ batch: { shuffleOutput: true } });
    const dir = await tempDir();
    const jobs = chatJobs(30);
    const file = await writeJobs(dir, jobs);
    const out = join(dir, 'out');
    expect((await batchRun([file], out, env, '--wait')).code).toBe(0);
    const rows = await rowsById(out);
    for (const job of jobs) expect(rows.get(job.id)!.output).toContain(job.prompt);
  });

  it('sends retryable failed lines again within --max-attempts and fails the others with the API error', async () => {
    const env = await offline.serve({
      batch: {
        failLines: [
          { status: 500, times: 1, match: { promptIncludes: 'q2' } },
          { status: 400, type: 'invalid_request_error', code: 'bad_thing', message: 'This request is wrong', match: { promptIncludes: 'q3' } },
          { status: 503, match: { promptIncludes: 'q4' } },
        ],
      },
    });
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(5));
    const out = join(dir, 'out');
    const result = await batchRun([file], out, env, '--wait', '--max-attempts', '3');
    expect(result.code).toBe(1);
    const rows = await rowsById(out);
    expect(rows.get('q1')).toMatchObject({ status: 'ok', attempts: '1' });
    expect(rows.get('q2')).toMatchObject({ status: 'ok', attempts: '2' });
    expect(rows.get('q3')).toMatchObject({ status: 'failed', attempts: '1' });
    expect(rows.get('q3')!.error).toMatch(/This request is wrong/);
    // Retried until its attempts ran out, then failed with the last error.
    expect(rows.get('q4')).toMatchObject({ status: 'failed', attempts: '3' });
  });

  it('keeps what an expired batch finished and sends only the rest again', async () => {
    const env = await offline.serve({ batch: { expire: { afterLines: 3, times: 1 } } });
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(8));
    const out = join(dir, 'out');
    expect((await batchRun([file], out, env, '--wait')).code).toBe(0);
    expect([...(await rowsById(out)).values()].every((row) => row.status === 'ok')).toBe(true);
    expect(offline.server.batchLinesSubmittedTwice()).toHaveLength(5);
    const records = await jobRecordsOf(out);
    expect(records).toHaveLength(8);
    const collected = (await ledger(out)).filter((record) => record.type === 'collected').map((record) => record.status);
    expect(collected).toEqual(['expired', 'completed']);
  });

  it('fails the lines a batch refused at validation with their job file and line, and sends the others again', async () => {
    const env = await offline.serve({ batch: { failValidation: { code: 'invalid_body', message: 'The body is not valid', line: 2, times: 1 } } });
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(3));
    const out = join(dir, 'out');
    const result = await batchRun([file], out, env, '--wait');
    expect(result.code).toBe(1);
    const rows = await rowsById(out);
    expect(rows.get('q2')!.status).toBe('failed');
    expect(rows.get('q2')!.error).toContain(`${file}:2`);
    expect(rows.get('q2')!.error).toContain('The body is not valid');
    expect(rows.get('q1')!.status).toBe('ok');
    expect(rows.get('q3')!.status).toBe('ok');
  });

  it('waits when the enqueued-token limit refuses a part, and submits it as an earlier batch finishes', async () => {
    // A part of two lines takes about 2 x (11 + 100) tokens: one part fits under the limit, two do not.
    const env = await offline.serve({ batch: { processingMs: 1500, enqueuedTokenLimit: 300 } });
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(4).map((job) => ({ ...job, max_completion_tokens: 100 })));
    const out = join(dir, 'out');
    const result = await batchRun([file], out, env, '--wait', '--batch-max-requests', '2');
    expect(result.code, result.stderr).toBe(0);
    expect([...(await rowsById(out)).values()].every((row) => row.status === 'ok')).toBe(true);
    const steps = await ledger(out);
    expect(steps.some((record) => record.type === 'refused')).toBe(true);
    expect(offline.server.batchLinesSubmittedTwice()).toEqual([]);
  });

  it('stops sending at --budget, priced at Batch rates', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(3).map((job) => ({ ...job, max_completion_tokens: 1000 })));
    const out = join(dir, 'out');
    const result = await batchRun([file], out, env, '--wait', '--budget', '0.000001');
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/Budget reached/);
    expect(offline.server.stats.requests).toBe(0);
  });

  it('holds each job at its worst case at Batch rates: a budget too small for the live run sends everything in a batch', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    // Each job costs at most $0.0016036 live and $0.0008018 through the Batch API (gpt-4.1-mini, 1,000 output tokens).
    const file = await writeJobs(dir, chatJobs(3).map((job) => ({ ...job, max_completion_tokens: 1000 })));
    const live = await cli(['run', file, '--out', join(dir, 'live'), '--budget', '0.001', '--quiet'], { env });
    expect(live.code).toBe(3);
    expect(offline.server.stats.requests).toBe(0);
    // Two fit at Batch rates ($0.0016036 of $0.0017), the third does not.
    const batch = await batchRun([file], join(dir, 'batch'), env, '--wait', '--budget', '0.0017');
    expect(batch.code, batch.stderr).toBe(3);
    expect([...(await rowsById(join(dir, 'batch'))).values()].map((row) => row.status)).toEqual(['ok', 'ok', 'pending']);
  });

  it('status shows the batches and where the jobs stand; cancel cancels them and the next run collects what they finished', async () => {
    const env = await offline.serve({ batch: { processingMs: 60_000 } });
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(4));
    const out = join(dir, 'out');
    expect((await batchRun([file], out, env)).code).toBe(0);
    const status = await cli(['status', out], { env });
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/batch_\w+\s+gpt-4\.1-mini\s+(validating|in_progress)\s+4/);
    expect(status.stdout).toMatch(/in a batch\s+4/);
    const json = JSON.parse((await cli(['status', out, '--json'], { env })).stdout) as { folders: { jobs: { inBatch: number }; batches: { status: string }[] }[] };
    expect(json.folders[0]!.jobs.inBatch).toBe(4);
    expect(json.folders[0]!.batches.map((batch) => batch.status)).toEqual([expect.stringMatching(/validating|in_progress/)]);

    const cancel = await cli(['cancel', out], { env });
    expect(cancel.code).toBe(0);
    expect(cancel.stdout).toMatch(/cancelling batch_/);
    const collect = await batchRun([file], out, env);
    expect(collect.code).toBe(0);
    const collected = (await ledger(out)).filter((record) => record.type === 'collected');
    expect(collected.map((record) => record.status)).toEqual(['cancelled']);
    // Nothing ran before the cancel: the jobs stay pending in the run that collected it, and a later run sends them.
    expect([...(await rowsById(out)).values()].map((row) => row.status)).toEqual(Array(4).fill('pending'));
  });
});
