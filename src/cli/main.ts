import { readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import OpenAI from 'openai';
import yargs from 'yargs';
import { NightshiftError } from '../core/errors.js';
import { JOURNAL_FILE, readJournal } from '../core/journal.js';
import { acquireLock } from '../core/lock.js';
import { loadJobs } from '../core/jobs/load.js';
import { createPriceBook, parsePriceOverrides, type PriceBook } from '../core/prices.js';
import { createRedactor } from '../core/redact.js';
import { runJobs } from '../core/runner.js';
import type { Job, Problem } from '../core/types.js';
import { worstCaseCost } from '../core/estimate.js';
import { startOfflineServer } from '../server/server.js';
import { ESTIMATE_FLAGS, estimateCommand } from './estimate.js';
import { RUN_FLAGS, resolveRunFlags, usage, type RunFlags } from './options.js';
import { formatSummary, Progress } from './progress.js';
import { REPORT_FLAGS, reportCommand } from './report.js';

/** What the CLI may touch of the outside world; `index.ts` passes the real process's. */
export interface CliIO {
  env: Record<string, string | undefined>;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  isTTY: boolean;
  /** Aborted on the first Ctrl-C or SIGTERM: stop dispatching. */
  stopSignal?: AbortSignal;
  /** Aborted on the second Ctrl-C (or when the grace period ends): abandon requests in flight. */
  abortSignal?: AbortSignal;
  /** Called once a run has started, with the grace period its flags ask for. */
  onRunStart?: (graceMs: number) => void;
}

/** Exit statuses, documented in the README. */
export const EXIT = {
  ok: 0,
  jobsFailed: 1,
  invalid: 2,
  stopped: 3,
  outputUnusable: 4,
  bug: 70,
  interrupted: 130,
} as const;

/**
 * Runs the CLI on `args` (without `node` and the script) and returns the exit status.
 * Expected failures are `NightshiftError`s, printed without a stack; anything else is a bug.
 */
export async function runMain(args: string[], io: CliIO): Promise<number> {
  let command: Promise<number> | undefined;
  const parser = yargs(args)
    .scriptName('nightshift')
    .usage('$0 <command> [options]')
    .command(
      'run <files..>',
      'Run job files against the OpenAI API (or --offline) and write results.csv, usage.csv and images/',
      (y) => y.positional('files', { type: 'string', array: true, description: 'Job files (.json, .jsonl, .csv)' }).options(RUN_FLAGS),
      (argv) => {
        command = runCommand(resolveRunFlags(argv as Record<string, unknown>), io);
      },
    )
    .command(
      'validate <files..>',
      'Check job files and report every problem; sends nothing',
      (y) =>
        y
          .positional('files', { type: 'string', array: true })
          .options({ model: RUN_FLAGS.model, system: RUN_FLAGS.system }),
      (argv) => {
        command = validateCommand(argv.files as string[], argv as Record<string, unknown>, io);
      },
    )
    .command(
      'estimate <files..>',
      'Estimate tokens and cost of job files, leaving out jobs already done in the output folder; sends nothing',
      (y) => y.positional('files', { type: 'string', array: true, description: 'Job files (.json, .jsonl, .csv)' }).options(ESTIMATE_FLAGS),
      (argv) => {
        command = estimateCommand(argv as Record<string, unknown>, io);
      },
    )
    .command(
      'report <folders..>',
      'Summarize usage and cost from the journals of output folders; sends nothing',
      (y) => y.positional('folders', { type: 'string', array: true, description: 'Output folders of runs' }).options(REPORT_FLAGS),
      (argv) => {
        command = reportCommand(argv as Record<string, unknown>, io);
      },
    )
    .command(
      'serve',
      'Start the offline OpenAI-compatible server and print its base URL',
      (y) =>
        y.options({
          port: { type: 'number', default: 0, description: 'Port on 127.0.0.1 (0 picks a free one)' },
          latency: { type: 'number', default: 0, description: 'Milliseconds added to every response' },
          'quota-after': { type: 'number', description: 'Answer insufficient_quota after this many requests' },
          rpm: { type: 'number', description: 'Requests per minute to enforce, with x-ratelimit headers' },
          tpm: { type: 'number', description: 'Tokens per minute to enforce, with x-ratelimit headers' },
        }),
      (argv) => {
        command = serveCommand(argv as Record<string, unknown>, io);
      },
    )
    .demandCommand(1, 'Name a command: run, validate, estimate, report or serve')
    .strict()
    .exitProcess(false)
    .help()
    .version()
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .fail((message, error) => {
      throw error ?? usage(message);
    });

  let helpShown = false;
  try {
    await parser.parseAsync(args, {}, (error, _argv, output) => {
      if (output && !error) {
        helpShown = true;
        io.stdout(`${output}\n`);
      }
    });
    if (!command) return helpShown ? EXIT.ok : EXIT.invalid;
    return await command;
  } catch (error) {
    return reportError(error, io);
  }
}

function reportError(error: unknown, io: CliIO): number {
  const redact = createRedactor([io.env.OPENAI_API_KEY]);
  if (error instanceof NightshiftError) {
    io.stderr(`nightshift: ${redact(error.message)}\n`);
    switch (error.code) {
      case 'E_VALIDATION':
      case 'E_USAGE':
      case 'E_CONFIG':
        if (error.code === 'E_USAGE') io.stderr('Run `nightshift --help` for usage.\n');
        return EXIT.invalid;
      case 'E_QUOTA':
      case 'E_BUDGET':
        return EXIT.stopped;
      case 'E_LOCKED':
      case 'E_OUTPUT':
        return EXIT.outputUnusable;
      case 'E_INTERRUPTED':
        return EXIT.interrupted;
    }
  }
  const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
  io.stderr(`nightshift: unexpected error; this is a bug, please report it with the text below.\n${redact(text)}\n`);
  return EXIT.bug;
}

/** Prints every problem as `file:line[:column]: field: message`, sorted by place. */
export function formatProblems(problems: readonly Problem[]): string {
  return problems
    .map((problem) => {
      const where = problem.line > 0 ? `${problem.file}:${problem.line}` : problem.file;
      const column = problem.column && problem.column !== problem.field ? ` (column ${problem.column})` : '';
      const field = problem.field ? `${problem.field}: ` : '';
      const job = problem.jobId ? ` (job ${problem.jobId})` : '';
      return `${where}${column}: ${field}${problem.message}${job}\n`;
    })
    .join('');
}

/** Loads and validates job files; on any problem prints them all and throws `E_VALIDATION` (exit 2). */
export async function loadOrExplain(files: string[], defaults: { model?: string; system?: string }, io: CliIO) {
  const { jobs, problems } = await loadJobs(files, { defaults });
  if (problems.length > 0) {
    io.stderr(formatProblems(problems));
    throw new NightshiftError(
      'E_VALIDATION',
      `${problems.length} problem${problems.length === 1 ? '' : 's'} in the job file${files.length === 1 ? '' : 's'}; nothing was sent.`,
      { problems: problems.length },
    );
  }
  return jobs;
}

async function validateCommand(files: string[], argv: Record<string, unknown>, io: CliIO): Promise<number> {
  const defaults = {
    ...(typeof argv.model === 'string' ? { model: argv.model } : {}),
    ...(typeof argv.system === 'string' ? { system: argv.system } : {}),
  };
  const jobs = await loadOrExplain(files, defaults, io);
  const byKind = new Map<string, number>();
  for (const job of jobs) byKind.set(job.kind, (byKind.get(job.kind) ?? 0) + 1);
  io.stdout(`${jobs.length} valid jobs (${[...byKind].map(([kind, n]) => `${n} ${kind}`).join(', ')})\n`);
  return EXIT.ok;
}

/** The price book, with the `--prices` file's overrides when one is given. */
export async function loadPrices(path: string | undefined): Promise<PriceBook> {
  if (!path) return createPriceBook();
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new NightshiftError('E_USAGE', `Cannot read the prices file ${path}: ${(error as Error).message}`);
  }
  const { overrides, problems } = parsePriceOverrides(json);
  if (problems.length > 0 || !overrides) {
    throw new NightshiftError('E_USAGE', `The prices file ${path} is invalid:\n  ${problems.join('\n  ')}`);
  }
  return createPriceBook({ overrides });
}

