import { hostname } from 'node:os';
import { link, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NightshiftError } from '../common/errors.js';

export const LOCK_FILE = 'nightshift.lock';

interface LockInfo {
  pid: number;
  host: string;
  startedAt: string;
}

/**
 * Takes the output folder for this process. A second nightshift on the same folder is refused at once;
 * a lock left by a process that no longer exists (killed, machine rebooted) is taken over, so it never
 * stays stuck. Returns the function that releases it.
 */
export async function acquireLock(outDir: string, isAlive: (pid: number) => boolean = processExists): Promise<() => Promise<void>> {
  const path = join(outDir, LOCK_FILE);
  const mine: LockInfo = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString() };
  for (let tries = 0; tries < 3; tries++) {
    // Written whole under a private name, then linked into place: the lock appears complete or not at all,
    // so no other process can read it half-written and take it for a torn lock.
    const temp = `${path}.${process.pid}.new`;
    await writeFile(temp, JSON.stringify(mine));
    try {
      await link(temp, path);
      return async () => {
        await rm(path, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    } finally {
      await rm(temp, { force: true });
    }
    const holder = await readLock(path);
    if (holder && holder.host === mine.host && isAlive(holder.pid)) {
      throw new NightshiftError(
        'E_LOCKED',
        `${outDir} is in use by another nightshift process (pid ${holder.pid}, started ${holder.startedAt}). ` +
          'Wait for it to finish, stop it, or choose another --out.',
        { pid: holder.pid },
      );
    }
    if (holder && holder.host !== mine.host) {
      throw new NightshiftError(
        'E_LOCKED',
        `${outDir} is locked by a nightshift process on ${holder.host} (pid ${holder.pid}). ` +
          `If it is no longer running, delete ${path}.`,
        { pid: holder.pid, host: holder.host },
      );
    }
    // The holder is gone (or the lock file is unreadable garbage from a crash): take it over.
    await rm(path, { force: true });
  }
  throw new NightshiftError('E_LOCKED', `Could not lock ${outDir}: another process keeps taking it.`);
}

async function readLock(path: string): Promise<LockInfo | undefined> {
  try {
    const info = JSON.parse(await readFile(path, 'utf8')) as Partial<LockInfo> | null;
    if (typeof info?.pid === 'number' && typeof info.host === 'string') {
      return { pid: info.pid, host: info.host, startedAt: String(info.startedAt) };
    }
  } catch (error) {
    // Missing (released meanwhile) or torn lock file: treated as no holder. A lock that cannot be read is no one's to take.
    if (!(error instanceof SyntaxError || (error as NodeJS.ErrnoException).code === 'ENOENT')) {
      throw new NightshiftError('E_OUTPUT', `Cannot read the lock ${path}: ${(error as Error).message}`, { path }, { cause: error });
    }
  }
  return undefined;
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
