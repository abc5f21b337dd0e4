import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import OpenAI, { toFile } from 'openai';
import { describe, expect, it } from 'vitest';
import { parseResultLine, requestLine, type BatchResult } from '../src/batch/lines.js';
import { writeParts, type BatchPart } from '../src/batch/parts.js';
import { NightshiftError } from '../src/common/errors.js';
import type { Job } from '../src/common/types.js';
import { fingerprint } from '../src/jobs/fingerprint.js';
import { loadJobs } from '../src/jobs/load.js';
import { jobsInMemory } from '../src/jobs/source.js';
import { offlineServerPerTest, tempDir, writeJobs } from './helpers.js';

const offline = offlineServerPerTest('sk-test-batch-parts-1234567890');

const chat = (id: string, model = 'gpt-4o-mini', prompt = `Question ${id}`): Job => ({
  id,
  kind: 'chat',
  model,
  tags: [],
  source: { file: 'jobs.jsonl', line: 1 },
  endpoint: '/v1/chat/completions',
  body: { model, messages: [{ role: 'user', content: prompt }] },
});

const image = (id: string, model = 'gpt-image-1'): Job => ({
  id,
  kind: 'image',
  model,
  tags: [],
  source: { file: 'jobs.jsonl', line: 1 },
  endpoint: '/v1/images/generations',
  body: { model, prompt: `Picture ${id}` },
  output: '{id}.png',
});

async function* each<T>(items: readonly T[]): AsyncGenerator<T> {
  yield* items;
}

/** A part file's lines, parsed. */
async function partLines(part: BatchPart): Promise<{ custom_id: string; url: string; body: Record<string, unknown> }[]> {
  return (await readFile(part.file, 'utf8'))
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as { custom_id: string; url: string; body: Record<string, unknown> });
}

/** A part's id list: which job and request each custom_id stands for. */
async function idList(part: BatchPart): Promise<{ custom_id: string; id: string; fingerprint: string }[]> {
  return (await readFile(part.ids, 'utf8'))
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as { custom_id: string; id: string; fingerprint: string });
}

const lineBytes = (job: Job): number => Buffer.byteLength(JSON.stringify(requestLine(job))) + 1;

async function idsOf(parts: BatchPart[]): Promise<string[][]> {
  return Promise.all(parts.map(async (part) => (await idList(part)).map((entry) => entry.id)));
}

