import { join } from 'node:path';
import OpenAI, { NotFoundError } from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { startOfflineServer, type OfflineServer } from '../src/server/server.js';
import { NOT_FOUND_IN_A_ROW } from '../src/run/dispatch.js';
import { cli, journalLines, offlineServerPerTest, readCsv, tempDir, writeJobs } from './helpers.js';

const offline = offlineServerPerTest('sk-test-model-not-found');

/** Jobs of a model that does not exist, between jobs of one that does. */
const JOBS = Array.from({ length: 8 }, (_, i) => ({
  id: `q${i + 1}`,
  model: i % 2 === 0 ? 'gpt-nope' : 'gpt-4o-mini',
  prompt: `Question number ${i + 1}`,
}));

async function runJobsOf(options: Parameters<typeof offline.serve>[0], args: string[] = ['--concurrency', '1']) {
  const env = await offline.serve(options);
  const dir = await tempDir();
  const file = await writeJobs(dir, JOBS);
  const out = join(dir, 'out');
  const result = await cli(['run', file, '--out', out, ...args], { env });
  const rows = await readCsv(join(out, 'results.csv'));
  const statusesOf = (model: string): string[] => rows.filter((row) => row.model === model).map((row) => row.status!);
  return { ...result, out, file, env, statusesOf };
}

const sentFor = (model: string): number => offline.server.requests.filter((request) => request.model === model).length;

describe('a model the API says does not exist', () => {
  it('fails one job, sends no other job of that model, lets the other models go on, and exits 1', async () => {
    const { code, stdout, stderr, out, statusesOf } = await runJobsOf({ models: ['gpt-4o-mini'] });
    expect(code).toBe(1);
    expect(sentFor('gpt-nope')).toBe(1);
    expect(statusesOf('gpt-nope')).toEqual(['failed', 'pending', 'pending', 'pending']);
    expect(statusesOf('gpt-4o-mini')).toEqual(['ok', 'ok', 'ok', 'ok']);
    // One failure on record, not one per job: the others were never sent.
    const records = (await journalLines(out)).filter((line) => line.type === 'job' && line.model === 'gpt-nope');
    expect(records).toMatchObject([{ state: 'failed', status: 404 }]);
    // The summary names the model and how many of its jobs were not sent.
    expect(stdout + stderr).toMatch(/gpt-nope[^\n]*\b3 jobs\b/);
  });

  it('is told by the status and error code, not by the message', async () => {
    const faults = [{ status: 404, code: 'model_not_found', message: 'Nothing here.', match: { model: 'gpt-nope' } }];
    const { code, statusesOf } = await runJobsOf({ faults });
    expect(code).toBe(1);
    expect(sentFor('gpt-nope')).toBe(1);
    expect(statusesOf('gpt-nope')).toEqual(['failed', 'pending', 'pending', 'pending']);
  });

  it('stops nothing when a 404 has another code: only that job fails', async () => {
    const faults = [{ status: 404, message: 'The model `gpt-nope` does not exist.', match: { model: 'gpt-nope' } }];
    const { code, statusesOf } = await runJobsOf({ faults });
    expect(code).toBe(1);
    expect(sentFor('gpt-nope')).toBe(4);
    expect(statusesOf('gpt-nope')).toEqual(['failed', 'failed', 'failed', 'failed']);
  });

  it('stops the run after 10 requests in a row answered 404 without model_not_found: a base URL without the endpoint', async () => {
    const env = await offline.serve({ faults: [{ status: 404, message: 'Invalid URL (POST /v1/v1/chat/completions)' }] });
    const dir = await tempDir();
    const file = await writeJobs(dir, Array.from({ length: 40 }, (_, i) => ({ id: `j${i}`, model: i % 2 ? 'gpt-4o-mini' : 'gpt-4.1-mini', prompt: `Q${i}` })));
    const out = join(dir, 'out');
    const result = await cli(['run', file, '--out', out, '--concurrency', '1'], { env });
    // Stopped, not finished: the jobs not sent stay pending, and the same command sends them once the URL is fixed.
    expect(result.code).toBe(3);
    expect(offline.server.stats.requests).toBe(NOT_FOUND_IN_A_ROW);
    const statuses = (await readCsv(join(out, 'results.csv'))).map((row) => row.status);
    expect(statuses.filter((status) => status === 'failed')).toHaveLength(NOT_FOUND_IN_A_ROW);
    expect(statuses.filter((status) => status === 'pending')).toHaveLength(40 - NOT_FOUND_IN_A_ROW);
    expect(result.stderr).toContain('OPENAI_BASE_URL');
    expect(result.stderr + result.stdout).not.toContain(env.OPENAI_API_KEY);
    await offline.server.close();
    const fixed = await offline.serve();
    const rerun = await cli(['run', file, '--out', out, '--concurrency', '4'], { env: fixed });
    expect(rerun.code).toBe(0);
    expect((await readCsv(join(out, 'results.csv'))).every((row) => row.status === 'ok')).toBe(true);
  });

  it('leaves the jobs held back pending, so the next run sends them', async () => {
    const faults = [{ status: 404, code: 'model_not_found', match: { model: 'gpt-nope' } }];
    const { env, file, out } = await runJobsOf({ faults });
    // The model exists now (access was granted): the rerun sends its four jobs, and only those.
    offline.server.setFaults([]);
    offline.server.reset();
    const again = await cli(['run', file, '--out', out], { env });
    expect(again.code).toBe(0);
    expect((await readCsv(join(out, 'results.csv'))).every((row) => row.status === 'ok')).toBe(true);
    expect(offline.server.stats.requests).toBe(4);
  });
});

let server: OfflineServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe('the offline server with a list of models', () => {
  it('answers a model it does not serve with 404 model_not_found, as the API does, for chat and images', async () => {
    server = await startOfflineServer({ models: ['gpt-4o-mini', 'gpt-image-1'] });
    const client = new OpenAI({ apiKey: 'offline', baseURL: server.url, maxRetries: 0 });
    const chat = await client.chat.completions.create({ model: 'gpt-nope', messages: [{ role: 'user', content: 'hi' }] }).catch((error: unknown) => error);
    const image = await client.images.generate({ model: 'dall-e-9', prompt: 'a fox' }).catch((error: unknown) => error);
    for (const error of [chat, image]) {
      expect(error).toBeInstanceOf(NotFoundError);
      expect(error).toMatchObject({ status: 404, type: 'invalid_request_error', code: 'model_not_found' });
    }
    await expect(client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })).resolves.toMatchObject({ model: 'gpt-4o-mini' });
    expect((await client.models.list()).data.map((model) => model.id)).toEqual(['gpt-4o-mini', 'gpt-image-1']);
  });
});
