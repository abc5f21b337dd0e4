import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir, hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { acquireLock, LOCK_FILE } from '../src/output/lock.js';

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
    const release = await acquireLock(dir, () => false);
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
});
