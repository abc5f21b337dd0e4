import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'csv-parse/sync';
import { afterEach } from 'vitest';
import { runMain, type CliIO } from '../src/cli/main.js';
import type { Clock } from '../src/common/clock.js';
import { startOfflineServer, type OfflineServer, type OfflineServerOptions } from '../src/server/server.js';

/** A fresh temporary folder. */
export const tempDir = (prefix = 'nightshift-test-'): Promise<string> => mkdtemp(join(tmpdir(), prefix));

/** Writes a JSONL job file from objects and returns its path. */
export async function writeJobs(dir: string, jobs: object[], name = 'jobs.jsonl'): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, jobs.map((job) => JSON.stringify(job)).join('\n') + '\n');
  return path;
}

/** Runs the CLI in-process and captures its output. */
export async function cli(args: string[], io: Partial<CliIO> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runMain(args, {
    env: {},
    isTTY: false,
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
    ...io,
  });
  return { code, stdout, stderr };
}

/** Reads a CSV with a header row into objects. */
export async function readCsv(path: string): Promise<Record<string, string>[]> {
  return parse(await readFile(path, 'utf8'), { columns: true }) as Record<string, string>[];
}

/** The built CLI; `test/global-setup.ts` builds it before the tests run. */
export const CLI_PATH = fileURLToPath(new URL('../dist/cli/index.js', import.meta.url));

/** A CLI running in a child process, for what needs a real process: signals, SIGKILL, a second process. */
export interface SpawnedCli {
  child: ChildProcess;
  /** Everything written to stdout and stderr so far. */
  output(): { stdout: string; stderr: string };
  /** Resolves when the process has exited: its exit code, or the signal that killed it. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Runs `node dist/cli/index.js ...args` in `cwd` (a temp folder, so no stray `.env` is read) with only the
 * given variables and PATH in its environment. `maxFileBlocks` caps the size of any file it writes (`ulimit -f`,
 * 512-byte blocks): a write beyond it fails with EFBIG, as on a full disk.
 */
export function spawnCli(args: string[], options: { cwd: string; env: Record<string, string>; maxFileBlocks?: number }): SpawnedCli {
  const [command, argv] =
    options.maxFileBlocks === undefined
      ? [process.execPath, [CLI_PATH, ...args]]
      : ['sh', ['-c', `ulimit -f ${options.maxFileBlocks} && exec "$0" "$@"`, process.execPath, CLI_PATH, ...args]];
  const child = spawn(command, argv, {
    cwd: options.cwd,
    env: { PATH: process.env.PATH ?? '', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  return { child, output: () => ({ stdout, stderr }), exited };
}

/** Polls `condition` every few milliseconds until it holds; fails after `timeoutMs`. */
export async function waitFor(condition: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** Every line of a journal that parses, in order; a torn line (from a killed process) is left out. */
export async function journalLines(outDir: string): Promise<Record<string, unknown>[]> {
  let text: string;
  try {
    text = await readFile(join(outDir, 'journal.jsonl'), 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').flatMap((line) => {
    try {
      return [JSON.parse(line) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}

/** The ids of the jobs the journal records as succeeded. */
export async function succeededIds(outDir: string): Promise<Set<string>> {
  const lines = await journalLines(outDir);
  return new Set(lines.filter((line) => line.type === 'job' && line.state === 'done').map((line) => String(line.id)));
}

/**
 * An offline server for each test, closed after it. `serve` starts it and returns the environment the CLI needs to
 * reach it over HTTP, as it would the real API (with `apiKey`, or `key`: a test can look for it in what the CLI writes);
 * `server` is the one the current test started.
 */
export function offlineServerPerTest(apiKey: string): {
  serve: (options?: OfflineServerOptions, key?: string) => Promise<Record<string, string>>;
  readonly server: OfflineServer;
} {
  let current: OfflineServer | undefined;
  afterEach(async () => {
    await current?.close();
    current = undefined;
  });
  return {
    // A served instance stands for the real API: its answers are not marked as the offline server's.
    serve: async (options = {}, key = apiKey) => {
      current = await startOfflineServer({ markAnswers: false, ...options });
      return { OPENAI_API_KEY: key, OPENAI_BASE_URL: current.url };
    },
    get server(): OfflineServer {
      if (!current) throw new Error('no offline server started in this test');
      return current;
    },
  };
}


/** A clock whose sleeps return at once and are remembered, so waits are asserted without waiting. */
export function fakeClock(): Clock & { sleeps: number[] } {
  let now = Date.parse('2026-12-01T00:00:00Z');
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => now,
    sleep: async (ms) => {
      sleeps.push(ms);
      now += ms;
    },
  };
}

/** A small seeded generator (mulberry32), so a failing schedule of kills can be replayed from its seed. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
