import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { access, chmod, copyFile, mkdir, readdir, readFile, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { OfflineServerOptions } from '../src/server/server.js';
import { cli, journalLines, offlineServerPerTest, readCsv, spawnCli, succeededIds, tempDir, waitFor, writeJobs } from './helpers.js';

const offline = offlineServerPerTest('sk-test-resume-key-1234567890');
const serve = async (options?: OfflineServerOptions): Promise<{ env: Record<string, string> }> => ({ env: await offline.serve(options) });

const chatJobs = (count: number): Record<string, unknown>[] =>
  Array.from({ length: count }, (_, i) => ({ id: `q${i + 1}`, model: 'gpt-4o-mini', prompt: `Question number ${i + 1}` }));

/** The counts of `(this run: N new, N rerun, N skipped as already done` in the summary. */
function thisRun(stdout: string): { fresh: number; rerun: number; skipped: number } {
  const match = /this run: (\d+) new, (\d+) rerun, (\d+) skipped/.exec(stdout);
  if (!match) throw new Error(`no summary in ${JSON.stringify(stdout)}`);
  return { fresh: Number(match[1]), rerun: Number(match[2]), skipped: Number(match[3]) };
}

const lockPath = (out: string): string => join(out, 'nightshift.lock');
const exists = (path: string): Promise<boolean> => access(path).then(() => true, () => false);
const noStack = /\n\s+at /;

describe('resume', () => {
  it('skips successes, reruns failed, changed and missing jobs, and the summary counts each', async () => {
    const { env } = await serve({ faults: [{ status: 400, times: 1, match: { promptIncludes: 'number 2' } }] });
    const dir = await tempDir();
    const out = join(dir, 'out');
    const jobs = chatJobs(4);
    const file = await writeJobs(dir, jobs);
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(1);
    expect(offline.server.stats.requests).toBe(4);

    jobs[2] = { ...jobs[2], prompt: 'An edited question' };
    jobs.push({ id: 'q5', model: 'gpt-4o-mini', prompt: 'Question number 5' });
    await writeJobs(dir, jobs);
    const again = await cli(['run', file, '--out', out], { env });
    expect(again.code).toBe(0);
    expect(thisRun(again.stdout)).toEqual({ fresh: 1, rerun: 2, skipped: 2 });
    expect(offline.server.stats.requests).toBe(4 + 3);
    expect(offline.server.countByKey('Question number 1')).toBe(1);
    expect(offline.server.countByKey('Question number 2')).toBe(2);
    expect(offline.server.countByKey('An edited question')).toBe(1);
    expect(offline.server.countByKey('Question number 4')).toBe(1);
    expect(offline.server.countByKey('Question number 5')).toBe(1);
    const rows = await readCsv(join(out, 'results.csv'));
    expect(rows.map((row) => `${row.id}:${row.status}`)).toEqual(['q1:ok', 'q2:ok', 'q3:ok', 'q4:ok', 'q5:ok']);
    expect(rows[2]!.output).toContain('An edited question');

    const third = await cli(['run', file, '--out', out], { env });
    expect(thisRun(third.stdout)).toEqual({ fresh: 0, rerun: 0, skipped: 5 });
    expect(offline.server.stats.requests).toBe(7);
  });

  it.each([
    ['the prompt', { prompt: 'Question number 2, reworded' }],
    ['the model', { model: 'gpt-4.1-mini' }],
    ['a parameter', { temperature: 0.2 }],
    ['the system prompt', { system: 'Answer in French.' }],
  ])('sends a job again when %s changed, and only that job', async (_, edit) => {
    const { env } = await serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const jobs = chatJobs(3);
    const file = await writeJobs(dir, jobs);
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    jobs[1] = { ...jobs[1], ...edit };
    await writeJobs(dir, jobs);
    const again = await cli(['run', file, '--out', out], { env });
    expect(again.code).toBe(0);
    expect(thisRun(again.stdout)).toEqual({ fresh: 0, rerun: 1, skipped: 2 });
    expect(offline.server.stats.requests).toBe(4);
    expect(offline.server.countByKey(String(jobs[1]!.prompt))).toBe(jobs[1]!.prompt === 'Question number 2' ? 2 : 1);
  });

  it('does not pay again for a request that already succeeded once its edit is undone', async () => {
    const { env } = await serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const jobs = chatJobs(3);
    const file = await writeJobs(dir, jobs);
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    await writeJobs(dir, jobs.map((job) => (job.id === 'q2' ? { ...job, prompt: 'A tried variant' } : job)));
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);

    await writeJobs(dir, jobs);
    const undone = await cli(['run', file, '--out', out], { env });
    expect(undone.code).toBe(0);
    expect(thisRun(undone.stdout)).toEqual({ fresh: 0, rerun: 0, skipped: 3 });
    expect(offline.server.stats.requests).toBe(4);
    expect((await readCsv(join(out, 'results.csv')))[1]!.output).toContain('Question number 2');
  });

  it('sends a vision job again when the bytes of its local image changed, not when they did not', async () => {
    const { env } = await serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const image = join(dir, 'picture.png');
    await copyFile(new URL('../fixtures/images/red-dot.png', import.meta.url), image);
    const file = await writeJobs(dir, [
      { id: 'look', kind: 'vision', model: 'gpt-4.1-mini', prompt: 'What is in this picture?', images: 'picture.png' },
      { id: 'other', model: 'gpt-4o-mini', prompt: 'Unrelated question' },
    ]);
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    expect(offline.server.countByKey('What is in this picture?')).toBe(1);

    await copyFile(new URL('../fixtures/images/blue-square.jpg', import.meta.url), image);
    const again = await cli(['run', file, '--out', out], { env });
    expect(again.code).toBe(0);
    expect(thisRun(again.stdout)).toEqual({ fresh: 0, rerun: 1, skipped: 1 });
    expect(offline.server.countByKey('What is in this picture?')).toBe(2);
    expect(offline.server.countByKey('Unrelated question')).toBe(1);
  });

  it('after insufficient_quota (exit 3), a rerun with credit sends only the jobs still pending', async () => {
    const { env } = await serve({ quota: { afterRequests: 3 } });
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, chatJobs(10));
    expect((await cli(['run', file, '--out', out, '--concurrency', '1'], { env })).code).toBe(3);
    const done = (await readCsv(join(out, 'results.csv'))).filter((row) => row.status === 'ok').map((row) => row.id);
    expect(done).toHaveLength(3);
    await offline.server.close();

    const { env: withCredit } = await serve();
    const again = await cli(['run', file, '--out', out, '--concurrency', '1'], { env: withCredit });
    expect(again.code).toBe(0);
    expect(thisRun(again.stdout)).toEqual({ fresh: 7, rerun: 0, skipped: 3 });
    expect(offline.server.stats.requests).toBe(7);
    for (const [index, job] of chatJobs(10).entries()) {
      expect(offline.server.countByKey(String(job.prompt)), String(job.id)).toBe(done.includes(`q${index + 1}`) ? 0 : 1);
    }
    expect((await readCsv(join(out, 'results.csv'))).every((row) => row.status === 'ok')).toBe(true);
  });
});

