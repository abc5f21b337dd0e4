import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { loadJobs } from '../src/jobs/load.js';
import type { Problem } from '../src/common/types.js';

const invalid = (name: string) => `fixtures/invalid/${name}`;
const where = (problems: Problem[]) => problems.map(({ file, line, column, field, jobId }) => ({ file, line, column, field, jobId }));

describe('every class of problem is reported with its file, line and field', () => {
  test('bad JSON on a JSONL line', async () => {
    const { problems } = await loadJobs([invalid('bad-json.jsonl')]);
    expect(where(problems)).toEqual([
      { file: invalid('bad-json.jsonl'), line: 2, column: undefined, field: undefined, jobId: undefined },
      { file: invalid('bad-json.jsonl'), line: 4, column: undefined, field: undefined, jobId: undefined },
    ]);
  });

  test('an unknown kind, and a kind that cannot be inferred', async () => {
    const { problems } = await loadJobs([invalid('unknown-kind.jsonl')]);
    expect(where(problems)).toEqual([
      { file: invalid('unknown-kind.jsonl'), line: 1, column: undefined, field: 'kind', jobId: 'speech' },
      { file: invalid('unknown-kind.jsonl'), line: 2, column: undefined, field: 'kind', jobId: 'nothing' },
    ]);
  });

  test('a missing prompt or model', async () => {
    const { problems } = await loadJobs([invalid('missing-prompt.json')]);
    expect(problems.map((problem) => [problem.line, problem.field, problem.jobId])).toEqual([
      [2, 'prompt', 'chat-without-prompt'],
      [3, 'prompt', 'image-without-prompt'],
      [4, 'model', 'no-model'],
    ]);
  });

  test('wrong types and values, one problem per bad record', async () => {
    const { jobs, problems } = await loadJobs([invalid('wrong-types.jsonl')]);
    expect(jobs).toEqual([]);
    expect(problems.map((problem) => [problem.line, problem.field])).toEqual([
      [1, 'temperature'],
      [2, 'n'],
      [3, 'messages.0.role'],
      [4, 'temprature'],
    ]);
  });

  test('Batch API bodies held to the rules of nightshift jobs: messages, content parts, no streaming, a prompt', async () => {
    const { jobs, problems } = await loadJobs([invalid('batch-bodies.jsonl')]);
    expect(jobs.map((job) => job.id)).toEqual(['v1']);
    expect(where(problems)).toEqual(
      [
        [2, 'body.messages.0.content.0', 'v2'],
        [2, 'body.messages.0.content.1', 'v2'],
        [3, 'body.messages.0.role', 'v3'],
        [4, 'body.messages', 'v4'],
        [5, 'body.stream', 'v5'],
        [6, 'body.prompt', 'v6'],
        [7, 'body.prompt', 'v7'],
      ].map(([line, field, jobId]) => ({ file: invalid('batch-bodies.jsonl'), line, column: undefined, field, jobId })),
    );
  });

  test('a missing local image, and a folder given as an image', async () => {
    const { problems } = await loadJobs([invalid('missing-image.jsonl')]);
    expect(problems.map((problem) => [problem.line, problem.field, problem.jobId])).toEqual([
      [1, 'images.0', 'missing'],
      [2, 'images.0', 'folder'],
    ]);
    expect(problems[0]?.message).toContain('does-not-exist.png');
  });

  test('a local file that is not an image', async () => {
    const { problems } = await loadJobs([invalid('not-an-image.jsonl')]);
    expect(where(problems)).toEqual([{ file: invalid('not-an-image.jsonl'), line: 1, column: undefined, field: 'images.0', jobId: 'text-file' }]);
    expect(problems[0]?.message).toContain('not-an-image.png');
  });

  test('a duplicate id, naming the first place it is used', async () => {
    const { jobs, problems } = await loadJobs([invalid('duplicate-id.jsonl')]);
    expect(jobs.map((job) => job.id)).toEqual(['same', 'other']);
    expect(where(problems)).toEqual([{ file: invalid('duplicate-id.jsonl'), line: 3, column: undefined, field: 'id', jobId: 'same' }]);
    expect(problems[0]?.message).toContain(`${invalid('duplicate-id.jsonl')}:1`);
  });

  test('a duplicate id of a record that is itself invalid', async () => {
    const { problems } = await loadJobs([invalid('wrong-types.jsonl'), invalid('wrong-types.jsonl')]);
    expect(problems.filter((problem) => problem.field === 'id').map((problem) => [problem.line, problem.jobId])).toEqual([
      [1, 'hot'],
      [2, 'zero-images'],
      [3, 'bot-role'],
      [4, 'typo'],
    ]);
  });

  test('a duplicate id across files', async () => {
    const { problems } = await loadJobs(['fixtures/valid/jobs.jsonl', 'fixtures/valid/jobs.json']);
    // Three ids given twice; the id-less job in both files is numbered, not a duplicate.
    expect(problems).toHaveLength(3);
    expect(problems.every((problem) => problem.file === 'fixtures/valid/jobs.json' && problem.field === 'id')).toBe(true);
    expect(problems[0]?.message).toContain('fixtures/valid/jobs.jsonl:1');
  });

  test('image files that would leave the images folder or overwrite each other', async () => {
    const { problems } = await loadJobs([invalid('output-escape.json')]);
    expect(problems.map((problem) => [problem.line, problem.field, problem.jobId])).toEqual([
      [2, 'output', 'up'],
      [3, 'output', 'absolute'],
      [4, 'id', '../sneaky'],
      [5, 'output', 'many'],
    ]);
  });

  test('two jobs writing the same image file, ignoring case', async () => {
    const { jobs, problems } = await loadJobs([invalid('output-clash.jsonl')]);
    expect(jobs.map((job) => job.id)).toEqual(['first']);
    expect(problems.map((problem) => [problem.line, problem.field, problem.jobId])).toEqual([
      [2, 'output', 'second'],
      [3, 'output', 'animals/fox'],
    ]);
    expect(problems[0]?.message).toContain(`${invalid('output-clash.jsonl')}:1`);
  });

  test('a line that is not UTF-8', async () => {
    const { jobs, problems } = await loadJobs([invalid('not-utf8.jsonl')]);
    expect(jobs.map((job) => job.id)).toEqual(['fine']);
    expect(where(problems)).toEqual([{ file: invalid('not-utf8.jsonl'), line: 2, column: undefined, field: undefined, jobId: undefined }]);
  });

  test('CSV cells that are not numbers, with their column', async () => {
    const { jobs, problems } = await loadJobs([invalid('bad-number.csv')]);
    expect(jobs.map((job) => job.id)).toEqual(['fine']);
    expect(where(problems)).toEqual([
      { file: invalid('bad-number.csv'), line: 2, column: 'temperature', field: 'temperature', jobId: 'warm' },
      { file: invalid('bad-number.csv'), line: 3, column: 'max_completion_tokens', field: 'max_completion_tokens', jobId: 'long' },
    ]);
  });

  test('a file of an unsupported type', async () => {
    const { problems } = await loadJobs([invalid('unsupported.txt')]);
    expect(where(problems)).toEqual([{ file: invalid('unsupported.txt'), line: 0, column: undefined, field: undefined, jobId: undefined }]);
  });
});

