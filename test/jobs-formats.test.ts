import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { loadJobs } from '../src/jobs/load.js';
import { readRecords } from '../src/jobs/read.js';
import type { RawRecord } from '../src/jobs/records.js';
import type { Job } from '../src/common/types.js';

/** Writes `files` into a fresh temporary folder and returns their paths by name. */
async function tempFiles(files: Record<string, string | Uint8Array>): Promise<Record<string, string>> {
  const dir = await mkdtemp(join(tmpdir(), 'nightshift-jobs-'));
  const paths: Record<string, string> = {};
  for (const [name, content] of Object.entries(files)) {
    paths[name] = join(dir, name);
    await writeFile(join(dir, name), content);
  }
  return paths;
}

async function collect(file: string): Promise<RawRecord[]> {
  const records: RawRecord[] = [];
  for await (const record of readRecords(file)) records.push(record);
  return records;
}

const withoutSource = (jobs: Job[]) => jobs.map(({ source: _source, ...job }) => job);
const lines = (jobs: Job[]) => jobs.map((job) => job.source.line);

describe('formats', () => {
  test('reads the same jobs from .json, .jsonl and .csv', async () => {
    const [json, jsonl, csv] = await Promise.all(['json', 'jsonl', 'csv'].map((ext) => loadJobs([`fixtures/valid/jobs.${ext}`])));
    for (const result of [json, jsonl, csv]) expect(result?.problems).toEqual([]);
    expect(json?.jobs).toHaveLength(4);
    expect(withoutSource(jsonl?.jobs ?? [])).toEqual(withoutSource(json?.jobs ?? []));
    expect(withoutSource(csv?.jobs ?? [])).toEqual(withoutSource(json?.jobs ?? []));
    expect(json?.jobs.map((job) => [job.id, job.kind])).toEqual([
      ['haiku', 'chat'],
      ['42', 'chat'],
      [expect.stringMatching(/^jobs-[0-9a-f]{12}$/), 'vision'],
      ['lighthouse', 'image'],
    ]);
  });

  test('locates each job on the line where it starts', async () => {
    const [json, jsonl, csv] = await Promise.all(['json', 'jsonl', 'csv'].map((ext) => loadJobs([`fixtures/valid/jobs.${ext}`])));
    expect(lines(json?.jobs ?? [])).toEqual([4, 11, 22, 28]);
    expect(lines(jsonl?.jobs ?? [])).toEqual([1, 2, 4, 5]);
    // The first CSV row has a two-line quoted cell.
    expect(lines(csv?.jobs ?? [])).toEqual([2, 4, 5, 6]);
  });

  test('accepts Batch API input lines as they stand', async () => {
    const { jobs, problems } = await loadJobs(['fixtures/valid/batch-api.jsonl']);
    expect(problems).toEqual([]);
    expect(jobs.map((job) => [job.id, job.kind, job.endpoint, job.model])).toEqual([
      ['req-1', 'chat', '/v1/chat/completions', 'gpt-4.1-mini'],
      ['req-2', 'vision', '/v1/chat/completions', 'gpt-4.1-mini'],
      ['req-3', 'image', '/v1/images/generations', 'gpt-image-1-mini'],
    ]);
    expect(jobs[0]?.body).toEqual({ model: 'gpt-4.1-mini', messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 20 });
    expect(jobs[2]?.output).toBe('{id}-{index}.webp');
  });

  test('loads the README demo files without problems', async () => {
    const { jobs, problems } = await loadJobs(['jobs/chat.jsonl', 'jobs/vision.csv', 'jobs/images.json']);
    expect(problems).toEqual([]);
    expect(jobs.map((job) => job.kind).filter((kind, i, all) => all.indexOf(kind) === i)).toEqual(['chat', 'vision', 'image']);
  });

  test('strips a UTF-8 BOM and accepts CRLF line endings in every format', async () => {
    const bom = '\uFEFF';
    const files = await tempFiles({
      'a.jsonl': `${bom}{"id": "a", "model": "m", "prompt": "Hi"}\r\n\r\n{"id": "b", "model": "m", "prompt": "Yo"}\r\n`,
      'c.json': `${bom}[\r\n  {"id": "c", "model": "m", "prompt": "Hi"},\r\n  {"id": "d", "model": "m", "prompt": "Yo"}\r\n]\r\n`,
      'e.csv': `${bom}id,model,prompt\r\ne,m,"two\r\nlines"\r\nf,m,Yo\r\n`,
    });
    const { jobs, problems } = await loadJobs(Object.values(files));
    expect(problems).toEqual([]);
    expect(jobs.map((job) => [job.id, job.source.line])).toEqual([
      ['a', 1],
      ['b', 3],
      ['c', 2],
      ['d', 3],
      ['e', 2],
      ['f', 4],
    ]);
    expect(jobs[4]?.body['messages']).toEqual([{ role: 'user', content: 'two\nlines' }]);
  });
});

