import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { access, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir, hostname } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { acquireLock, LOCK_FILE, systemProbe } from '../src/output/lock.js';
import { cli, offlineServerPerTest, spawnCli, tempDir, writeJobs } from './helpers.js';

const noStack = /\n\s+at /;
const hasProc = await access('/proc/self/stat').then(
  () => true,
  () => false,
);
/** A process's start time, field 22 of /proc/<pid>/stat (counted after the command name). */
const startOf = async (pid: number): Promise<string | undefined> =>
  hasProc ? (await readFile(`/proc/${pid}/stat`, 'utf8')).replace(/^.*\) /s, '').split(' ')[19] : undefined;
const bootId = async (): Promise<string | undefined> => (hasProc ? (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim() : undefined);

let sleeper: ChildProcess | undefined;
afterEach(() => {
  sleeper?.kill('SIGKILL');
  sleeper = undefined;
});

/** Another live process, with its PID and start time. */
async function otherProcess(): Promise<{ pid: number; processStart: string | undefined }> {
  sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
  await once(sleeper, 'spawn');
  return { pid: sleeper.pid!, processStart: await startOf(sleeper.pid!) };
}

const lockOf = async (dir: string): Promise<Record<string, unknown>> => JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')) as Record<string, unknown>;

describe('output folder lock', () => {
  it('refuses a second holder while the first is alive, and frees the folder on release', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nightshift-lock-'));
    const release = await acquireLock(dir);
    await expect(acquireLock(dir)).rejects.toMatchObject({ code: 'E_LOCKED' });
    await release();
    const again = await acquireLock(dir);
    await again();
  });

  it('takes over a lock left by a process that no longer exists', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nightshift-lock-'));
    await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid: 999_999_99, host: hostname(), startedAt: 'then' }));
    const release = await acquireLock(dir, { ...systemProbe, isAlive: () => false });
    expect(JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')).pid).toBe(process.pid);
    await release();
  });

  it('takes over a torn lock file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nightshift-lock-'));
    await writeFile(join(dir, LOCK_FILE), '{"pid": 12');
    const release = await acquireLock(dir);
    expect(JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')).pid).toBe(process.pid);
    await release();
  });

  it('takes over a lock file that holds JSON but no lock (null, a number)', async () => {
    for (const text of ['null', '42']) {
      const dir = await mkdtemp(join(tmpdir(), 'nightshift-lock-'));
      await writeFile(join(dir, LOCK_FILE), text);
      const release = await acquireLock(dir);
      expect(JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')).pid).toBe(process.pid);
      await release();
    }
  });

  it('refuses, with E_OUTPUT, a lock it cannot read, rather than take it over', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nightshift-lock-'));
    await mkdir(join(dir, LOCK_FILE));
    await expect(acquireLock(dir)).rejects.toMatchObject({ code: 'E_OUTPUT' });
  });

  it('takes over a lock naming this process\'s own PID that a dead process left (PID 1 in a container)', async () => {
    const boot = await bootId();
    const left = [
      { pid: process.pid, host: hostname(), startedAt: 'then', ...(boot ? { bootId: boot } : {}), processStart: '1', token: 'another-process' },
      // Release 0.1.0's format: no start time, no token.
      { pid: process.pid, host: hostname(), startedAt: 'then' },
    ];
    for (const lock of left) {
      const dir = await mkdtemp(join(tmpdir(), 'nightshift-lock-'));
      await writeFile(join(dir, LOCK_FILE), JSON.stringify(lock));
      const release = await acquireLock(dir);
      expect(await lockOf(dir)).not.toEqual(lock);
      await release();
    }
  });

  it.skipIf(!hasProc)('takes over a lock whose PID another process has taken since (other start time, earlier boot)', async () => {
    const other = await otherProcess();
    const boot = await bootId();
    for (const lock of [
      { pid: other.pid, host: hostname(), startedAt: 'then', bootId: boot, processStart: `${Number(other.processStart) - 1}` },
      { pid: other.pid, host: hostname(), startedAt: 'then', bootId: 'an-earlier-boot', processStart: other.processStart },
    ]) {
      const dir = await mkdtemp(join(tmpdir(), 'nightshift-lock-'));
      await writeFile(join(dir, LOCK_FILE), JSON.stringify(lock));
      const release = await acquireLock(dir);
      expect((await lockOf(dir)).pid).toBe(process.pid);
      await release();
    }
  });

  it('refuses, exit 4, a folder locked by another live process, in this format and in 0.1.0\'s', async () => {
    const other = await otherProcess();
    const boot = await bootId();
    const locks = [
      { pid: other.pid, host: hostname(), startedAt: 'then', ...(boot ? { bootId: boot } : {}), ...(other.processStart ? { processStart: other.processStart } : {}), token: 'x' },
      { pid: other.pid, host: hostname(), startedAt: 'then' },
    ];
    for (const lock of locks) {
      const dir = await tempDir();
      const out = join(dir, 'out');
      await mkdir(out);
      await writeFile(join(out, LOCK_FILE), JSON.stringify(lock));
      const file = await writeJobs(dir, [{ id: 'a', prompt: 'Hello' }]);
      const { code, stderr } = await cli(['run', file, '--out', out, '--offline', '--model', 'gpt-4o-mini']);
      expect(code).toBe(4);
      expect(stderr).not.toMatch(noStack);
      expect(await lockOf(out)).toEqual(lock);
    }
  });
});

