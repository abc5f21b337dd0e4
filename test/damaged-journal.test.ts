import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { scanJobRecord } from '../src/output/journal-index.js';
import { cli, offlineServerPerTest, readCsv, tempDir, writeJobs } from './helpers.js';

const offline = offlineServerPerTest('sk-test-damaged-journal-1234567890');

const chatJobs = (count: number): Record<string, unknown>[] =>
  Array.from({ length: count }, (_, i) => ({ id: `d${i + 1}`, model: 'gpt-4o-mini', prompt: `Damaged journal ${i + 1}` }));

/** Ways a record's line can be damaged: its text with a wrong byte, or valid JSON with a field of the wrong type. */
const DAMAGES: [string, (line: string) => string | Buffer][] = [
  ['a control character (0x01) inside its reply', (line) => line.replace('"output":"', '"output":"\u0001')],
  ['a NUL byte inside its reply', (line) => line.replace('"output":"', '"output":"ab\u0000cd')],
  ['an unescaped newline inside its reply', (line) => line.replace('"output":"', '"output":"one\ntwo')],
  ['a stray quote inside its reply', (line) => line.replace('"output":"', '"output":"say "hi" ')],
  ['a bad escape inside its reply', (line) => line.replace('"output":"', '"output":"\\q')],
  ['a reply that is not text', (line) => JSON.stringify({ ...JSON.parse(line), output: 5 })],
  ['usage that is not an object', (line) => JSON.stringify({ ...JSON.parse(line), usage: 'lots' })],
  ['files that are not a list', (line) => JSON.stringify({ ...JSON.parse(line), files: 'images/x.png' })],
  ['a cost that is not a number', (line) => JSON.stringify({ ...JSON.parse(line), costUsd: '0.01' })],
  ['a fingerprint that is not text', (line) => JSON.stringify({ ...JSON.parse(line), fingerprint: null })],
  ['a negative cost', (line) => JSON.stringify({ ...JSON.parse(line), costUsd: -1000 })],
  ['negative tokens', (line) => JSON.stringify({ ...JSON.parse(line), usage: { ...JSON.parse(line).usage, input_tokens: -5 } })],
  ['a byte that is not UTF-8 inside its reply', (line) => Buffer.concat([Buffer.from(line.replace('"output":"', '"output":"\u0000').split('\u0000')[0]!), Buffer.from([0xff]), Buffer.from(line.slice(line.indexOf('"output":"') + 10))])],
];

/** A folder whose three jobs succeeded, with the record of d2 damaged; its journal line (1-based). */
async function damagedFolder(damage: (line: string) => string | Buffer): Promise<{ env: Record<string, string>; dir: string; file: string; out: string; line: number }> {
  const env = await offline.serve();
  const dir = await tempDir();
  const file = await writeJobs(dir, chatJobs(3));
  const out = join(dir, 'out');
  expect((await cli(['run', file, '--quiet', '--out', out], { env })).code).toBe(0);
  const path = join(out, 'journal.jsonl');
  const lines = (await readFile(path, 'utf8')).split('\n');
  const at = lines.findIndex((text) => text.includes('"id":"d2"'));
  const bytes: Buffer[] = lines.map((text) => Buffer.from(text));
  const damaged = damage(lines[at]!);
  bytes[at] = typeof damaged === 'string' ? Buffer.from(damaged) : damaged;
  await writeFile(path, Buffer.concat(bytes.flatMap((line, i) => (i === 0 ? [line] : [Buffer.from('\n'), line]))));
  return { env, dir, file, out, line: at + 1 };
}

describe('a damaged journal record', () => {
  it.each(DAMAGES)('with %s is reported with its line and its job sent again; everything else is rebuilt', async (_, damage) => {
    const { env, file, out, line } = await damagedFolder(damage);
    const again = await cli(['run', file, '--quiet', '--out', out], { env });
    expect(again.code).toBe(0);
    expect(again.stderr).toContain(`journal.jsonl:${line}:`);
    expect(offline.server.stats.requests).toBe(4);
    expect(offline.server.countByKey('Damaged journal 2')).toBe(2);
    const rows = await readCsv(join(out, 'results.csv'));
    expect(rows.map((row) => `${row.id}:${row.status}`)).toEqual(['d1:ok', 'd2:ok', 'd3:ok']);
    expect(rows[1]!.output).toContain('Damaged journal 2');

    // Repaired by the record of the new answer: the next run sends nothing.
    expect((await cli(['run', file, '--quiet', '--out', out], { env })).code).toBe(0);
    expect(offline.server.stats.requests).toBe(4);
  });

  it.each(DAMAGES)('with %s is left out of report, which says so with its line', async (_, damage) => {
    const { dir, out, line } = await damagedFolder(damage);
    const csv = join(dir, 'report.csv');
    const report = await cli(['report', out, '--csv', csv]);
    expect(report.code).toBe(0);
    expect(report.stderr).toContain(`journal.jsonl:${line}:`);
    expect((await readCsv(csv)).at(-1)).toMatchObject({ model: 'TOTAL', jobs: '2', ok: '2' });
  });
});

describe('the records a run writes', () => {
  it('are all read by the quick scan of indexing, which checks every field without parsing the reply', async () => {
    const env = await offline.serve({ faults: [{ status: 400, times: 1, match: { promptIncludes: 'refused' } }] });
    const dir = await tempDir();
    const file = await writeJobs(dir, [
      { id: 'chat', model: 'gpt-4o-mini', prompt: 'Say "hi"\n\tand ünïcödé 🌙', tags: ['a', 'b'] },
      { id: 'refused', model: 'gpt-4o-mini', prompt: 'This one is refused' },
      { id: 'picture', kind: 'image', model: 'gpt-image-1', prompt: 'A lighthouse', size: '1024x1024', quality: 'low' },
    ]);
    const out = join(dir, 'out');
    expect((await cli(['run', file, '--quiet', '--out', out], { env })).code).toBe(1);
    const lines = (await readFile(join(out, 'journal.jsonl'), 'latin1')).split('\n').filter((line) => line.startsWith('{"type":"job"'));
    expect(lines).toHaveLength(3);
    for (const line of lines) expect(scanJobRecord(Buffer.from(line, 'latin1'), line, 0, line.length, { offset: 0, length: line.length }), line).toBeDefined();
  });
});

describe('a record with a reply of megabytes', () => {
  it('is indexed (by a full parse) rather than overflowing the stack, and its job is not sent again', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    const file = await writeJobs(dir, [{ id: 'long', model: 'gpt-4o-mini', prompt: 'A long answer' }]);
    const out = join(dir, 'out');
    expect((await cli(['run', file, '--quiet', '--out', out], { env })).code).toBe(0);
    // A reply of 6 million quotes and line breaks: each one an escape in the journal line.
    const path = join(out, 'journal.jsonl');
    const lines = (await readFile(path, 'utf8')).trimEnd().split('\n');
    const job = lines.findIndex((line) => line.startsWith('{"type":"job"'));
    const record = JSON.parse(lines[job]!) as { output: string };
    record.output = '"\n'.repeat(3_000_000);
    lines[job] = JSON.stringify(record);
    await writeFile(path, `${lines.join('\n')}\n`);
    const rerun = await cli(['run', file, '--out', out], { env });
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(offline.server.stats.requests).toBe(1);
    expect((await readCsv(join(out, 'results.csv')))[0]?.output).toHaveLength(6_000_000);
  });
});
