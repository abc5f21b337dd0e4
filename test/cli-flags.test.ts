import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, NightshiftError } from '../src/common/errors.js';
import { resolveEstimateFlags } from '../src/cli/estimate.js';
import { EXIT, exitStatusOfError, exitStatusOfRun } from '../src/cli/exit.js';
import { resolveRunFlags } from '../src/cli/run.js';
import { acquireLock } from '../src/output/lock.js';
import type { StopReason } from '../src/run/options.js';
import { cli, offlineServerPerTest, readCsv, tempDir, waitFor, writeJobs } from './helpers.js';

/** An offline server the CLI reaches over HTTP, as it would the real API. */
const offline = offlineServerPerTest('sk-test-key');
const serve = offline.serve;

const chatJobs = (count: number) =>
  Array.from({ length: count }, (_, i) => ({ id: `q${i + 1}`, model: 'gpt-4.1-mini', prompt: `Question number ${i + 1}` }));

describe('a bad flag value is refused with exit 2, naming the flag and the value, before any file is read', () => {
  // The job file does not exist: a refusal that names the flag shows the flags were checked first.
  const missing = '/no/such/jobs.jsonl';
  it.each([
    ['run', ['run', missing, '--concurrency', '0'], '--concurrency', '0'],
    ['run', ['run', missing, '--max-attempts', '101'], '--max-attempts', '101'],
    ['run', ['run', missing, '--timeout', '0'], '--timeout', '0'],
    ['run', ['run', missing, '--grace', '-1'], '--grace', '-1'],
    ['run', ['run', missing, '--progress-interval', '0.5'], '--progress-interval', '0.5'],
    ['run', ['run', missing, '--budget', '-1'], '--budget', '-1'],
    ['run', ['run', missing, '--rpm', '1.5'], '--rpm', '1.5'],
    ['run', ['run', missing, '--tpm', 'many'], '--tpm', 'many'],
    ['run', ['run', missing, '--budget', '$5'], '--budget', '$5'],
    ['run', ['run', missing, '--budget', '0x10'], '--budget', '0x10'],
    ['run', ['run', missing, '--budget', '1e3'], '--budget', '1e3'],
    ['run', ['run', missing, '--concurrency', '2', '--concurrency', '3'], '--concurrency', '2,3'],
    ['estimate', ['estimate', missing, '--expected-output', '-1'], '--expected-output', '-1'],
    ['estimate', ['estimate', missing, '--expected-output', '2.5'], '--expected-output', '2.5'],
    ['report', ['report', '/no/such/folder', '--by', 'kind', '--by', 'tag'], '--by', 'kind,tag'],
  ])('%s %j', async (_command, args, flag, value) => {
    const { code, stderr } = await cli(args);
    expect(code).toBe(EXIT.invalid);
    expect(stderr).toContain(`\`${flag}\``);
    expect(stderr).toContain(`\`${value}\``);
    expect(stderr).not.toContain('/no/such');
  });

  // Refusals whose words are the command's own: each names the flag and, where there is one, the value.
  it.each([
    ['report: a --by outside the choices', ['report', '/no/such/folder', '--by', 'colour'], ['by', 'colour']],
    ['validate: a flag it does not take', ['validate', missing, '--concurrency', '4'], ['concurrency']],
    ['serve: the server names the option it refuses', ['serve', '--port', '70000'], ['port', '70000']],
    ['run: --only-failed with --fresh', ['run', missing, '--only-failed', '--fresh'], ['--only-failed']],
  ])('%s', async (_name, args, named) => {
    const { code, stderr } = await cli(args);
    expect(code).toBe(EXIT.invalid);
    for (const text of named) expect(stderr).toContain(text);
    expect(stderr).not.toContain('/no/such');
  });
});

