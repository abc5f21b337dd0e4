import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { zeroUsage } from '../src/common/types.js';
import { fingerprintKey, indexJournal } from '../src/output/journal-index.js';
import type { JobRecord } from '../src/output/journal.js';
import { answerState } from '../src/output/answer.js';
import { cli, journalLines, offlineServerPerTest, readCsv, tempDir, writeJobs } from './helpers.js';

const offline = offlineServerPerTest('sk-test-incomplete');

/** A job whose reply the token limit cuts off, and one that finishes. */
const JOBS = [
  { id: 'cut', model: 'gpt-4o-mini', prompt: 'Write a long essay about the sea.', max_completion_tokens: 3 },
  { id: 'whole', model: 'gpt-4o-mini', prompt: 'Say hello.' },
];

async function firstRun(jobs: object[] = JOBS) {
  const env = await offline.serve();
  const dir = await tempDir();
  const file = await writeJobs(dir, jobs);
  const out = join(dir, 'out');
  const result = await cli(['run', file, '--out', out, '--concurrency', '1'], { env });
  return { env, dir, file, out, ...result };
}

const statuses = async (out: string): Promise<Record<string, string>> =>
  Object.fromEntries((await readCsv(join(out, 'results.csv'))).map((row) => [row.id!, row.status!]));

describe('a reply cut off at the token limit', () => {
  it('is incomplete, not ok: its own status, kept usage and cost, counted in the summary, exit 1', async () => {
    const { out, code, stdout, stderr } = await firstRun();
    expect(code).toBe(1);
    expect(await statuses(out)).toEqual({ cut: 'incomplete', whole: 'ok' });
    const cut = (await journalLines(out)).find((line) => line.id === 'cut')!;
    expect(cut).toMatchObject({ state: 'incomplete', finishReason: 'length', usage: { output_tokens: 3 } });
    // It was paid for.
    expect(cut.costUsd).toBeGreaterThan(0);
    expect(stdout).toMatch(/1 incomplete/);
    expect(stderr).toContain('max_completion_tokens');
  });

  it('is incomplete with an empty output when a reasoning model spends every token on reasoning', async () => {
    const { out, code } = await firstRun([{ id: 'thinker', model: 'gpt-5-mini', prompt: 'Think hard.', max_completion_tokens: 16 }]);
    expect(code).toBe(1);
    const [row] = await readCsv(join(out, 'results.csv'));
    expect(row).toMatchObject({ status: 'incomplete', output: '', finish_reason: 'length', reasoning_tokens: '16' });
  });

  it('is not sent again by a plain rerun, but is once max_completion_tokens is raised', async () => {
    const { env, dir, file, out } = await firstRun();
    offline.server.reset();
    const again = await cli(['run', file, '--out', out], { env });
    expect(offline.server.stats.requests).toBe(0);
    expect(again.code).toBe(1);
    expect(await statuses(out)).toEqual({ cut: 'incomplete', whole: 'ok' });

    await writeJobs(dir, [{ ...JOBS[0], max_completion_tokens: 500 }, JOBS[1]!]);
    const raised = await cli(['run', file, '--out', out], { env });
    expect(offline.server.stats.requests).toBe(1);
    expect(raised.code).toBe(0);
    expect(await statuses(out)).toEqual({ cut: 'ok', whole: 'ok' });

    // Undoing the edit pays for nothing again: the answer cut off is still that request's.
    await writeJobs(dir, JOBS);
    const undone = await cli(['run', file, '--out', out], { env });
    expect(offline.server.stats.requests).toBe(1);
    expect(undone.code).toBe(1);
    expect(await statuses(out)).toEqual({ cut: 'incomplete', whole: 'ok' });
  });

  it('is sent again by --only-failed, along with failures, and by --force', async () => {
    const { env, file, out } = await firstRun();
    offline.server.reset();
    await cli(['run', file, '--out', out, '--only-failed'], { env });
    expect(offline.server.requests.map((request) => request.key)).toEqual([JOBS[0]!.prompt]);

    offline.server.reset();
    await cli(['run', file, '--out', out, '--force'], { env });
    expect(offline.server.stats.requests).toBe(2);
  });

  it('counts as a paid answer for --fresh, which refuses to send it again without --force', async () => {
    const { env, file, out } = await firstRun([JOBS[0]!]);
    offline.server.reset();
    const fresh = await cli(['run', file, '--out', out, '--fresh'], { env });
    expect(fresh.code).toBe(2);
    expect(offline.server.stats.requests).toBe(0);
  });

  it('counts in usage.csv and in report, cost included: it was paid', async () => {
    const { out } = await firstRun();
    const paid = (await journalLines(out)).reduce((sum, line) => sum + (line.type === 'job' ? Number(line.costUsd) : 0), 0);
    const total = (await readCsv(join(out, 'usage.csv'))).find((row) => row.model === 'TOTAL')!;
    expect(total).toMatchObject({ jobs: '2', ok: '1', failed: '0', incomplete: '1' });
    expect(Number(total.cost_usd)).toBeCloseTo(paid, 9);

    const report = await cli(['report', out, '--csv', join(out, 'report.csv')]);
    expect(report.code).toBe(0);
    const reportTotal = (await readCsv(join(out, 'report.csv'))).find((row) => row.model === 'TOTAL')!;
    expect(reportTotal).toMatchObject({ jobs: '2', ok: '1', incomplete: '1' });
    expect(Number(reportTotal.cost_usd)).toBeCloseTo(paid, 9);
  });

  it('is left out of estimate, since a plain rerun does not send it', async () => {
    const { file, out } = await firstRun();
    const estimate = await cli(['estimate', file, '--out', out, '--csv', join(out, 'estimate.csv')]);
    expect(estimate.code).toBe(0);
    const rows = await readCsv(join(out, 'estimate.csv'));
    expect(rows.find((row) => row.model === 'TOTAL')).toMatchObject({ jobs: '0' });
  });
});

