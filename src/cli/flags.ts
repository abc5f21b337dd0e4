import { basename, extname, join } from 'node:path';
import { OUTPUT_DEFAULTS } from '../cost/estimate.js';
import { REPORT_KEYS } from '../cost/report.js';
import { SERVICE_TIERS } from '../jobs/job-fields.js';
import { JOB_FORMATS, STDIN_ARG } from './stdin.js';

/** Seconds `--timeout` waits for one request when not given. */
export const DEFAULT_TIMEOUT_SECONDS = 600;
/** Seconds a flex request waits when `--timeout` is not given: flex answers queue, and OpenAI advises 15 minutes. */
export const FLEX_TIMEOUT_SECONDS = 900;

/** What every flag may have: the one-letter name of a common flag (`-c` for `--concurrency`). */
interface FlagBase {
  short?: string;
}

/** A flag that takes no value: given means on. */
export interface BooleanFlag {
  type: 'boolean';
  /** `true` for a flag that is on unless turned off with `--no-<name>`. @default false */
  default: boolean;
  description: string;
}

/** A flag that takes text, optionally one of a fixed list. */
export interface StringFlag {
  type: 'string';
  default?: string;
  /** The only values allowed; yargs lists them in `--help`. */
  choices?: readonly string[];
  description: string;
}

/** The numbers a number flag accepts, as the refusal states them: ``a whole number from 1 to 100``, ``a number >= 0``. */
export interface NumberRange {
  whole: boolean;
  min: number;
  max?: number;
}

/** A flag that takes a number. */
export interface NumberFlag {
  type: 'number';
  default?: number;
  /**
   * What the CLI accepts; `'server'` when the value goes to `startOfflineServer` as given, which checks it and names it
   * as its own option (`port`, `rateLimit.rpm`): `serve`'s refusals have always read that way.
   */
  range: NumberRange | 'server';
  description: string;
}

/** One flag: its type, default and `--help` text. `name` is how it is spelled when it differs from its key. */
export type FlagSpec = (BooleanFlag | StringFlag | NumberFlag) & FlagBase & { name?: string };

/**
 * Every flag of every command, described once: yargs reads these for parsing and `--help`, `resolveFlags` checks
 * values against them, and the README documents the same list. Commands pick flags by key. Two flags may share a
 * spelling when they mean different things in different commands (`run --rpm` obeys a limit, `serve --rpm` enforces
 * one): they get their own key and a `name`.
 */
