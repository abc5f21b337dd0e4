import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readJournalRecords, type JobRecord, type JournalRecord } from '../src/output/journal.js';
import { addToReport, createReport, UNTAGGED, type ReportKey } from '../src/cost/report.js';
import { zeroUsage } from '../src/common/types.js';
import { cli, offlineServerPerTest, readCsv, tempDir, writeJobs } from './helpers.js';

// A served instance reached through OPENAI_BASE_URL stands for the real API: --offline answers are reported apart.
const api = offlineServerPerTest('sk-test-report-key-1234567890');

function record(fields: Partial<JobRecord> = {}): JobRecord {
  return {
    type: 'job',
    id: 'a',
    fingerprint: 'f',
    state: 'done',
    kind: 'chat',
    model: 'gpt-4.1-mini',
    tags: [],
    source: 'jobs.jsonl:1',
    attempts: 1,
    output: 'ok',
    files: [],
    usage: { ...zeroUsage(), input_tokens: 10, output_tokens: 5, total_tokens: 15 },
    costUsd: 0.001,
    latencyMs: 5,
    startedAt: '2025-06-30T10:00:00.000Z',
    finishedAt: '2025-06-30T10:00:01.000Z',
    ...fields,
  };
}

function reportOf(by: ReportKey, records: JournalRecord[]): (string | number)[][] {
  const report = createReport(by);
  for (const item of records) addToReport(report, item);
  return report.table();
}

/** Rows by their first cell, as objects keyed by column. */
function byKey(table: (string | number)[][]): Map<string | number, Record<string, string | number>> {
  const [header, ...rows] = table;
  return new Map(rows.map((row) => [row[0]!, Object.fromEntries(header!.map((column, i) => [column, row[i]!]))]));
}

describe('report aggregation', () => {
  it('counts every request a journal records, and nothing for runs and resume-time image renames', () => {
    const rows = byKey(
      reportOf('model', [
        { type: 'run', startedAt: '2025-06-30T10:00:00.000Z', files: ['jobs.jsonl'], jobs: 2 },
        record({ state: 'failed', usage: zeroUsage(), costUsd: 0 }),
        record(),
        record({ attempts: 0, costUsd: 0, usage: zeroUsage() }),
      ]),
    );
    // The same job failed once and then succeeded: two requests, both in the audit; the rename adds nothing.
    expect(rows.get('gpt-4.1-mini')).toMatchObject({ jobs: 2, ok: 1, failed: 1, input_tokens: 10, output_tokens: 5, cost_usd: '0.001' });
    expect(rows.get('TOTAL')).toMatchObject({ jobs: 2, cost_usd: '0.001' });
  });

  it('counts a job under each of its tags and once in the TOTAL', () => {
    const rows = byKey(reportOf('tag', [record({ tags: ['poetry', 'short'] }), record({ id: 'b', tags: ['poetry'] }), record({ id: 'c' })]));
    expect(rows.get('poetry')).toMatchObject({ jobs: 2 });
    expect(rows.get('short')).toMatchObject({ jobs: 1 });
    expect(rows.get(UNTAGGED)).toMatchObject({ jobs: 1 });
    expect(rows.get('TOTAL')).toMatchObject({ jobs: 3, cost_usd: '0.003' });
  });

  it('groups by the UTC day a job finished on, in date order', () => {
    const table = reportOf('day', [
      record({ finishedAt: '2025-07-01T00:00:01.000Z' }),
      record({ finishedAt: '2025-06-30T23:59:59.000Z' }),
      record({ finishedAt: '2025-07-01T12:00:00.000Z' }),
    ]);
    expect(table.slice(1).map((row) => [row[0], row[1]])).toEqual([
      ['2025-06-30', 1],
      ['2025-07-01', 2],
      ['TOTAL', 3],
    ]);
  });

  it('groups by job file, whose name may itself hold colons', () => {
    const rows = byKey(reportOf('file', [record({ source: 'C:\\jobs\\a.jsonl:3' }), record({ source: 'b.csv:10' })]));
    expect([...rows.keys()]).toEqual(['C:\\jobs\\a.jsonl', 'b.csv', 'TOTAL']);
  });

  it('leaves the cost of a group with an unpriced job empty and counts it', () => {
    const rows = byKey(reportOf('kind', [record({ model: 'local-llama', costUsd: null }), record()]));
    expect(rows.get('chat')).toMatchObject({ cost_usd: '', unpriced_jobs: 1 });
    expect(rows.get('TOTAL')).toMatchObject({ cost_usd: '0.001', unpriced_jobs: 1 });
  });

  it('streams every record of a journal, not only the latest per job, and skips a torn line with a warning', async () => {
    const path = join(await tempDir(), 'journal.jsonl');
    await writeFile(path, `${JSON.stringify(record({ state: 'failed' }))}\n${JSON.stringify(record())}\n{"type":"job","id":`);
    const warnings: string[] = [];
    const records: JournalRecord[] = [];
    for await (const item of readJournalRecords(path, { onWarning: (warning) => warnings.push(warning) })) records.push(item);
    expect(records.map((item) => (item.type === 'job' ? item.state : item.type))).toEqual(['failed', 'done']);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`${path}:3`);
  });
});

