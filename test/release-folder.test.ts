import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI_PATH, readCsv, tempDir } from './helpers.js';

/**
 * An output folder written by release 0.1.0 (see its README.md). Every test resumes a copy of it with the current
 * build, so that a change to fingerprints, the journal format or the file checks shows up here as jobs sent again.
 */
const FIXTURE = fileURLToPath(new URL('../fixtures/release-0.1.0/', import.meta.url));
const IMAGE_FILES = ['lighthouse.png', 'night-market.jpeg', 'mascots/mascot-1.png', 'mascots/mascot-2.png'];

interface JournalRecord {
  type: string;
  id?: string;
  kind?: string;
  state?: string;
  fingerprint?: string;
  files?: { path: string; bytes: number; sha256: string }[];
}

const exec = promisify(execFile);
const sha = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
const parseLines = (text: string): JournalRecord[] =>
  text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as JournalRecord);
const jobIds = (records: JournalRecord[]): string[] => records.map((record) => String(record.id)).sort();

const copies: string[] = [];
afterAll(async () => {
  await Promise.all(copies.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

/** A fresh copy of the release folder: the job files beside it, and `output/` as 0.1.0 left it. */
async function copyFixture(): Promise<string> {
  const dir = await tempDir('nightshift-release-');
  copies.push(dir);
  await cp(FIXTURE, dir, { recursive: true });
  return dir;
}

const fixtureJournal = async (): Promise<JournalRecord[]> => parseLines(await readFile(join(FIXTURE, 'output', 'journal.jsonl'), 'utf8'));
/** The release's results.csv rows, with the columns added since at the end: 0.1.0 recorded no service tier. */
const fixtureResults = async (): Promise<Record<string, string>[]> =>
  (await readCsv(join(FIXTURE, 'output', 'results.csv'))).map((row) => ({ ...row, service_tier: '', batch_id: '' }));

/**
 * Runs the command that wrote the folder, in the copy, and returns its exit status and the job records it appended
 * to the journal: every job that was sent again leaves one. Fails if the lines already there were changed.
 */
async function resume(dir: string): Promise<{ code: number; stderr: string; sent: JournalRecord[] }> {
  const journal = join(dir, 'output', 'journal.jsonl');
  const before = await readFile(journal, 'utf8');
  const { code, stderr } = await exec(
    process.execPath,
    [CLI_PATH, 'run', 'chat.jsonl', 'vision.csv', 'images.json', '--offline', '--out', 'output'],
    { cwd: dir, env: { PATH: process.env.PATH ?? '' } },
  ).then(
    ({ stderr }) => ({ code: 0, stderr }),
    (error: { code?: number; stderr?: string }) => ({ code: error.code ?? -1, stderr: error.stderr ?? '' }),
  );
  const after = await readFile(journal, 'utf8');
  expect(after.startsWith(before), 'the journal is append-only').toBe(true);
  const appended = parseLines(after.slice(before.length));
  // One run record first, then a record per job sent.
  expect(appended.map((record) => record.type)).toEqual(['run', ...appended.slice(1).map(() => 'job')]);
  return { code, stderr, sent: appended.slice(1) };
}

/** Each new record's files are on disk with the size and SHA-256 it gives. */
async function expectFilesMatchRecords(dir: string, records: JournalRecord[]): Promise<void> {
  for (const file of records.flatMap((record) => record.files ?? [])) {
    const bytes = await readFile(join(dir, 'output', file.path));
    expect({ path: file.path, bytes: bytes.length, sha256: sha(bytes) }).toEqual(file);
  }
}

/** results.csv lists the fixture's 12 jobs in order, all ok, and the rows of the jobs not sent are the fixture's. */
async function expectResultsKeptExcept(dir: string, sentIds: string[]): Promise<Record<string, string>[]> {
  const expected = await fixtureResults();
  const rows = await readCsv(join(dir, 'output', 'results.csv'));
  expect(rows.map((row) => row.id)).toEqual(expected.map((row) => row.id));
  expect(rows.map((row) => `${row.id}:${row.status}`)).toEqual(expected.map((row) => `${row.id}:ok`));
  // latency_ms and request_id come from the journal record: a job sent again would get new ones.
  expect(rows.filter((row) => !sentIds.includes(row.id!))).toEqual(expected.filter((row) => !sentIds.includes(row.id!)));
  return rows;
}

describe('an output folder written by release 0.1.0', () => {
  it('resumes a finished folder without sending anything, keeping results, usage and images as they were', async () => {
    const dir = await copyFixture();
    const { code, stderr, sent } = await resume(dir);
    expect(code, stderr).toBe(0);
    expect(jobIds(sent)).toEqual([]);

    const rows = await readCsv(join(dir, 'output', 'results.csv'));
    expect(rows).toHaveLength(12);
    expect(rows).toEqual(await fixtureResults());
    // usage.csv has gained a last column since, `incomplete`; the columns 0.1.0 wrote are unchanged.
    const usage = (await readCsv(join(FIXTURE, 'output', 'usage.csv'))).map((row) => ({ ...row, incomplete: '0' }));
    expect(await readCsv(join(dir, 'output', 'usage.csv'))).toEqual(usage);
    for (const path of IMAGE_FILES) {
      expect(sha(await readFile(join(dir, 'output', 'images', path))), path).toBe(sha(await readFile(join(FIXTURE, 'output', 'images', path))));
    }
  });

  it('after a run killed part-way, sends exactly the jobs missing from the journal', async () => {
    const dir = await copyFixture();
    // A kill loses the last records of the journal; results.csv and the images stay as they were.
    const journal = join(dir, 'output', 'journal.jsonl');
    const lines = (await readFile(journal, 'utf8')).split('\n').filter((line) => line !== '');
    const dropped = parseLines(lines.slice(-4).join('\n'));
    expect(dropped.map((record) => `${record.type}:${record.kind}`)).toEqual(['job:vision', 'job:image', 'job:image', 'job:image']);
    await writeFile(journal, lines.slice(0, -4).map((line) => line + '\n').join(''));

    const { code, stderr, sent } = await resume(dir);
    expect(code, stderr).toBe(0);
    expect(jobIds(sent)).toEqual(jobIds(dropped));
    // The same requests as 0.1.0 sent: the fingerprints of unchanged jobs did not move.
    const fingerprints = (list: JournalRecord[]) => Object.fromEntries(list.map((record) => [String(record.id), record.fingerprint]));
    expect(fingerprints(sent)).toEqual(fingerprints(dropped));
    expect(sent.every((record) => record.state === 'done')).toBe(true);
    await expectFilesMatchRecords(dir, sent);
    await expectResultsKeptExcept(dir, jobIds(dropped));
  });

  it('regenerates a deleted image and sends only the job that made it again', async () => {
    const dir = await copyFixture();
    // The second of the two images of an n: 2 job, saved under an output template.
    await rm(join(dir, 'output', 'images', 'mascots', 'mascot-2.png'));

    const { code, stderr, sent } = await resume(dir);
    expect(code, stderr).toBe(0);
    expect(jobIds(sent)).toEqual(['mascot']);
    expect(sent[0]!.state).toBe('done');
    expect(sent[0]!.files?.map((file) => file.path)).toEqual(['images/mascots/mascot-1.png', 'images/mascots/mascot-2.png']);
    await expectFilesMatchRecords(dir, sent);
    for (const other of ['lighthouse.png', 'night-market.jpeg']) {
      expect(sha(await readFile(join(dir, 'output', 'images', other))), other).toBe(sha(await readFile(join(FIXTURE, 'output', 'images', other))));
    }
    await expectResultsKeptExcept(dir, ['mascot']);
  });

  it('sends a job whose prompt was edited again, and only that job', async () => {
    const dir = await copyFixture();
    const jobsFile = join(dir, 'chat.jsonl');
    const text = await readFile(jobsFile, 'utf8');
    const edited = text.replace('"prompt": "Explain how DNS works."', '"prompt": "Explain how DNS caching works."');
    expect(edited).not.toBe(text);
    await writeFile(jobsFile, edited);

    const { code, stderr, sent } = await resume(dir);
    expect(code, stderr).toBe(0);
    expect(jobIds(sent)).toEqual(['explain-dns']);
    expect(sent[0]!.state).toBe('done');
    const before = (await fixtureJournal()).find((record) => record.id === 'explain-dns')!;
    expect(sent[0]!.fingerprint).not.toBe(before.fingerprint);
    const rows = await expectResultsKeptExcept(dir, ['explain-dns']);
    expect(rows.find((row) => row.id === 'explain-dns')!.output).toContain('Explain how DNS caching works.');
  });
});
