import { systemClock } from '../common/clock.js';
import { NightshiftError } from '../common/errors.js';
import type { Job, Usage } from '../common/types.js';
import { jobsInMemory, type JobSource } from '../jobs/source.js';
import { openOutputFolder } from '../output/folder.js';
import { apiOrigin } from '../output/journal.js';
import { addUsd, paidInJournals, setAsideJournals, type MoneyFigures } from '../cost/money.js';
import { Dispatch } from './dispatch.js';
import type { RunOptions, RunSummary } from './options.js';
import { countPlan, jobsToSend, keptMessage, planJobs, sends, type PlanCounts } from './plan.js';

/**
 * Runs jobs against the API with bounded concurrency and retry, journaling each outcome before it counts.
 * Rerunning on the same folder sends only what the journal does not already hold for the same request.
 * Memory stays flat in the number of jobs: they are streamed from `jobs`, and the journal is held as an index.
 */
export async function runJobs(jobs: readonly Job[] | JobSource, given: RunOptions): Promise<RunSummary> {
  const options = { ...given, origin: given.origin ?? apiOrigin(given.client.baseURL) };
  const source = isJobSource(jobs) ? jobs : jobsInMemory(jobs);
  const clock = options.clock ?? systemClock;
  const emit = options.onEvent ?? (() => {});
  const now = (): string => new Date(clock.now()).toISOString();

  // Numbered as validation numbered the jobs: records of ids no longer in the job files only count as spending.
  const folder = await openOutputFolder(options.outDir, { ids: source.digests.ids, fresh: options.fresh ?? false, origin: options.origin });
  try {
    for (const message of folder.index.warnings) emit({ type: 'warning', message });
    // What the folder paid before this run: its journal, and the journals `--fresh` set aside (see cost/money.ts).
    const spentBefore = folder.index.spentUsd;
    const paidBefore = addUsd(spentBefore, await paidInJournals(await setAsideJournals(options.outDir), options.origin));
    const plan = await planJobs(source, folder, options);
    const planned = countPlan(plan);
    for (const { id, paths } of plan.kept) emit({ type: 'warning', message: keptMessage(id, paths) });
    emit({ type: 'planned', ...planned });
    if (planned.rerun + planned.fresh > 0) options.beforeSending?.();

    await folder.startRun({ startedAt: now(), files: options.files, jobs: source.count, origin: options.origin });
    await folder.moveImages(plan.moves, now);
    folder.startResults(source, (position) => sends(plan, position));
    const dispatch = new Dispatch(jobsToSend(source, plan), folder, options, clock, options.redact ?? ((text) => text), emit, paidBefore);
    // Job files that changed while the jobs to send were read from them stop the sending; what was answered is on
    // record, and the views are still rewritten (by identity) so that they show it.
    let changedWhileSending = false;
    try {
      await dispatch.start();
    } catch (error) {
      if (!(error instanceof NightshiftError && error.code === 'E_VALIDATION')) throw error;
      changedWhileSending = true;
    }

    const written = await folder.writeResults(source);
    const { usage } = written;
    const jobFilesChanged = written.jobFilesChanged || changedWhileSending;
    await options.whileHeld?.({ index: folder.index, origin: options.origin });
    const { total } = usage;
    return {
      ...jobCounts(source.count, planned, total),
      retries: dispatch.retries,
      money: moneyAfter(spentBefore, paidBefore, folder.index.spentUsd, total.costUsd),
      unpricedModels: usage.unpricedModels(),
      missingModels: [...dispatch.missingModels].map(([model, notSent]) => ({ model, notSent })),
      // The stop that changed job files caused is said by `jobFilesChanged`, not as an interruption.
      ...(dispatch.stopReason && !(changedWhileSending && dispatch.stopReason === 'interrupted')
        ? { stopReason: dispatch.stopReason, stopMessage: dispatch.stopMessage, ...(dispatch.nextBudgetUsd !== undefined ? { nextBudgetUsd: dispatch.nextBudgetUsd } : {}) }
        : {}),
      ...(jobFilesChanged ? { jobFilesChanged } : {}),
      outDir: options.outDir,
    };
  } finally {
    await folder.close();
  }
}

/**
 * The three money figures after a run (see cost/money.ts): the folder's journal had spent `spentBefore` when it began
 * and `spentNow` when it ended, and the folder had paid `paidBefore` in all (set-aside journals included).
 */
export function moneyAfter(spentBefore: number, paidBefore: number, spentNow: number, currentUsd: number): MoneyFigures {
  const thisRunUsd = addUsd(spentNow, -spentBefore);
  return { thisRunUsd, currentUsd, paidUsd: addUsd(paidBefore, thisRunUsd) };
}

/** What a run's summary says of the jobs: as planned, and as their results stand now (a live or a batch run). */
export function jobCounts(
  count: number,
  planned: PlanCounts,
  total: { ok: number; incomplete: number; failed: number; usage: Usage; costUsd: number },
): Pick<RunSummary, 'total' | 'skipped' | 'moved' | 'rerun' | 'fresh' | 'ok' | 'incomplete' | 'failed' | 'pending' | 'usage' | 'costUsd'> {
  const { ok, incomplete, failed, usage, costUsd } = total;
  const { skipped, moved, rerun, fresh } = planned;
  return { total: count, skipped, moved, rerun, fresh, ok, incomplete, failed, pending: count - ok - incomplete - failed, usage, costUsd };
}

const isJobSource = (jobs: readonly Job[] | JobSource): jobs is JobSource => !Array.isArray(jobs);