describe('a damaged journal', () => {
  it('ignores a torn last line with a warning, sends only that job again, and completes the results', async () => {
    const { env } = await serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, chatJobs(5));
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    const journal = join(out, 'journal.jsonl');
    const text = await readFile(journal, 'utf8');
    const lastLine = text.trimEnd().split('\n').at(-1)!;
    const tornId = String((JSON.parse(lastLine) as { id: string }).id);
    // Cut the file in the middle of its last record, as a process killed mid-write leaves it.
    await truncate(journal, Buffer.byteLength(text) - Math.floor(Buffer.byteLength(lastLine) / 2));

    const again = await cli(['run', file, '--out', out], { env });
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/warning: .*journal\.jsonl:\d+/);
    expect(offline.server.stats.requests).toBe(6);
    expect(offline.server.countByKey(`Question number ${tornId.slice(1)}`)).toBe(2);
    const rows = await readCsv(join(out, 'results.csv'));
    expect(rows.map((row) => `${row.id}:${row.status}`)).toEqual(['q1:ok', 'q2:ok', 'q3:ok', 'q4:ok', 'q5:ok']);

    const third = await cli(['run', file, '--out', out], { env });
    expect(third.stderr).not.toContain('warning');
    expect(offline.server.stats.requests).toBe(6);
  });

  it('keeps a last record that is complete but lost its newline, on this run and the next', async () => {
    const { env } = await serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, chatJobs(3));
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    const journal = join(out, 'journal.jsonl');
    await truncate(journal, (await readFile(journal)).length - 1);

    for (let run = 0; run < 2; run++) {
      const again = await cli(['run', file, '--out', out], { env });
      expect(again.code).toBe(0);
      expect(thisRun(again.stdout)).toEqual({ fresh: 0, rerun: 0, skipped: 3 });
    }
    expect(offline.server.stats.requests).toBe(3);
    const lines = await journalLines(out);
    expect(lines.filter((line) => line.type === 'job')).toHaveLength(3);
  });
});

