import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { resolveRunFlags } from '../src/cli/run.js';
import { costOf } from '../src/cost/cost.js';
import { createPriceBook } from '../src/cost/prices.js';
import type { Usage } from '../src/common/types.js';
import { loadJobs } from '../src/jobs/load.js';
import { scanJobRecord } from '../src/output/journal-index.js';
import { RESULT_COLUMNS } from '../src/output/results.js';
import type { RunEvent } from '../src/run/options.js';
import { runJobs } from '../src/run/run.js';
import { cli, fakeClock, journalLines, offlineServerPerTest, readCsv, tempDir, writeJobs } from './helpers.js';

const KEY = 'sk-test-service-tier-1234567890';
const offline = offlineServerPerTest(KEY);

/** gpt-5.4-mini offers flex and has a standard price; gpt-4o-mini offers no flex. */
const FLEX_MODEL = 'gpt-5.4-mini';

const jobRecords = async (out: string): Promise<Record<string, unknown>[]> => (await journalLines(out)).filter((line) => line.type === 'job');

async function jobFile(jobs: Record<string, unknown>[]): Promise<{ dir: string; file: string; out: string }> {
  const dir = await tempDir();
  return { dir, file: await writeJobs(dir, jobs), out: join(dir, 'out') };
}


describe('the service tier of a request', () => {
  it('is sent as --service-tier says, a job field taking precedence, and left out when neither gives one', async () => {
    const env = await offline.serve();
    const { file, out } = await jobFile([
      { id: 'flagged', model: FLEX_MODEL, prompt: 'Tier from the flag' },
      { id: 'own', model: FLEX_MODEL, prompt: 'Tier from the job', service_tier: 'priority' },
      { id: 'picture', kind: 'image', model: 'gpt-image-1', prompt: 'A lighthouse', size: '1024x1024', quality: 'low' },
    ]);
    expect((await cli(['run', file, '--service-tier', 'flex', '--quiet', '--out', out], { env })).code).toBe(0);
    const sent = Object.fromEntries(offline.server.requests.map((request) => [request.key, request.serviceTier]));
    // Image requests have no service tier: the flag is for chat and vision jobs.
    expect(sent).toEqual({ 'Tier from the flag': 'flex', 'Tier from the job': 'priority', 'A lighthouse': undefined });

    const plain = await jobFile([{ id: 'plain', model: FLEX_MODEL, prompt: 'No tier at all' }]);
    expect((await cli(['run', plain.file, '--quiet', '--out', plain.out], { env })).code).toBe(0);
    expect(offline.server.requests.at(-1)).toMatchObject({ key: 'No tier at all' });
    expect(offline.server.requests.at(-1)!.serviceTier).toBeUndefined();
  });

  it('refuses a tier that is not one of auto, default, flex, priority, before anything is sent', async () => {
    const env = await offline.serve();
    const { file, out } = await jobFile([
      { id: 'bad', model: FLEX_MODEL, prompt: 'A bad tier', service_tier: 'cheap' },
      { id: 'good', model: FLEX_MODEL, prompt: 'A good one' },
    ]);
    expect((await cli(['run', file, '--quiet', '--out', out], { env })).code).toBe(2);
    expect((await cli(['run', file, '--service-tier', 'cheap', '--quiet', '--out', out], { env })).code).toBe(2);
    expect(offline.server.stats.requests).toBe(0);
  });

  it('shows in results.csv and results.jsonl as the tier the answer reports, in a last service_tier column', async () => {
    const env = await offline.serve();
    const { file, out } = await jobFile([
      { id: 'flex', model: FLEX_MODEL, prompt: 'Flex please', service_tier: 'flex' },
      { id: 'auto', model: FLEX_MODEL, prompt: 'Whatever the project says', service_tier: 'auto' },
      { id: 'none', model: FLEX_MODEL, prompt: 'No tier asked' },
    ]);
    expect((await cli(['run', file, '--quiet', '--out', out], { env })).code).toBe(0);
    expect(RESULT_COLUMNS.at(-2)).toBe('service_tier');
    const header = (await readFile(join(out, 'results.csv'), 'utf8')).split('\n')[0]!.split(',');
    expect(header.at(-2)).toBe('service_tier');
    const rows = await readCsv(join(out, 'results.csv'));
    expect(rows.map((row) => [row.id, row.service_tier])).toEqual([
      ['flex', 'flex'],
      ['auto', 'default'],
      ['none', 'default'],
    ]);
    const jsonl = (await readFile(join(out, 'results.jsonl'), 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(jsonl.map((row) => row.service_tier)).toEqual(['flex', 'default', 'default']);
    // The journal keeps the reported tier, in the layout the index reads without parsing.
    const lines = (await readFile(join(out, 'journal.jsonl'), 'latin1')).split('\n').filter((line) => line.startsWith('{"type":"job"'));
    expect(lines.map((line) => (JSON.parse(line) as { serviceTier?: string }).serviceTier)).toEqual(['flex', 'default', 'default']);
    for (const line of lines) expect(scanJobRecord(Buffer.from(line, 'latin1'), line, 0, line.length, { offset: 0, length: line.length }), line).toBeDefined();
  });

  it('fails a flex job whose model offers no flex with the API error, and sends the other jobs', async () => {
    const env = await offline.serve();
    const { file, out } = await jobFile([
      { id: 'no-flex', model: 'gpt-4o-mini', prompt: 'Flex on an old model', service_tier: 'flex' },
      { id: 'flex', model: FLEX_MODEL, prompt: 'Flex on a new model', service_tier: 'flex' },
    ]);
    expect((await cli(['run', file, '--quiet', '--out', out], { env })).code).toBe(1);
    const rows = await readCsv(join(out, 'results.csv'));
    expect(rows.map((row) => [row.id, row.status, row.service_tier])).toEqual([
      ['no-flex', 'failed', ''],
      ['flex', 'ok', 'flex'],
    ]);
    expect((await jobRecords(out))[0]).toMatchObject({ id: 'no-flex', status: 400, attempts: 1 });
  });

  it('is part of the request: changing it sends the job again, keeping it does not', async () => {
    const env = await offline.serve();
    const { file, out } = await jobFile([{ id: 'j1', model: FLEX_MODEL, prompt: 'Same prompt, other tier' }]);
    expect((await cli(['run', file, '--quiet', '--out', out], { env })).code).toBe(0);
    expect((await cli(['run', file, '--service-tier', 'flex', '--quiet', '--out', out], { env })).code).toBe(0);
    expect(offline.server.stats.requests).toBe(2);
    expect((await cli(['run', file, '--service-tier', 'flex', '--quiet', '--out', out], { env })).code).toBe(0);
    expect(offline.server.stats.requests).toBe(2);
    expect((await readCsv(join(out, 'results.csv')))[0]).toMatchObject({ id: 'j1', service_tier: 'flex' });
  });

  it('reads journals written before tiers were recorded: nothing is sent again, the column is empty', async () => {
    const env = await offline.serve();
    const { file, out } = await jobFile([
      { id: 'a', model: FLEX_MODEL, prompt: 'Old answer one' },
      { id: 'b', model: FLEX_MODEL, prompt: 'Old answer two' },
    ]);
    expect((await cli(['run', file, '--quiet', '--out', out], { env })).code).toBe(0);
    const journal = join(out, 'journal.jsonl');
    const old = (await readFile(journal, 'utf8')).replaceAll(/,"serviceTier":"[a-z]+"/g, '');
    expect(old).not.toContain('serviceTier');
    await writeFile(journal, old);
    const again = await cli(['run', file, '--out', out], { env });
    expect(again.code).toBe(0);
    expect(again.stderr).not.toContain('warning');
    expect(offline.server.stats.requests).toBe(2);
    expect((await readCsv(join(out, 'results.csv'))).map((row) => [row.status, row.service_tier])).toEqual([
      ['ok', ''],
      ['ok', ''],
    ]);
  });
});

describe('the cost of a tier', () => {
  const usageOf = (record: Record<string, unknown>): Usage => record.usage as Usage;

  it('is the Batch API rate for a flex answer: exactly half the default cost of the same usage', async () => {
    const env = await offline.serve();
    const job = { id: 'j1', model: FLEX_MODEL, prompt: 'What does flex cost?' };
    const standard = await jobFile([{ ...job, service_tier: 'default' }]);
    const flex = await jobFile([{ ...job, service_tier: 'flex' }]);
    expect((await cli(['run', standard.file, '--quiet', '--out', standard.out], { env })).code).toBe(0);
    expect((await cli(['run', flex.file, '--quiet', '--out', flex.out], { env })).code).toBe(0);
    const [standardRecord] = await jobRecords(standard.out);
    const [flexRecord] = await jobRecords(flex.out);
    expect(usageOf(flexRecord!)).toEqual(usageOf(standardRecord!));
    const standardUsd = standardRecord!.costUsd as number;
    expect(standardUsd).toBeGreaterThan(0);
    expect(flexRecord!.costUsd).toBe(standardUsd / 2);
    expect(flexRecord!.costUsd).toBe(costOf(usageOf(flexRecord!), FLEX_MODEL, createPriceBook(), { batch: true }).usd);
    expect(Number((await readCsv(join(flex.out, 'results.csv')))[0]!.cost_usd)).toBe(standardUsd / 2);

    // report and usage.csv sum what was paid.
    const csv = join(flex.dir, 'report.csv');
    expect((await cli(['report', flex.out, '--csv', csv])).code).toBe(0);
    expect(Number((await readCsv(csv)).at(-1)!.cost_usd)).toBe(standardUsd / 2);
    expect(Number((await readCsv(join(flex.out, 'usage.csv'))).at(-1)!.cost_usd)).toBe(standardUsd / 2);
  });

  it('follows the tier the answer reports, not the one asked for', async () => {
    // The API may serve a flex request at the default tier: it is billed, and shown, as default.
    const env = await offline.serve({ faults: [{ servedTier: 'default', match: { serviceTier: 'flex' } }] });
    const { file, out } = await jobFile([{ id: 'j1', model: FLEX_MODEL, prompt: 'Asked flex, served default', service_tier: 'flex' }]);
    expect((await cli(['run', file, '--quiet', '--out', out], { env })).code).toBe(0);
    const [record] = await jobRecords(out);
    expect(record).toMatchObject({ serviceTier: 'default' });
    expect(record!.costUsd).toBe(costOf(usageOf(record!), FLEX_MODEL, createPriceBook()).usd);
    expect((await readCsv(join(out, 'results.csv')))[0]).toMatchObject({ service_tier: 'default' });
  });

  it('is unknown for a priority answer whose model has no priority price: an empty cost and a warning, never a guess', async () => {
    const env = await offline.serve();
    const { dir, file, out } = await jobFile([{ id: 'p1', model: FLEX_MODEL, prompt: 'Priority please', service_tier: 'priority' }]);
    const run = await cli(['run', file, '--out', out], { env });
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/warning: no price known for gpt-5.4-mini at the priority tier/);
    expect((await jobRecords(out))[0]).toMatchObject({ serviceTier: 'priority', costUsd: null });
    expect((await readCsv(join(out, 'results.csv')))[0]).toMatchObject({ service_tier: 'priority', cost_usd: '' });

    // With priority rates from --prices, the answer is priced at them.
    const prices = join(dir, 'prices.json');
    await writeFile(prices, JSON.stringify({ [FLEX_MODEL]: { priority: { input: 0.5, cached_input: 0.05, output: 4 } } }));
    const priced = join(dir, 'priced');
    expect((await cli(['run', file, '--prices', prices, '--quiet', '--out', priced], { env })).code).toBe(0);
    const [record] = await jobRecords(priced);
    const usage = usageOf(record!);
    expect(record!.costUsd).toBeCloseTo(((usage.input_tokens - usage.cached_input_tokens) * 0.5 + usage.cached_input_tokens * 0.05 + usage.output_tokens * 4) / 1e6, 12);
  });

  it('is estimated at Batch rates for flex jobs, with the default rate as the worst case', async () => {
    const { dir, file } = await jobFile([{ id: 'e1', model: FLEX_MODEL, prompt: 'Estimate me', max_completion_tokens: 1000 }]);
    const plainCsv = join(dir, 'plain.csv');
    const flexCsv = join(dir, 'flex.csv');
    expect((await cli(['estimate', file, '--csv', plainCsv])).code).toBe(0);
    expect((await cli(['estimate', file, '--service-tier', 'flex', '--csv', flexCsv])).code).toBe(0);
    const plain = (await readCsv(plainCsv)).at(-1)!;
    const flex = (await readCsv(flexCsv)).at(-1)!;
    expect(Number(flex.expected_usd)).toBe(Number(plain.batch_usd));
    expect(Number(flex.expected_usd)).toBeLessThan(Number(plain.expected_usd));
    expect(flex.worst_case_usd).toBe(plain.worst_case_usd);
  });
});

describe('flex capacity', () => {
  const CAPACITY = { status: 429, code: 'resource_unavailable', type: 'invalid_request_error', match: { serviceTier: 'flex' } };

  async function setup(jobs: Record<string, unknown>[], faults: object[]) {
    const env = await offline.serve({ faults: faults as never });
    const { dir, file } = await jobFile(jobs);
    const { jobs: loaded, problems } = await loadJobs([file]);
    expect(problems).toEqual([]);
    const client = new OpenAI({ apiKey: KEY, baseURL: env.OPENAI_BASE_URL!, maxRetries: 0 });
    return { out: join(dir, 'out'), file, jobs: loaded, client };
  }

  it('is waited for: a flex request refused with 429 resource_unavailable is retried with a long backoff, and succeeds', async () => {
    const { out, file, jobs, client } = await setup([{ id: 'f1', model: FLEX_MODEL, prompt: 'Flex when there is room', service_tier: 'flex' }], [{ ...CAPACITY, times: 2 }]);
    const clock = fakeClock();
    const events: RunEvent[] = [];
    const summary = await runJobs(jobs, {
      outDir: out, client, prices: createPriceBook(), concurrency: 1, maxAttempts: 5, timeoutMs: 10_000,
      files: [file], clock, random: () => 0.999999, onEvent: (event) => events.push(event),
    });
    expect(summary.ok).toBe(1);
    expect(summary.stopReason).toBeUndefined();
    expect(offline.server.stats.requests).toBe(3);
    expect(clock.sleeps).toEqual([10_000, 20_000]);
    expect(events.filter((event) => event.type === 'retry')).toHaveLength(2);
    expect((await jobRecords(out))[0]).toMatchObject({ state: 'done', attempts: 3, serviceTier: 'flex' });
  });

  it('fails the job after --max-attempts with the 429 recorded, while the other jobs succeed and the run goes on', async () => {
    const { out, file, jobs, client } = await setup(
      [
        { id: 'f1', model: FLEX_MODEL, prompt: 'Flex that never gets room', service_tier: 'flex' },
        { id: 'd1', model: FLEX_MODEL, prompt: 'Default goes through' },
      ],
      [CAPACITY],
    );
    const clock = fakeClock();
    const summary = await runJobs(jobs, {
      outDir: out, client, prices: createPriceBook(), concurrency: 2, maxAttempts: 3, timeoutMs: 10_000,
      files: [file], clock, random: () => 0.999999,
    });
    expect(summary).toMatchObject({ ok: 1, failed: 1, pending: 0 });
    expect(summary.stopReason).toBeUndefined();
    expect(offline.server.requests.filter((request) => request.serviceTier === 'flex')).toHaveLength(3);
    // The job's own backoff, at the capacity schedule; no stop of the run (not a quota, not a key problem).
    expect(clock.sleeps).toEqual([10_000, 20_000]);
    const records = await jobRecords(out);
    expect(records.find((record) => record.id === 'f1')).toMatchObject({ state: 'failed', status: 429, attempts: 3, costUsd: 0 });
    expect(records.find((record) => record.id === 'd1')).toMatchObject({ state: 'done', serviceTier: 'default' });
  });

  it('gives flex requests their own, longer timeout', async () => {
    const slow = { headers: { 'x-slow': 'yes' }, delayMs: 400, match: { serviceTier: 'flex' } };
    const { out, file, jobs, client } = await setup([{ id: 'f1', model: FLEX_MODEL, prompt: 'Slow flex answer', service_tier: 'flex' }], [slow]);
    const summary = await runJobs(jobs, {
      outDir: out, client, prices: createPriceBook(), concurrency: 1, maxAttempts: 1, timeoutMs: 100, flexTimeoutMs: 5_000, files: [file],
    });
    expect(summary.ok).toBe(1);
    expect((await jobRecords(out))[0]).toMatchObject({ state: 'done', attempts: 1 });
  });

  it('run waits 900 s for a flex request unless --timeout is given, which then applies to every request', () => {
    expect(resolveRunFlags({ files: ['jobs.jsonl'] })).toMatchObject({ timeoutMs: 600_000, flexTimeoutMs: 900_000 });
    expect(resolveRunFlags({ files: ['jobs.jsonl'], timeout: '30' })).toMatchObject({ timeoutMs: 30_000, flexTimeoutMs: 30_000 });
  });
});
