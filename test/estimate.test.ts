import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveEstimateFlags } from '../src/cli/estimate.js';
import { resolveRunFlags } from '../src/cli/run.js';
import { costOf } from '../src/cost/cost.js';
import { estimateJob, OUTPUT_DEFAULTS, worstCaseCost } from '../src/cost/estimate.js';
import { ESTIMATE_COLUMNS, EstimateSummary } from '../src/cost/estimate-summary.js';
import { loadJobs } from '../src/jobs/load.js';
import { createPriceBook } from '../src/cost/prices.js';
import { zeroUsage, type Job } from '../src/common/types.js';
import { cli, offlineServerPerTest, readCsv, tempDir, writeJobs } from './helpers.js';

const api = offlineServerPerTest('sk-test-estimate-key-1234567890');

/** Rates pinned so that the expectations below do not move with the price table (USD per million tokens). */
const book = createPriceBook({
  overrides: {
    'gpt-4.1-mini': { input: 0.4, output: 1.6 },
    'gpt-5-mini': { input: 0.25, output: 2 },
    'gpt-4o': { input: 2.5, output: 10 },
    'gpt-image-1.5': { input: 5, outputImage: 32 },
    'gpt-image-2': { input: 5, outputImage: 30 },
  },
});

const HAIKU = 'Write a haiku about servers humming at night.';
const LIGHTHOUSE = 'A watercolor lighthouse at dusk';

function chatJob(model: string, fields: Record<string, unknown> = {}, content: unknown = HAIKU): Job {
  return {
    id: 'chat',
    kind: 'chat',
    model,
    tags: [],
    source: { file: 'jobs.jsonl', line: 1 },
    endpoint: '/v1/chat/completions',
    body: { model, messages: [{ role: 'user', content }], ...fields },
  };
}

function imageJob(model: string, fields: Record<string, unknown> = {}): Job {
  return {
    id: 'picture',
    kind: 'image',
    model,
    tags: [],
    source: { file: 'jobs.jsonl', line: 1 },
    endpoint: '/v1/images/generations',
    body: { model, prompt: LIGHTHOUSE, ...fields },
  };
}

