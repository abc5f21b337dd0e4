import { basename, extname, join } from 'node:path';
import { NightshiftError } from '../common/errors.js';

/**
 * The flags of `nightshift run`, declared once: yargs reads this for parsing and `--help`,
 * `resolveRunFlags` checks the values, and the README documents the same list.
 */
export const RUN_FLAGS = {
  out: { type: 'string', description: 'Output folder (journal, results.csv, usage.csv, images/). Default: out/<first job file name>, with -offline appended for --offline' },
  concurrency: { type: 'number', default: 8, description: 'Requests in flight at most' },
  'max-attempts': { type: 'number', default: 5, description: 'Attempts per job, the first included' },
  timeout: { type: 'number', default: 600, description: 'Seconds to wait for one request' },
  model: { type: 'string', description: 'Model for jobs that name none (job field > file defaults > this flag)' },
  system: { type: 'string', description: 'System prompt for chat and vision jobs that have none' },
  offline: { type: 'boolean', default: false, description: 'Run against the built-in offline server (no key, no cost)' },
  prices: { type: 'string', description: 'JSON file of prices that override or add to the built-in table' },
  budget: { type: 'number', description: 'Spending cap in USD for the output folder, earlier runs included; stops before a job that might pass it' },
  fresh: { type: 'boolean', default: false, description: 'Start over in the output folder (needs --force if it holds results)' },
  force: { type: 'boolean', default: false, description: 'Send every job again, even those already done; with --fresh, start over even if the folder holds results' },
  'only-failed': { type: 'boolean', default: false, description: 'Rerun only the jobs that failed last time' },
  quiet: { type: 'boolean', default: false, description: 'No progress and no summary' },
  'progress-interval': { type: 'number', default: 30, description: 'Seconds between status lines when output is not a terminal' },
  grace: { type: 'number', default: 30, description: 'Seconds in-flight requests get to finish after Ctrl-C' },
  rpm: { type: 'number', description: 'Requests per minute to stay under (default: learned for each model from x-ratelimit headers)' },
  tpm: { type: 'number', description: 'Tokens per minute to stay under, counting prompt + max output (default: learned like --rpm)' },
} as const;

/** `nightshift run` flags after checking. */
export interface RunFlags {
  files: string[];
  outDir: string;
  concurrency: number;
  maxAttempts: number;
  timeoutMs: number;
  model?: string;
  system?: string;
  offline: boolean;
  prices?: string;
  budgetUsd?: number;
  fresh: boolean;
  force: boolean;
  onlyFailed: boolean;
  quiet: boolean;
  progressIntervalSeconds: number;
  graceMs: number;
  /** Fixed requests-per-minute limit; unset: learned from headers. */
  rpm?: number;
  /** Fixed tokens-per-minute limit; unset: learned from headers. */
  tpm?: number;
}

/** Checks `run`'s flags eagerly, naming the bad value, before any file is read. */
export function resolveRunFlags(argv: Record<string, unknown>): RunFlags {
  const files = (argv.files as unknown[] | undefined)?.map(String) ?? [];
  if (files.length === 0) throw usage('Expected at least one job file');
  const flags: RunFlags = {
    files,
    // Offline answers are not real ones: by default they never share a folder with a real run's results.
    outDir: typeof argv.out === 'string' && argv.out ? argv.out : `${defaultOutDir(files)}${argv.offline === true ? '-offline' : ''}`,
    concurrency: integer(argv, 'concurrency', 1, 10_000),
    maxAttempts: integer(argv, 'max-attempts', 1, 100),
    timeoutMs: Math.round(number(argv, 'timeout', 0.001) * 1000),
    offline: argv.offline === true,
    fresh: argv.fresh === true,
    force: argv.force === true,
    onlyFailed: argv['only-failed'] === true,
    quiet: argv.quiet === true,
    progressIntervalSeconds: number(argv, 'progress-interval', 1),
    graceMs: Math.round(number(argv, 'grace', 0) * 1000),
  };
  if (typeof argv.model === 'string') flags.model = argv.model;
  if (typeof argv.system === 'string') flags.system = argv.system;
  if (typeof argv.prices === 'string') flags.prices = argv.prices;
  if (argv.rpm !== undefined) flags.rpm = integer(argv, 'rpm', 1, 100_000_000);
  if (argv.tpm !== undefined) flags.tpm = integer(argv, 'tpm', 1, 100_000_000_000);
  if (argv.budget !== undefined) flags.budgetUsd = number(argv, 'budget', 0);
  if (flags.onlyFailed && flags.fresh) throw usage('--only-failed and --fresh contradict each other: a fresh run has no failures to rerun');
  return flags;
}

function number(argv: Record<string, unknown>, name: string, min: number): number {
  const value = argv[name];
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    throw usage(`Expected \`--${name}\` to be a number >= ${min}, got \`${String(value)}\``);
  }
  return value;
}

function integer(argv: Record<string, unknown>, name: string, min: number, max: number): number {
  const value = argv[name];
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw usage(`Expected \`--${name}\` to be a whole number from ${min} to ${max}, got \`${String(value)}\``);
  }
  return value;
}

export const usage = (message: string): NightshiftError => new NightshiftError('E_USAGE', message);

/** `run`'s default output folder for `files`: `out/<first file name without extension>`. */
export function defaultOutDir(files: readonly string[]): string {
  const first = files[0] ?? '';
  return join('out', basename(first, extname(first)));
}
