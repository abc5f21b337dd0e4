import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { executeJob } from '../src/run/execute.js';
import { ImageSaveError } from '../src/output/images.js';
import { startOfflineServer, type OfflineServer } from '../src/server/server.js';
import { cli, readCsv, tempDir, writeJobs } from './helpers.js';

let server: OfflineServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function serve(): Promise<{ env: Record<string, string> }> {
  server = await startOfflineServer({ markAnswers: false });
  return { env: { OPENAI_API_KEY: 'sk-test-images-key-1234567890', OPENAI_BASE_URL: server.url } };
}

const imageJobs = (): Record<string, unknown>[] => [
  { id: 'lighthouse', model: 'gpt-image-1.5', prompt: 'A lighthouse at dusk', size: '1024x1024', quality: 'low', background: 'opaque' },
  { id: 'robot', model: 'gpt-image-1.5', prompt: 'A friendly robot', size: '1024x1024', quality: 'low', n: 2, output: 'robots/{id}-{index}.png' },
  { id: 'fox', model: 'gpt-image-1.5', prompt: 'A red fox in snow', size: '1024x1024', quality: 'low' },
];

const sha = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/** The `this run:` counts of the summary, including renamed jobs. */
function thisRun(stdout: string): string {
  return /this run: ([^;]*);/.exec(stdout)?.[1] ?? `no summary in ${stdout}`;
}

async function firstRun(jobs = imageJobs()) {
  const { env } = await serve();
  const dir = await tempDir();
  const out = join(dir, 'out');
  const file = await writeJobs(dir, jobs);
  const first = await cli(['run', file, '--out', out], { env });
  expect(first.code).toBe(0);
  expect(server!.stats.requests).toBe(jobs.length);
  const run = (...extra: string[]) => cli(['run', file, '--out', out, ...extra], { env });
  return { dir, out, file, run, jobs };
}