describe('defaults are applied', () => {
  it('run: resolves every default from the flag table, without yargs filling them in', () => {
    const flags = resolveRunFlags({ files: ['jobs/chat.jsonl'] });
    expect(flags).toEqual({
      files: ['jobs/chat.jsonl'],
      outDir: join('out', 'chat'),
      concurrency: 8,
      maxAttempts: 5,
      timeoutMs: 600_000,
      flexTimeoutMs: 900_000,
      defaults: {},
      offline: false,
      fresh: false,
      force: false,
      onlyFailed: false,
      dryRun: false,
      quiet: false,
      json: false,
      progressIntervalSeconds: 30,
      graceMs: 30_000,
      html: true,
    });
  });

  it('run: sends with 8 requests in flight and a 30 s grace period unless told otherwise', async () => {
    const env = await serve({ latencyMs: 30 });
    const dir = await tempDir();
    let graceMs: number | undefined;
    const { code } = await cli(['run', await writeJobs(dir, chatJobs(24)), '--out', join(dir, 'out'), '--quiet'], {
      env,
      onRunStart: (ms) => (graceMs = ms),
    });
    expect(code).toBe(EXIT.ok);
    expect(graceMs).toBe(30_000);
    expect(offline.server.stats.maxInFlight).toBe(8);
  });

  it('run: a flag that takes a value and is given an empty one is refused, not taken as absent', () => {
    for (const flag of ['out', 'model', 'prices', 'budget', 'timeout']) {
      expect(() => resolveRunFlags({ files: ['jobs/chat.jsonl'], [flag]: '' }), flag).toThrow(expect.objectContaining({ code: 'E_USAGE' }));
    }
  });

  // The shell turns `--budget $5` into `--budget` with nothing after it: that run must not go ahead uncapped.
  it.each([
    [['--budget']],
    [['--budget', '--quiet']],
    [['--out']],
    [['--model']],
    [['--concurrency']],
  ])('run %j: a flag given no value exits 2 and sends nothing', async (extra) => {
    const env = await serve();
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(2));
    const { code, stderr } = await cli(['run', file, ...extra], { env });
    expect(code).toBe(EXIT.invalid);
    expect(stderr).toContain(extra[0]!.slice(2));
    expect(offline.server.stats.requests).toBe(0);
  });

  it('estimate: --out defaults to run’s folder and output tokens to the documented expectation', async () => {
    expect(resolveEstimateFlags({ files: ['jobs/chat.jsonl'] })).toEqual({
      files: ['jobs/chat.jsonl'],
      outDir: join('out', 'chat'),
      defaults: {},
      quiet: false,
      json: false,
    });
    const dir = await tempDir();
    const csv = join(dir, 'estimate.csv');
    const file = await writeJobs(dir, [{ id: 'a', model: 'gpt-4.1-mini', prompt: 'Hi' }]);
    expect((await cli(['estimate', file, '--out', join(dir, 'out'), '--csv', csv])).code).toBe(EXIT.ok);
    expect((await readCsv(csv))[0]).toMatchObject({ model: 'gpt-4.1-mini', expected_output_tokens: '500' });
  });

  it('report: groups by model', async () => {
    const dir = await tempDir();
    const out = join(dir, 'out');
    expect((await cli(['run', await writeJobs(dir, chatJobs(2)), '--offline', '--quiet', '--out', out])).code).toBe(EXIT.ok);
    const { code, stdout } = await cli(['report', out]);
    expect(code).toBe(EXIT.ok);
    expect(stdout.split(/\s+/)[0]).toBe('model');
  });

  it('validate: no default model, so a job without one is refused, also when --model is given no value', async () => {
    const dir = await tempDir();
    const file = await writeJobs(dir, [{ id: 'a', prompt: 'Hi' }]);
    expect((await cli(['validate', file])).code).toBe(EXIT.invalid);
    expect((await cli(['validate', file, '--model'])).code).toBe(EXIT.invalid);
    expect((await cli(['validate', file, '--model', 'gpt-4.1-mini'])).code).toBe(EXIT.ok);
  });

  it('serve: listens on a free port and answers over HTTP until stopped', async () => {
    const stop = new AbortController();
    let stdout = '';
    // Numbers given as the shell gives them, text: read as numbers.
    const serving = cli(['serve', '--port', '0', '--latency', '5'], { stopSignal: stop.signal, stdout: (text) => (stdout += text) });
    await waitFor(() => stdout.includes('OPENAI_BASE_URL='), 10_000, 'the server to listen');
    const url = /OPENAI_BASE_URL=(\S+)/.exec(stdout)![1]!;
    expect(new URL(url).port).not.toBe('0');
    expect((await fetch(`${url}/models`)).status).toBe(200);
    stop.abort();
    expect((await serving).code).toBe(EXIT.ok);
  });
});