describe('--fresh and --only-failed', () => {
  it('--fresh refuses with exit 2 to discard finished results without --force, and changes nothing', async () => {
    const { env } = await serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, chatJobs(3));
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    const journal = await readFile(join(out, 'journal.jsonl'), 'utf8');
    const refused = await cli(['run', file, '--out', out, '--fresh'], { env });
    expect(refused.code).toBe(2);
    expect(refused.stderr).not.toMatch(noStack);
    expect(offline.server.stats.requests).toBe(3);
    expect(await readFile(join(out, 'journal.jsonl'), 'utf8')).toBe(journal);
    expect((await readdir(out)).filter((name) => name.startsWith('journal'))).toEqual(['journal.jsonl']);
  });

  it('--fresh --force sends every job again, keeps the old journal aside and rebuilds results.csv and usage.csv', async () => {
    const { env } = await serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, chatJobs(3));
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    const oldJournal = await readFile(join(out, 'journal.jsonl'), 'utf8');

    await writeJobs(dir, chatJobs(2));
    const fresh = await cli(['run', file, '--out', out, '--fresh', '--force'], { env });
    expect(fresh.code).toBe(0);
    expect(thisRun(fresh.stdout)).toEqual({ fresh: 2, rerun: 0, skipped: 0 });
    expect(offline.server.stats.requests).toBe(5);
    const kept = (await readdir(out)).filter((name) => /^journal-.+\.jsonl$/.test(name));
    expect(kept).toHaveLength(1);
    expect(await readFile(join(out, kept[0]!), 'utf8')).toBe(oldJournal);
    expect((await journalLines(out)).filter((line) => line.type === 'job')).toHaveLength(2);
    expect((await readCsv(join(out, 'results.csv'))).map((row) => row.id)).toEqual(['q1', 'q2']);
    expect((await readCsv(join(out, 'usage.csv'))).at(-1)).toMatchObject({ jobs: '2', ok: '2' });
  });

  it('--fresh needs no --force when the folder holds only failures', async () => {
    const { env } = await serve({ faults: [{ status: 400, times: 2 }] });
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, chatJobs(2));
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(1);
    const fresh = await cli(['run', file, '--out', out, '--fresh'], { env });
    expect(fresh.code).toBe(0);
    expect(offline.server.stats.requests).toBe(4);
  });

  it('--fresh --force is refused with exit 4 while another process runs in the folder, and moves nothing', async () => {
    const { env } = await serve({ latencyMs: 150 });
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, chatJobs(4));
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    const other = await writeJobs(dir, [...chatJobs(4), { id: 'q5', model: 'gpt-4o-mini', prompt: 'Question number 5' }], 'more.jsonl');
    const first = cli(['run', other, '--out', out, '--concurrency', '1'], { env });
    await waitFor(() => offline.server.stats.inFlight > 0, 5000, 'the first run to send');

    const fresh = await cli(['run', file, '--out', out, '--fresh', '--force'], { env });
    expect(fresh.code).toBe(4);
    expect((await readdir(out)).filter((name) => name.startsWith('journal'))).toEqual(['journal.jsonl']);
    expect((await first).code).toBe(0);
    expect((await cli(['run', other, '--out', out], { env })).code).toBe(0);
    expect(offline.server.stats.requests).toBe(5);
  });

  it('after a stop, says to resume without --force or --fresh, which would send finished jobs again', async () => {
    const { env } = await serve({ latencyMs: 50 });
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, chatJobs(6));
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    const stopAfterOne = new AbortController();
    const waiting = waitFor(() => offline.server.stats.requests > 6, 5000, 'a request').then(() => stopAfterOne.abort());
    const forced = await cli(['run', file, '--out', out, '--force', '--concurrency', '1'], { env, stopSignal: stopAfterOne.signal });
    await waiting;
    expect(forced.code).toBe(130);
    expect(forced.stderr).toMatch(/without --force/);
    const requests = offline.server.stats.requests;

    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    expect(offline.server.stats.requests).toBe(requests);

    const fresh = await cli(['run', file, '--out', out, '--fresh', '--force'], { env, stopSignal: AbortSignal.abort() });
    expect(fresh.code).toBe(130);
    expect(fresh.stderr).toMatch(/without --fresh and --force/);
  });

  it('--only-failed reruns only the failures, leaving new and changed jobs pending', async () => {
    const { env } = await serve({ faults: [{ status: 400, times: 1, match: { promptIncludes: 'number 2' } }] });
    const dir = await tempDir();
    const out = join(dir, 'out');
    const jobs = chatJobs(3);
    const file = await writeJobs(dir, jobs);
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(1);
    jobs[2] = { ...jobs[2], prompt: 'An edited question' };
    jobs.push({ id: 'q4', model: 'gpt-4o-mini', prompt: 'Question number 4' });
    await writeJobs(dir, jobs);

    const again = await cli(['run', file, '--out', out, '--only-failed'], { env });
    expect(again.code).toBe(0);
    expect(thisRun(again.stdout)).toEqual({ fresh: 0, rerun: 1, skipped: 1 });
    expect(offline.server.stats.requests).toBe(4);
    expect(offline.server.countByKey('Question number 2')).toBe(2);
    const rows = await readCsv(join(out, 'results.csv'));
    expect(rows.map((row) => `${row.id}:${row.status}`)).toEqual(['q1:ok', 'q2:ok', 'q3:pending', 'q4:pending']);
  });

  it('--only-failed with nothing failed sends nothing and exits 0', async () => {
    const { env } = await serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, chatJobs(3));
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    const again = await cli(['run', file, '--out', out, '--only-failed'], { env });
    expect(again.code).toBe(0);
    expect(thisRun(again.stdout)).toEqual({ fresh: 0, rerun: 0, skipped: 3 });
    expect(offline.server.stats.requests).toBe(3);
    expect((await readCsv(join(out, 'results.csv'))).every((row) => row.status === 'ok')).toBe(true);
  });

  it('a forced rerun that failed stays failed after reload, and --only-failed sends it again', async () => {
    const { env } = await serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, chatJobs(2));
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);

    offline.server.setFaults([{ status: 400, times: 1, match: { promptIncludes: 'number 2' } }]);
    const forced = await cli(['run', file, '--out', out, '--force', '--max-attempts', '1'], { env });
    expect(forced.code).toBe(1);
    expect((await readCsv(join(out, 'results.csv'))).map((row) => `${row.id}:${row.status}`)).toEqual(['q1:ok', 'q2:failed']);

    const again = await cli(['run', file, '--out', out, '--only-failed'], { env });
    expect(again.code).toBe(0);
    expect(thisRun(again.stdout)).toEqual({ fresh: 0, rerun: 1, skipped: 1 });
    expect(offline.server.countByKey('Question number 2')).toBe(3);
    expect((await readCsv(join(out, 'results.csv'))).map((row) => `${row.id}:${row.status}`)).toEqual(['q1:ok', 'q2:ok']);
  });
});