describe('nightshift report', () => {
  /** Runs job files into two output folders and returns them with their results.csv rows. */
  async function twoRuns() {
    const env = await api.serve();
    const dir = await tempDir();
    const first = await writeJobs(
      dir,
      [
        { id: 'p1', model: 'gpt-4.1-mini', prompt: 'Write a haiku', tags: ['poetry', 'short'] },
        { id: 'p2', model: 'gpt-4.1-mini', prompt: 'Write a limerick', tags: ['poetry'] },
        { id: 'q1', model: 'gpt-5-mini', prompt: 'Explain DNS' },
      ],
      'first.jsonl',
    );
    const second = await writeJobs(
      dir,
      [
        { id: 'q2', model: 'gpt-5-mini', prompt: 'Explain TCP', tags: ['teaching'] },
        { id: 'img', model: 'gpt-image-1.5', prompt: 'A lighthouse', size: '1024x1024', quality: 'low', tags: ['art'] },
      ],
      'second.jsonl',
    );
    const folders = [join(dir, 'out-1'), join(dir, 'out-2')];
    expect((await cli(['run', first, '--quiet', '--out', folders[0]!], { env })).code).toBe(0);
    expect((await cli(['run', second, '--quiet', '--out', folders[1]!], { env })).code).toBe(0);
    const results = [...(await readCsv(join(folders[0]!, 'results.csv'))), ...(await readCsv(join(folders[1]!, 'results.csv')))];
    return { dir, folders, results };
  }

  it("rebuilds the runs' usage and cost from their journals alone, matching results.csv", async () => {
    const { dir, folders, results } = await twoRuns();
    const csv = join(dir, 'report.csv');
    // No key and no server: the report reads files only.
    const { code, stdout } = await cli(['report', ...folders, '--csv', csv], { env: {} });
    expect(code).toBe(0);
    expect(stdout.split('\n').some((line) => line.startsWith('TOTAL'))).toBe(true);

    const rows = await readCsv(csv);
    expect(Object.keys(rows[0]!)).toEqual([
      'model', 'jobs', 'ok', 'failed', 'input_tokens', 'cached_input_tokens', 'output_tokens', 'reasoning_tokens',
      'images', 'cost_usd', 'unpriced_jobs', 'incomplete',
    ]);
    expect(rows.map((row) => row.model)).toEqual(['gpt-4.1-mini', 'gpt-5-mini', 'gpt-image-1.5', 'TOTAL']);
    const total = rows.at(-1)!;
    const sum = (column: string) => results.reduce((acc, row) => acc + Number(row[column]), 0);
    expect(total).toMatchObject({ jobs: '5', ok: '5', failed: '0', unpriced_jobs: '0' });
    for (const column of ['input_tokens', 'cached_input_tokens', 'output_tokens', 'reasoning_tokens', 'images']) {
      expect(Number(total[column])).toBe(sum(column));
    }
    expect(Number(total.cost_usd)).toBeCloseTo(sum('cost_usd'), 9);
    const miniRows = results.filter((row) => row.model === 'gpt-4.1-mini');
    expect(Number(rows[0]!.cost_usd)).toBeCloseTo(miniRows.reduce((acc, row) => acc + Number(row.cost_usd), 0), 9);
  });

  it('groups by tag, counting a job under each tag, and by day', async () => {
    const { dir, folders, results } = await twoRuns();
    const tagCsv = join(dir, 'tags.csv');
    const byTag = await cli(['report', ...folders, '--by', 'tag', '--csv', tagCsv]);
    expect(byTag.code).toBe(0);
    const tags = new Map((await readCsv(tagCsv)).map((row) => [row.tag, row]));
    expect([...tags.keys()]).toEqual([UNTAGGED, 'art', 'poetry', 'short', 'teaching', 'TOTAL']);
    expect(tags.get('poetry')).toMatchObject({ jobs: '2' });
    expect(tags.get('short')).toMatchObject({ jobs: '1' });
    expect(tags.get('TOTAL')).toMatchObject({ jobs: '5' });

    const dayCsv = join(dir, 'days.csv');
    expect((await cli(['report', ...folders, '--by', 'day', '--csv', dayCsv])).code).toBe(0);
    const days = await readCsv(dayCsv);
    const today = new Date().toISOString().slice(0, 10);
    // The runs may straddle midnight UTC; every job lands on a real day and the days add up.
    expect(days.slice(0, -1).every((row) => /^\d{4}-\d{2}-\d{2}$/.test(row.day!) && row.day! <= today)).toBe(true);
    expect(days.slice(0, -1).reduce((acc, row) => acc + Number(row.jobs), 0)).toBe(results.length);
  });

  it('still counts the journals that --fresh set aside', async () => {
    const env = await api.serve();
    const dir = await tempDir();
    const file = await writeJobs(dir, [{ id: 'a', model: 'gpt-4.1-mini', prompt: 'Hi' }, { id: 'b', model: 'gpt-4.1-mini', prompt: 'Ho' }]);
    const out = join(dir, 'out');
    expect((await cli(['run', file, '--quiet', '--out', out], { env })).code).toBe(0);
    expect((await cli(['run', file, '--quiet', '--out', out, '--fresh', '--force'], { env })).code).toBe(0);
    expect((await readdir(out)).filter((name) => name.startsWith('journal'))).toHaveLength(2);
    const csv = join(dir, 'report.csv');
    expect((await cli(['report', out, '--csv', csv])).code).toBe(0);
    expect((await readCsv(csv)).at(-1)).toMatchObject({ model: 'TOTAL', jobs: '4', ok: '4' });
  });

  it('exits 2 for a folder that is missing or holds no journal, and for an unknown --by', async () => {
    const dir = await tempDir();
    expect((await cli(['report', join(dir, 'missing')])).code).toBe(2);
    expect((await cli(['report', dir])).code).toBe(2);
    expect((await cli(['report', dir, '--by', 'colour'])).code).toBe(2);
  });
});