/** Builds the API client from the environment, following the SDK's variable names. */
function apiClient(env: CliIO['env'], flags: RunFlags, offlineUrl?: string): OpenAI {
  const common = { maxRetries: 0, timeout: flags.timeoutMs };
  if (offlineUrl) return new OpenAI({ ...common, apiKey: 'offline', baseURL: offlineUrl, organization: null, project: null });
  const apiKey = env.OPENAI_API_KEY;
  if (!apiKey) {
    throw new NightshiftError(
      'E_CONFIG',
      'OPENAI_API_KEY is not set. Put it in the environment or in a .env file (see .env.example), or use --offline to try nightshift without a key.',
    );
  }
  return new OpenAI({
    ...common,
    apiKey,
    // Passed explicitly so the SDK never falls back to variables the CLI was not given.
    baseURL: env.OPENAI_BASE_URL || 'https://api.openai.com/v1',
    organization: env.OPENAI_ORG_ID || null,
    project: env.OPENAI_PROJECT_ID || null,
  });
}

/**
 * A budget can only be kept for jobs whose worst case is known: refuse, before anything is sent, when a
 * model has no price.
 */
function budgetFor(jobs: readonly Job[], prices: PriceBook, limitUsd: number): { limitUsd: number; worstCaseUsd: (job: Job) => number } {
  const worst = new Map<Job, number>();
  const unpriced = new Set<string>();
  for (const job of jobs) {
    const usd = worstCaseCost(job, prices);
    if (usd === null) unpriced.add(job.model);
    else worst.set(job, usd);
  }
  if (unpriced.size > 0) {
    throw new NightshiftError(
      'E_USAGE',
      `--budget needs a price for every model, and there is none for ${[...unpriced].join(', ')}. Add them with --prices FILE.`,
    );
  }
  return { limitUsd, worstCaseUsd: (job) => worst.get(job)! };
}

