import { join } from 'node:path';
import type OpenAI from 'openai';
import { pathExists } from '../common/fs-errors.js';
import { NightshiftError } from '../common/errors.js';
import { createRedactor } from '../common/redact.js';
import { worstCaseCost } from '../cost/estimate.js';
import type { PriceBook } from '../cost/prices.js';
import type { CliDefaults } from '../jobs/defaults.js';
import { jobFilesChanged, type JobSource } from '../jobs/source.js';
import type { RunEvent, RunOptions } from '../run/options.js';
import { preflight, REASONING_PLANNING_CAP } from '../run/preflight.js';
import { runJobs } from '../run/run.js';
import { apiOrigin, OFFLINE_ORIGIN } from '../output/journal.js';
import type { JournalView } from '../output/folder.js';
import { apiClient, configuredOrigin, missingKey } from './client.js';
import { dryRun } from './dry-run.js';
import { resolveCommand, usageError, type Command, type CommandSpec } from './command.js';
import { exitStatusOfRun } from './exit.js';
import { DEFAULT_TIMEOUT_SECONDS, defaultOutDir, FLEX_TIMEOUT_SECONDS } from './flags.js';
import { startFresh } from './fresh.js';
import type { CliIO } from './io.js';
import { jobDefaults, loadOrExplain } from './load-jobs.js';
import { loadPrices } from './load-prices.js';
import { formatSummary, Progress, summaryObject } from './progress.js';
import { printJson } from './table.js';
import { openJobFiles, STDIN_ARG, STDIN_NAME, type JobFormat } from './stdin.js';

const SPEC = {
  usage: 'run <files..>',
  description: 'Run job files against the OpenAI API (or --offline) and write results.csv, usage.csv and images/',
  positional: { name: 'files', description: 'Job files (.json, .jsonl, .csv)', missing: 'Expected at least one job file' },
  flags: [
    'out',
    'format',
    'concurrency',
    'max-attempts',
    'timeout',
    'model',
    'system',
    'temperature',
    'max-completion-tokens',
    'service-tier',
    'offline',
    'prices',
    'budget',
    'fresh',
    'force',
    'only-failed',
    'dry-run',
    'quiet',
    'json',
    'progress-interval',
    'grace',
    'rpm',
    'tpm',
    'batch',
    'wait',
    'poll-interval',
    'keep-files',
    'batch-max-requests',
    'batch-max-bytes',
    'run-html',
  ],
} as const satisfies CommandSpec;

/** The engine's options that `run`'s flags set as they are; the rest of {@link RunOptions} is built in `engineOptions`. */
type EngineFlags = Pick<RunOptions, 'outDir' | 'files' | 'concurrency' | 'maxAttempts' | 'timeoutMs' | 'flexTimeoutMs' | 'rpm' | 'tpm'>;

/** `nightshift run` flags after checking: the engine options they set, and what the CLI itself needs. */
export interface RunFlags extends EngineFlags {
  /** The format of standard input (`-`), when not sniffed. */
  format?: JobFormat;
  /** `--model`, `--system`, `--temperature`, `--max-completion-tokens` and `--service-tier`, for jobs that leave them out. */
  defaults: CliDefaults;
  offline: boolean;
  /** The `--prices` file. */
  prices?: string;
  budgetUsd?: number;
  fresh: boolean;
  force: boolean;
  onlyFailed: boolean;
  /** List what would be sent, and send nothing. */
  dryRun: boolean;
  quiet: boolean;
  /** Print the summary as one JSON object. */
  json: boolean;
  progressIntervalSeconds: number;
  graceMs: number;
  /** Write `report.html` in the output folder at the end (`--no-html`: not). */
  html: boolean;
  /** `--batch` and the flags that go with it: the jobs go through the Batch API. */
  batch?: BatchFlags;
}

/** How `run --batch` submits, waits and cleans up. */
export interface BatchFlags {
  wait: boolean;
  pollIntervalMs: number;
  keepFiles: boolean;
  maxRequests?: number;
  maxBytes?: number;
}

