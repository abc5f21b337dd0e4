import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT } from '../src/cli/exit.js';
import { formatSeconds } from '../src/cli/words.js';
import { cli, offlineServerPerTest, tempDir, writeJobs } from './helpers.js';

/*
 * Command-line habits users bring from the CLIs they know: did-you-mean, short flags, --quiet and --json
 * everywhere, words that agree with their numbers.
 */

const offline = offlineServerPerTest('sk-test-cli-habits');

const chatJobs = (count: number) =>
  Array.from({ length: count }, (_, i) => ({ id: `q${i + 1}`, model: 'gpt-4.1-mini', prompt: `Question number ${i + 1}` }));

async function jobsFile(count: number): Promise<string> {
  return writeJobs(await tempDir(), chatJobs(count));
}

const exists = (path: string) => stat(path).then(() => true, () => false);

describe('a mistyped flag is refused with the flag it most likely meant', () => {
  it.each([
    [['run', 'jobs.jsonl', '--concurency', '4'], '--concurrency'],
    [['run', 'jobs.jsonl', '--max-attempt', '4'], '--max-attempts'],
    [['estimate', 'jobs.jsonl', '--expected-ouput', '4'], '--expected-output'],
    [['report', 'out', '--bye', 'tag'], '--by'],
    [['validate', 'jobs.jsonl', '--modle', 'x'], '--model'],
  ])('%j suggests %s', async (args, suggestion) => {
    const { code, stderr } = await cli(args);
    expect(code).toBe(EXIT.invalid);
    expect(stderr).toContain(suggestion);
  });

  it('names an unknown flag once, as it was typed, without its camelCase double', async () => {
    const { code, stderr } = await cli(['run', 'jobs.jsonl', '--env-file', '.env']);
    expect(code).toBe(EXIT.invalid);
    expect(stderr).toContain('--env-file');
    expect(stderr).not.toContain('envFile');
  });
});

describe('short flags for the common ones', () => {
  it('run -c -o -m -q: concurrency, output folder, model, quiet', async () => {
    const env = await offline.serve();
    const file = writeJobs(await tempDir(), [{ prompt: 'One' }, { prompt: 'Two' }, { prompt: 'Three' }]);
    const out = join(await tempDir(), 'out');
    const { code, stdout, stderr } = await cli(['run', await file, '-c', '1', '-o', out, '-m', 'gpt-4.1-mini', '-q'], { env });
    expect(code).toBe(EXIT.ok);
    expect(offline.server.stats.maxInFlight).toBe(1);
    expect(await exists(join(out, 'results.csv'))).toBe(true);
    expect(stdout).toBe('');
    expect(stderr).toBe('');
  });

  it('a short flag with a bad value is refused by its long name', async () => {
    const { code, stderr } = await cli(['run', 'jobs.jsonl', '-c', '0']);
    expect(code).toBe(EXIT.invalid);
    expect(stderr).toContain('--concurrency');
  });
});

/** `run --json`'s object, as a script reads it. */
interface RunJson {
  jobs: Record<string, number>;
  run: Record<string, number>;
  tokens: Record<string, number>;
  outputs: Record<string, string | null>;
}