/** How to continue after a stop: the same command, without the flags that would send finished jobs again. */
function resumeHint(flags: RunFlags): string {
  const drop = [...(flags.fresh ? ['--fresh'] : []), ...(flags.force ? ['--force'] : [])];
  const command = drop.length > 0 ? `the same command again without ${drop.join(' and ')}` : 'the same command again';
  return `Outputs are written. To continue, run ${command}: finished jobs are not sent twice.`;
}

/** Applies --fresh: the old journal is kept beside the new one (for audit) and the CSV views are rebuilt. */
async function startFresh(outDir: string, force: boolean): Promise<void> {
  const path = join(outDir, JOURNAL_FILE);
  const exists = await stat(path).then(
    () => true,
    () => false,
  );
  if (!exists) return;
  // Under the folder's lock: moving the journal of a run in progress would make it send everything again.
  const release = await acquireLock(outDir);
  try {
    const state = await readJournal(path);
    // Any success counts, including one a later edit superseded: a plain rerun could still reuse it.
    const finished = state.successes.size;
    if (finished > 0 && !force) {
      throw new NightshiftError(
        'E_USAGE',
        `${outDir} holds ${finished} finished job${finished === 1 ? '' : 's'}; --fresh would send them again. Add --force to do so, or choose another --out.`,
      );
    }
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    try {
      await rename(path, join(outDir, `journal-${stamp}.jsonl`));
      // The views of the old journal go too, so they are never taken for this run's results.
      await Promise.all(['results.csv', 'usage.csv'].map((name) => rm(join(outDir, name), { force: true })));
    } catch (error) {
      throw new NightshiftError('E_OUTPUT', `Cannot start afresh in ${outDir}: ${(error as Error).message}`, { outDir }, { cause: error });
    }
  } finally {
    await release();
  }
}