/** Checks `run`'s flags eagerly, naming the bad value, before any file is read. */
export function resolveRunFlags(argv: Record<string, unknown>): RunFlags {
  const { args: files, flags } = resolveCommand(SPEC, argv);
  if (flags['only-failed'] && flags.fresh) throw usageError('--only-failed and --fresh contradict each other: a fresh run has no failures to rerun');
  const batchOnly = (['wait', 'keep-files', 'batch-max-requests', 'batch-max-bytes'] as const).filter((name) => flags[name] !== undefined && flags[name] !== false);
  if (!flags.batch && batchOnly.length > 0) throw usageError(`--${batchOnly[0]} goes with --batch`);
  return {
    files,
    ...(flags.format !== undefined ? { format: flags.format } : {}),
    // Offline answers are not real ones: by default they never share a folder with a real run's results.
    outDir: flags.out ?? `${defaultOutDir(files)}${flags.offline ? '-offline' : ''}`,
    concurrency: flags.concurrency,
    maxAttempts: flags['max-attempts'],
    timeoutMs: Math.round((flags.timeout ?? DEFAULT_TIMEOUT_SECONDS) * 1000),
    // A timeout the user gave is the timeout of every request.
    flexTimeoutMs: Math.round((flags.timeout ?? FLEX_TIMEOUT_SECONDS) * 1000),
    ...(flags.rpm !== undefined ? { rpm: flags.rpm } : {}),
    ...(flags.tpm !== undefined ? { tpm: flags.tpm } : {}),
    defaults: jobDefaults(flags),
    offline: flags.offline,
    ...(flags.prices !== undefined ? { prices: flags.prices } : {}),
    ...(flags.budget !== undefined ? { budgetUsd: flags.budget } : {}),
    fresh: flags.fresh,
    force: flags.force,
    onlyFailed: flags['only-failed'],
    dryRun: flags['dry-run'],
    quiet: flags.quiet,
    json: flags.json,
    progressIntervalSeconds: flags['progress-interval'],
    graceMs: Math.round(flags.grace * 1000),
    html: flags.html,
    ...(flags.batch
      ? {
          batch: {
            wait: flags.wait,
            pollIntervalMs: Math.round(flags['poll-interval'] * 1000),
            keepFiles: flags['keep-files'],
            ...(flags['batch-max-requests'] !== undefined ? { maxRequests: flags['batch-max-requests'] } : {}),
            ...(flags['batch-max-bytes'] !== undefined ? { maxBytes: flags['batch-max-bytes'] } : {}),
          },
        }
      : {}),
  };
}

/** `nightshift run`: see {@link runFromFlags}. */
export const runCommand: Command = { ...SPEC, run: (argv, io) => runFromFlags(resolveRunFlags(argv), io) };

/** What the CLI makes for the engine: the client, the prices, the budget and the display of events. */
interface EngineParts {
  client: OpenAI;
  /** The client has no key: a run with requests to send is refused before it starts. */
  keyless: boolean;
  prices: PriceBook;
  budget: RunOptions['budget'];
  onEvent: (event: RunEvent) => void;
}

/** The one place `run`'s flags, the process's signals and what the CLI made become the engine's {@link RunOptions}. */
function engineOptions(flags: RunFlags, { client, keyless, prices, budget, onEvent }: EngineParts, io: CliIO): RunOptions {
  const { outDir, files, concurrency, maxAttempts, timeoutMs, flexTimeoutMs, rpm, tpm } = flags;
  return {
    outDir,
    client,
    prices,
    concurrency,
    ...(rpm !== undefined ? { rpm } : {}),
    ...(tpm !== undefined ? { tpm } : {}),
    maxAttempts,
    timeoutMs,
    flexTimeoutMs,
    // As the journal's run record names them.
    files: files.map((file) => (file === STDIN_ARG ? STDIN_NAME : file)),
    // With --fresh the journal starts empty, so there is nothing done to send again.
    mode: { force: flags.force && !flags.fresh, onlyFailed: flags.onlyFailed },
    fresh: flags.fresh,
    ...(flags.offline ? { origin: OFFLINE_ORIGIN } : {}),
    redact: createRedactor([io.env.OPENAI_API_KEY]),
    ...(budget ? { budget } : {}),
    ...(io.stopSignal ? { stopSignal: io.stopSignal } : {}),
    ...(io.abortSignal ? { abortSignal: io.abortSignal } : {}),
    onEvent,
    ...(keyless
      ? {
          beforeSending: () => {
            throw missingKey();
          },
        }
      : {}),
  };
}

/**
 * A budget can only be kept for jobs whose worst case is known: refuse, before anything is sent, when a
 * model has no price. Each job's worst case is worked out as it is about to be sent.
 */
function budgetFor(models: ReadonlySet<string>, prices: PriceBook, limitUsd: number, batch: boolean): NonNullable<RunOptions['budget']> {
  // The runner checks each job to send too: an image size or quality can lack a price where its model has one.
  const unpriced = [...models].filter((model) => prices.priceOf(model) === undefined);
  if (unpriced.length > 0) {
    throw new NightshiftError(
      'E_USAGE',
      `--budget needs a price for every model, and there is none for ${unpriced.join(', ')}. Add them with --prices FILE.`,
    );
  }
  // Through the Batch API, a job costs at most its worst case at Batch rates.
  return { limitUsd, worstCaseUsd: (job) => worstCaseCost(job, prices, { batch }) };
}