describe('a lock that cannot be written', () => {
  const offline = offlineServerPerTest('sk-test-lock-key-1234567890');

  it.skipIf(process.platform === 'win32')('exits 4 without a stack trace, sending nothing, when the disk is full as the lock is taken', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    // Long tags (not sent) make the file too large to keep: its validation is saved in the folder first, and fails too.
    const file = await writeJobs(dir, Array.from({ length: 30 }, (_, i) => ({ id: `j${i}`, model: 'gpt-4o-mini', prompt: 'Hello', tags: 'x'.repeat(300_000) })));
    const out = join(dir, 'out');
    await mkdir(out);
    await writeFile(join(out, 'journal.jsonl'), '');
    // No file may grow beyond 0 bytes: the first write, the lock's, fails (EFBIG) as it would on a full disk.
    for (const extra of [[], ['--fresh', '--force']]) {
      const run = spawnCli(['run', file, '--out', out, ...extra], { cwd: dir, env, maxFileBlocks: 0 });
      const { code } = await run.exited;
      expect(code, run.output().stderr).toBe(4);
      expect(run.output().stderr).not.toMatch(noStack);
      expect(offline.server.stats.requests).toBe(0);
      await expect(access(join(out, LOCK_FILE))).rejects.toThrow();
    }
  });
});

describe('a lock that is not a file', () => {
  const offline = offlineServerPerTest('sk-test-lock-key-1234567890');
  it.skipIf(process.platform === 'win32')('is refused (exit 4) at once when it is a named pipe, which would wait for a writer forever', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    await mkdir(out);
    execFileSync('mkfifo', [join(out, LOCK_FILE)]);
    const file = await writeJobs(dir, [{ id: 'a', model: 'gpt-4o-mini', prompt: 'Hello' }]);
    const { code, stderr } = await cli(['run', file, '--out', out], { env });
    expect(code).toBe(4);
    expect(stderr).toContain(LOCK_FILE);
    expect(offline.server.stats.requests).toBe(0);
  });
});

describe('a --prices file that is not a regular file', () => {
  it.skipIf(process.platform === 'win32')('is refused (exit 2) without being read: a pipe, a device', async () => {
    const dir = await tempDir();
    const file = await writeJobs(dir, [{ id: 'a', model: 'gpt-4o-mini', prompt: 'Hello' }]);
    const pipe = join(dir, 'prices.json');
    execFileSync('mkfifo', [pipe]);
    for (const prices of [pipe, '/dev/zero']) {
      const { code, stderr } = await cli(['estimate', file, '--prices', prices]);
      expect(code, stderr).toBe(2);
      expect(stderr).toContain('not a regular file');
    }
  });
});
