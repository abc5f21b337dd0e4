import { NightshiftError } from '../common/errors.js';
import { worstCaseCost } from '../cost/estimate.js';
import type { PriceBook } from '../cost/prices.js';
import { createRedactor } from '../common/redact.js';
import type { RunOptions } from '../run/options.js';
import { runJobs } from '../run/run.js';
import { startOfflineServer } from '../server/server.js';
import { apiClient } from './client.js';
import { exitStatusOfRun } from './exit.js';
import { startFresh } from './fresh.js';
import type { CliIO } from './io.js';
import type { RunFlags } from './options.js';
import { formatSummary, Progress } from './progress.js';
import { loadOrExplain } from './load-jobs.js';
import { loadPrices } from './load-prices.js';

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

/** `nightshift run`: validates everything, then runs the jobs and writes the outputs. */
export async function runCommand(flags: RunFlags, io: CliIO): Promise<number> {
  const defaults = { ...(flags.model ? { model: flags.model } : {}), ...(flags.system ? { system: flags.system } : {}) };
  const say = flags.quiet ? undefined : (line: string) => io.stderr(`${line}\n`);
  const { jobs, models } = await loadOrExplain(flags.files, defaults, io, { outDir: flags.outDir, say });
  const prices = await loadPrices(flags.prices);
  // The run's own server keeps no request log: memory stays flat however many jobs it answers.
  const server = flags.offline ? await startOfflineServer({ recordRequests: false }) : undefined;
  try {
    const client = apiClient(io.env, flags.timeoutMs, server?.url);
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