describe('splitting jobs into Batch API input files', () => {
  it('puts one endpoint and one model in each part, every job once, in input order', async () => {
    const dir = await tempDir();
    const jobs = [chat('a'), image('b'), chat('c', 'gpt-4.1-nano'), chat('d'), image('e'), chat('f', 'gpt-4.1-nano'), image('g', 'gpt-image-1-mini')];
    const parts = await writeParts(each(jobs), { dir });
    expect(parts.map(({ endpoint, model, requests }) => ({ endpoint, model, requests }))).toEqual([
      { endpoint: '/v1/chat/completions', model: 'gpt-4o-mini', requests: 2 },
      { endpoint: '/v1/images/generations', model: 'gpt-image-1', requests: 2 },
      { endpoint: '/v1/chat/completions', model: 'gpt-4.1-nano', requests: 2 },
      { endpoint: '/v1/images/generations', model: 'gpt-image-1-mini', requests: 1 },
    ]);
    expect(await idsOf(parts)).toEqual([['a', 'd'], ['b', 'e'], ['c', 'f'], ['g']]);
    for (const part of parts) {
      const lines = await partLines(part);
      expect(new Set(lines.map((line) => line.url))).toEqual(new Set([part.endpoint]));
      expect(new Set(lines.map((line) => line.body.model))).toEqual(new Set([part.model]));
      expect(part.bytes).toBe((await stat(part.file)).size);
      expect(part.file.startsWith(dir)).toBe(true);
    }
  });

  it('takes jobs with their positions, as a picked pass yields them', async () => {
    const source = jobsInMemory([chat('a'), chat('b'), chat('c')]);
    const parts = await writeParts(source.pick((position) => position !== 1, 0), { dir: await tempDir() });
    expect(await idsOf(parts)).toEqual([['a', 'c']]);
  });

  it('closes a part at exactly maxRequests lines', async () => {
    const seven = Array.from({ length: 7 }, (_, i) => chat(`j${i}`));
    const parts = await writeParts(each(seven), { dir: await tempDir(), maxRequests: 3 });
    expect(parts.map((part) => part.requests)).toEqual([3, 3, 1]);
    expect((await idsOf(parts)).flat()).toEqual(seven.map((job) => job.id));

    const six = await writeParts(each(seven.slice(0, 6)), { dir: await tempDir(), maxRequests: 3 });
    expect(six.map((part) => part.requests)).toEqual([3, 3]);
  });

  it('closes a part at exactly maxBytes bytes, and never goes a byte over', async () => {
    // Ids and prompts of one length make lines of one length.
    const jobs = Array.from({ length: 5 }, (_, i) => chat(`j${i}`));
    const size = lineBytes(jobs[0]!);
    expect(new Set(jobs.map(lineBytes))).toEqual(new Set([size]));

    const fits = await writeParts(each(jobs), { dir: await tempDir(), maxBytes: 2 * size });
    expect(fits.map((part) => [part.requests, part.bytes])).toEqual([
      [2, 2 * size],
      [2, 2 * size],
      [1, size],
    ]);
    const byteShort = await writeParts(each(jobs), { dir: await tempDir(), maxBytes: 2 * size - 1 });
    expect(byteShort.map((part) => part.requests)).toEqual([1, 1, 1, 1, 1]);
    for (const part of [...fits, ...byteShort]) expect((await stat(part.file)).size).toBe(part.bytes);
  });

  it('keeps a part open per model while models interleave, and closes each as it fills', async () => {
    const models = ['gpt-4o-mini', 'gpt-4.1-nano', 'gpt-4.1-mini', 'gpt-4o', 'gpt-5-mini'];
    const jobs = Array.from({ length: 25 }, (_, i) => chat(`j${i}`, models[i % models.length]));
    const parts = await writeParts(each(jobs), { dir: await tempDir(), maxRequests: 2 });
    expect(parts).toHaveLength(15);
    for (const model of models) {
      const own = parts.filter((part) => part.model === model);
      expect(own.map((part) => part.requests)).toEqual([2, 2, 1]);
      expect((await idsOf(own)).flat()).toEqual(jobs.filter((job) => job.model === model).map((job) => job.id));
    }
  });

  it('writes a full part to its file before the next jobs are read', async () => {
    const dir = await tempDir();
    let seenBeforeThird: string[] = [];
    async function* jobs(): AsyncGenerator<Job> {
      yield chat('a');
      yield chat('b');
      // The first part is full (two requests): it is on disk, whole, before a third job is asked for.
      seenBeforeThird = (await readdir(dir)).filter((name) => name.endsWith('.jsonl') && !name.includes('ids'));
      const [first] = seenBeforeThird;
      expect(first).toBeDefined();
      expect((await readFile(join(dir, first!), 'utf8')).split('\n').filter(Boolean)).toHaveLength(2);
      yield chat('c');
    }
    const parts = await writeParts(jobs(), { dir, maxRequests: 2 });
    expect(seenBeforeThird).toHaveLength(1);
    expect(parts.map((part) => part.requests)).toEqual([2, 1]);
  });

  it('refuses a job whose line alone is over maxBytes, naming it', async () => {
    const small = chat('small');
    const big = { ...chat('big', 'gpt-4o-mini', 'x'.repeat(1000)), source: { file: 'prompts.jsonl', line: 42 } };
    const error = await writeParts(each([small, big]), { dir: await tempDir(), maxBytes: lineBytes(small) + 10 }).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(NightshiftError);
    expect(error).toMatchObject({ code: 'E_VALIDATION', context: { jobId: 'big', file: 'prompts.jsonl', line: 42 } });
  });

  it('refuses a job given twice rather than send it in two lines or two batches', async () => {
    const twice = writeParts(each([chat('a'), chat('b', 'gpt-4.1-nano'), chat('a')]), { dir: await tempDir(), maxRequests: 1 });
    await expect(twice).rejects.toThrow(/"a"/);
    await expect(writeParts(each([chat('a'), chat('a')]), { dir: await tempDir() })).rejects.toThrow(/"a"/);
  });

  it('refuses caps that are not whole numbers within the API limits, naming the value', async () => {
    for (const caps of [{ maxRequests: 0 }, { maxRequests: 1.5 }, { maxRequests: 50_001 }, { maxBytes: 0 }, { maxBytes: Number.NaN }, { maxBytes: 300_000_000 }]) {
      await expect(writeParts(each([chat('a')]), { dir: await tempDir(), ...caps }), JSON.stringify(caps)).rejects.toMatchObject({ code: 'E_USAGE' });
    }
  });

  it('writes no part for no jobs', async () => {
    const dir = await tempDir();
    expect(await writeParts(each([]), { dir })).toEqual([]);
    expect(await readdir(dir)).toEqual([]);
  });

  it('lists the job and full request fingerprint of every custom_id', async () => {
    const jobs = [chat('a'), chat('b'), image('c')];
    const parts = await writeParts(each(jobs), { dir: await tempDir() });
    for (const part of parts) {
      const lines = await partLines(part);
      const list = await idList(part);
      expect(list.map((entry) => entry.custom_id)).toEqual(lines.map((line) => line.custom_id));
      expect(part.firstCustomId).toBe(lines[0]!.custom_id);
      expect(part.lastCustomId).toBe(lines.at(-1)!.custom_id);
      for (const entry of list) {
        const job = jobs.find((candidate) => candidate.id === entry.id)!;
        expect(entry.fingerprint).toBe(fingerprint(job));
      }
    }
  });
});