describe('rerunning image jobs', () => {
  it('sends nothing when no spec changed and every file is intact', async () => {
    const { run } = await firstRun();
    const again = await run();
    expect(again.code).toBe(0);
    expect(thisRun(again.stdout)).toBe('0 new, 0 rerun, 3 skipped as already done');
    expect(server!.stats.requests).toBe(3);
  });

  it.each([
    ['prompt', 'A lighthouse at dawn'],
    ['model', 'gpt-image-1-mini'],
    ['size', '1536x1024'],
    ['quality', 'medium'],
    ['output_format', 'jpeg'],
    ['background', 'transparent'],
    ['n', 2],
  ])('regenerates only the image whose %s changed', async (field, value) => {
    const { run, dir, out, jobs } = await firstRun();
    jobs[0] = { ...jobs[0], [field]: value };
    await writeJobs(dir, jobs);
    const again = await run();
    expect(again.code).toBe(0);
    expect(thisRun(again.stdout)).toBe('0 new, 1 rerun, 2 skipped as already done');
    expect(server!.stats.requests).toBe(4);
    expect(server!.countByKey(String(jobs[0]!.prompt))).toBe(field === 'prompt' ? 1 : 2);
    const [row] = await readCsv(join(out, 'results.csv'));
    expect(row!.status).toBe('ok');
    for (const path of row!.output!.split(';')) await readFile(join(out, path));
  });

  it.each([
    ['missing', (path: string) => rm(path)],
    ['damaged', (path: string) => writeFile(path, 'not a png any more')],
  ])('regenerates an image whose file is %s, and only that one', async (_, damage) => {
    const { run, out } = await firstRun();
    await damage(join(out, 'images', 'robots', 'robot-2.png'));
    const again = await run();
    expect(again.code).toBe(0);
    expect(thisRun(again.stdout)).toBe('0 new, 1 rerun, 2 skipped as already done');
    expect(server!.countByKey('A friendly robot')).toBe(2);
    expect(server!.stats.requests).toBe(4);
    const bytes = await readFile(join(out, 'images', 'robots', 'robot-2.png'));
    expect(bytes.subarray(1, 4).toString()).toBe('PNG');
  });

  it('regenerates every image with --force', async () => {
    const { run } = await firstRun();
    const again = await run('--force');
    expect(again.code).toBe(0);
    expect(thisRun(again.stdout)).toBe('0 new, 3 rerun, 0 skipped as already done');
    expect(server!.stats.requests).toBe(6);
  });

  it('moves the files when only output changed, sending nothing, and keeps them on the next run', async () => {
    const { run, dir, out, jobs } = await firstRun();
    const before = {
      lighthouse: sha(await readFile(join(out, 'images', 'lighthouse.png'))),
      robot2: sha(await readFile(join(out, 'images', 'robots', 'robot-2.png'))),
    };
    const costs = async () => (await readCsv(join(out, 'results.csv'))).map((row) => `${row.images}/${row.cost_usd}`);
    const totalCost = async () => (await readCsv(join(out, 'usage.csv'))).at(-1)!.cost_usd;
    const costsBefore = await costs();
    const totalBefore = await totalCost();
    jobs[0] = { ...jobs[0], output: 'renamed/{id}.png' };
    jobs[1] = { ...jobs[1], output: 'art/{id}_{index}.png' };
    await writeJobs(dir, jobs);

    const again = await run();
    expect(again.code).toBe(0);
    expect(thisRun(again.stdout)).toBe('0 new, 0 rerun, 1 skipped as already done, 2 renamed');
    expect(server!.stats.requests).toBe(3);
    expect(sha(await readFile(join(out, 'images', 'renamed', 'lighthouse.png')))).toBe(before.lighthouse);
    expect(sha(await readFile(join(out, 'images', 'art', 'robot_2.png')))).toBe(before.robot2);
    expect(await readdir(join(out, 'images', 'robots'))).toEqual([]);
    await expect(readFile(join(out, 'images', 'lighthouse.png'))).rejects.toThrow();
    const rows = await readCsv(join(out, 'results.csv'));
    expect(rows.map((row) => row.output)).toEqual([
      'images/renamed/lighthouse.png',
      'images/art/robot_1.png;images/art/robot_2.png',
      'images/fox.png',
    ]);
    expect(rows.every((row) => row.status === 'ok')).toBe(true);
    // The images are the same ones, paid once: the views keep their cost, and the audit counts it once.
    expect(await costs()).toEqual(costsBefore);
    expect(await totalCost()).toBe(totalBefore);
    const reportCsv = join(dir, 'report.csv');
    expect((await cli(['report', out, '--csv', reportCsv])).code).toBe(0);
    expect((await readCsv(reportCsv)).at(-1)!.cost_usd).toBe(totalBefore);

    const third = await run();
    expect(thisRun(third.stdout)).toBe('0 new, 0 rerun, 3 skipped as already done');
    expect(server!.stats.requests).toBe(3);
  });

  it('moves images of jobs that trade output names without mixing them up', async () => {
    const jobs = [
      { id: 'a', kind: 'image', prompt: 'A blue circle', size: '1024x1024', quality: 'low', output: 'first.png' },
      { id: 'b', kind: 'image', prompt: 'A green square', size: '1024x1024', quality: 'low', output: 'second.png' },
    ];
    const { run, dir, out } = await firstRun(jobs);
    const first = sha(await readFile(join(out, 'images', 'first.png')));
    const second = sha(await readFile(join(out, 'images', 'second.png')));
    await writeJobs(dir, [
      { ...jobs[0], output: 'second.png' },
      { ...jobs[1], output: 'first.png' },
    ]);

    expect((await run()).code).toBe(0);
    expect(sha(await readFile(join(out, 'images', 'second.png')))).toBe(first);
    expect(sha(await readFile(join(out, 'images', 'first.png')))).toBe(second);
    expect((await readdir(join(out, 'images'))).sort()).toEqual(['first.png', 'second.png']);
    const third = await run();
    expect(thisRun(third.stdout)).toBe('0 new, 0 rerun, 2 skipped as already done');
    expect(server!.stats.requests).toBe(2);
  });
});

