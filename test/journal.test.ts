import { mkdtemp, readFile, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { JobRecord } from '../src/output/journal.js';
import { JournalWriter } from '../src/output/journal-writer.js';
import { fingerprintKey, indexJournal, JournalIndex, refOf, scanJobRecord } from '../src/output/journal-index.js';
import { scanRequest } from '../src/output/journal-scan.js';
import { RecordReader } from '../src/output/record-reader.js';
import { createHash } from 'node:crypto';
import { zeroUsage } from '../src/common/types.js';
import { IdTable } from '../src/common/id-table.js';

// The fields in the order a run writes them (`run/attempt.ts`), which indexing reads without parsing.
const record = (id: string, state: JobRecord['state'] = 'done'): JobRecord => ({
  type: 'job',
  id,
  fingerprint: `fp-${id}`,
  kind: 'chat',
  model: 'gpt-5-mini',
  tags: [],
  source: 'jobs.jsonl:1',
  state,
  attempts: 1,
  output: `reply ${id}`,
  files: [],
  usage: zeroUsage(),
  costUsd: 0,
  latencyMs: 5,
  startedAt: '2026-11-28T00:00:00.000Z',
  finishedAt: '2026-11-28T00:00:01.000Z',
});

/** Every field of a run's job record, in the order `run/attempt.ts` writes them. */
const FIELD_ORDER = [
  'type', 'id', 'fingerprint', 'kind', 'model', 'tags', 'source', 'state', 'attempts', 'output', 'files', 'finishReason', 'error',
  'status', 'usage', 'costUsd', 'latencyMs', 'requestId', 'startedAt', 'finishedAt', 'origin',
] as const;

/** `item` with its fields in the order a run writes them. */
const laidOut = (item: JobRecord): JobRecord =>
  Object.fromEntries(FIELD_ORDER.filter((name) => name in item).map((name) => [name, item[name]])) as unknown as JobRecord;

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
    const index = await indexJournal(path);
    expect(index.answer('a', fingerprintKey('fp-a'))?.state).toBe('done');
    expect(index.size).toBe(2);
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
    const index = await indexJournal(path);
    expect(index.size).toBe(1);
    expect(index.answer('b', fingerprintKey('fp-b'))).toBeUndefined();
    expect(index.warnings).toHaveLength(1);

    const writer = await JournalWriter.open(path);
    await writer.append(record('c'));
    await writer.close();
    const after = await indexJournal(path);
    expect(after.size).toBe(2);
    expect(after.current('c', fingerprintKey('fp-c'))).toBeDefined();
    expect(after.warnings).toEqual([]);
  });

  it('indexes the records it writes without parsing them as it would by parsing them, whatever their text holds', async () => {
    const path = await tempJournal();
    const sha = (text: string): string => createHash('sha256').update(text).digest('hex');
    const tricky = [
      'plain',
      'quote " and \\ backslash',
      'ends with backslash \\',
      '"state":"failed","files":[{"x":1}],"costUsd":9',
      'ünïcödé 🌙',
      'a\ud800',
      'escaped controls \u0001 \u0000 \t and a newline\n',
    ];
    const records: JobRecord[] = tricky.flatMap((text, i) => [
      { ...record(text), fingerprint: sha(`request ${i}`), output: text, tags: [text], source: `${text}:1`, costUsd: 0.001 * (i + 1), origin: 'offline' },
      { ...record(`job-${i}`, i % 2 === 0 ? 'failed' : 'done'), fingerprint: sha(`other ${i}`), error: text, costUsd: i === 3 ? null : 0.5, origin: 'https://api.openai.com' },
      {
        ...record(`image-${i}`),
        fingerprint: sha(`image ${i}`),
        output: '',
        files: [{ path: `images/${i}.png`, bytes: 10, sha256: sha(text) }],
        attempts: i === 2 ? 0 : 1,
        costUsd: 0.04,
      },
    ]);
    // A reply longer than a read of the journal (1 MB): its line spans two reads.
    records.splice(4, 0, { ...record('long reply'), fingerprint: sha('long'), output: `${'x'.repeat(1_500_000)}"\\` });
    const writer = await JournalWriter.open(path);
    for (const item of records) await writer.append(laidOut(item));
    // A record written by hand, its keys in another order: parsed in full.
    await writer.close();
    const handWritten = { ...record('by-hand'), fingerprint: sha('by hand') };
    const { fingerprint, ...rest } = handWritten;
    await appendFile(path, `${JSON.stringify({ fingerprint, ...rest })}\n`);

    // Every line the writer wrote is read without parsing, but for the reply of megabytes (left to a full parse, which
    // takes it whatever its escapes); the one written by hand is not.
    const written = (await readFile(path)).toString('latin1').split('\n').filter(Boolean);
    expect(written.map((line) => scanJobRecord(Buffer.from(line, 'latin1'), line, 0, line.length, { offset: 0, length: line.length }) !== undefined)).toEqual(
      written.map((line, i) => i < written.length - 1 && line.length < 1_000_000),
    );

    // The same journal indexed by parsing every line.
    const expected = new JournalIndex();
    let offset = 0;
    for (const line of (await readFile(path)).toString('utf8').split('\n').filter(Boolean)) {
      const parsed = JSON.parse(line) as JobRecord;
      expected.add(parsed.id, refOf(parsed, { offset, length: Buffer.byteLength(line) }));
      if (parsed.costUsd !== null && parsed.attempts > 0) expected.spentUsd += parsed.costUsd;
      offset += Buffer.byteLength(line) + 1;
    }
    const index = await indexJournal(path);
    expect(index.size).toBe(expected.size);
    expect(index.spentUsd).toBe(expected.spentUsd);
    for (const item of [...records, handWritten]) {
      const key = fingerprintKey(item.fingerprint);
      expect(index.answer(item.id, key), item.id).toEqual(expected.answer(item.id, key));
    }
    const reader = await RecordReader.open(path);
    expect((await reader.read(index.answer(tricky[1]!, fingerprintKey(records[3]!.fingerprint))!)).output).toBe(tricky[1]);
    await reader.close();
  });

  it('numbers jobs as the id table of the run does, keeping no record of ids outside it but counting their spending', async () => {
    const path = await tempJournal();
    const writer = await JournalWriter.open(path);
    await writer.append({ ...record('gone'), costUsd: 0.5 });
    await writer.append({ ...record('b'), costUsd: 0.25 });
    await writer.close();
    const ids = new IdTable();
    for (const id of ['a', 'b']) ids.add(id);
    const index = await indexJournal(path, { ids });
    expect(index.size).toBe(1);
    expect(index.answer('gone', fingerprintKey('fp-gone'))).toBeUndefined();
    expect(index.answerOf(ids, 0, fingerprintKey('fp-a'))).toBeUndefined();
    expect(index.answerOf(ids, 1, fingerprintKey('fp-b'))?.state).toBe('done');
    expect(index.spentUsd).toBe(0.75);
    // What the run journals for its jobs is kept; ids stay as validation numbered them.
    index.add('a', refOf(record('a', 'failed'), { offset: 0, length: 1 }));
    expect(index.answerOf(ids, 0, fingerprintKey('fp-a'))?.state).toBe('failed');
    expect(ids.size).toBe(2);
  });

  it('counts what was spent once: a record of renamed images (no attempt) adds nothing', async () => {
    const path = await tempJournal();
    const writer = await JournalWriter.open(path);
    await writer.append({ ...record('a'), costUsd: 0.25 });
    await writer.append({ ...record('a'), costUsd: 0.25, attempts: 0 });
    await writer.append({ ...record('b'), costUsd: 0.5 });
    await writer.close();
    expect((await indexJournal(path)).spentUsd).toBe(0.75);
  });

  it('keeps the earlier success of each request a job was sent with', async () => {
    const path = await tempJournal();
    const writer = await JournalWriter.open(path);
    await writer.append({ ...record('a'), fingerprint: 'first' });
    await writer.append({ ...record('a'), fingerprint: 'second' });
    await writer.append({ ...record('a', 'failed'), fingerprint: 'third' });
    await writer.close();
    const index = await indexJournal(path);
    const [first, second, third, other] = ['first', 'second', 'third', 'other'].map(fingerprintKey) as [Buffer, Buffer, Buffer, Buffer];
    expect(index.current('a', first)?.state).toBe('done');
    expect(index.current('a', second)?.state).toBe('done');
    expect(index.current('a', third)?.state).toBe('failed');
    expect(index.current('a', other)).toBeUndefined();
    expect(index.answer('a', other)?.key.equals(third)).toBe(true);
    expect(index.answered()).toBe(1);
  });

  it('lets an outcome written in this run answer for its request over an earlier success of it', async () => {
    const path = await tempJournal();
    const writer = await JournalWriter.open(path);
    await writer.append({ ...record('a'), fingerprint: 'first' });
    await writer.append({ ...record('a'), fingerprint: 'second' });
    const index = await indexJournal(path);
    const failed = { ...record('a', 'failed'), fingerprint: 'first' };
    index.add('a', refOf(failed, await writer.append(failed)));
    await writer.close();
    expect(index.current('a', fingerprintKey('first'))?.state).toBe('failed');
    expect(index.current('a', fingerprintKey('second'))?.state).toBe('done');
  });

  it('lets a later failure of a request supersede its earlier success when the journal is read back', async () => {
    const path = await tempJournal();
    const writer = await JournalWriter.open(path);
    await writer.append({ ...record('a'), fingerprint: 'first' });
    await writer.append({ ...record('a'), fingerprint: 'second' });
    await writer.append({ ...record('a', 'failed'), fingerprint: 'first' });
    await writer.close();
    const index = await indexJournal(path);
    expect(index.current('a', fingerprintKey('first'))?.state).toBe('failed');
    expect(index.current('a', fingerprintKey('second'))?.state).toBe('done');
  });

  it('reads each record back from where the index says it lies', async () => {
    const path = await tempJournal();
    const writer = await JournalWriter.open(path);
    await writer.append({ type: 'run', startedAt: '2026-11-28T00:00:00.000Z', files: ['jobs.jsonl'], jobs: 3 });
    const written = [record('a'), { ...record('b'), output: 'ünïcödé ✓ reply' }, record('c', 'failed')];
    const locations = [];
    for (const item of written) locations.push(await writer.append(item));
    await writer.close();
    const index = await indexJournal(path);
    const reader = await RecordReader.open(path);
    for (const [i, item] of written.entries()) {
      const ref = index.current(item.id, fingerprintKey(item.fingerprint))!;
      expect({ offset: ref.offset, length: ref.length }).toEqual(locations[i]);
      expect(await reader.read(ref)).toEqual(item);
    }
    await reader.close();
    expect(index.runs).toBe(1);
  });

  it('reads an empty or missing journal as no jobs', async () => {
    const path = await tempJournal();
    expect((await indexJournal(path)).size).toBe(0);
    await appendFile(path, '');
    expect((await indexJournal(path)).size).toBe(0);
  });
});