test('reports the problems of all files at once, in file order', async () => {
  const files = ['bad-json.jsonl', 'unknown-kind.jsonl', 'wrong-types.jsonl', 'bad-number.csv', 'unsupported.txt'].map(invalid);
  const { problems } = await loadJobs(files);
  expect(problems).toHaveLength(2 + 2 + 4 + 2 + 1);
  expect(problems.map((problem) => problem.file).filter((file, i, all) => all.indexOf(file) === i)).toEqual(files);
});

test('writes messages that do not repeat the field name', async () => {
  const { problems } = await loadJobs([invalid('wrong-types.jsonl')]);
  for (const problem of problems) expect(problem.message.startsWith(`${problem.field}:`)).toBe(false);
});

describe('job files that are not regular files', () => {
  // A pipe would wait for a writer forever and a device would be read without end: both are refused at once.
  test.skipIf(process.platform === 'win32')('a named pipe and a link to /dev/zero are refused with a problem, without reading them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nightshift-special-'));
    const pipe = join(dir, 'jobs.jsonl');
    execFileSync('mkfifo', [pipe]);
    const device = join(dir, 'zero.jsonl');
    await symlink('/dev/zero', device);
    const folder = join(dir, 'folder.jsonl');
    await mkdir(folder);
    const { problems } = await loadJobs([pipe, device, folder]);
    expect(problems.map(({ file, line, message }) => ({ file, line, message }))).toEqual([
      { file: pipe, line: 0, message: 'cannot read the file: it is not a regular file (a pipe or a device)' },
      { file: device, line: 0, message: 'cannot read the file: it is not a regular file (a pipe or a device)' },
      { file: folder, line: 0, message: 'cannot read the file: it is a directory' },
    ]);
  });
});
