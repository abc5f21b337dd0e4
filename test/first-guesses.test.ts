import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, test } from 'vitest';
import { EXIT } from '../src/cli/exit.js';
import { resolveRunFlags } from '../src/cli/run.js';
import { loadJobs } from '../src/jobs/load.js';
import type { Problem } from '../src/common/types.js';
import { cli, offlineServerPerTest, readCsv, tempDir } from './helpers.js';

/*
 * Job files written the way a newcomer guesses they look: the guess works, or the error names the right field.
 */

const offline = offlineServerPerTest('sk-test-first-guesses');

async function jobFile(name: string, text: string): Promise<string> {
  const path = join(await tempDir(), name);
  await writeFile(path, text);
  return path;
}

const fields = (problems: readonly Problem[]) => problems.map((problem) => problem.field);

describe('a JSON list of plain strings is a list of chat jobs', () => {
  test('run sends each string as a prompt, with --model and --system filling what the jobs leave out', async () => {
    const file = await jobFile('questions.json', JSON.stringify(['What is 2 + 2?', 'Name a colour.']));
    const out = join(await tempDir(), 'out');
    const env = await offline.serve();
    const { code } = await cli(['run', file, '--model', 'gpt-4.1-mini', '--system', 'Be brief.', '--out', out], { env });
    expect(code).toBe(EXIT.ok);
    const rows = await readCsv(join(out, 'results.csv'));
    expect(rows.map((row) => row['status'])).toEqual(['ok', 'ok']);
    expect(offline.server.stats.requests).toBe(2);
  });

  test('the strings of a .jsonl file are chat jobs too', async () => {
    const { jobs, problems } = await loadJobs([await jobFile('q.jsonl', '"First question"\n"Second question"\n')], { defaults: { model: 'gpt-5-mini' } });
    expect(problems).toEqual([]);
    expect(jobs.map((job) => job.body['messages'])).toEqual([[{ role: 'user', content: 'First question' }], [{ role: 'user', content: 'Second question' }]]);
  });

  test('--temperature and --max-completion-tokens fill what the jobs and the file defaults leave out', async () => {
    const file = await jobFile(
      'q.json',
      JSON.stringify({ defaults: { temperature: 1 }, jobs: ['Plain', { prompt: 'Own', temperature: 0.5, max_completion_tokens: 10 }] }),
    );
    const { jobs, problems } = await loadJobs([file], { defaults: { model: 'gpt-4.1-mini', temperature: 0, maxCompletionTokens: 200 } });
    expect(problems).toEqual([]);
    expect(jobs.map((job) => [job.body['temperature'], job.body['max_completion_tokens']])).toEqual([
      [1, 200],
      [0.5, 10],
    ]);
  });

  test('a job giving max_tokens takes no --max-completion-tokens', async () => {
    const file = await jobFile('q.jsonl', `${JSON.stringify({ prompt: 'Hi', max_tokens: 5 })}\n`);
    const { jobs } = await loadJobs([file], { defaults: { model: 'gpt-4.1-mini', maxCompletionTokens: 200 } });
    expect(jobs[0]?.body['max_completion_tokens']).toBe(5);
  });

  test('run --temperature and --max-completion-tokens are checked like the job fields', async () => {
    const { code, stderr } = await cli(['run', '/no/such.json', '--temperature', '3']);
    expect(code).toBe(EXIT.invalid);
    expect(stderr).toContain('--temperature');
  });
});

describe('params may hold a job field the job does not also set', () => {
  test('params.temperature is sent as temperature', async () => {
    const file = await jobFile('q.jsonl', `${JSON.stringify({ model: 'gpt-4.1-mini', prompt: 'Hi', params: { temperature: 0, reasoning_effort: 'low' } })}\n`);
    const { jobs, problems } = await loadJobs([file]);
    expect(problems).toEqual([]);
    expect(jobs[0]?.body).toMatchObject({ temperature: 0, reasoning_effort: 'low' });
  });

  test('the same value in both places is no conflict', async () => {
    const file = await jobFile('q.jsonl', `${JSON.stringify({ model: 'gpt-4.1-mini', prompt: 'Hi', temperature: 0, params: { temperature: 0 } })}\n`);
    expect((await loadJobs([file])).problems).toEqual([]);
  });

  test('conflicting values are one problem that names both', async () => {
    const file = await jobFile('q.jsonl', `${JSON.stringify({ model: 'gpt-4.1-mini', prompt: 'Hi', temperature: 0, params: { temperature: 1 } })}\n`);
    const { problems } = await loadJobs([file]);
    expect(fields(problems)).toEqual(['params.temperature']);
    expect(problems[0]?.message).toContain('temperature');
  });

  test('params.temperature wins over the file defaults, like the field itself', async () => {
    const file = await jobFile('q.json', JSON.stringify({ defaults: { temperature: 1 }, jobs: [{ model: 'gpt-4.1-mini', prompt: 'Hi', params: { temperature: 0 } }] }));
    const { jobs, problems } = await loadJobs([file]);
    expect(problems).toEqual([]);
    expect(jobs[0]?.body['temperature']).toBe(0);
  });

  test('a value params holds is checked as the field is', async () => {
    const file = await jobFile('q.jsonl', `${JSON.stringify({ model: 'gpt-4.1-mini', prompt: 'Hi', params: { temperature: 7 } })}\n`);
    expect(fields((await loadJobs([file])).problems)).toEqual(['params.temperature']);
  });
});