describe('the quick scan of requests (the page\'s money and charts)', () => {
  it('reads every field a tally needs as a full parse does, whatever the text holds, and only lines laid out as a run writes them', async () => {
    const path = await tempJournal();
    const sha = (text: string): string => createHash('sha256').update(text).digest('hex');
    const tricky = ['plain', 'quote " and \\ backslash', '","', 'ünïcödé 🌙', 'a\ud800', 'escaped controls \u0001 and a newline\n'];
    // Every field a record may have, in the order `run/attempt.ts` writes them.
    const order = [...FIELD_ORDER.slice(0, FIELD_ORDER.indexOf('requestId') + 1), 'serviceTier', 'batchId', 'paid', 'startedAt', 'finishedAt', 'origin'];
    const records: JobRecord[] = tricky.flatMap((text, i) => [
      { ...record(text), fingerprint: sha(text), model: text, tags: [text, 'plain', text], costUsd: 0.001 * (i + 1), serviceTier: text, batchId: `batch_${text}`, origin: text },
      { ...record(`job-${i}`, i % 2 === 0 ? 'failed' : 'incomplete'), fingerprint: sha(`other ${i}`), tags: [], costUsd: null, attempts: i, finishedAt: text },
      { ...record(`paid-${i}`), fingerprint: sha(`paid ${i}`), costUsd: 0.5, paid: { usage: zeroUsage(), costUsd: 0.25 }, requestId: text, error: text, status: 500 },
    ]);
    const writer = await JournalWriter.open(path);
    for (const item of records) await writer.append(Object.fromEntries(order.filter((name) => name in item).map((name) => [name, item[name as keyof JobRecord]])) as unknown as JobRecord);
    await writer.close();
    const lines = (await readFile(path)).toString('latin1').split('\n').filter(Boolean);
    const fields = ['model', 'tags', 'state', 'attempts', 'costUsd', 'serviceTier', 'batchId', 'finishedAt', 'origin'] as const;
    for (const line of lines) {
      const parsed = JSON.parse(Buffer.from(line, 'latin1').toString('utf8')) as JobRecord;
      const expected = Object.fromEntries(fields.filter((name) => parsed[name] !== undefined).map((name) => [name, parsed[name]]));
      expect(scanRequest(line), line).toEqual(expected);
    }
    // Keys in another order (written by hand), or a field of the wrong type: left to the full parse.
    const [first] = lines;
    const { fingerprint, ...rest } = JSON.parse(first!) as JobRecord;
    expect(scanRequest(JSON.stringify({ fingerprint, ...rest }))).toBeUndefined();
    expect(scanRequest(first!.replace('"attempts":1', '"attempts":"1"'))).toBeUndefined();
    expect(scanRequest(JSON.stringify({ type: 'run', startedAt: 'x', files: [], jobs: 1 }))).toBeUndefined();
  });
});
