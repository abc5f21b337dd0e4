// Helpers for bench/run.js: child processes, timing, job files, tables.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { cp, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { createInterface } from 'node:readline';
import { fileURLToPath, URL } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * A private copy of `dist/`, so that a rebuild while a long benchmark runs cannot change the code under test
 * half-way. Returns the copy's `dist` folder; `node_modules` is linked, not copied.
 */
export async function snapshotDist(source = join(ROOT, 'dist')) {
  const dir = await mkdtemp(join(tmpdir(), 'nightshift-bench-dist-'));
  await cp(source, join(dir, 'dist'), { recursive: true });
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  // The real package.json: nightshift reads its version (the saved validation of large job files is keyed by it).
  await cp(join(ROOT, 'package.json'), join(dir, 'package.json'));
  return { dist: join(dir, 'dist'), cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A fresh scratch folder, removed by `cleanup`. */
export async function scratch() {
  const dir = await mkdtemp(join(tmpdir(), 'nightshift-bench-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Starts bench/server.js with `options` from the `dist` folder given; commands are answered one JSON line each. */
export async function startServer(options, dist = join(ROOT, 'dist')) {
  const child = spawn(process.execPath, [join(ROOT, 'bench/server.js'), JSON.stringify(options), dist], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => JSON.parse((await lines.next()).value);
  const { url } = await next();
  const ask = async (command) => {
    child.stdin.write(`${command}\n`);
    return next();
  };
  return {
    url,
    stats: () => ask('stats'),
    reset: () => ask('reset'),
    close: async () => {
      child.stdin.end();
      await once(child, 'exit');
    },
  };
}

/**
 * Runs a command to its end and measures its wall time from spawn to exit. With `measureRss`, runs it under
 * `/usr/bin/time -v` and reads the peak resident set size. `startedAt` is the spawn time (epoch milliseconds),
 * to compare with the server's timing marks.
 */
export async function timed(command, args, { env = {}, measureRss = false } = {}) {
  const [file, argv] = measureRss ? ['/usr/bin/time', ['-v', command, ...args]] : [command, args];
  const startedAt = Date.now();
  const started = performance.now();
  const child = spawn(file, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  // When each line of stderr came, in ms after the start: what the CLI says it is doing, and when.
  const stderrLines = [];
  let partial = '';
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
    const ms = performance.now() - started;
    const lines = (partial + chunk).split('\n');
    partial = lines.pop();
    for (const text of lines) stderrLines.push({ ms, text });
  });
  const [code] = await once(child, 'exit');
  const wallMs = performance.now() - started;
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
  return { code, wallMs, startedAt, stdout, stderr, stderrLines, ...(rss ? { maxRssMb: Number(rss[1]) / 1024 } : {}) };
}

/** Writes the lines `line(index)` for indexes 0 to `count - 1` (after `header`, if any) without holding them in memory. */
async function writeLines(path, count, line, header) {
  const out = createWriteStream(path);
  if (header !== undefined) out.write(header);
  for (let index = 0; index < count; index++) {
    if (!out.write(line(index))) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  return path;
}

/** Writes `count` JSONL jobs made by `make(index)` without holding them all in memory. */
export const writeJobFile = (path, count, make) => writeLines(path, count, (index) => `${JSON.stringify(make(index))}\n`);

/** Writes `count` jobs made by `make(index)` as CSV rows, columns named by the first job's fields. */
export function writeCsvJobFile(path, count, make) {
  const columns = Object.keys(make(0));
  const cell = (value) => (/[",\n\r]/.test(String(value)) ? `"${String(value).replaceAll('"', '""')}"` : String(value));
  const row = (index) => `${columns.map((column) => cell(make(index)[column])).join(',')}\n`;
  return writeLines(path, count, row, `${columns.join(',')}\n`);
}

export const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

/** Two-sided 95% critical values of Student's t, by degrees of freedom (1 to 30); 1.96 beyond. */
const T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131,
  2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042];

/** The mean of `values` and its 95% confidence interval (Student's t); needs at least two values. */
export function meanInterval(values) {
  const n = values.length;
  const mean = values.reduce((sum, value) => sum + value, 0) / n;
  const variance = values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / (n - 1);
  const half = (T95[n - 2] ?? 1.96) * Math.sqrt(variance / n);
  return { mean, low: mean - half, high: mean + half };
}

/** A Markdown table from a header row and rows of cells. */
export function table(header, rows) {
  const lines = [header, header.map(() => '---'), ...rows];
  return `${lines.map((cells) => `| ${cells.join(' | ')} |`).join('\n')}\n`;
}

export const say = (text) => process.stdout.write(`${text}\n`);
export const fixed = (value, digits = 2) => (value === undefined ? 'n/a' : value.toFixed(digits));