/** Uploads a part, submits it as a batch and polls it until it has ended. */
async function runPart(client: OpenAI, part: BatchPart): Promise<OpenAI.Batch> {
  const upload = await client.files.create({ file: await toFile(createReadStream(part.file), 'part.jsonl'), purpose: 'batch' });
  expect(upload.bytes).toBe(part.bytes);
  let batch = await client.batches.create({ input_file_id: upload.id, endpoint: part.endpoint, completion_window: '24h' });
  for (let polls = 0; ['validating', 'in_progress', 'finalizing'].includes(batch.status) && polls < 50; polls++) batch = await client.batches.retrieve(batch.id);
  return batch;
}

/** The lines of an output or error file, read as results, each with the job its part's id list names. */
async function results(client: OpenAI, part: BatchPart, fileId: string | null | undefined): Promise<{ id: string; fingerprint: string; result: BatchResult }[]> {
  if (fileId === null || fileId === undefined) return [];
  const list = new Map((await idList(part)).map((entry) => [entry.custom_id, entry]));
  const lines = (await (await client.files.content(fileId)).text()).split('\n').filter(Boolean);
  return lines.map((text) => {
    const parsed = parseResultLine(text);
    if (!('result' in parsed)) throw new Error(`unexpected line ${text}`);
    const entry = list.get(parsed.result.customId);
    if (entry === undefined) throw new Error(`no job for ${parsed.result.customId}`);
    return { id: entry.id, fingerprint: entry.fingerprint, result: parsed.result };
  });
}