describe('image files and links', () => {
  it('fails the job, writing nothing outside, when a folder inside images/ links outside the output folder', async () => {
    const { env } = await serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const outside = join(dir, 'outside');
    await mkdir(outside);
    await mkdir(join(out, 'images'), { recursive: true });
    await symlink(outside, join(out, 'images', 'escape'));
    const file = await writeJobs(dir, [
      { id: 'evil', kind: 'image', prompt: 'A cat', size: '1024x1024', quality: 'low', output: 'escape/{id}.png' },
      { id: 'fine', kind: 'image', prompt: 'A dog', size: '1024x1024', quality: 'low' },
    ]);
    const { code, stderr } = await cli(['run', file, '--out', out], { env });
    expect(code).toBe(1);
    expect(stderr).not.toMatch(/\n\s+at /);
    expect(await readdir(outside)).toEqual([]);
    const rows = await readCsv(join(out, 'results.csv'));
    expect(rows.map((row) => row.status)).toEqual(['failed', 'ok']);
    expect(rows[0]!.error).toContain('escape/evil.png');
    // The refused image was generated all the same: its cost is recorded, not $0.
    expect(Number(rows[0]!.cost_usd)).toBeGreaterThan(0);
    expect(rows[0]!.request_id).toMatch(/^req_/);
    expect(server!.countByKey('A cat')).toBe(1);
  });

  it('keeps the usage and request id of an image whose download fails every try', async () => {
    await serve();
    const client = new OpenAI({ apiKey: 'offline', baseURL: server!.url, maxRetries: 0 });
    let downloads = 0;
    const failingFetch = (async () => {
      downloads++;
      return new Response('gone', { status: 500 });
    }) as typeof fetch;
    const job = {
      id: 'postcard',
      kind: 'image' as const,
      model: 'dall-e-2',
      tags: [],
      source: { file: 'jobs.jsonl', line: 1 },
      endpoint: '/v1/images/generations' as const,
      body: { model: 'dall-e-2', prompt: 'A postcard', size: '256x256', response_format: 'url' },
    };
    const error = await executeJob(job, { client, outDir: await tempDir(), timeoutMs: 10_000, fetch: failingFetch }).catch((error: unknown) => error);
    expect(error).toBeInstanceOf(ImageSaveError);
    expect(error).toMatchObject({ reason: 'download', usage: { images: 1 }, requestId: expect.stringMatching(/^req_/) });
    expect(downloads).toBe(3);
  });

  it('records an image it cannot write as failed with its usage and cost, and stops with exit 4', async () => {
    const { env } = await serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    // A folder where the image file should go: the write fails with EISDIR after the image was paid for.
    await mkdir(join(out, 'images', 'blocked.png'), { recursive: true });
    const file = await writeJobs(dir, [
      { id: 'blocked', kind: 'image', prompt: 'A walled garden', size: '1024x1024', quality: 'low' },
      { id: 'later', kind: 'image', prompt: 'A quiet harbour', size: '1024x1024', quality: 'low' },
    ]);
    const { code, stderr } = await cli(['run', file, '--out', out, '--concurrency', '1'], { env });
    expect(code).toBe(4);
    expect(stderr).not.toMatch(/\n\s+at /);
    // No new request once the folder proved unusable.
    expect(server!.stats.requests).toBe(1);
    const [blocked, later] = await readCsv(join(out, 'results.csv'));
    expect(blocked).toMatchObject({ id: 'blocked', status: 'failed', attempts: '1', images: '1' });
    expect(Number(blocked!.cost_usd)).toBeGreaterThan(0);
    expect(Number(blocked!.total_tokens)).toBeGreaterThan(0);
    expect(blocked!.request_id).toMatch(/^req_/);
    expect(later).toMatchObject({ id: 'later', status: 'pending' });
    const total = (await readCsv(join(out, 'usage.csv'))).at(-1)!;
    expect(total).toMatchObject({ failed: '1', input_tokens: blocked!.input_tokens, output_tokens: blocked!.output_tokens, images: '1' });
    expect(total.cost_usd).toBe(blocked!.cost_usd);
  });

  it('replaces a linked image file instead of writing through the link', async () => {
    const { env } = await serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const precious = join(dir, 'precious.png');
    await writeFile(precious, 'keep me');
    await mkdir(join(out, 'images'), { recursive: true });
    await symlink(precious, join(out, 'images', 'pet.png'));
    const file = await writeJobs(dir, [{ id: 'pet', kind: 'image', prompt: 'A hamster', size: '1024x1024', quality: 'low' }]);
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    expect(await readFile(precious, 'utf8')).toBe('keep me');
    expect((await readFile(join(out, 'images', 'pet.png'))).subarray(1, 4).toString()).toBe('PNG');
  });

  it('refuses with exit 4, sending nothing, to move images through a link that leaves the output folder', async () => {
    const { run, dir, out, jobs } = await firstRun([{ id: 'owl', kind: 'image', prompt: 'An owl', size: '1024x1024', quality: 'low' }]);
    const outside = join(dir, 'outside');
    await mkdir(outside);
    await symlink(outside, join(out, 'images', 'escape'));
    await writeJobs(dir, [{ ...jobs[0], output: 'escape/{id}.png' }]);
    const { code, stderr } = await run();
    expect(code).toBe(4);
    expect(stderr).not.toMatch(/\n\s+at /);
    expect(await readdir(outside)).toEqual([]);
    expect(server!.stats.requests).toBe(1);
    await readFile(join(out, 'images', 'owl.png'));
  });
});
