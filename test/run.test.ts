import { appendFile, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { OfflineServerOptions } from '../src/server/server.js';
import { cli, offlineServerPerTest, readCsv, spawnCli, tempDir, writeJobs } from './helpers.js';

const offline = offlineServerPerTest('sk-test-secret-key-1234567890');
const serve = async (options?: OfflineServerOptions): Promise<{ env: Record<string, string> }> => ({ env: await offline.serve(options) });

const chatJobs = (count: number, model = 'gpt-4o-mini') =>
  Array.from({ length: count }, (_, i) => ({ id: `q${i + 1}`, model, prompt: `Question number ${i + 1}` }));

describe('nightshift run', () => {
  it('never has more requests in flight than --concurrency', async () => {
    const { env } = await serve({ latencyMs: 40 });
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(30));
    const { code } = await cli(['run', file, '--out', join(dir, 'out'), '--concurrency', '4'], { env });
    expect(code).toBe(0);
    expect(offline.server.stats.requests).toBe(30);
    expect(offline.server.stats.maxInFlight).toBe(4);
  });

  it('prints no Node warning (listener leaks) over hundreds of requests at high concurrency', async () => {
    const { env } = await serve({ latencyMs: 5 });
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(400));
    const run = spawnCli(['run', file, '--out', join(dir, 'out'), '--concurrency', '64', '--quiet'], { cwd: dir, env });
    const { code } = await run.exited;
    expect(run.output().stderr).not.toMatch(/Warning/);
    expect(code).toBe(0);
    expect(offline.server.stats.requests).toBe(400);
  });

  it('writes results.csv in input order with the documented columns and usage.csv with matching sums', async () => {
    const { env } = await serve();
    const dir = await tempDir();
    const jobs = [
      ...chatJobs(3),
      { id: 'multi', model: 'gpt-5-mini', prompt: 'Reply with "quotes", commas, and\nseveral lines' },
    ];
    const file = await writeJobs(dir, jobs);
    const out = join(dir, 'out');
    const { code, stdout } = await cli(['run', file, '--out', out, '--concurrency', '3'], { env });
    expect(code).toBe(0);
    expect(stdout).toContain('4 jobs: 4 ok, 0 failed');

    const results = await readCsv(join(out, 'results.csv'));
    expect(Object.keys(results[0]!)).toEqual([
      'id', 'kind', 'model', 'status', 'attempts', 'output', 'finish_reason', 'error', 'input_tokens',
      'cached_input_tokens', 'output_tokens', 'reasoning_tokens', 'total_tokens', 'images', 'cost_usd',
      'latency_ms', 'request_id', 'source', 'tags', 'service_tier', 'batch_id',
    ]);
    expect(results.map((row) => row.id)).toEqual(['q1', 'q2', 'q3', 'multi']);
    for (const row of results) {
      expect(row.status).toBe('ok');
      expect(row.output).not.toBe('');
      expect(Number(row.total_tokens)).toBe(Number(row.input_tokens) + Number(row.output_tokens));
      expect(Number(row.cost_usd)).toBeGreaterThan(0);
      expect(row.request_id).toMatch(/^req_/);
    }
    expect(results[0]!.source).toBe(`${file}:1`);
    expect(Number(results[3]!.reasoning_tokens)).toBeGreaterThan(0);

    const usage = await readCsv(join(out, 'usage.csv'));
    expect(usage.map((row) => `${row.model}/${row.kind}`)).toEqual(['gpt-4o-mini/chat', 'gpt-5-mini/chat', 'TOTAL/']);
    const total = usage[2]!;
    const sum = (column: string) => results.reduce((acc, row) => acc + Number(row[column]), 0);
    for (const column of ['input_tokens', 'cached_input_tokens', 'output_tokens', 'reasoning_tokens']) {
      expect(Number(total[column])).toBe(sum(column));
    }
    expect(Number(total.cost_usd)).toBeCloseTo(sum('cost_usd'), 6);
    expect(total).toMatchObject({ jobs: '4', ok: '4', failed: '0', unpriced_jobs: '0' });
  });

  it('records an answer without usage as of unknown cost, never as $0', async () => {
    const { env } = await serve({ omitUsage: true });
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, chatJobs(1));
    const { code, stderr } = await cli(['run', file, '--out', out], { env });
    expect(code).toBe(0);
    expect(stderr).toMatch(/warning: .*q1/);
    const [row] = await readCsv(join(out, 'results.csv'));
    expect(row).toMatchObject({ id: 'q1', status: 'ok', total_tokens: '0', cost_usd: '' });
    const journal = (await readFile(join(out, 'journal.jsonl'), 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(journal.find((record) => record.id === 'q1')).toMatchObject({ state: 'done', costUsd: null });
  });

  it('retries a 500 and succeeds', async () => {
    const { env } = await serve({ faults: [{ status: 500, times: 2 }] });
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(1));
    const { code } = await cli(['run', file, '--out', join(dir, 'out')], { env });
    expect(code).toBe(0);
    const [row] = await readCsv(join(dir, 'out', 'results.csv'));
    expect(row).toMatchObject({ status: 'ok', attempts: '3' });
    expect(offline.server.stats.requests).toBe(3);
  });

  it('does not retry a 400, records the error and exits 1 while the other jobs succeed', async () => {
    const { env } = await serve({ faults: [{ status: 400, message: 'bad parameter', match: { promptIncludes: 'number 2' } }] });
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(3));
    const { code } = await cli(['run', file, '--out', join(dir, 'out')], { env });
    expect(code).toBe(1);
    const rows = await readCsv(join(dir, 'out', 'results.csv'));
    expect(rows.map((row) => row.status)).toEqual(['ok', 'failed', 'ok']);
    expect(rows[1]).toMatchObject({ attempts: '1' });
    expect(rows[1]!.error).toContain('400');
    expect(offline.server.countByKey('Question number 2')).toBe(1);
  });

  it('stops the whole run with exit 3 when the quota runs out, sending nothing more', async () => {
    const { env } = await serve({ quota: { afterRequests: 3 } });
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(10));
    const { code, stderr } = await cli(['run', file, '--out', join(dir, 'out'), '--concurrency', '1'], { env });
    expect(code).toBe(3);
    expect(stderr).toMatch(/out of credit/);
    expect(offline.server.stats.requests).toBe(4);
    const rows = await readCsv(join(dir, 'out', 'results.csv'));
    expect(rows).toHaveLength(10);
    expect(rows.filter((row) => row.status === 'ok')).toHaveLength(3);
    expect(rows.filter((row) => row.status === 'pending')).toHaveLength(7);
  });

  it('writes generated images to disk as PNG files named by the output pattern', async () => {
    const { env } = await serve();
    const dir = await tempDir();
    const file = await writeJobs(dir, [
      { id: 'one', kind: 'image', prompt: 'a lighthouse', size: '1024x1024', quality: 'low' },
      { id: 'two', model: 'gpt-image-1-mini', prompt: 'a robot', n: 2, output: 'robots/{id}-{index}.png' },
    ]);
    const out = join(dir, 'out');
    const { code } = await cli(['run', file, '--out', out], { env });
    expect(code).toBe(0);
    const rows = await readCsv(join(out, 'results.csv'));
    expect(rows[0]!.output).toBe('images/one.png');
    expect(rows[1]!.output).toBe('images/robots/two-1.png;images/robots/two-2.png');
    expect(rows[1]!.images).toBe('2');
    for (const path of ['images/one.png', 'images/robots/two-1.png', 'images/robots/two-2.png']) {
      const bytes = await readFile(join(out, path));
      expect(bytes.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
      expect(bytes.readUInt32BE(16)).toBe(1024);
    }
    expect(Number(rows[0]!.cost_usd)).toBeGreaterThan(0);
  });

  it('reports every problem in the job files with exit 2 and sends nothing', async () => {
    const { env } = await serve();
    const dir = await tempDir();
    const file = await writeJobs(dir, [{ id: 'a', model: 'gpt-4o-mini' }, { id: 'b', kind: 'poem', prompt: 'x' }, { id: 'a', model: 'gpt-4o-mini', prompt: 'dup' }]);
    const { code, stderr } = await cli(['run', file, '--out', join(dir, 'out')], { env });
    expect(code).toBe(2);
    expect(stderr).toContain(`${file}:1`);
    expect(stderr).toContain(`${file}:2`);
    expect(stderr).toContain(`${file}:3`);
    expect(stderr).not.toMatch(/\n\s+at /);
    expect(offline.server.stats.requests).toBe(0);
    await expect(readdir(join(dir, 'out'))).rejects.toThrow();
  });

  it('stops at the first 401 (exit 5), leaving every job pending for a rerun with a good key', async () => {
    const { env } = await serve({ faults: [{ status: 401, type: 'invalid_request_error', code: 'invalid_api_key' }] });
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(6));
    const out = join(dir, 'out');
    const { code } = await cli(['run', file, '--out', out, '--concurrency', '1'], { env });
    expect(code).toBe(5);
    expect(offline.server.stats.requests).toBe(1);
    const rows = await readCsv(join(out, 'results.csv'));
    expect(rows.map((row) => row.status)).toEqual(Array(6).fill('pending'));

    offline.server.setFaults([]);
    expect((await cli(['run', file, '--out', out, '--concurrency', '1'], { env })).code).toBe(0);
    expect((await readCsv(join(out, 'results.csv'))).every((row) => row.status === 'ok')).toBe(true);
  });

  it('never writes the API key to outputs, even when an error echoes it', async () => {
    const key = 'sk-test-secret-key-1234567890';
    const { env } = await serve({ faults: [{ status: 401, message: `Incorrect API key provided: ${key}` }] });
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(1));
    const out = join(dir, 'out');
    const { code, stdout, stderr } = await cli(['run', file, '--out', out], { env });
    expect(code).toBe(5);
    expect(stderr).toContain('refused the key');
    for (const name of ['results.csv', 'usage.csv', 'journal.jsonl']) {
      expect(await readFile(join(out, name), 'utf8')).not.toContain(key);
    }
    expect(stdout + stderr).not.toContain(key);
  });

  it('never writes a key of any shape to any output or the terminal when errors echo the request headers', async () => {
    const key = 'proj-key-ABCDEFGH12345678';
    const env = await offline.serve(
      {
        faults: [
          { status: 500, retryAfterMs: 1, message: `Upstream failed; request had Authorization: Bearer ${key}`, match: { promptIncludes: 'number 1' } },
          { status: 429, type: 'insufficient_quota', code: 'insufficient_quota', message: `No credit for key ${key}`, match: { promptIncludes: 'number 3' } },
        ],
      },
      key,
    );
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(3));
    const out = join(dir, 'out');
    const { code, stdout, stderr } = await cli(['run', file, '--out', out, '--concurrency', '1', '--max-attempts', '2'], { env });
    expect(code).toBe(3);
    expect(stderr).toContain('[redacted]');
    expect(stdout + stderr).not.toContain(key);
    const names = await readdir(out, { recursive: true, withFileTypes: true });
    for (const entry of names.filter((name) => name.isFile())) {
      const text = await readFile(join(entry.parentPath, entry.name), 'latin1');
      expect(text, entry.name).not.toContain(key);
    }
  });

  it('needs an API key unless --offline', async () => {
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(1));
    expect((await cli(['run', file, '--out', join(dir, 'a')])).code).toBe(2);
    const offline = await cli(['run', file, '--out', join(dir, 'b'), '--offline']);
    expect(offline.code).toBe(0);
  });
});

