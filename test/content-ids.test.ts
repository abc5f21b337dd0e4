import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { createPriceBook } from '../src/cost/prices.js';
import { pickJobs, streamJobs, validateJobFiles } from '../src/jobs/load.js';
import { jobsInFiles } from '../src/jobs/source.js';
import { runJobs } from '../src/run/run.js';
import { cli, journalLines, offlineServerPerTest, readCsv, tempDir, writeJobs } from './helpers.js';

const offline = offlineServerPerTest('sk-test-content-ids-1234567890');

const prompt = (text: string): Record<string, unknown> => ({ model: 'gpt-4o-mini', prompt: text });
const ids = async (out: string): Promise<string[]> => (await readCsv(join(out, 'results.csv'))).map((row) => row.id!);
const statuses = async (out: string): Promise<string[]> => (await readCsv(join(out, 'results.csv'))).map((row) => `${row.id}:${row.status}`);

describe('ids of jobs without an id', () => {
  it('inserting a prompt at the top of an id-less file sends that prompt alone', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, [prompt('First'), prompt('Second'), prompt('Third')]);
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    const before = await ids(out);

    await writeJobs(dir, [prompt('Inserted'), prompt('First'), prompt('Second'), prompt('Third')]);
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    expect(offline.server.stats.requests).toBe(4);
    expect(offline.server.countByKey('Inserted')).toBe(1);
    const after = await ids(out);
    expect(after.slice(1)).toEqual(before);
    expect((await statuses(out)).every((status) => status.endsWith(':ok'))).toBe(true);
  });

  it('a CSV row moved elsewhere keeps its id and is not sent again', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = join(dir, 'sheet.csv');
    await writeFile(file, 'model,prompt\ngpt-4o-mini,Alpha\ngpt-4o-mini,Beta\ngpt-4o-mini,Gamma\n');
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    const [alpha, beta, gamma] = await ids(out);
    expect(alpha).toMatch(/^sheet-[0-9a-f]{12}$/);

    await writeFile(file, 'model,prompt\ngpt-4o-mini,Gamma\ngpt-4o-mini,Alpha\ngpt-4o-mini,Beta\n');
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    expect(offline.server.stats.requests).toBe(3);
    expect(await ids(out)).toEqual([gamma, alpha, beta]);
  });

  it('identical id-less jobs get distinct ids, and each keeps its answer when another job is inserted', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, [prompt('Same'), prompt('Other'), prompt('Same')]);
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    const [first, , second] = await ids(out);
    expect(second).toBe(`${first}-2`);

    await writeJobs(dir, [prompt('New'), prompt('Same'), prompt('Other'), prompt('Same')]);
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    expect(offline.server.stats.requests).toBe(4);
    expect((await ids(out)).slice(1)).toEqual([first, expect.any(String), second]);
  });

  it('an id-less image job keeps its image file when a job is inserted before it', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const image = { prompt: 'A lighthouse', model: 'gpt-image-2', size: '1024x1024', quality: 'low' };
    const file = join(dir, 'art.json');
    await writeFile(file, JSON.stringify([image]));
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    const [name] = await readdir(join(out, 'images'));
    expect(name).toMatch(/^art-[0-9a-f]{12}\.png$/);
    const bytes = await readFile(join(out, 'images', name!));

    await writeFile(file, JSON.stringify([{ ...image, prompt: 'A harbour' }, image]));
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    expect(offline.server.stats.requests).toBe(2);
    expect(await readFile(join(out, 'images', name!))).toEqual(bytes);
  });
});

