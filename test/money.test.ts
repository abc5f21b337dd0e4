import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, journalLines, offlineServerPerTest, readCsv, tempDir, writeJobs } from './helpers.js';

const api = offlineServerPerTest('sk-test-money-key-1234567890');

/** The dollars a summary line gives for one of the figures (`this run spent $0.0012`). */
function figure(stdout: string, label: string): number {
  const match = new RegExp(`${label} \\$([0-9.]+)`).exec(stdout);
  if (!match) throw new Error(`no "${label}" in: ${stdout}`);
  return Number(match[1]);
}

/** The TOTAL cost of `report` over `folders`, from its CSV. */
async function reportTotal(folders: string[], extra: string[] = []): Promise<number> {
  const csv = join(await tempDir(), 'report.csv');
  const result = await cli(['report', ...folders, '--csv', csv, ...extra]);
  expect(result.code).toBe(0);
  const rows = await readCsv(csv);
  return Number(rows.at(-1)!.cost_usd);
}

const jobs = (second: string): object[] => [
  { id: 'a', model: 'gpt-4o-mini', prompt: 'What is a lighthouse?', max_completion_tokens: 50 },
  { id: 'b', model: 'gpt-4o-mini', prompt: second, max_completion_tokens: 50 },
];

describe('money figures that agree', () => {
  it('the summary shows what this run spent, what the current results cost and what the folder paid in all, as usage.csv and report do', async () => {
    const env = await api.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, jobs('Name a tall lighthouse.'));
    const first = await cli(['run', file, '--out', out], { env });
    expect(first.code).toBe(0);

    // Job b changes: its first answer is superseded, and paid for all the same.
    await writeJobs(dir, jobs('Name the tallest lighthouse in the world, please.'));
    const second = await cli(['run', file, '--out', out], { env });
    expect(second.code).toBe(0);

    const records = (await journalLines(out)).filter((line) => line.type === 'job');
    const costs = records.map((line) => Number(line.costUsd));
    const [firstA, firstB, secondB] = costs as [number, number, number];
    expect(records).toHaveLength(3);
    expect(figure(second.stdout, 'this run spent')).toBeCloseTo(secondB, 9);
    const usageTotal = Number((await readCsv(join(out, 'usage.csv'))).at(-1)!.cost_usd);
    expect(usageTotal).toBeCloseTo(firstA + secondB, 9);
    expect(figure(second.stdout, 'current results')).toBeCloseTo(usageTotal, 9);
    expect(figure(second.stdout, 'paid in all')).toBeCloseTo(firstA + firstB + secondB, 9);
    expect(await reportTotal([out])).toBeCloseTo(figure(second.stdout, 'paid in all'), 9);
  });

  it('report on a parent folder covers every output folder below it', async () => {
    const env = await api.serve();
    const dir = await tempDir();
    const file = await writeJobs(dir, jobs('Name a tall lighthouse.'));
    const parent = join(dir, 'runs');
    await mkdir(parent);
    const paid: number[] = [];
    for (const name of ['monday', 'tuesday']) {
      const result = await cli(['run', file, '--out', join(parent, name)], { env });
      expect(result.code).toBe(0);
      paid.push(figure(result.stdout, 'paid in all'));
    }
    expect(await reportTotal([parent])).toBeCloseTo(paid[0]! + paid[1]!, 9);
  });

  it('report --prices prices the journaled usage again', async () => {
    const env = await api.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, jobs('Name a tall lighthouse.'));
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    const prices = join(dir, 'prices.json');
    await writeFile(prices, JSON.stringify({ 'gpt-4o-mini': { input: 1, cached_input: 1, output: 10 } }));
    const records = (await journalLines(out)).filter((line) => line.type === 'job');
    const expected = records.reduce((sum, line) => {
      const usage = line.usage as Record<string, number>;
      return sum + (usage.input_tokens! * 1 + usage.output_tokens! * 10) / 1e6;
    }, 0);
    expect(await reportTotal([out], ['--prices', prices])).toBeCloseTo(expected, 9);
  });

  it('a run stopped by --budget names the budget that lets the next job start, and that budget does', async () => {
    const env = await api.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const many = Array.from({ length: 6 }, (_, i) => ({ id: `q${i}`, model: 'gpt-4o-mini', prompt: `Question number ${i}`, max_completion_tokens: 100 }));
    const file = await writeJobs(dir, many);
    const first = await cli(['run', file, '--out', out, '--budget', '0.0001', '--concurrency', '1'], { env });
    expect(first.code).toBe(3);
    const done = (await journalLines(out)).filter((line) => line.type === 'job').length;
    const suggested = /--budget ([0-9.]+) or more/.exec(first.stderr)?.[1];
    expect(suggested).toBeDefined();
    const second = await cli(['run', file, '--out', out, '--budget', suggested!, '--concurrency', '1'], { env });
    expect((await journalLines(out)).filter((line) => line.type === 'job').length).toBeGreaterThan(done);
    expect([0, 3]).toContain(second.code);
  });

  it('--budget caps what the folder paid in all, the journals --fresh set aside included', async () => {
    const env = await api.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, jobs('Name a tall lighthouse.'));
    const first = await cli(['run', file, '--out', out], { env });
    const paid = figure(first.stdout, 'paid in all');
    const sent = api.server.stats.requests;
    // Starting afresh sends both jobs again; what the old journal paid leaves no room for even one of them.
    const fresh = await cli(['run', file, '--out', out, '--fresh', '--force', '--budget', String(paid * 1.5)], { env });
    expect(fresh.code).toBe(3);
    expect(api.server.stats.requests).toBe(sent);
  });

  it('a budget warns at the start about reasoning jobs that reserve the planning cap, naming the field to set', async () => {
    const env = await api.serve();
    const dir = await tempDir();
    const file = await writeJobs(dir, [{ id: 'r', model: 'o4-mini', prompt: 'Think about lighthouses.' }]);
    const result = await cli(['run', file, '--out', join(dir, 'out'), '--budget', '5'], { env });
    expect(result.code).toBe(0);
    const warning = result.stderr.split('\n').find((line) => line.includes('o4-mini') && line.includes('max_completion_tokens'));
    expect(warning).toBeDefined();
  });

  it('refuses at the start a --tpm below what one request needs, sending nothing', async () => {
    const env = await api.serve();
    const dir = await tempDir();
    const file = await writeJobs(dir, jobs('Name a tall lighthouse.'));
    const result = await cli(['run', file, '--out', join(dir, 'out'), '--tpm', '20'], { env });
    expect(result.code).toBe(2);
    expect(api.server.stats.requests).toBe(0);
  });
});