describe('parts through the offline Batch API', () => {
  it('complete, and every output line maps back to its job with the reply the live endpoint gives, in any order', async () => {
    const env = await offline.serve({ batch: { shuffleOutput: true } });
    const client = new OpenAI({ apiKey: env.OPENAI_API_KEY, baseURL: env.OPENAI_BASE_URL, maxRetries: 0 });
    const dir = await tempDir();
    const file = await writeJobs(dir, [
      ...Array.from({ length: 5 }, (_, i) => ({ id: `q${i}`, model: 'gpt-4o-mini', prompt: `Question number ${i}` })),
      { id: 'q-other', model: 'gpt-4.1-nano', system: 'Be brief.', prompt: 'Another model' },
      { id: `a long id that no custom_id could hold as it is ${'z'.repeat(60)}`, model: 'gpt-4.1-nano', prompt: 'Long id' },
      { id: 'pic', model: 'gpt-image-1', prompt: 'A lighthouse at night', size: '1024x1024' },
    ]);
    const { jobs, problems } = await loadJobs([file]);
    expect(problems).toEqual([]);
    const parts = await writeParts(each(jobs), { dir: join(dir, 'parts'), maxRequests: 3 });
    expect(parts.map((part) => part.requests)).toEqual([3, 2, 2, 1]);

    const answered = new Map<string, Record<string, unknown>>();
    for (const part of parts) {
      const batch = await runPart(client, part);
      expect(batch.status).toBe('completed');
      expect(batch.request_counts).toEqual({ total: part.requests, completed: part.requests, failed: 0 });
      const lines = await results(client, part, batch.output_file_id);
      expect(lines).toHaveLength(part.requests);
      for (const { id, fingerprint: fp, result } of lines) {
        const job = jobs.find((candidate) => candidate.id === id)!;
        expect(fp).toBe(fingerprint(job));
        expect(answered.has(id)).toBe(false);
        if (!result.ok) throw new Error(`${id} failed`);
        answered.set(id, result.body);
      }
    }
    expect([...answered.keys()].sort()).toEqual(jobs.map((job) => job.id).sort());
    for (const job of jobs) {
      const body = answered.get(job.id)!;
      if (job.endpoint === '/v1/chat/completions') {
        const live = await client.chat.completions.create(job.body as never);
        expect(body.choices).toEqual(live.choices);
        expect(body.usage).toEqual(live.usage);
      } else {
        const live = await client.images.generate(job.body as never);
        expect(body.data).toEqual(live.data);
      }
    }
  });

  it('map refused and unfinished lines back to their jobs, with the status and error the batch gave', async () => {
    const refusal = { status: 429, type: 'rate_limit_exceeded', code: 'rate_limit', match: { promptIncludes: 'refuse me' } };
    const env = await offline.serve({ batch: { failLines: [refusal], expire: { afterLines: 2 } } });
    const client = new OpenAI({ apiKey: env.OPENAI_API_KEY, baseURL: env.OPENAI_BASE_URL, maxRetries: 0 });
    const jobs = [chat('fine'), chat('refused', 'gpt-4o-mini', 'Please refuse me'), chat('late'), chat('later')];
    const [part] = await writeParts(each(jobs), { dir: await tempDir() });
    const batch = await runPart(client, part!);
    expect(batch.status).toBe('expired');
    const lines = [...(await results(client, part!, batch.output_file_id)), ...(await results(client, part!, batch.error_file_id))];
    const byId = new Map(lines.map((line) => [line.id, line.result]));
    expect([...byId.keys()].sort()).toEqual(['fine', 'late', 'later', 'refused']);
    expect(byId.get('fine')).toMatchObject({ ok: true, status: 200 });
    expect(byId.get('refused')).toMatchObject({ ok: false, status: 429, error: { type: 'rate_limit_exceeded', code: 'rate_limit' } });
    for (const id of ['late', 'later']) {
      expect(byId.get(id)).toMatchObject({ ok: false, error: { code: 'batch_expired' } });
      expect(byId.get(id)).not.toHaveProperty('status');
    }
  });
});
