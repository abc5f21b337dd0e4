import { rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import OpenAI from 'openai';
import { NightshiftError } from '../common/errors.js';
import { worstCaseCost } from '../cost/estimate.js';
import { JOURNAL_FILE } from '../output/journal.js';
import { indexJournal } from '../output/journal-index.js';
import { acquireLock } from '../output/lock.js';
import type { PriceBook } from '../cost/prices.js';
import { createRedactor } from '../common/redact.js';
import type { RunOptions } from '../run/options.js';
import { runJobs } from '../run/run.js';
import { startOfflineServer } from '../server/server.js';
import { exitStatusOfRun } from './exit.js';
import type { CliIO } from './io.js';
import type { RunFlags } from './options.js';
import { formatSummary, Progress } from './progress.js';
import { loadOrExplain } from './load-jobs.js';
import { loadPrices } from './load-prices.js';

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
 * model has no price. Each job's worst case is worked out as it is about to be sent.
 */
function budgetFor(models: ReadonlySet<string>, prices: PriceBook, limitUsd: number): NonNullable<RunOptions['budget']> {
  // The runner checks each job to send too: an image size or quality can lack a price where its model has one.
  const unpriced = [...models].filter((model) => prices.priceOf(model) === undefined);
  if (unpriced.length > 0) {
    throw new NightshiftError(
      'E_USAGE',
      `--budget needs a price for every model, and there is none for ${unpriced.join(', ')}. Add them with --prices FILE.`,
    );
  }
  return { limitUsd, worstCaseUsd: (job) => worstCaseCost(job, prices) };
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
    // Any success counts, including one a later edit superseded: a plain rerun could still reuse it.
    const finished = (await indexJournal(path)).succeeded();
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

/** `nightshift run`: validates everything, then runs the jobs and writes the outputs. */
export async function runCommand(flags: RunFlags, io: CliIO): Promise<number> {
  const defaults = { ...(flags.model ? { model: flags.model } : {}), ...(flags.system ? { system: flags.system } : {}) };
  const say = flags.quiet ? undefined : (line: string) => io.stderr(`${line}\n`);
  const { jobs, models } = await loadOrExplain(flags.files, defaults, io, { outDir: flags.outDir, say });
  const prices = await loadPrices(flags.prices);
  // The run's own server keeps no request log: memory stays flat however many jobs it answers.
  const server = flags.offline ? await startOfflineServer({ recordRequests: false }) : undefined;
  try {
    const client = apiClient(io.env, flags, server?.url);
    const budget = flags.budgetUsd === undefined ? undefined : budgetFor(models, prices, flags.budgetUsd);
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
        // Warnings (a torn journal line, say) are printed even with --quiet.
        onEvent: (event) => {
          if (progress) progress.handle(event);
          else if (event.type === 'warning') io.stderr(`warning: ${event.message}\n`);
        },
      });
    } finally {
      progress?.stop();
    }
    if (!flags.quiet) io.stdout(formatSummary(summary));
    if (summary.unpricedModels.length > 0) {
      io.stderr(`warning: no price known for ${summary.unpricedModels.join(', ')}; their cost is left empty (add them with --prices FILE)\n`);
    }
    if (summary.stopReason) {
      // Progress already showed why the run stopped; without it, say so here.
      if (!progress) io.stderr(`${summary.stopMessage}\n`);
      io.stderr(`${resumeHint(flags)}\n`);
    }
    return exitStatusOfRun(summary);
  } finally {
    await server?.close();
  }
}