/**
 * How to continue after a stop: the same command, without the flags that would send finished jobs again, and after a
 * budget stop with the budget that lets the next job start (the same one would stop at once).
 */
function resumeHint(flags: RunFlags, nextBudgetUsd: number | undefined): string {
  const drop = [...(flags.fresh ? ['--fresh'] : []), ...(flags.force ? ['--force'] : [])];
  const budget = nextBudgetUsd === undefined ? '' : ` with --budget ${nextBudgetUsd} or more`;
  const command = drop.length > 0 ? `the same command again${budget} without ${drop.join(' and ')}` : `the same command again${budget}`;
  return `Outputs are written. To continue, run ${command}: finished jobs are not sent twice.`;
}

/** What to do about answers cut off: they stay as they are on a plain rerun, which would only pay for the same cut again. */
function incompleteWarning(count: number): string {
  return (
    `warning: ${count} answer${count === 1 ? ' was' : 's were'} cut off (status incomplete in results.csv: finish_reason length or content_filter). ` +
    'Raise max_completion_tokens for those jobs and run again to resend them; a plain rerun leaves them as they are, --only-failed resends them unchanged.\n'
  );
}

/**
 * Refuses a `--tpm` below what a single request needs, and says which reasoning jobs reserve the planning cap against
 * `--budget`; one pass over the jobs, made only when either flag is given.
 */
async function checkBeforeSending(jobs: JobSource, flags: RunFlags, io: CliIO): Promise<void> {
  if (flags.tpm === undefined && flags.budgetUsd === undefined) return;
  const { largest, planningCap } = await preflight(jobs.open(), { ...(flags.tpm !== undefined ? { tpm: flags.tpm } : {}), budget: flags.budgetUsd !== undefined });
  if (largest && flags.tpm !== undefined && largest.tokens > flags.tpm) {
    throw usageError(
      `--tpm ${flags.tpm} is below what one request needs: job ${largest.job.id} counts about ${largest.tokens} tokens (its prompt and its output bound, ` +
        'max_completion_tokens). Give --tpm at least that, or lower max_completion_tokens.',
    );
  }
  for (const [model, count] of planningCap) {
    io.stderr(
      `warning: ${count} job${count === 1 ? '' : 's'} of reasoning model ${model} set${count === 1 ? 's' : ''} no max_completion_tokens: --budget reserves ` +
        `the planning cap of ${REASONING_PLANNING_CAP} output tokens for each. Set max_completion_tokens (a job field, or in the file's defaults) to reserve less.\n`,
    );
  }
}

/**
 * Writes the run's `report.html`; returns its path. A page that cannot be written is a warning, not a failed run:
 * the results it would show are written.
 */
async function writePage(flags: RunFlags, jobs: JobSource, io: CliIO, held?: { index: JournalView; origin: string }): Promise<string | undefined> {
  // Loaded when the run is over: the page's modules need not delay the first request.
  const { REPORT_PAGE, writeReportPage } = await import('../page/write-page.js');
  const path = join(flags.outDir, REPORT_PAGE);
  try {
    await writeReportPage([flags.outDir], path, {
      jobsOf: (folder) => (folder === flags.outDir ? jobs.open() : undefined),
      ...(held ? { held: { folder: flags.outDir, ...held } } : {}),
      concurrency: flags.concurrency,
      now: io.now ?? Date.now,
      onWarning: (warning) => io.stderr(`warning: ${warning}\n`),
    });
    return path;
  } catch (error) {
    if (!(error instanceof NightshiftError)) throw error;
    io.stderr(`warning: ${REPORT_PAGE} was not written: ${error.message}\n`);
    return undefined;
  }
}

/** `nightshift run`: validates everything, then runs the jobs and writes the outputs. */
async function runFromFlags(flags: RunFlags, io: CliIO): Promise<number> {
  const input = await openJobFiles(flags.files, flags.format, io);
  try {
    return await runInput(flags, input.files, input.names, io);
  } finally {
    await input.close();
  }
}