describe('CSV', () => {
  test('reads quoted multi-line cells and JSON in cells, keeping each row on its first line', async () => {
    const csv = [
      'id,model,messages,prompt,params',
      'a,m,"[{""role"": ""user"",',
      '""content"": ""line one\\nline two""}]",,',
      '',
      'b,m,,"A prompt with, a comma',
      '',
      'and a blank line inside","{""stop"": [""END""]}"',
      'c,m,,Last,',
    ].join('\n');
    const { 'multi.csv': file = '' } = await tempFiles({ 'multi.csv': csv });
    const { jobs, problems } = await loadJobs([file]);
    expect(problems).toEqual([]);
    expect(jobs.map((job) => [job.id, job.source.line])).toEqual([
      ['a', 2],
      ['b', 5],
      ['c', 8],
    ]);
    expect(jobs[0]?.body['messages']).toEqual([{ role: 'user', content: 'line one\nline two' }]);
    expect(jobs[1]?.body).toMatchObject({ messages: [{ role: 'user', content: 'A prompt with, a comma\n\nand a blank line inside' }], stop: ['END'] });
  });

  test('reports a row with the wrong number of cells on its line and goes on', async () => {
    const { 'bad.csv': file = '' } = await tempFiles({ 'bad.csv': 'id,model,prompt\na,m,Hi\nb,m,Hi,extra\nc,m,"multi\nline",extra\nd,m,Yo\n' });
    const { jobs, problems } = await loadJobs([file]);
    expect(jobs.map((job) => job.id)).toEqual(['a', 'd']);
    expect(problems.map((problem) => problem.line)).toEqual([3, 4]);
  });

  test('reports unknown, repeated and unnamed header columns once, with their column', async () => {
    const { 'head.csv': file = '' } = await tempFiles({ 'head.csv': 'id,model,promt,model,\na,m,Hi,m,x\nb,m,Hi,m,y\n' });
    const { problems } = await loadJobs([file]);
    expect(problems.filter((problem) => problem.line === 1)).toEqual([
      expect.objectContaining({ column: 'promt', field: 'promt' }),
      expect.objectContaining({ column: 'model', field: 'model' }),
      expect.objectContaining({ line: 1 }),
    ]);
    expect(problems.filter((problem) => problem.line === 1 && problem.column === 'promt')).toHaveLength(1);
  });

  test('reports a row with bytes that are not UTF-8 and keeps the other rows', async () => {
    const bytes = Buffer.concat([Buffer.from('id,model,prompt\na,m,Hi\nb,m,Caf'), Buffer.from([0xe9]), Buffer.from('\nc,m,Yo\n')]);
    const { 'latin1.csv': file = '' } = await tempFiles({ 'latin1.csv': bytes });
    const { jobs, problems } = await loadJobs([file]);
    expect(jobs.map((job) => job.id)).toEqual(['a', 'c']);
    expect(problems).toEqual([expect.objectContaining({ line: 3 })]);
  });

  test('reports an unclosed quote', async () => {
    const { 'open.csv': file = '' } = await tempFiles({ 'open.csv': 'id,model,prompt\na,m,Hi\nb,m,"never closed\n' });
    const { jobs, problems } = await loadJobs([file]);
    expect(jobs.map((job) => job.id)).toEqual(['a']);
    expect(problems).toEqual([expect.objectContaining({ line: 3 })]);
  });
});