describe('spreadsheet habits', () => {
  test('headers match the fields whatever their case', async () => {
    const file = await jobFile('sheet.csv', 'ID,Model,Prompt,Temperature\nq1,gpt-4.1-mini,Hello,0.5\n');
    const { jobs, problems } = await loadJobs([file]);
    expect(problems).toEqual([]);
    expect(jobs.map((job) => [job.id, job.model, job.body['temperature']])).toEqual([['q1', 'gpt-4.1-mini', 0.5]]);
  });

  test('rows whose cells are all empty are skipped', async () => {
    const file = await jobFile('sheet.csv', 'id,model,prompt\nq1,gpt-4.1-mini,Hello\n,,\n  , ,\nq2,gpt-4.1-mini,Bye\n,,\n');
    const { jobs, problems } = await loadJobs([file]);
    expect(problems).toEqual([]);
    expect(jobs.map((job) => job.id)).toEqual(['q1', 'q2']);
  });

  test('comma-separated image paths in a cell are explained: the separator is ";"', async () => {
    const file = await jobFile('sheet.csv', 'id,model,prompt,images\nv1,gpt-4.1-mini,Compare,a.png,b.png\n'.replace('a.png,b.png', '"a.png,b.png"'));
    const { problems } = await loadJobs([file]);
    expect(fields(problems)).toEqual(['images.0']);
    expect(problems[0]?.message).toContain('";"');
  });
});

describe('wrong names get the right suggestion, once', () => {
  test('the same problem on many lines is printed once, with the lines it recurs on', async () => {
    const file = await jobFile('q.jsonl', Array.from({ length: 40 }, (_, i) => `${JSON.stringify({ model: 'gpt-4.1-mini', input: `Question ${i}` })}\n`).join(''));
    const { code, stderr } = await cli(['validate', file]);
    expect(code).toBe(EXIT.invalid);
    const printed = stderr.split('\n').filter((line) => line.includes('input'));
    expect(printed).toHaveLength(1);
    expect(printed[0]).toContain('39 more');
  });

  const suggestionFor = async (job: object): Promise<Problem[]> => {
    const file = await jobFile('q.jsonl', `${JSON.stringify(job)}\n`);
    return (await loadJobs([file])).problems;
  };

  test.each([
    ['image on a chat job', { model: 'gpt-4.1-mini', prompt: 'What is it?', image: 'a.png' }, 'image', '"images"'],
    ['system_prompt', { model: 'gpt-4.1-mini', prompt: 'Hi', system_prompt: 'Be brief.' }, 'system_prompt', '"system"'],
    ['name on an image job', { prompt: 'A cat', size: '1024x1024', name: 'cat' }, 'name', '"id"'],
    ['filename on an image job', { prompt: 'A cat', size: '1024x1024', filename: 'cat.png' }, 'filename', '"output"'],
    ['count on an image job', { prompt: 'A cat', size: '1024x1024', count: 2 }, 'count', '"n"'],
    ['options on a chat job', { model: 'gpt-4.1-mini', prompt: 'Hi', options: { seed: 1 } }, 'options', '"params"'],
    ['input (Responses API)', { model: 'gpt-4.1-mini', input: 'Hi' }, 'input', '"prompt"'],
    ['max_output_tokens (Responses API)', { model: 'gpt-4.1-mini', prompt: 'Hi', max_output_tokens: 9 }, 'max_output_tokens', '"max_completion_tokens"'],
  ])('%s: one problem, on the misnamed field, naming the right one', async (_name, job, field, suggestion) => {
    const problems = await suggestionFor(job);
    expect(fields(problems)).toEqual([field]);
    expect(problems[0]?.message).toContain(suggestion);
  });

  test('a misnamed CSV column is one problem for the header, not one more for each row', async () => {
    const file = await jobFile('sheet.csv', 'id,model,Question,Parameters\nq1,gpt-4.1-mini,Hello,{}\nq2,gpt-4.1-mini,Bye,{}\n');
    const { problems } = await loadJobs([file]);
    // Two misnamed columns, two problems: none for the rows whose prompt is in one of them.
    expect(problems.map((problem) => [problem.line, problem.field])).toEqual([
      [1, 'Question'],
      [1, 'Parameters'],
    ]);
    expect(problems[1]?.message).toContain('"params"');
  });

  test("a misnamed column hides none of a row's own problems", async () => {
    const file = await jobFile('sheet.csv', 'id,model,Question,params\nq1,gpt-4.1-mini,Hello,{bad\n');
    const { problems } = await loadJobs([file]);
    expect(problems.map((problem) => [problem.line, problem.field])).toEqual([
      [1, 'Question'],
      [2, 'params'],
    ]);
  });

  test('a CSV column named as in the Responses API is one problem, and the rows are not said to lack a prompt', async () => {
    const file = await jobFile('sheet.csv', 'id,model,input\nq1,gpt-4.1-mini,Hello\nq2,gpt-4.1-mini,Bye\n');
    const { problems } = await loadJobs([file]);
    expect(problems.map((problem) => [problem.line, problem.field])).toEqual([[1, 'input']]);
    expect(problems[0]?.message).toContain('"prompt"');
  });
});