async function runInput(flags: RunFlags, files: string[], names: ReadonlyMap<string, string>, io: CliIO): Promise<number> {
  const say = flags.quiet ? undefined : (line: string) => io.stderr(`${line}\n`);
  // A dry run writes nothing, not even the saved validation of large files.
  const { jobs, models } = await loadOrExplain(files, flags.defaults, io, { ...(flags.dryRun ? {} : { outDir: flags.outDir }), say, names, json: flags.json });
  if (flags.dryRun) {
    const origin = flags.offline ? OFFLINE_ORIGIN : configuredOrigin(io.env);
    return dryRun(jobs, { outDir: flags.outDir, origin, mode: { force: flags.force && !flags.fresh, onlyFailed: flags.onlyFailed }, fresh: flags.fresh }, io);
  }
  const prices = await loadPrices(flags.prices);
  // The run's own server keeps no request log: memory stays flat however many jobs it answers.
  // The server and the batch engine are loaded only by the runs that use them: a run's start-up waits for every module it loads.
  const server = flags.offline ? await (await import('../server/server.js')).startOfflineServer({ recordRequests: false }) : undefined;
  try {
    // Without a key, a run can still rebuild a folder's outputs when it has nothing to send; --fresh always has, and
    // a batch run asks the API about its batches.
    const keyless = !flags.offline && !flags.fresh && !flags.batch && !io.env.OPENAI_API_KEY;
    const client = apiClient(io.env, flags.timeoutMs, server?.url, { keyless, connections: flags.concurrency });
    const budget = flags.budgetUsd === undefined ? undefined : budgetFor(models, prices, flags.budgetUsd, flags.batch !== undefined);
    await checkBeforeSending(jobs, flags, io);
    if (flags.fresh) await startFresh(flags.outDir, flags.force, { origin: flags.offline ? OFFLINE_ORIGIN : apiOrigin(client.baseURL) });
    if (flags.batch) {
      io.onRunStart?.(flags.graceMs);
      // A batch run writes, uploads and reads files of up to 50,000 requests: it trades a little CPU for flat memory.
      io.onLargeJobs?.();
      const { onEvent: _none, ...live } = engineOptions(flags, { client, keyless, prices, budget, onEvent: () => {} }, io);
      // The offline server lives as long as this command: its batches are waited for, or they would be lost.
      const wait = flags.batch.wait || flags.offline;
      const page = (): Promise<string | undefined> => (flags.html ? writePage(flags, jobs, io) : Promise.resolve(undefined));
      const { runBatchFromFlags } = await import('./batch.js');
      return await runBatchFromFlags(jobs, { ...live, ...flags.batch, wait, ...(flags.offline ? { pollIntervalMs: Math.min(flags.batch.pollIntervalMs, 200) } : {}) }, flags, io, page);
    }
    const progress = flags.quiet
      ? undefined
      : new Progress({ write: io.stderr, isTTY: io.isTTY, intervalSeconds: flags.progressIntervalSeconds, ...(io.columns ? { columns: io.columns } : {}) });
    // What this run paid for: the answers it journals, priced.
    const spent = { usd: 0, unpriced: 0 };
    // Warnings (a torn journal line, say) are printed even with --quiet.
    const onEvent = (event: RunEvent): void => {
      if (event.type === 'finished') {
        if (event.record.costUsd === null) spent.unpriced++;
        else spent.usd += event.record.costUsd;
      }
      if (progress) progress.handle(event);
      else if (event.type === 'warning') io.stderr(`warning: ${event.message}\n`);
    };
    io.onRunStart?.(flags.graceMs);
    let summary;
    let page: string | undefined;
    // Written while the run holds the folder, from the journal index it holds.
    const whileHeld = async (held: { index: JournalView; origin: string }): Promise<void> => {
      progress?.stop();
      page = await writePage(flags, jobs, io, held);
    };
    try {
      summary = await runJobs(jobs, { ...engineOptions(flags, { client, keyless, prices, budget, onEvent }, io), ...(flags.html ? { whileHeld } : {}) });
    } finally {
      progress?.stop();
    }
    const images = await pathExists(join(flags.outDir, 'images'));
    if (flags.json) printJson(io.stdout, { ...summaryObject(summary, { spentUsd: spent.usd, unpricedAnswers: spent.unpriced, images }), report: page ?? null });
    else if (!flags.quiet) io.stdout(formatSummary(summary, { images, offline: flags.offline }));
    if (summary.unpricedModels.length > 0) {
      io.stderr(`warning: no price known for ${summary.unpricedModels.join(', ')}; their cost is left empty (add them with --prices FILE)\n`);
    }
    if (summary.incomplete > 0) io.stderr(incompleteWarning(summary.incomplete));
    if (summary.jobFilesChanged) io.stderr(`${jobFilesChanged().message}\n`);
    if (summary.stopReason) {
      // Progress already showed why the run stopped; without it, say so here.
      if (!progress) io.stderr(`${summary.stopMessage}\n`);
      io.stderr(`${resumeHint(flags, summary.nextBudgetUsd)}\n`);
    }
    if (page && !flags.quiet && !flags.json) io.stdout(`report: ${page}\n`);
    return exitStatusOfRun(summary);
  } finally {
    await server?.close();
  }
}