describe('output folders written with positional ids', () => {
  /**
   * A folder as a release that named id-less jobs by position (`jobs-1`, `art-2`) left it: the same requests under
   * those ids. Fingerprints do not cover ids, so running the jobs with those ids written out makes that journal.
   */
  it('resume without sending anything, chat, CSV and image jobs alike, and take the new ids', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const chats = [prompt('First'), prompt('Second')];
    const chatFile = await writeJobs(dir, chats.map((job, i) => ({ id: `jobs-${i + 1}`, ...job })));
    const csv = join(dir, 'sheet.csv');
    await writeFile(csv, 'id,model,prompt\nsheet-1,gpt-4o-mini,Alpha\nsheet-2,gpt-4o-mini,Alpha\n');
    const images = [
      { prompt: 'A lighthouse', model: 'gpt-image-2', size: '1024x1024', quality: 'low' },
      { prompt: 'A mascot', model: 'gpt-image-2', size: '1024x1024', quality: 'low', n: 2 },
    ];
    const art = join(dir, 'art.json');
    await writeFile(art, JSON.stringify(images.map((job, i) => ({ id: `art-${i + 1}`, ...job }))));
    const files = [chatFile, csv, art];
    expect((await cli(['run', ...files, '--out', out], { env })).code).toBe(0);
    expect(offline.server.stats.requests).toBe(6);
    const oldImages = new Map<string, Buffer>();
    for (const name of ['art-1.png', 'art-2-1.png', 'art-2-2.png']) oldImages.set(name, await readFile(join(out, 'images', name)));

    // The same jobs, without ids, as the old release read them.
    await writeJobs(dir, chats);
    await writeFile(csv, 'model,prompt\ngpt-4o-mini,Alpha\ngpt-4o-mini,Alpha\n');
    await writeFile(art, JSON.stringify(images));
    const estimate = await cli(['estimate', ...files, '--out', out], { env: {} });
    expect(estimate.code).toBe(0);
    expect(estimate.stdout).toMatch(/^TOTAL\s+0\s/m);

    const resumed = await cli(['run', ...files, '--out', out], { env });
    expect(resumed.code).toBe(0);
    expect(offline.server.stats.requests).toBe(6);
    const rows = await readCsv(join(out, 'results.csv'));
    expect(rows.map((row) => row.status)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'ok']);
    expect(rows.map((row) => row.id)).toEqual([
      expect.stringMatching(/^jobs-[0-9a-f]{12}$/),
      expect.stringMatching(/^jobs-[0-9a-f]{12}$/),
      expect.stringMatching(/^sheet-[0-9a-f]{12}$/),
      `${rows[2]!.id}-2`,
      expect.stringMatching(/^art-[0-9a-f]{12}$/),
      expect.stringMatching(/^art-[0-9a-f]{12}$/),
    ]);
    expect(rows[0]!.output).toContain('First');
    // The images take the names of the new ids, with the bytes that were paid for.
    const [lighthouse, mascot] = [rows[4]!.id!, rows[5]!.id!];
    expect(await readFile(join(out, 'images', `${lighthouse}.png`))).toEqual(oldImages.get('art-1.png'));
    expect(await readFile(join(out, 'images', `${mascot}-2.png`))).toEqual(oldImages.get('art-2-2.png'));
    expect(rows[5]!.output).toBe(`images/${mascot}-1.png;images/${mascot}-2.png`);

    // Spending counts each answer once, and the next run has nothing left to do either.
    const report = await cli(['report', out]);
    const firstTotal = /^TOTAL.*$/m.exec(report.stdout)?.[0];
    const again = await cli(['run', ...files, '--out', out], { env });
    expect(again.code).toBe(0);
    expect(offline.server.stats.requests).toBe(6);
    expect(/^TOTAL.*$/m.exec((await cli(['report', out])).stdout)?.[0]).toBe(firstTotal);
    const adopted = (await journalLines(out)).filter((line) => line.type === 'job' && line.attempts === 0);
    expect(adopted).toHaveLength(6);
  });
});

