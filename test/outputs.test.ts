import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Progress } from '../src/cli/progress.js';
import { startOfflineServer, type OfflineServer } from '../src/server/server.js';
import { zeroUsage, type Job } from '../src/common/types.js';
import type { JobRecord } from '../src/output/journal.js';
import { cli, readCsv, tempDir, writeJobs } from './helpers.js';

let server: OfflineServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const exists = (path: string) => stat(path).then(() => true, () => false);

describe('outputs', () => {
  it('downloads images a server returns as URLs and prices them per image', async () => {
    server = await startOfflineServer();
    const env = { OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: server.url };
    const dir = await tempDir();
    const file = await writeJobs(dir, [{ id: 'legacy', model: 'dall-e-3', prompt: 'a fox', size: '1024x1024', quality: 'standard' }]);
    const out = join(dir, 'out');
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    const [row] = await readCsv(join(out, 'results.csv'));
    expect(row).toMatchObject({ status: 'ok', output: 'images/legacy.png', images: '1', cost_usd: '0.04' });
    const bytes = await readFile(join(out, 'images/legacy.png'));
    expect(bytes.subarray(1, 4).toString('latin1')).toBe('PNG');
  });

  it('neutralises cells a spreadsheet would run as formulas, and writes the exact values to results.jsonl', async () => {
    const dir = await tempDir();
    const jobs = [
      { id: '=HYPERLINK("http://evil.example","click")', model: '=evil', prompt: 'a', tags: ['@SUM(1+1)', 'plain'] },
      { id: '+cmd|calc', model: 'gpt-4o-mini', prompt: 'b', tags: ['-2+3'] },
      { id: '@a', model: 'gpt-4o-mini', prompt: 'c', tags: ['\tx', '\rsum'] },
      { id: '-1', model: 'gpt-4o-mini', prompt: 'd' },
      { id: 'safe', model: 'gpt-4o-mini', prompt: 'e', tags: ['ok'] },
    ];
    const file = await writeJobs(dir, jobs);
    const out = join(dir, 'out');
    // Standing for the real API, so that report counts the answers as billed ones (it shows offline answers apart).
    server = await startOfflineServer({ markAnswers: false });
    const env = { OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: server.url };
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);

    const rows = await readCsv(join(out, 'results.csv'));
    expect(rows.map((row) => [row.id, row.model, row.tags])).toEqual([
      [`'=HYPERLINK("http://evil.example","click")`, "'=evil", "'@SUM(1+1);plain"],
      ["'+cmd|calc", 'gpt-4o-mini', "'-2+3"],
      ["'@a", 'gpt-4o-mini', "'\tx;\rsum"],
      ["'-1", 'gpt-4o-mini', ''],
      ['safe', 'gpt-4o-mini', 'ok'],
    ]);
    expect(rows.every((row) => /^\d+$/.test(row.input_tokens!))).toBe(true);
    const usage = await readCsv(join(out, 'usage.csv'));
    expect(usage.map((row) => row.model)).toEqual(["'=evil", 'gpt-4o-mini', 'TOTAL']);
    const report = join(dir, 'by-tag.csv');
    expect((await cli(['report', out, '--by', 'tag', '--csv', report])).code).toBe(0);
    expect((await readCsv(report)).map((row) => row.tag)).toEqual(expect.arrayContaining(["'@SUM(1+1)", "'-2+3", "'\tx", "'\rsum", 'ok']));

    const lines = (await readFile(join(out, 'results.jsonl'), 'utf8')).trimEnd().split('\n');
    const results = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(results.map((result) => [result.id, result.model, result.tags])).toEqual(jobs.map((job) => [job.id, job.model, job.tags ?? []]));
    expect(Object.keys(results[0]!)).toEqual(Object.keys(rows[0]!));
    for (const result of results) {
      expect(result).toMatchObject({ status: 'ok', attempts: 1, images: 0, finish_reason: 'stop', error: null });
      expect(result.output).toMatch(/^Offline reply/);
      for (const field of ['input_tokens', 'output_tokens', 'total_tokens', 'latency_ms']) expect(typeof result[field]).toBe('number');
    }
    expect(results.map((result) => result.cost_usd)).toEqual([null, ...rows.slice(1).map((row) => Number(row.cost_usd))]);
  });

  it('clears temporary files a killed run left behind, and nothing else', async () => {
    const dir = await tempDir();
    const out = join(dir, 'out');
    await mkdir(join(out, 'images', 'sub'), { recursive: true });
    const leftovers = [join(out, 'results.csv.4242.tmp'), join(out, 'images', 'sub', 'a.png.4242.0badcafe.tmp')];
    for (const path of leftovers) await writeFile(path, 'partial');
    await writeFile(join(out, 'images', 'notes.tmp'), 'mine');
    // The killed run had journaled its start (a folder with outputs and no journal is refused).
    await writeFile(join(out, 'journal.jsonl'), `${JSON.stringify({ type: 'run', startedAt: new Date(0).toISOString(), files: [], jobs: 1 })}\n`);
    const file = await writeJobs(dir, [{ id: 'a', model: 'gpt-4o-mini', prompt: 'hi' }]);
    expect((await cli(['run', file, '--out', out, '--offline'])).code).toBe(0);
    for (const path of leftovers) expect(await exists(path)).toBe(false);
    expect(await exists(join(out, 'images', 'notes.tmp'))).toBe(true);
  });
});

describe('progress', () => {
  const job = { id: 'j', kind: 'chat', model: 'm', tags: [], source: { file: 'f.jsonl', line: 1 } } as unknown as Job;
  const record = (state: 'done' | 'failed'): JobRecord => ({
    type: 'job', id: 'j', fingerprint: 'x', state, kind: 'chat', model: 'm', tags: [], source: 'f.jsonl:1', attempts: 1,
    output: '', files: [], usage: { ...zeroUsage(), total_tokens: 100 }, costUsd: state === 'done' ? 0.5 : 0, latencyMs: 1,
    startedAt: '', finishedAt: '', ...(state === 'failed' ? { error: '400 invalid_request_error: bad' } : {}),
  });

  it('writes plain status lines with done/total, failures, tokens, cost and ETA when not on a terminal', () => {
    let now = 0;
    let text = '';
    const progress = new Progress({ write: (t) => (text += t), isTTY: false, intervalSeconds: 30, now: () => now });
    progress.handle({ type: 'planned', total: 10, skipped: 6, moved: 0, rerun: 0, fresh: 4, left: 0, offline: 0 });
    now = 10_000;
    progress.handle({ type: 'finished', job, record: record('done') });
    progress.handle({ type: 'finished', job, record: record('failed') });
    progress.stop();
    expect(text).toContain('4 new, 0 to rerun, 6 already done');
    expect(text).toContain('failed: j (f.jsonl:1): 400 invalid_request_error: bad');
    expect(progress.status()).toBe('2/4 sent ok 1 failed 1 retries 0 | 200 tokens | $0.5 | 10s ETA 10s');
    expect(text).not.toContain('\r');
  });
});