describe('"-" reads a job file from standard input', () => {
  const stdin = (...chunks: string[]) => ({ stdin: Readable.from(chunks.map((chunk) => Buffer.from(chunk))) });
  const lines = (count: number, from = 1) =>
    Array.from({ length: count }, (_, i) => `${JSON.stringify({ model: 'gpt-4.1-mini', prompt: `Question ${from + i}` })}\n`).join('');

  test('JSONL is sniffed, read as it streams in, and a rerun with the same input sends nothing again', async () => {
    const out = join(await tempDir(), 'out');
    const env = await offline.serve();
    const text = lines(3);
    // Chunks that cut lines in two, as a pipe delivers them.
    const first = await cli(['run', '-', '--out', out], { env, ...stdin(text.slice(0, 20), text.slice(20, 90), text.slice(90)) });
    expect(first.code).toBe(EXIT.ok);
    const rows = await readCsv(join(out, 'results.csv'));
    expect(rows.map((row) => row['status'])).toEqual(['ok', 'ok', 'ok']);
    expect(rows[0]?.['source']).toMatch(/^<stdin>:1$/);
    const again = await cli(['run', '-', '--out', out], { env, ...stdin(text) });
    expect(again.code).toBe(EXIT.ok);
    expect(offline.server.stats.requests).toBe(3);
  });

  test('a JSON list and a CSV table are sniffed too', async () => {
    const json = await cli(['validate', '-', '--model', 'gpt-4.1-mini'], stdin(JSON.stringify(['One', 'Two'])));
    expect(json.code).toBe(EXIT.ok);
    const csv = await cli(['validate', '-'], stdin('id,model,prompt\nq1,gpt-4.1-mini,Hello\n'));
    expect(csv.code).toBe(EXIT.ok);
    // A header whose names are quoted, as spreadsheets save them, is no JSON string.
    const quoted = await cli(['validate', '-'], stdin('"id","model","prompt"\n"q1","gpt-4.1-mini","Hello"\n'));
    expect(quoted.code).toBe(EXIT.ok);
  });

  test('--format says what the input is when sniffing cannot', async () => {
    // A one-line JSON object is a JSONL line to the sniffer; --format json reads it as a file with defaults.
    const document = JSON.stringify({ defaults: { model: 'gpt-4.1-mini' }, jobs: ['One'] });
    const sniffed = await cli(['validate', '-'], stdin(document));
    expect(sniffed.code).toBe(EXIT.invalid);
    const told = await cli(['validate', '-', '--format', 'json'], stdin(document));
    expect(told.code).toBe(EXIT.ok);
  });

  test('problems name <stdin> as the file', async () => {
    const { code, stderr } = await cli(['validate', '-'], stdin(`${JSON.stringify({ model: 'gpt-4.1-mini', prompt: 'Hi', temperature: 9 })}\n`));
    expect(code).toBe(EXIT.invalid);
    expect(stderr).toMatch(/^<stdin>:1: temperature: /m);
  });

  test('the default output folder of standard input is out/stdin', () => {
    expect(resolveRunFlags({ files: ['-'] }).outDir).toBe(join('out', 'stdin'));
  });
});
