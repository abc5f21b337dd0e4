import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { runMain, type CliIO } from '../src/cli/main.js';

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
