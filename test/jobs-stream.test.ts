import { appendFile, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { NightshiftError } from '../src/common/errors.js';
import { loadJobs, streamJobs, validateJobFiles } from '../src/jobs/load.js';
import type { Job } from '../src/common/types.js';

async function jobFile(lines: object[]): Promise<string> {
  const file = join(await mkdtemp(join(tmpdir(), 'nightshift-stream-')), 'jobs.jsonl');
  await writeFile(file, lines.map((line) => `${JSON.stringify(line)}\n`).join(''));
  return file;
}

async function collect(jobs: AsyncIterable<Job>): Promise<Job[]> {
  const all: Job[] = [];
  for await (const job of jobs) all.push(job);
  return all;
}

describe('validating, then streaming job files', () => {
  test('validation finds what loading finds, and streaming yields the same jobs', async () => {
    const files = ['fixtures/valid/jobs.jsonl', 'fixtures/valid/jobs.csv', 'fixtures/invalid/duplicate-id.jsonl'];
    const loaded = await loadJobs(files);
    const validated = await validateJobFiles(files);
    expect(validated.problems).toEqual(loaded.problems);
    expect(validated.count).toBe(loaded.jobs.length);

    const valid = ['fixtures/valid/jobs.jsonl', 'fixtures/valid/batch-api.jsonl'];
    const { count, kinds, models } = await validateJobFiles(valid);
    const { jobs } = await loadJobs(valid);
    expect(await collect(streamJobs(valid))).toEqual(jobs);
    expect(count).toBe(jobs.length);
    expect([...kinds.values()].reduce((a, b) => a + b, 0)).toBe(jobs.length);
    expect([...models].sort()).toEqual([...new Set(jobs.map((job) => job.model))].sort());
  });

  test('a file that became invalid after validation stops the stream with E_VALIDATION at the bad record', async () => {
    const file = await jobFile([
      { id: 'a', model: 'gpt-4o-mini', prompt: 'hi' },
      { id: 'b', model: 'gpt-4o-mini', prompt: 'hi' },
    ]);
    expect((await validateJobFiles([file])).problems).toEqual([]);
    await appendFile(file, '{"id": "c", "model": "gpt-4o-mini"}\n');

    const seen: string[] = [];
    const error = await (async () => {
      for await (const job of streamJobs([file])) seen.push(job.id);
    })().catch((caught: unknown) => caught);
    expect(seen).toEqual(['a', 'b']);
    expect(error).toBeInstanceOf(NightshiftError);
    expect((error as NightshiftError).code).toBe('E_VALIDATION');
  });
});
