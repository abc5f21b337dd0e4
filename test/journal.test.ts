import { mkdtemp, readFile, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { JournalWriter, readJournal, type JobRecord } from '../src/core/journal.js';
import { zeroUsage } from '../src/core/types.js';

const record = (id: string, state: JobRecord['state'] = 'done'): JobRecord => ({
  type: 'job',
  id,
  fingerprint: `fp-${id}`,
  state,
  kind: 'chat',
  model: 'gpt-5-mini',
  tags: [],
  source: 'jobs.jsonl:1',
  attempts: 1,
  output: `reply ${id}`,
  files: [],
  usage: zeroUsage(),
  costUsd: 0,
  latencyMs: 5,
  startedAt: '2026-11-28T00:00:00.000Z',
  finishedAt: '2026-11-28T00:00:01.000Z',
});

async function tempJournal(): Promise<string> {
  return join(await mkdtemp(join(tmpdir(), 'nightshift-journal-')), 'journal.jsonl');
}

describe('journal', () => {
  it('keeps the latest record of each job', async () => {
    const path = await tempJournal();
    const writer = await JournalWriter.open(path);
    await writer.append(record('a', 'failed'));
    await writer.append(record('b'));
    await writer.append(record('a', 'done'));
    await writer.close();
    const state = await readJournal(path);
    expect(state.jobs.get('a')?.state).toBe('done');
    expect(state.jobs.size).toBe(2);
  });

  it('writes records appended at the same time, each exactly once', async () => {
    const path = await tempJournal();
    const writer = await JournalWriter.open(path);
    await Promise.all(Array.from({ length: 200 }, (_, i) => writer.append(record(`job-${i}`))));
    await writer.close();
    const lines = (await readFile(path, 'utf8')).trim().split('\n');
    expect(lines).toHaveLength(200);
    expect(new Set(lines.map((line) => (JSON.parse(line) as JobRecord).id)).size).toBe(200);
  });

  it('ignores a torn last line with a warning, and new records do not follow it', async () => {
    const path = await tempJournal();
    await writeFile(path, `${JSON.stringify(record('a'))}\n${JSON.stringify(record('b')).slice(0, 40)}`);
    const state = await readJournal(path);
    expect([...state.jobs.keys()]).toEqual(['a']);
    expect(state.warnings).toHaveLength(1);

    const writer = await JournalWriter.open(path);
    await writer.append(record('c'));
    await writer.close();
    const after = await readJournal(path);
    expect([...after.jobs.keys()].sort()).toEqual(['a', 'c']);
    expect(after.warnings).toEqual([]);
  });

  it('counts what was spent once: a record of renamed images (no attempt) adds nothing', async () => {
    const path = await tempJournal();
    const writer = await JournalWriter.open(path);
    await writer.append({ ...record('a'), costUsd: 0.25 });
    await writer.append({ ...record('a'), costUsd: 0.25, attempts: 0 });
    await writer.append({ ...record('b'), costUsd: 0.5 });
    await writer.close();
    expect((await readJournal(path)).spentUsd).toBe(0.75);
  });

  it('keeps the earlier success of each request a job was sent with', async () => {
    const path = await tempJournal();
    const writer = await JournalWriter.open(path);
    await writer.append({ ...record('a'), fingerprint: 'first' });
    await writer.append({ ...record('a'), fingerprint: 'second' });
    await writer.append({ ...record('a', 'failed'), fingerprint: 'third' });
    await writer.close();
    const state = await readJournal(path);
    expect(state.jobs.get('a')?.fingerprint).toBe('third');
    expect([...state.successes.get('a')!.keys()]).toEqual(['first', 'second']);
  });

  it('reads an empty or missing journal as no jobs', async () => {
    const path = await tempJournal();
    expect((await readJournal(path)).jobs.size).toBe(0);
    await appendFile(path, '');
    expect((await readJournal(path)).jobs.size).toBe(0);
  });
});