describe('estimateJob', () => {
  it('prices a chat job from its counted input and the default output guess and cap', () => {
    // Input: 3 + (3 + "user" 1 + the haiku prompt 10) = 17 tokens. gpt-4.1-mini does not reason: 500 expected, 4,096 worst.
    // Expected: 17·0.4 + 500·1.6 = 806.8 µ$; worst: 17·0.4 + 4096·1.6 = 6560.4 µ$; Batch: half the expected.
    const estimate = estimateJob(chatJob('gpt-4.1-mini'), book);
    expect(estimate).toMatchObject({
      inputTokens: 17,
      worstInputTokens: 17,
      expectedOutputTokens: 500,
      worstOutputTokens: 4096,
      expectedUsd: 0.0008068,
      worstUsd: 0.0065604,
      batchUsd: 0.0004034,
      missing: [],
    });
    expect(estimate.notes).toEqual(['default-output-bound']);
  });

  it('bounds the worst case by max_completion_tokens, per choice', () => {
    expect(estimateJob(chatJob('gpt-4.1-mini', { max_completion_tokens: 300 }), book)).toMatchObject({
      expectedOutputTokens: 300,
      worstOutputTokens: 300,
      notes: [],
    });
    expect(estimateJob(chatJob('gpt-4.1-mini', { max_completion_tokens: 300, n: 2 }), book)).toMatchObject({
      expectedOutputTokens: 600,
      worstOutputTokens: 600,
    });
    expect(estimateJob(chatJob('gpt-4.1-mini', { max_completion_tokens: 100 }), book, { expectedOutputTokens: 40 }).expectedOutputTokens).toBe(40);
  });

  it('gives reasoning models larger output defaults unless reasoning is turned off', () => {
    expect(estimateJob(chatJob('gpt-5-mini'), book)).toMatchObject({
      expectedOutputTokens: OUTPUT_DEFAULTS.expectedReasoning,
      worstOutputTokens: OUTPUT_DEFAULTS.worstReasoning,
    });
    expect(estimateJob(chatJob('gpt-5-mini', { reasoning_effort: 'none' }), book)).toMatchObject({
      expectedOutputTokens: OUTPUT_DEFAULTS.expected,
      worstOutputTokens: OUTPUT_DEFAULTS.worst,
    });
  });

  it('adds image inputs by their size, and the worst case of an image whose size is unknown', async () => {
    const parts = (url: string) => [{ type: 'text', text: HAIKU }, { type: 'image_url', image_url: { url, detail: 'high' } }];
    // fixtures/images/red-dot.png is 4x4: one tile on gpt-4o, 85 + 170 = 255 tokens on top of the 17 of the text.
    const dot = `data:image/png;base64,${(await readFile('fixtures/images/red-dot.png')).toString('base64')}`;
    const seen = estimateJob(chatJob('gpt-4o', {}, parts(dot)), book);
    expect(seen).toMatchObject({ inputTokens: 17 + 255, worstInputTokens: 17 + 255 });
    const remote = estimateJob(chatJob('gpt-4o', {}, parts('https://example.com/photo.jpg')), book);
    expect(remote).toMatchObject({ inputTokens: 17 + 765, worstInputTokens: 17 + 1445 });
    expect(remote.notes).toContain('image-size-assumed');
  });

  it("prices gpt-image-1.5 1024x1024 images by OpenAI's output token table at each quality", () => {
    // Prompt: 5 tokens at $5/M = 25 µ$. Output at $32/M: low 272 → 8704 µ$, medium 1056 → 33792 µ$, high 4160 → 133120 µ$.
    const at = (quality: string) => estimateJob(imageJob('gpt-image-1.5', { size: '1024x1024', quality }), book);
    expect(at('low')).toMatchObject({ inputTokens: 5, expectedOutputTokens: 272, worstOutputTokens: 272, images: 1, expectedUsd: 0.008729, worstUsd: 0.008729, batchUsd: 0.0043645 });
    expect(at('medium')).toMatchObject({ expectedOutputTokens: 1056, expectedUsd: 0.033817 });
    expect(at('high')).toMatchObject({ expectedOutputTokens: 4160, expectedUsd: 0.133145 });
    // n images cost n times the output; the prompt is sent once.
    expect(estimateJob(imageJob('gpt-image-1.5', { size: '1024x1024', quality: 'low', n: 3 }), book)).toMatchObject({ expectedOutputTokens: 816, images: 3 });
  });

  it('expects medium 1024x1024 and fears high at the dearest size when quality and size are left to the model', () => {
    // Expected: medium 1024x1024 = 1056 tokens; worst: high 1024x1536 = 6240 tokens, the largest of the three sizes.
    const estimate = estimateJob(imageJob('gpt-image-1.5'), book);
    expect(estimate).toMatchObject({ expectedOutputTokens: 1056, worstOutputTokens: 6240 });
    expect(estimate.notes).toEqual(['image-options-auto']);
  });

  it('sizes gpt-image-2 output with the formula behind OpenAI’s calculator', () => {
    // High quality: 1024x1024 → 7024 tokens, 1536x1024 → 5488 tokens (the calculator's figures).
    expect(estimateJob(imageJob('gpt-image-2', { size: '1024x1024', quality: 'high' }), book).expectedOutputTokens).toBe(7024);
    expect(estimateJob(imageJob('gpt-image-2', { size: '1536x1024', quality: 'high' }), book).expectedOutputTokens).toBe(5488);
  });

  it('prices DALL·E images per image at the requested size and quality', () => {
    // dall-e-3 hd 1024x1792: $0.12 each, two of them.
    expect(estimateJob(imageJob('dall-e-3', { size: '1024x1792', quality: 'hd', n: 2 }), book)).toMatchObject({ expectedUsd: 0.24, worstUsd: 0.24, batchUsd: 0.12 });
  });

  it('leaves the cost of an unpriced model unknown and names it', () => {
    const chat = estimateJob(chatJob('local-llama'), book);
    expect(chat).toMatchObject({ expectedUsd: null, worstUsd: null, batchUsd: null, missing: ['local-llama'] });
    expect(chat.notes).toContain('encoding-assumed');
    expect(estimateJob(imageJob('my-image-model'), book)).toMatchObject({ expectedUsd: null, missing: ['my-image-model'] });
    expect(worstCaseCost(chatJob('local-llama'), book)).toBeNull();
  });

  it('uses the same rates as the cost of a finished job', () => {
    const estimate = estimateJob(chatJob('gpt-4.1-mini'), book);
    const actual = costOf({ ...zeroUsage(), input_tokens: 17, output_tokens: 500, total_tokens: 517 }, 'gpt-4.1-mini', book);
    expect(estimate.expectedUsd).toBe(actual.usd);
  });

  it('never puts the worst case below the expected cost for the example jobs', async () => {
    const { jobs, problems } = await loadJobs(['jobs/chat.jsonl', 'jobs/vision.csv', 'jobs/images.json']);
    expect(problems).toEqual([]);
    const prices = createPriceBook();
    for (const job of jobs) {
      const estimate = estimateJob(job, prices);
      expect(estimate.worstUsd).not.toBeNull();
      expect(estimate.worstUsd!).toBeGreaterThanOrEqual(estimate.expectedUsd!);
      expect(estimate.worstOutputTokens).toBeGreaterThanOrEqual(estimate.expectedOutputTokens);
      expect(worstCaseCost(job, prices)).toBe(estimate.worstUsd);
    }
  });
});