describe('--json prints one object a script can read; --quiet prints nothing but problems', () => {
  it('run --json: counts by status, tokens, this run\'s cost and the output paths', async () => {
    const env = await offline.serve();
    const out = join(await tempDir(), 'out');
    const { code, stdout } = await cli(['run', await jobsFile(3), '--out', out, '--json'], { env });
    expect(code).toBe(EXIT.ok);
    const summary = JSON.parse(stdout) as RunJson;
    expect(summary.jobs).toEqual({ total: 3, ok: 3, incomplete: 0, failed: 0, pending: 0 });
    expect(summary.run).toMatchObject({ new: 3, rerun: 0, skipped: 0, retries: 0 });
    expect(summary.run['costUsd']).toBeGreaterThan(0);
    expect(summary.tokens['input_tokens']).toBeGreaterThan(0);
    expect(summary.outputs['results']).toBe(join(out, 'results.csv'));
    expect(summary.outputs['usage']).toBe(join(out, 'usage.csv'));
    // Resumed with nothing left to send, this run costs nothing.
    const again = JSON.parse((await cli(['run', await jobsFile(3), '--out', out, '--json'], { env })).stdout) as RunJson;
    expect(again.run).toMatchObject({ new: 0, skipped: 3, costUsd: 0 });
  });

  it('validate --json: the count, or every problem', async () => {
    const file = await jobsFile(2);
    const ok = await cli(['validate', file, '--json']);
    expect(ok.code).toBe(EXIT.ok);
    expect(JSON.parse(ok.stdout)).toEqual({ valid: 2, kinds: { chat: 2 }, problems: [] });
    const bad = await writeJobs(await tempDir(), [{ model: 'gpt-4.1-mini', prompt: 'Hi', temperature: 9 }]);
    const refused = await cli(['validate', bad, '--json']);
    expect(refused.code).toBe(EXIT.invalid);
    const parsed = JSON.parse(refused.stdout) as { problems: { field: string; line: number }[] };
    expect(parsed.problems.map(({ field, line }) => ({ field, line }))).toEqual([{ field: 'temperature', line: 1 }]);
  });

  it('validate -q prints nothing when the files are valid', async () => {
    const { code, stdout, stderr } = await cli(['validate', await jobsFile(2), '-q']);
    expect(code).toBe(EXIT.ok);
    expect(stdout + stderr).toBe('');
  });

  it('estimate --json: one row object per table row, and the TOTAL', async () => {
    const { code, stdout } = await cli(['estimate', await jobsFile(2), '--json', '--out', join(await tempDir(), 'none')]);
    expect(code).toBe(EXIT.ok);
    const estimate = JSON.parse(stdout) as { rows: Record<string, unknown>[] };
    expect(estimate.rows.at(-1)).toMatchObject({ model: 'TOTAL', jobs: 2 });
    expect(typeof estimate.rows.at(-1)?.['expected_usd']).toBe('number');
  });

  it('estimate -q --csv writes the file and prints nothing', async () => {
    const csv = join(await tempDir(), 'estimate.csv');
    const { code, stdout } = await cli(['estimate', await jobsFile(2), '-q', '--csv', csv, '--out', join(await tempDir(), 'none')]);
    expect(code).toBe(EXIT.ok);
    expect(stdout).toBe('');
    expect(await readFile(csv, 'utf8')).toContain('TOTAL');
  });

  it('report --json and -q', async () => {
    const env = await offline.serve();
    const out = join(await tempDir(), 'out');
    await cli(['run', await jobsFile(2), '--out', out, '-q'], { env });
    const json = await cli(['report', out, '--json']);
    expect(json.code).toBe(EXIT.ok);
    expect((JSON.parse(json.stdout) as { rows: Record<string, unknown>[] }).rows.at(-1)).toMatchObject({ jobs: 2 });
    const quiet = await cli(['report', out, '-q']);
    expect(quiet.stdout).toBe('');
  });

  it('serve --json prints its base URL as an object; serve -q prints nothing', async () => {
    const json = await cli(['serve', '--json'], { stopSignal: AbortSignal.abort() });
    expect(json.code).toBe(EXIT.ok);
    expect((JSON.parse(json.stdout) as { url: string }).url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
    const quiet = await cli(['serve', '-q'], { stopSignal: AbortSignal.abort() });
    expect(quiet.stdout).toBe('');
  });
});

describe('words agree with their numbers', () => {
  it('one job is "1 job", in the plan, the summary and validate', async () => {
    const env = await offline.serve();
    const file = await jobsFile(1);
    const run = await cli(['run', file, '--out', join(await tempDir(), 'out')], { env });
    const validate = await cli(['validate', file]);
    for (const text of [run.stdout, run.stderr, validate.stdout]) {
      expect(text).not.toMatch(/\b1 (jobs|retries|problems)\b/);
      expect(text).not.toMatch(/\b1 valid jobs\b/);
    }
    expect(run.stdout).toMatch(/\b1 job\b/);
  });

  it('--grace 0.5 is shown as 0.5 s, not rounded', () => {
    expect(formatSeconds(0.5)).toBe('0.5 s');
    expect(formatSeconds(30)).toBe('30 s');
    expect(formatSeconds(1.25)).toBe('1.25 s');
  });
});

describe('a run that needs no request needs no key, and makes no folders it does not use', () => {
  it('rebuilding the outputs of a finished folder needs no API key', async () => {
    const env = await offline.serve();
    const file = await jobsFile(2);
    const out = join(await tempDir(), 'out');
    expect((await cli(['run', file, '--out', out, '-q'], { env })).code).toBe(EXIT.ok);
    await writeFile(join(out, 'results.csv'), '');
    const { code } = await cli(['run', file, '--out', out, '-q'], { env: {} });
    expect(code).toBe(EXIT.ok);
    expect((await readFile(join(out, 'results.csv'), 'utf8')).split('\n').length).toBeGreaterThan(2);
  });

  it('a run that has jobs to send still needs the key, and says so before sending', async () => {
    const file = await jobsFile(2);
    const out = join(await tempDir(), 'out');
    const { code, stderr } = await cli(['run', file, '--out', out], { env: {} });
    expect(code).toBe(EXIT.invalid);
    expect(stderr).toContain('OPENAI_API_KEY');
  });

  it('a run without image jobs creates no images/ folder; its resume and views still work', async () => {
    const env = await offline.serve();
    const file = await jobsFile(2);
    const out = join(await tempDir(), 'out');
    expect((await cli(['run', file, '--out', out, '-q'], { env })).code).toBe(EXIT.ok);
    expect(await exists(join(out, 'images'))).toBe(false);
    expect((await cli(['run', file, '--out', out, '--force', '-q'], { env })).code).toBe(EXIT.ok);
    expect(await exists(join(out, 'images'))).toBe(false);
    expect((await cli(['report', out, '-q'])).code).toBe(EXIT.ok);
  });

  it('an image run still writes its images under images/', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    await mkdir(join(dir, 'sub'));
    const file = await writeJobs(dir, [{ id: 'cat', model: 'gpt-image-2', prompt: 'A cat', size: '1024x1024', quality: 'low' }]);
    const out = join(dir, 'out');
    expect((await cli(['run', file, '--out', out, '-q'], { env })).code).toBe(EXIT.ok);
    expect(await exists(join(out, 'images', 'cat.png'))).toBe(true);
  });
});

describe('a connection error names the host it could not reach, never the key', () => {
  it('the failed job says which host and port', async () => {
    const env = await offline.serve();
    const url = new URL(env['OPENAI_BASE_URL']!);
    await offline.server.close();
    const out = join(await tempDir(), 'out');
    const { code } = await cli(['run', await jobsFile(1), '--out', out, '--max-attempts', '1'], { env });
    expect(code).toBe(EXIT.jobsFailed);
    const journal = await readFile(join(out, 'journal.jsonl'), 'utf8');
    const failed = journal
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as { state?: string; error?: string })
      .filter((record) => record.state === 'failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]?.error).toContain(url.host);
    expect(journal).not.toContain('sk-test-cli-habits');
  });
});
