import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateJobFiles, type ValidateOptions, type ValidationResult } from '../src/jobs/load.js';
import { numberedId } from '../src/jobs/content-id.js';
import { tempDir } from './helpers.js';

/** Worker threads that note the byte range each was given, then validate it (the built worker: see the fixture). */
const SPY = new URL('../fixtures/check-worker-spy/worker.mjs', import.meta.url);
/** Split any file, however small, into four ranges: this thread's and three workers'. */
const SPLIT: ValidateOptions = { digests: true, parallel: { minBytes: 1, workers: 3, workerUrl: SPY } };

/** What a validation found, to compare one with another: problems, counts, and each job's id hash and request key. */
function findings(result: ValidationResult) {
  const { digests } = result;
  return {
    problems: result.problems,
    count: result.count,
    kinds: [...result.kinds],
    models: [...result.models],
    ids: digests ? Buffer.from(digests.ids.hashes().buffer, 0, digests.count * 16).toString('hex') : undefined,
    keys: digests?.keysOf().toString('hex'),
  };
}

/** Validates `file` in one thread and split in four; expects the same findings; returns them, and the workers' ranges. */
async function bothWays(file: string, options: ValidateOptions = {}) {
  const single = await validateJobFiles([file], { ...options, digests: true, parallel: false });
  const split = await validateJobFiles([file], { ...options, ...SPLIT });
  const ranges = (await readFile(`${file}.ranges`, 'utf8')).trim().split('\n').map((line) => line.split(' ').map(Number) as [number, number]);
  expect(findings(split)).toEqual(findings(single));
  return { result: split, ranges };
}

/** The 1-based line that holds byte `offset` of `text` (ASCII). */
const lineAt = (text: string, offset: number): number => text.slice(0, offset).split('\n').length;

const job = (index: number): object => ({ id: `j${index}`, model: 'gpt-4o-mini', prompt: `Prompt number ${index}` });

// Each test starts worker threads, which load the validation's modules: slow.
describe('validation of a large .jsonl file in worker threads (slow)', () => {
  it('reports every problem with its file, line and field, in line order, whichever thread found it', async () => {
    const dir = await tempDir();
    const file = join(dir, 'jobs.jsonl');
    // A problem every 37 lines, some of each kind, so that some fall next to each range's first and last lines.
    const lines = Array.from({ length: 4000 }, (_, index) => {
      if (index % 37 === 5) return '{"id": "broken", ';
      if (index % 37 === 11) return JSON.stringify({ id: `t${index}`, model: 'gpt-4o-mini', prompt: 'x', temperature: 9 });
      if (index % 37 === 23) return JSON.stringify({ id: `m${index}`, model: 'gpt-4o-mini' });
      if (index % 500 === 0) return '';
      return JSON.stringify(job(index));
    });
    const text = `${lines.join('\n')}\n`;
    await writeFile(file, text);
    const { result, ranges } = await bothWays(file);

    expect(ranges).toHaveLength(3);
    const problemLines = result.problems.map((problem) => problem.line);
    expect(problemLines).toEqual([...problemLines].sort((a, b) => a - b));
    const expected = lines.flatMap((line, index) => (index % 37 === 5 || index % 37 === 11 || index % 37 === 23 ? [index + 1] : []));
    expect(problemLines).toEqual(expected);
    // The problems right after each range's start are where the file has them.
    for (const [start] of ranges) {
      const first = result.problems.find((problem) => problem.line >= lineAt(text, start))!;
      expect(lines[first.line - 1]).toMatch(/broken|temperature|"m\d+"/);
    }
    expect(result.problems.find((problem) => problem.line === 12)).toMatchObject({ file, field: 'temperature', jobId: 't11' });
    expect(result.problems.find((problem) => problem.line === 24)).toMatchObject({ file, field: 'kind', jobId: 'm23' });
  });

  it('finds an id used twice in different ranges, and names the line it was first used on', async () => {
    const dir = await tempDir();
    const file = join(dir, 'jobs.jsonl');
    const lines = Array.from({ length: 2000 }, (_, index) => JSON.stringify(index === 1990 ? job(3) : job(index)));
    await writeFile(file, `${lines.join('\n')}\n`);
    const { result, ranges } = await bothWays(file);

    expect(ranges.at(-1)![0]).toBeLessThan(lines.slice(0, 1990).join('\n').length);
    expect(result.problems).toEqual([expect.objectContaining({ file, line: 1991, field: 'id', jobId: 'j3', message: expect.stringContaining(`${file}:4`) })]);
  });

  it('gives id-less jobs the same content ids, numbered across ranges, as a validation in one thread', async () => {
    const dir = await tempDir();
    const file = join(dir, 'prompts.jsonl');
    // Every fifth job is the same request: its copies are numbered in file order, across every range.
    const lines = Array.from({ length: 3000 }, (_, index) => JSON.stringify({ model: 'gpt-4o-mini', prompt: index % 5 === 0 ? 'the same' : `Prompt ${index}` }));
    await writeFile(file, `${lines.join('\n')}\n`);
    const { result } = await bothWays(file);

    expect(result.count).toBe(3000);
    const single = await validateJobFiles([file], { parallel: false, keep: { maxBytes: 1 << 30 } });
    const same = single.jobs!.filter((_, index) => index % 5 === 0).map((one) => one.id);
    expect(same.at(-1)).toBe(numberedId(same[0]!, 600));
    same.forEach((id, copy) => expect(result.digests!.ids.indexOf(id)).toBe(copy * 5));
  });

  it('reads a file with a byte order mark and CRLF line ends as one thread does', async () => {
    const dir = await tempDir();
    const file = join(dir, 'jobs.jsonl');
    // A U+FEFF at the start of any other line is no BOM: that line is not valid JSON, wherever its range starts.
    const lines = Array.from({ length: 2000 }, (_, index) => (index % 250 === 249 ? `\uFEFF${JSON.stringify(job(index))}` : JSON.stringify(job(index))));
    await writeFile(file, `\uFEFF${lines.join('\r\n')}\r\n`);
    const { result } = await bothWays(file);

    expect(result.count).toBe(2000 - 8);
    expect(result.problems.map((problem) => problem.line)).toEqual([250, 500, 750, 1000, 1250, 1500, 1750, 2000]);
  });

  it('saves the same validation for a resume as one thread does', async () => {
    const dir = await tempDir();
    const file = join(dir, 'jobs.jsonl');
    await writeFile(file, Array.from({ length: 2000 }, (_, index) => `${JSON.stringify(job(index))}\n`).join(''));
    await validateJobFiles([file], { saved: join(dir, 'single.bin'), parallel: false });
    await validateJobFiles([file], { ...SPLIT, saved: join(dir, 'split.bin') });
    expect((await readFile(`${file}.ranges`, 'utf8')).trim().split('\n')).toHaveLength(3);
    expect(await readFile(join(dir, 'split.bin'))).toEqual(await readFile(join(dir, 'single.bin')));
  });
});