describe('EstimateSummary', () => {
  it('sums per model and kind, leaves unpriced rows empty and marks the TOTAL incomplete', () => {
    const summary = new EstimateSummary();
    summary.add(estimateJob(chatJob('gpt-4.1-mini'), book));
    summary.add(estimateJob(chatJob('gpt-4.1-mini', { max_completion_tokens: 300 }), book));
    summary.add(estimateJob(chatJob('local-llama'), book));
    const [header, mini, llama, total] = summary.table();
    expect(header).toEqual([...ESTIMATE_COLUMNS]);
    // 806.8 µ$ + (17·0.4 + 300·1.6 = 486.8 µ$) = 1293.6 µ$.
    expect(mini).toEqual(['gpt-4.1-mini', 'chat', 2, 34, 800, '0.0012936', '0.0070472', '0.0006468', 0]);
    expect(llama!.slice(5)).toEqual(['', '', '', 1]);
    expect(total).toEqual(['TOTAL', '', 3, 51, 1300, '0.0012936', '0.0070472', '0.0006468', 1]);
    expect(summary.missing()).toEqual(['local-llama']);
    expect(summary.notes().get('default-output-bound')).toEqual(['gpt-4.1-mini', 'local-llama']);
  });
});

describe('nightshift estimate', () => {
  const totalRow = (stdout: string) => stdout.split('\n').find((line) => line.startsWith('TOTAL'))!.trim().split(/\s+/);

  it('estimates the example job files without a key or a server and prints a TOTAL', async () => {
    const out = join(await tempDir(), 'out');
    const { code, stdout } = await cli(['estimate', 'jobs/chat.jsonl', 'jobs/vision.csv', 'jobs/images.json', '--out', out]);
    expect(code).toBe(0);
    // TOTAL, jobs, input tokens, expected output tokens, expected, worst case, batch, unpriced jobs.
    const total = totalRow(stdout);
    expect(total[1]).toBe('12');
    expect(Number(total[4])).toBeGreaterThan(0);
    expect(total[7]).toBe('0');
  });

  it('writes the same table to --csv', async () => {
    const dir = await tempDir();
    const csv = join(dir, 'estimate.csv');
    const { code } = await cli(['estimate', 'jobs/chat.jsonl', '--out', join(dir, 'out'), '--csv', csv]);
    expect(code).toBe(0);
    const rows = await readCsv(csv);
    expect(Object.keys(rows[0]!)).toEqual([...ESTIMATE_COLUMNS]);
    const total = rows.at(-1)!;
    expect(total).toMatchObject({ model: 'TOTAL', jobs: '5', unpriced_jobs: '0' });
    const sum = (column: string) => rows.slice(0, -1).reduce((acc, row) => acc + Number(row[column]), 0);
    for (const column of ['jobs', 'input_tokens', 'expected_output_tokens']) expect(Number(total[column])).toBe(sum(column));
    expect(Number(total.expected_usd)).toBeCloseTo(sum('expected_usd'), 9);
  });

  it('leaves out jobs already done in the output folder, but not jobs whose request changed', async () => {
    const env = await api.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const jobs = [1, 2, 3].map((i) => ({ id: `q${i}`, model: 'gpt-4.1-mini', prompt: `Question number ${i}` }));
    const file = await writeJobs(dir, jobs);
    expect((await cli(['run', file, '--quiet', '--out', out], { env })).code).toBe(0);

    await writeJobs(dir, [jobs[0]!, { ...jobs[1]!, prompt: 'A different question' }, jobs[2]!, { id: 'q4', model: 'gpt-4.1-mini', prompt: 'New' }]);
    const csv = join(dir, 'estimate.csv');
    const { code, stdout } = await cli(['estimate', file, '--out', out, '--csv', csv]);
    expect(code).toBe(0);
    expect((await readCsv(csv)).at(-1)).toMatchObject({ model: 'TOTAL', jobs: '2' });
    expect(stdout).toMatch(/\b2 jobs already done\b/);
  });

  it('defaults --out to the folder run would use', () => {
    const argv = { files: ['jobs/chat.jsonl'] };
    const run = resolveRunFlags({ ...argv, concurrency: 8, 'max-attempts': 5, timeout: 600, 'progress-interval': 30, grace: 30 });
    expect(resolveEstimateFlags(argv).outDir).toBe(run.outDir);
  });

  it('names unpriced models and leaves their cost empty', async () => {
    const dir = await tempDir();
    const file = await writeJobs(dir, [{ id: 'a', model: 'local-llama', prompt: 'Hi' }, { id: 'b', model: 'gpt-4.1-mini', prompt: 'Hi' }]);
    const csv = join(dir, 'estimate.csv');
    const { code, stderr } = await cli(['estimate', file, '--out', join(dir, 'out'), '--csv', csv]);
    expect(code).toBe(0);
    expect(stderr).toContain('local-llama');
    const rows = await readCsv(csv);
    expect(rows.find((row) => row.model === 'local-llama')).toMatchObject({ expected_usd: '', worst_case_usd: '', batch_usd: '', unpriced_jobs: '1' });
    expect(rows.at(-1)).toMatchObject({ model: 'TOTAL', unpriced_jobs: '1' });
    expect(Number(rows.at(-1)!.expected_usd)).toBeGreaterThan(0);
  });

  it('exits 2 on invalid job files or flags, printing no table', async () => {
    const dir = await tempDir();
    const bad = join(dir, 'bad.jsonl');
    await writeFile(bad, '{"id": "x", "model": "gpt-4.1-mini"}\n');
    const invalid = await cli(['estimate', bad, '--out', join(dir, 'out')]);
    expect(invalid.code).toBe(2);
    expect(invalid.stdout).toBe('');
    const good = await writeJobs(dir, [{ id: 'a', model: 'gpt-4.1-mini', prompt: 'Hi' }]);
    expect((await cli(['estimate', good, '--out', join(dir, 'out'), '--expected-output', '-5'])).code).toBe(2);
  });

  it('exits 4 when the --csv file cannot be written', async () => {
    const dir = await tempDir();
    const file = await writeJobs(dir, [{ id: 'a', model: 'gpt-4.1-mini', prompt: 'Hi' }]);
    expect((await cli(['estimate', file, '--out', join(dir, 'out'), '--csv', join(dir, 'missing', 'estimate.csv')])).code).toBe(4);
  });
});