describe('the state of an answer', () => {
  it('is incomplete when any choice stopped at the length limit or the content filter', () => {
    expect(answerState('stop')).toBe('done');
    expect(answerState(undefined)).toBe('done');
    expect(answerState('length')).toBe('incomplete');
    expect(answerState('content_filter')).toBe('incomplete');
    expect(answerState('stop;length')).toBe('incomplete');
    expect(answerState('tool_calls')).toBe('done');
  });
});

describe('an incomplete record in the journal', () => {
  const record = (id: string, fingerprint: string, state: JobRecord['state']): JobRecord => ({
    type: 'job', id, fingerprint, state, kind: 'chat', model: 'gpt-4o-mini', tags: [], source: 'jobs.jsonl:1', attempts: 1,
    output: '', files: [], finishReason: 'length', usage: zeroUsage(), costUsd: 0.001, latencyMs: 5,
    startedAt: '2026-11-28T00:00:00.000Z', finishedAt: '2026-11-28T00:00:01.000Z',
  });

  it('reads back as incomplete, whether its line is scanned or parsed, beside done and failed ones', async () => {
    const hex = 'ab'.repeat(32);
    const path = join(await tempDir(), 'journal.jsonl');
    const records = [record('scanned', hex, 'incomplete'), record('parsed', 'hand-written', 'incomplete'), record('done', hex, 'done'), record('failed', hex, 'failed')];
    await writeFile(path, records.map((line) => `${JSON.stringify(line)}\n`).join(''));
    const index = await indexJournal(path);
    const stateOf = (id: string, fingerprint: string): string | undefined => index.current(id, fingerprintKey(fingerprint))?.state;
    expect([stateOf('scanned', hex), stateOf('parsed', 'hand-written'), stateOf('done', hex), stateOf('failed', hex)]).toEqual(['incomplete', 'incomplete', 'done', 'failed']);
    expect(index.spentUsd).toBeCloseTo(0.004, 9);
  });
});