describe('rerun on the same output folder', () => {
  it('sends nothing for jobs that already succeeded and only the edited job after an edit', async () => {
    const { env } = await serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const jobs = chatJobs(5);
    const file = await writeJobs(dir, jobs);
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    expect(offline.server.stats.requests).toBe(5);

    const again = await cli(['run', file, '--out', out], { env });
    expect(again.code).toBe(0);
    expect(offline.server.stats.requests).toBe(5);
    expect(again.stderr).toContain('5 already done');

    jobs[2] = { ...jobs[2]!, prompt: 'An edited question' };
    await writeJobs(dir, jobs);
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    expect(offline.server.stats.requests).toBe(6);
    expect(offline.server.countByKey('An edited question')).toBe(1);
    const rows = await readCsv(join(out, 'results.csv'));
    expect(rows.map((row) => row.id)).toEqual(['q1', 'q2', 'q3', 'q4', 'q5']);
  });
});

describe('nightshift run, small promises', () => {
  it('treats a job file with no jobs as a mistake (exit 2), not an empty success', async () => {
    const dir = await tempDir();
    const file = await writeJobs(dir, []);
    expect((await cli(['run', file, '--offline', '--out', join(dir, 'out')])).code).toBe(2);
    expect((await cli(['validate', file])).code).toBe(2);
  });

  it('keeps offline results out of the folder a real run would use', async () => {
    const { resolveRunFlags } = await import('../src/cli/run.js');
    const base = { concurrency: 8, 'max-attempts': 5, timeout: 600, 'progress-interval': 30, grace: 30 };
    expect(resolveRunFlags({ ...base, files: ['jobs/chat.jsonl'] }).outDir).toBe(join('out', 'chat'));
    expect(resolveRunFlags({ ...base, files: ['jobs/chat.jsonl'], offline: true }).outDir).toBe(join('out', 'chat-offline'));
  });

  it('prints warnings even with --quiet', async () => {
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, chatJobs(2));
    expect((await cli(['run', file, '--offline', '--out', out])).code).toBe(0);
    await appendFile(join(out, 'journal.jsonl'), '{"type":"job","id":"q');
    const { stderr } = await cli(['run', file, '--offline', '--out', out, '--quiet']);
    expect(stderr).toMatch(/warning: .*journal/);
  });
});