describe('JSON', () => {
  test('reports syntax errors with their line and reads no job from the file', async () => {
    const { jobs, problems } = await loadJobs(['fixtures/invalid/bad-json.json']);
    expect(jobs).toEqual([]);
    expect(problems.map((problem) => [problem.line, problem.field])).toEqual([
      [3, undefined],
      [4, undefined],
    ]);
  });

  test('rejects comments', async () => {
    const { 'c.json': file = '' } = await tempFiles({ 'c.json': '[\n  // a comment\n  {"model": "m", "prompt": "Hi"}\n]\n' });
    expect((await loadJobs([file])).problems).toEqual([expect.objectContaining({ line: 2 })]);
  });

  test('reports a document that is neither an array nor {defaults, jobs}', async () => {
    const files = await tempFiles({ 'one.json': '{"model": "m", "prompt": "Hi"}', 'str.json': '"jobs"', 'jobs.json': '{"jobs": {}}' });
    const { problems } = await loadJobs(Object.values(files));
    expect(problems.map((problem) => problem.file)).toEqual(Object.values(files));
  });

  test('applies the file defaults to its jobs, whatever the key order', async () => {
    const { 'd.json': file = '' } = await tempFiles({ 'd.json': '{"jobs": [{"prompt": "Hi"}], "defaults": {"model": "gpt-5-mini", "tags": ["x"]}}' });
    const { jobs, problems } = await loadJobs([file]);
    expect(problems).toEqual([]);
    expect(jobs[0]).toMatchObject({ model: 'gpt-5-mini', tags: ['x'] });
  });

  test('reports bad defaults once, on the defaults line', async () => {
    const { 'd.json': file = '' } = await tempFiles({ 'd.json': '{\n"defaults":\n  {"model": "m", "temperature": "hot"},\n"jobs": [{"prompt": "a"}, {"prompt": "b"}]}' });
    const { jobs, problems } = await loadJobs([file]);
    expect(jobs).toHaveLength(2);
    expect(problems).toEqual([expect.objectContaining({ line: 3, field: 'defaults.temperature' })]);
  });

  test('reports a line that is not UTF-8', async () => {
    const bytes = Buffer.concat([Buffer.from('[\n{"model": "m", "prompt": "Caf'), Buffer.from([0xe9]), Buffer.from('"}\n]\n')]);
    const { 'x.json': file = '' } = await tempFiles({ 'x.json': bytes });
    expect((await loadJobs([file])).problems).toEqual([expect.objectContaining({ line: 2 })]);
  });
});

describe('JSONL', () => {
  test('reports each bad line and keeps reading', async () => {
    const { jobs, problems } = await loadJobs(['fixtures/invalid/bad-json.jsonl']);
    expect(jobs.map((job) => job.id)).toEqual(['ok-1', 'ok-2']);
    expect(problems.map((problem) => problem.line)).toEqual([2, 4]);
  });

  test('names id-less jobs by their requests, whatever lines come before them', async () => {
    const { 'p.jsonl': file = '' } = await tempFiles({ 'p.jsonl': '{"model": "m", "prompt": "a"}\n\n   \n{oops\n{"model": "m", "prompt": "b"}' });
    const { 'p.jsonl': alone = '' } = await tempFiles({ 'p.jsonl': '{"model": "m", "prompt": "b"}\n' });
    const { jobs } = await loadJobs([file]);
    expect(jobs.map((job) => job.source.line)).toEqual([1, 5]);
    expect(jobs[1]?.id).toMatch(/^p-[0-9a-f]{12}$/);
    expect(jobs[0]?.id).not.toBe(jobs[1]?.id);
    expect((await loadJobs([alone])).jobs.map((job) => job.id)).toEqual([jobs[1]?.id]);
  });
});

describe('files', () => {
  test('reports an unsupported extension, a missing file and a folder as whole-file problems', async () => {
    const { 'x.txt': txt = '' } = await tempFiles({ 'x.txt': 'prompt\n' });
    const folder = `${txt}.d.jsonl`;
    await mkdir(folder);
    const { jobs, problems } = await loadJobs([txt, 'fixtures/does-not-exist.jsonl', folder, 'fixtures/valid/jobs.jsonl']);
    expect(jobs).toHaveLength(4);
    expect(problems.map((problem) => [problem.file, problem.line])).toEqual([
      [txt, 0],
      ['fixtures/does-not-exist.jsonl', 0],
      [folder, 0],
    ]);
  });

  test('yields a CSV header before its rows, and JSON defaults before the jobs', async () => {
    const csv = await collect('fixtures/valid/jobs.csv');
    expect(csv.map((record) => record.type)).toEqual(['header', 'row', 'row', 'row', 'row']);
    const json = await collect('fixtures/valid/jobs.json');
    expect(json.map((record) => record.type)).toEqual(['defaults', 'job', 'job', 'job', 'job']);
  });
});