describe('output folders written with positional ids, jobs given ids since', () => {
  it('take the answers over without paying again, and a changed job is sent', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, [{ id: 'jobs-1', ...prompt('First') }, { id: 'jobs-2', ...prompt('Second') }]);
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);

    await writeJobs(dir, [{ id: 'first', ...prompt('First') }, { id: 'second', ...prompt('Second, edited') }]);
    const dry = await cli(['run', file, '--out', out, '--dry-run']);
    expect(dry.stdout).toMatch(/^second\s+new\s/m);
    expect(dry.stdout).not.toMatch(/^first\s/m);
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    expect(offline.server.stats.requests).toBe(3);
    expect(offline.server.countByKey('First')).toBe(1);
    expect(await statuses(out)).toEqual(['first:ok', 'second:ok']);
  });
});

describe('ids when large job files are read again', () => {
  it('a pass that reads only some jobs gives identical id-less jobs the ids validation gave them', async () => {
    const dir = await tempDir();
    const file = await writeJobs(dir, [prompt('Same'), prompt('Other'), prompt('Same')]);
    const { digests } = await validateJobFiles([file], { digests: true });
    const all = [];
    for await (const job of streamJobs([file], { ids: digests!.ids })) all.push(job.id);
    expect(all[2]).toBe(`${all[0]}-2`);
    const picked = [];
    for await (const { job } of pickJobs([file], (position) => position === 2, { ids: digests!.ids })) picked.push(job.id);
    expect(picked).toEqual([all[2]]);
  });

  it('a run streaming its jobs from the files sends, records and resumes identical id-less jobs apart', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const client = new OpenAI({ apiKey: env.OPENAI_API_KEY, baseURL: env.OPENAI_BASE_URL, maxRetries: 0 });
    const options = { outDir: out, client, prices: createPriceBook(), concurrency: 4, maxAttempts: 2, timeoutMs: 10_000, files: [] };
    const streamed = async (file: string) => {
      const { count, digests } = await validateJobFiles([file], { digests: true });
      return jobsInFiles([file], { count, digests: digests!, defaults: {} });
    };
    const file = await writeJobs(dir, [prompt('Same'), prompt('Other')]);
    expect((await runJobs(await streamed(file), options)).ok).toBe(2);
    const [first, other] = await ids(out);

    // The second copy is the only job sent: read alone, it still gets its own number.
    await writeJobs(dir, [prompt('Same'), prompt('Other'), prompt('Same')]);
    expect(await runJobs(await streamed(file), options)).toMatchObject({ ok: 3, fresh: 1, skipped: 2 });
    expect(offline.server.stats.requests).toBe(3);
    expect(await ids(out)).toEqual([first, other, `${first}-2`]);

    await writeJobs(dir, [prompt('New'), prompt('Same'), prompt('Other'), prompt('Same')]);
    expect(await runJobs(await streamed(file), options)).toMatchObject({ ok: 4, fresh: 1, skipped: 3 });
    expect(offline.server.stats.requests).toBe(4);
    expect(await ids(out)).toEqual([expect.any(String), first, other, `${first}-2`]);
  });

  it('numbers 40,000 copies of one id-less job in a pass over the file, and again in every later pass', async () => {
    // Each copy used to try every number from 1: 800 million checks, a validation that ran for minutes.
    const copies = 40_000;
    const dir = await tempDir();
    const file = await writeJobs(dir, [prompt('Other'), ...Array.from({ length: copies }, () => prompt('Same'))]);
    const { count, digests, problems } = await validateJobFiles([file], { digests: true });
    expect(problems).toEqual([]);
    expect(count).toBe(copies + 1);
    const numbers: number[] = [];
    let base = '';
    for await (const job of streamJobs([file], { ids: digests!.ids })) {
      if (job.id.endsWith('-2')) base = job.id.slice(0, -2);
      numbers.push(base && job.id.startsWith(`${base}-`) ? Number(job.id.slice(base.length + 1)) : 1);
    }
    expect(numbers.slice(2)).toEqual(Array.from({ length: copies - 1 }, (_, i) => i + 2));
    const picked = [];
    for await (const { job } of pickJobs([file], (position) => position === copies, { ids: digests!.ids })) picked.push(job.id);
    expect(picked).toEqual([`${base}-${copies}`]);
  });
});