describe('the output folder lock', () => {
  it('refuses a second run on the same folder at once with exit 4, sending nothing', async () => {
    const { env } = await serve({ latencyMs: 100 });
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, chatJobs(6));
    const first = cli(['run', file, '--out', out, '--concurrency', '2'], { env });
    await waitFor(() => offline.server.stats.inFlight > 0, 5000, 'the first run to send');

    const started = Date.now();
    const second = await cli(['run', file, '--out', out], { env });
    expect(second.code).toBe(4);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(second.stderr).toContain(`pid ${process.pid}`);
    expect(second.stderr).not.toMatch(noStack);
    expect((await first).code).toBe(0);
    expect(offline.server.stats.requests).toBe(6);
    expect(await exists(lockPath(out))).toBe(false);
  });

  it('takes over a lock left by a process that has died', async () => {
    const { env } = await serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, chatJobs(2));
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    await mkdir(out);
    await writeFile(lockPath(out), JSON.stringify({ pid: dead, host: hostname(), startedAt: '2026-01-01T00:00:00Z' }));
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    expect(await exists(lockPath(out))).toBe(false);
  });

  it('is released whatever the exit status', async () => {
    const { env } = await serve({ quota: { afterRequests: 2 }, faults: [{ status: 400, times: 2, match: { promptIncludes: 'number 1' } }] });
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(4));
    const out = join(dir, 'out');
    const runs: [string[], Parameters<typeof cli>[1], number][] = [
      [['--concurrency', '1'], { env }, 3],
      [[], { env, stopSignal: AbortSignal.abort() }, 130],
      [['--only-failed'], { env }, 1],
    ];
    for (const [extra, io, status] of runs) {
      expect((await cli(['run', file, '--out', out, ...extra], io)).code).toBe(status);
      expect(await exists(lockPath(out)), `lock after exit ${status}`).toBe(false);
    }
    await rm(join(out, 'results.csv'));
    await mkdir(join(out, 'results.csv', 'in-the-way'), { recursive: true });
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(4);
    expect(await exists(lockPath(out)), 'lock after exit 4').toBe(false);
  });
});

