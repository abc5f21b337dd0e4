import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { link, lstat, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { messageOf, NightshiftError } from '../common/errors.js';
import { isFileSystemError } from '../common/fs-errors.js';

export const LOCK_FILE = 'nightshift.lock';

/**
 * Who holds a lock. Release 0.1.0 wrote `pid`, `host` and `startedAt` only; the rest tells a live holder from a
 * process that died and whose PID another process (or this one: PID 1 in a container) now has.
 */
interface LockInfo {
  pid: number;
  host: string;
  startedAt: string;
  /** The kernel's boot id (Linux): a lock from an earlier boot has no live holder. */
  bootId?: string;
  /** The holder's start time in clock ticks since boot (Linux, field 22 of `/proc/<pid>/stat`). */
  processStart?: string;
  /** Random, one per process: a lock naming this process's PID but another token was left by a dead process. */
  token?: string;
}

/** How a lock tells whether its holder still runs; injectable for tests. */
export interface ProcessProbe {
  /** True when a process with this PID exists. */
  isAlive(pid: number): boolean;
  /** The process's start time (see {@link LockInfo.processStart}), or undefined where it cannot be known. */
  startOf(pid: number): Promise<string | undefined>;
  /** The current boot's id, or undefined where it cannot be known. */
  bootId(): Promise<string | undefined>;
}

/** Where `/proc` is missing (macOS, Windows), start time and boot id are unknown and only the PID is compared. */
export const systemProbe: ProcessProbe = { isAlive: processExists, startOf: processStart, bootId };

const TOKEN = randomBytes(8).toString('hex');

/**
 * Takes the output folder for this process. A second nightshift on the same folder is refused at once; a lock left
 * by a process that no longer exists (killed, machine rebooted, its PID now another process's) is taken over, so it
 * never stays stuck. A lock file that cannot be written (disk full, read-only folder) is `E_OUTPUT`. Returns the
 * function that releases it.
 */
export async function acquireLock(outDir: string, probe: ProcessProbe = systemProbe): Promise<() => Promise<void>> {
  const path = join(outDir, LOCK_FILE);
  const [bootId, processStart] = await Promise.all([probe.bootId(), probe.startOf(process.pid)]);
  const mine: LockInfo = {
    pid: process.pid,
    host: hostname(),
    startedAt: new Date().toISOString(),
    ...(bootId ? { bootId } : {}),
    ...(processStart ? { processStart } : {}),
    token: TOKEN,
  };
  for (let tries = 0; tries < 3; tries++) {
    // Written whole under a private name, then linked into place: the lock appears complete or not at all,
    // so no other process can read it half-written and take it for a torn lock.
    const temp = `${path}.${process.pid}.new`;
    try {
      // Left by a killed process with this PID, maybe; `wx` never writes through a link put in its place.
      await rm(temp, { force: true });
      await writeFile(temp, JSON.stringify(mine), { flag: 'wx' });
      await link(temp, path);
      return () => remove(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw cannotWrite(path, error);
    } finally {
      await remove(temp);
    }
    const holder = await readLock(path);
    if (holder && holder.host === mine.host && (await holderRuns(holder, mine, probe))) {
      throw new NightshiftError(
        'E_LOCKED',
        `${outDir} is in use by another nightshift process (pid ${holder.pid}, started ${holder.startedAt}). ` +
          'Wait for it to finish, stop it, or choose another --out.' +
          // Without a start time (a lock of nightshift 0.1.0, or no /proc), a live process may only have taken its PID.
          (holder.processStart === undefined ? ` If no nightshift is running there, delete ${path}.` : ''),
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
    await remove(path);
  }
  throw new NightshiftError('E_LOCKED', `Could not lock ${outDir}: another process keeps taking it.`);
}

/** Whether the holder of a lock on this machine still runs; when in doubt it does, and the folder stays locked. */
async function holderRuns(holder: LockInfo, mine: LockInfo, probe: ProcessProbe): Promise<boolean> {
  if (holder.bootId && mine.bootId && holder.bootId !== mine.bootId) return false;
  // Two live processes never share a PID: a lock naming this one is this process's own, or a dead process's.
  if (holder.pid === mine.pid) return holder.token === mine.token;
  if (!probe.isAlive(holder.pid)) return false;
  // The PID is taken, but maybe by another process since the holder died.
  if (holder.processStart && holder.bootId === mine.bootId) {
    const start = await probe.startOf(holder.pid);
    if (start !== undefined && start !== holder.processStart) return false;
  }
  return true;
}

async function readLock(path: string): Promise<LockInfo | undefined> {
  try {
    // Never read through a link: a lock is a file nightshift made.
    const stats = await lstat(path);
    if (!stats.isFile()) {
      // A link, a pipe (which would wait for a writer forever), a folder: not a lock nightshift made.
      throw new NightshiftError('E_OUTPUT', `${path} is ${stats.isSymbolicLink() ? 'a link' : 'not a file'}, not a lock nightshift made; remove it to continue.`, { path });
    }
    const info = JSON.parse(await readFile(path, 'utf8')) as Partial<LockInfo> | null;
    if (typeof info?.pid === 'number' && typeof info.host === 'string') {
      const text = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
      const [bootId, processStart, token] = [text(info.bootId), text(info.processStart), text(info.token)];
      return {
        pid: info.pid,
        host: info.host,
        startedAt: String(info.startedAt),
        ...(bootId ? { bootId } : {}),
        ...(processStart ? { processStart } : {}),
        ...(token ? { token } : {}),
      };
    }
  } catch (error) {
    if (error instanceof NightshiftError) throw error;
    // Missing (released meanwhile) or torn lock file: treated as no holder. A lock that cannot be read is no one's to take.
    if (!(error instanceof SyntaxError || (error as NodeJS.ErrnoException).code === 'ENOENT')) {
      throw new NightshiftError('E_OUTPUT', `Cannot read the lock ${path}: ${messageOf(error)}`, { path }, { cause: error });
    }
  }
  return undefined;
}

async function remove(path: string): Promise<void> {
  await rm(path, { force: true }).catch((error: unknown) => {
    throw cannotWrite(path, error);
  });
}

/** A lock that cannot be written (disk full, read-only folder, no permission) makes the folder unusable, not a bug. */
function cannotWrite(path: string, error: unknown): unknown {
  if (!isFileSystemError(error)) return error;
  return new NightshiftError('E_OUTPUT', `Cannot write the lock ${path}: ${messageOf(error)}`, { path }, { cause: error });
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Field 22 of `/proc/<pid>/stat`; the fields are counted after the command name, which may hold spaces and parentheses. */
async function processStart(pid: number): Promise<string | undefined> {
  const stat = await readProc(`/proc/${pid}/stat`);
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

async function bootId(): Promise<string | undefined> {
  return (await readProc('/proc/sys/kernel/random/boot_id'))?.trim() || undefined;
}

async function readProc(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    // No /proc (macOS, Windows), or the process is gone: unknown, and the caller falls back to the PID alone.
    if (isFileSystemError(error)) return undefined;
    throw error;
  }
}
