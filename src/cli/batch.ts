import type { JobSource } from '../jobs/source.js';
import { runBatch, type BatchRunOptions } from '../batch/run-batch.js';
import { jobFilesChanged } from '../jobs/source.js';
import { batchTable } from './batches.js';
import { exitStatusOfRun } from './exit.js';
import type { CliIO } from './io.js';
import { join } from 'node:path';
import { pathExists } from '../common/fs-errors.js';
import { formatSummary, summaryObject } from './progress.js';
import { printJson } from './table.js';

/** `nightshift run --batch`: submits, collects (and with `--wait`, waits), then prints where the batches stand. */
export async function runBatchFromFlags(
  jobs: JobSource,
  options: BatchRunOptions,
  flags: { quiet: boolean; json: boolean; offline: boolean },
  io: CliIO,
  writePage: () => Promise<string | undefined>,
): Promise<number> {
  const say = (line: string): void => {
    if (!flags.quiet) io.stderr(`${line}\n`);
  };
  const onEvent: NonNullable<BatchRunOptions['onEvent']> = (event) => {
    switch (event.type) {
      case 'warning':
        io.stderr(`warning: ${event.message}\n`);
        break;
      case 'planned':
        say(`${event.total} jobs: ${event.skipped} already done, ${event.fresh + event.rerun} not done yet (in batches, or to send through the Batch API)`);
        break;
      case 'batch-submitted':
        say(`submitted ${event.batch.batchId} (${event.batch.model}, ${event.batch.requests} request${event.batch.requests === 1 ? '' : 's'})`);
        break;
      case 'batch-status':
        say(`${event.batch.batchId} ${event.batch.status}: ${event.batch.completed} of ${event.batch.requests} done, ${event.batch.failed} failed`);
        break;
      case 'batch-collected':
        say(`collected ${event.batch.batchId}: ${event.done} answered, ${event.failed} failed${event.again > 0 ? `, ${event.again} to send again` : ''}`);
        break;
      case 'batch-waiting':
        say(`part ${event.part} (${event.model}) waits: ${event.reason}`);
        break;
      case 'stopping':
        io.stderr(`${event.message}\n`);
        break;
      default:
        break;
    }
  };
  const summary = await runBatch(jobs, { ...options, onEvent });
  const page = await writePage();
  const images = await pathExists(join(summary.outDir, 'images'));
  if (flags.json) {
    const spending = { spentUsd: summary.money.thisRunUsd, unpricedAnswers: 0, images };
    printJson(io.stdout, { ...summaryObject(summary, spending), batches: summary.batches, inBatches: summary.inBatches, submitted: summary.submitted, report: page ?? null });
  } else if (!flags.quiet) {
    io.stdout(formatSummary(summary, { images, offline: flags.offline }));
    if (summary.batches.length > 0) io.stdout(batchTable(summary.batches));
  }
  if (summary.inBatches > 0 && !summary.stopReason) {
    say(`${summary.inBatches} job${summary.inBatches === 1 ? ' is' : 's are'} in batches still running. Run the same command again to collect them${options.wait ? '' : ' (or add --wait)'}.`);
  }
  if (summary.unpricedModels.length > 0) {
    io.stderr(`warning: no price known for ${summary.unpricedModels.join(', ')}; their cost is left empty (add them with --prices FILE)\n`);
  }
  if (summary.jobFilesChanged) io.stderr(`${jobFilesChanged().message}\n`);
  if (page && !flags.quiet && !flags.json) io.stdout(`report: ${page}\n`);
  return exitStatusOfRun(summary);
}