describe('an output folder that cannot be written', () => {
  it('exits 4 without a stack trace, sending nothing, when journal.jsonl is a folder (run, estimate and report alike)', async () => {
    const { env } = await serve();
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(2));
    const out = join(dir, 'out');
    await mkdir(join(out, 'journal.jsonl'), { recursive: true });
    const { code, stderr } = await cli(['run', file, '--out', out], { env });
    expect(code).toBe(4);
    expect(stderr).toContain('journal.jsonl');
    expect(stderr).not.toMatch(noStack);
    expect(offline.server.stats.requests).toBe(0);
    expect(await exists(lockPath(out))).toBe(false);
    for (const args of [['estimate', file, '--out', out], ['report', out]]) {
      const other = await cli(args, { env });
      expect(other.code, args[0]).toBe(4);
      expect(other.stderr, args[0]).toContain('journal.jsonl');
      expect(other.stderr, args[0]).not.toMatch(noStack);
    }
  });

  it('exits 4 without a stack trace, sending nothing, when the folder cannot be created', async () => {
    const { env } = await serve();
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(2));
    await writeFile(join(dir, 'a-file'), '');
    const { code, stderr } = await cli(['run', file, '--out', join(dir, 'a-file', 'out')], { env });
    expect(code).toBe(4);
    expect(stderr).not.toMatch(noStack);
    expect(offline.server.stats.requests).toBe(0);
  });

  it.skipIf(process.getuid?.() === 0)('exits 4 without a stack trace, sending nothing, when the folder is read-only', async () => {
    const { env } = await serve();
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(2));
    const out = join(dir, 'out');
    await mkdir(join(out, 'images'), { recursive: true });
    await chmod(out, 0o555);
    try {
      const { code, stderr } = await cli(['run', file, '--out', out], { env });
      expect(code).toBe(4);
      expect(stderr).not.toMatch(noStack);
      expect(offline.server.stats.requests).toBe(0);
    } finally {
      await chmod(out, 0o755);
    }
  });

  it.skipIf(!existsSync('/dev/full'))('exits 4 without a stack trace, sending nothing, when journal.jsonl leads to a device that refuses writes', async () => {
    const { env } = await serve();
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(2));
    const out = join(dir, 'out');
    await mkdir(out);
    // Refused as a link before anything is written (a disk full at the start is lock.test.ts's, with ulimit -f 0).
    await symlink('/dev/full', join(out, 'journal.jsonl'));
    const { code, stderr } = await cli(['run', file, '--out', out], { env });
    expect(code).toBe(4);
    expect(stderr).not.toMatch(noStack);
    expect(offline.server.stats.requests).toBe(0);
    expect(await exists(lockPath(out))).toBe(false);
  });

  it.skipIf(process.platform === 'win32')('stops at once when the disk fills up mid-run, abandoning requests in flight, and the rerun finishes without resending what was journaled', async () => {
    // q3 takes a minute to answer: the run must abandon it when the disk is full, not wait for it.
    const env = await offline.serve({ recordRequests: true, faults: [{ status: 500, delayMs: 60_000, match: { promptIncludes: 'number 3' } }] });
    const server = offline.server;
    const dir = await tempDir();
    const jobs = chatJobs(40);
    const file = await writeJobs(dir, jobs);
    const out = join(dir, 'out');
    const args = ['run', file, '--out', out, '--concurrency', '4'];
    // 8 KB a file: the journal fills up after a dozen records, in the middle of a write.
    const full = spawnCli(args, { cwd: dir, env, maxFileBlocks: 16 });
    const { code } = await full.exited;
    const { stderr } = full.output();
    expect(code).toBe(4);
    expect(stderr).toContain('Cannot write the journal');
    expect(stderr).not.toMatch(noStack);
    const journaled = await succeededIds(out);
    expect(journaled.size).toBeGreaterThan(0);
    expect(journaled.size).toBeLessThan(jobs.length);
    // Lost to the full disk: the requests in flight and at most one answer per worker on its way to the journal.
    const sent = server.stats.requests;
    expect(sent - journaled.size).toBeLessThanOrEqual(2 * 4);
    expect(await exists(lockPath(out))).toBe(false);
    const sentBefore = new Map(jobs.map((job) => [String(job.id), offline.server.countByKey(String(job.prompt))]));

    expect(journaled.has('q3')).toBe(false);
    server.setFaults([]);

    const rerun = spawnCli(args, { cwd: dir, env });
    expect((await rerun.exited).code, rerun.output().stderr).toBe(0);
    const rows = await readCsv(join(out, 'results.csv'));
    expect(rows.map((row) => row.id)).toEqual(jobs.map((job) => job.id));
    expect(rows.every((row) => row.status === 'ok')).toBe(true);
    for (const id of journaled) expect(server.countByKey(String(jobs.find((job) => job.id === id)!.prompt)), id).toBe(sentBefore.get(id));
    expect(server.stats.requests - sent).toBe(jobs.length - journaled.size);
  });

  it('exits 4 without a stack trace when results.csv cannot be replaced, before sending anything', async () => {
    const { env } = await serve();
    const dir = await tempDir();
    const file = await writeJobs(dir, chatJobs(2));
    const out = join(dir, 'out');
    await mkdir(join(out, 'results.csv', 'in-the-way'), { recursive: true });
    const { code, stderr } = await cli(['run', file, '--out', out], { env });
    expect(code).toBe(4);
    expect(stderr).toContain('results.csv');
    expect(stderr).not.toMatch(noStack);
    expect(offline.server.stats.requests).toBe(0);
  });
});