async function runCommand(flags: RunFlags, io: CliIO): Promise<number> {
  const defaults = { ...(flags.model ? { model: flags.model } : {}), ...(flags.system ? { system: flags.system } : {}) };
  const jobs = await loadOrExplain(flags.files, defaults, io);
  const prices = await loadPrices(flags.prices);
  const server = flags.offline ? await startOfflineServer() : undefined;
  try {
    const client = apiClient(io.env, flags, server?.url);
    const budget = flags.budgetUsd === undefined ? undefined : budgetFor(jobs, prices, flags.budgetUsd);
    if (flags.fresh) await startFresh(flags.outDir, flags.force);
    const progress = flags.quiet ? undefined : new Progress({ write: io.stderr, isTTY: io.isTTY, intervalSeconds: flags.progressIntervalSeconds });
    io.onRunStart?.(flags.graceMs);
    let summary;
    try {
      summary = await runJobs(jobs, {
        outDir: flags.outDir,
        client,
        prices,
        concurrency: flags.concurrency,
        ...(flags.rpm !== undefined ? { rpm: flags.rpm } : {}), ...(flags.tpm !== undefined ? { tpm: flags.tpm } : {}),
        maxAttempts: flags.maxAttempts,
        timeoutMs: flags.timeoutMs,
        files: flags.files,
        mode: { force: flags.force && !flags.fresh, onlyFailed: flags.onlyFailed },
        redact: createRedactor([io.env.OPENAI_API_KEY]),
        ...(budget ? { budget } : {}),
        ...(io.stopSignal ? { stopSignal: io.stopSignal } : {}),
        ...(io.abortSignal ? { abortSignal: io.abortSignal } : {}),
        ...(progress ? { onEvent: (event) => progress.handle(event) } : {}),
      });
    } finally {
      progress?.stop();
    }
    if (!flags.quiet) {
      io.stdout(formatSummary(summary));
      if (summary.unpricedModels.length > 0) {
        io.stderr(`warning: no price known for ${summary.unpricedModels.join(', ')}; their cost is left empty (add them with --prices FILE)\n`);
      }
    }
    if (summary.stopReason) {
      io.stderr(`${summary.stopMessage}\n${resumeHint(flags)}\n`);
      return summary.stopReason === 'quota' || summary.stopReason === 'budget' ? EXIT.stopped : EXIT.interrupted;
    }
    return summary.failed > 0 ? EXIT.jobsFailed : EXIT.ok;
  } finally {
    await server?.close();
  }
}

async function serveCommand(argv: Record<string, unknown>, io: CliIO): Promise<number> {
  const quotaAfter = argv['quota-after'];
  const rpm = argv.rpm;
  const tpm = argv.tpm;
  const server = await startOfflineServer({
    port: argv.port as number,
    latencyMs: argv.latency as number,
    ...(typeof quotaAfter === 'number' ? { quota: { afterRequests: quotaAfter } } : {}),
    ...(typeof rpm === 'number' || typeof tpm === 'number'
      ? { rateLimit: { ...(typeof rpm === 'number' ? { rpm } : {}), ...(typeof tpm === 'number' ? { tpm } : {}) } }
      : {}),
    recordRequests: false,
  });
  io.stdout(`offline OpenAI-compatible server listening; set OPENAI_BASE_URL=${server.url}\n`);
  await new Promise<void>((resolve) => {
    if (io.stopSignal?.aborted) return resolve();
    io.stopSignal?.addEventListener('abort', () => resolve(), { once: true });
  });
  await server.close();
  return EXIT.ok;
}