describe('exit statuses map as the README says', () => {
  it('maps every error code and stop reason, and anything else to a bug', () => {
    const byCode = Object.fromEntries(ERROR_CODES.map((code) => [code, exitStatusOfError(new NightshiftError(code, 'x'))]));
    expect(byCode).toEqual({ E_VALIDATION: 2, E_USAGE: 2, E_CONFIG: 2, E_LOCKED: 4, E_OUTPUT: 4, E_IMAGE_UNSAVED: 70 });
    expect(exitStatusOfError(new Error('x'))).toBe(70);
    const reasons: StopReason[] = ['quota', 'unauthorized', 'budget', 'interrupted', 'aborted', 'output'];
    expect(Object.fromEntries(reasons.map((reason) => [reason, exitStatusOfRun({ stopReason: reason, failed: 0, incomplete: 0 })]))).toEqual({
      quota: 3,
      unauthorized: 5,
      budget: 3,
      interrupted: 130,
      aborted: 130,
      output: 4,
    });
    expect(exitStatusOfRun({ failed: 0, incomplete: 0 })).toBe(0);
    expect(exitStatusOfRun({ failed: 2, incomplete: 0 })).toBe(1);
    expect(exitStatusOfRun({ failed: 0, incomplete: 1 })).toBe(1);
    // Job files changed under the run: validate again (2), unless why it stopped comes first.
    expect(exitStatusOfRun({ failed: 1, incomplete: 0, jobFilesChanged: true })).toBe(2);
    expect(exitStatusOfRun({ stopReason: 'quota', failed: 0, incomplete: 0, jobFilesChanged: true })).toBe(3);
  });

  it('0: every job succeeded, or was already done', async () => {
    const env = await serve();
    const dir = await tempDir();
    const args = ['run', await writeJobs(dir, chatJobs(3)), '--out', join(dir, 'out'), '--quiet'];
    expect((await cli(args, { env })).code).toBe(0);
    expect((await cli(args, { env })).code).toBe(0);
  });

  it('1: the run finished and a job failed', async () => {
    const env = await serve({ faults: [{ status: 400, match: { promptIncludes: 'number 2' } }] });
    const dir = await tempDir();
    expect((await cli(['run', await writeJobs(dir, chatJobs(3)), '--out', join(dir, 'out'), '--quiet'], { env })).code).toBe(1);
  });

  it('2: nothing was sent, for invalid job files, a bad prices file or a missing API key', async () => {
    const env = await serve();
    const dir = await tempDir();
    const good = await writeJobs(dir, chatJobs(1));
    const out = join(dir, 'out');
    const bad = await writeJobs(dir, [{ id: 'a', model: 'gpt-4.1-mini' }], 'bad.jsonl');
    const prices = join(dir, 'prices.json');
    await writeFile(prices, '{"gpt-4.1-mini": {"input": "cheap"}}');
    expect((await cli(['run', bad, '--out', out], { env })).code).toBe(2);
    expect((await cli(['run', good, '--out', out, '--prices', prices], { env })).code).toBe(2);
    expect((await cli(['run', good, '--out', out], { env: { OPENAI_BASE_URL: env.OPENAI_BASE_URL! } })).code).toBe(2);
    expect(offline.server.stats.requests).toBe(0);
  });

  it('3: out of credit, or the budget reached', async () => {
    const env = await serve({ quota: { afterRequests: 1 } });
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(3));
    expect((await cli(['run', file, '--out', join(dir, 'quota'), '--quiet', '--concurrency', '1'], { env })).code).toBe(3);
    expect((await cli(['run', file, '--out', join(dir, 'budget'), '--quiet', '--budget', '0'], { env })).code).toBe(3);
  });

  it('4: the output folder is in use, or cannot be written', async () => {
    const env = await serve();
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(1));
    const out = join(dir, 'out');
    expect((await cli(['run', file, '--out', out, '--quiet'], { env })).code).toBe(0);
    const release = await acquireLock(out);
    try {
      expect((await cli(['run', file, '--out', out, '--quiet'], { env })).code).toBe(4);
    } finally {
      await release();
    }
    expect((await cli(['run', file, '--out', join(file, 'out'), '--quiet'], { env })).code).toBe(4);
  });

  it('130: interrupted', async () => {
    const env = await serve();
    const dir = await tempDir();
    const { code } = await cli(['run', await writeJobs(dir, chatJobs(2)), '--out', join(dir, 'out'), '--quiet'], { env, stopSignal: AbortSignal.abort() });
    expect(code).toBe(130);
  });

  it('70: a bug, said to be one, with its stack', async () => {
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(1));
    let stderr = '';
    const code = (
      await cli(['validate', file], {
        stdout: () => {
          throw new Error('stdout is gone');
        },
        stderr: (text) => (stderr += text),
      })
    ).code;
    expect(code).toBe(70);
    expect(stderr).toContain('this is a bug');
    expect(stderr).toContain('stdout is gone');
  });
});