export const FLAGS = {
  out: {
    type: 'string',
    short: 'o',
    description: 'Output folder (journal, results.csv, results.jsonl, usage.csv, images/). Default: out/<first job file name>, with -offline appended for --offline',
  },
  'estimate-out': {
    name: 'out',
    type: 'string',
    short: 'o',
    description: "A run's output folder: jobs already done there are left out. Default: run's, out/<first job file name>",
  },
  concurrency: { type: 'number', short: 'c', default: 8, range: { whole: true, min: 1, max: 10_000 }, description: 'Requests in flight at most' },
  'max-attempts': { type: 'number', default: 5, range: { whole: true, min: 1, max: 100 }, description: 'Attempts per job, the first included' },
  // No default in the table: left out, flex requests wait longer than the others.
  timeout: {
    type: 'number',
    range: { whole: false, min: 0.001 },
    description: `Seconds to wait for one request (default ${DEFAULT_TIMEOUT_SECONDS}; ${FLEX_TIMEOUT_SECONDS} for flex requests)`,
  },
  format: { type: 'string', choices: JOB_FORMATS, description: 'Format of the job file read from standard input (-): json, jsonl or csv (default: told by its first bytes)' },
  model: { type: 'string', short: 'm', description: 'Model for jobs that name none (job field > file defaults > this flag)' },
  system: { type: 'string', description: 'System prompt for chat and vision jobs that have none' },
  temperature: {
    type: 'number',
    range: { whole: false, min: 0, max: 2 },
    description: 'temperature of chat and vision jobs that set none (job field > file defaults > this flag)',
  },
  'max-completion-tokens': {
    type: 'number',
    range: { whole: true, min: 1 },
    description: 'max_completion_tokens of chat and vision jobs that set neither it nor max_tokens',
  },
  'service-tier': {
    type: 'string',
    choices: SERVICE_TIERS,
    description: 'service_tier of chat and vision jobs that set none: auto, default, flex (Batch prices, slower) or priority',
  },
  offline: { type: 'boolean', default: false, description: 'Run against the built-in offline server (no key, no cost)' },
  prices: { type: 'string', description: 'JSON file of prices that override or add to the built-in table' },
  budget: {
    type: 'number',
    range: { whole: false, min: 0 },
    description: 'Spending cap in USD for the output folder, earlier runs included; stops before a job that might pass it',
  },
  fresh: { type: 'boolean', default: false, description: 'Start over in the output folder (needs --force if it holds results)' },
  force: {
    type: 'boolean',
    default: false,
    description: 'Send every job again, even those already done; with --fresh, start over even if the folder holds results',
  },
  'only-failed': { type: 'boolean', default: false, description: 'Rerun only the jobs that failed or were cut off (incomplete) last time' },
  'dry-run': { type: 'boolean', default: false, description: 'List the jobs the run would send and why, and stop: sends nothing, needs no key' },
  quiet: { type: 'boolean', short: 'q', default: false, description: 'Print nothing but problems, warnings and errors (run: no progress, no summary)' },
  json: { type: 'boolean', default: false, description: 'Print one JSON object on stdout instead of text' },
  'progress-interval': {
    type: 'number',
    default: 30,
    range: { whole: false, min: 1 },
    description: 'Seconds between status lines when output is not a terminal',
  },
  grace: { type: 'number', default: 30, range: { whole: false, min: 0 }, description: 'Seconds in-flight requests get to finish after Ctrl-C' },
  rpm: {
    type: 'number',
    range: { whole: true, min: 1, max: 100_000_000 },
    description: 'Requests per minute to stay under (default: learned for each model from x-ratelimit headers)',
  },
  tpm: {
    type: 'number',
    range: { whole: true, min: 1, max: 100_000_000_000 },
    description: 'Tokens per minute to stay under, counting prompt + max output (default: learned like --rpm)',
  },
  batch: {
    type: 'boolean',
    default: false,
    description: 'Send the jobs through the Batch API (half price, results within 24 h); run the same command again to collect',
  },
  wait: { type: 'boolean', default: false, description: 'With --batch: poll until every batch has ended, collect, and send again what needs it' },
  'poll-interval': {
    type: 'number',
    default: 60,
    range: { whole: false, min: 0.01 },
    description: 'With --batch --wait: seconds between two polls of the batches',
  },
  'keep-files': { type: 'boolean', default: false, description: 'With --batch: keep the input, output and error files on the account after collecting' },
  'batch-max-requests': {
    type: 'number',
    range: { whole: true, min: 1, max: 50_000 },
    description: 'With --batch: requests per batch at most (default and API limit 50,000)',
  },
  'batch-max-bytes': {
    type: 'number',
    range: { whole: true, min: 1, max: 200_000_000 },
    description: 'With --batch: bytes per batch input file at most (default 200,000,000, the API limit)',
  },
  csv: { type: 'string', description: 'Also write the table to this CSV file' },
  html: { type: 'string', description: 'Also write an HTML page of the folders: images, jobs, cost and charts' },
  'run-html': { name: 'html', type: 'boolean', default: true, description: 'Write report.html in the output folder (--no-html: do not)' },
  'expected-output': {
    type: 'number',
    range: { whole: true, min: 0 },
    description: `Expected output tokens per chat or vision job, capped by its max_completion_tokens (default ${OUTPUT_DEFAULTS.expected}; ${OUTPUT_DEFAULTS.expectedReasoning} for reasoning models)`,
  },
  by: { type: 'string', choices: REPORT_KEYS, default: 'model', description: 'Group rows by model, kind, tag, day (UTC, of finishing) or job file' },
  port: { type: 'number', default: 0, range: 'server', description: 'Port on 127.0.0.1 (0 picks a free one)' },
  latency: { type: 'number', default: 0, range: 'server', description: 'Milliseconds added to every response' },
  'quota-after': { type: 'number', range: 'server', description: 'Answer insufficient_quota after this many requests' },
  'serve-rpm': { name: 'rpm', type: 'number', range: 'server', description: 'Requests per minute to enforce, with x-ratelimit headers' },
  'serve-tpm': { name: 'tpm', type: 'number', range: 'server', description: 'Tokens per minute to enforce, with x-ratelimit headers' },
} as const satisfies Record<string, FlagSpec>;

/** The key of a flag in {@link FLAGS}. */
export type FlagKey = keyof typeof FLAGS;

/** How a flag is spelled on the command line (without `--`). */
export type FlagName<K extends FlagKey> = (typeof FLAGS)[K] extends { name: infer N extends string } ? N : K;

/**
 * The default of `--out` for `files`: `out/<first file name without extension>` (`out/stdin` for standard input);
 * `run --offline` appends `-offline`.
 */
export function defaultOutDir(files: readonly string[]): string {
  const first = files[0] ?? '';
  return join('out', first === STDIN_ARG ? 'stdin' : basename(first, extname(first)));
}
