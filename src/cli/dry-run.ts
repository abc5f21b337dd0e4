import type { JobSource } from '../jobs/source.js';
import { countPlan, jobsToSend, keptMessage, planFromJournal, type SendReason } from '../run/plan.js';
import type { PlanMode } from '../run/decide.js';
import { EXIT } from './exit.js';
import type { CliIO } from './io.js';
import { formatTable } from './table.js';

/** What each reason of the dry run's list means, in the legend under it. */
const REASONS: Readonly<Record<SendReason, string>> = {
  new: 'never ran',
  offline: 'only the offline server answered it',
  failed: 'failed last time',
  incomplete: 'its answer was cut off (--only-failed)',
  changed: 'its request changed since it ran',
  missing: 'an image it wrote is missing',
  damaged: 'an image it wrote is damaged (not a whole image)',
  forced: '--force',
};

/**
 * `nightshift run --dry-run`: plans the run exactly as `run` would (the same planning, `run/plan.ts`) and lists the
 * jobs it would send, each with why, then stops. Reads the journal without taking the folder; sends nothing and needs
 * no key. `origin` is where the run's answers would come from.
 */
export async function dryRun(
  jobs: JobSource,
  { outDir, origin, mode, fresh }: { outDir: string; origin: string; mode: PlanMode; fresh: boolean },
  io: CliIO,
): Promise<number> {
  const { plan, index } = await planFromJournal(jobs, outDir, { origin, mode, fresh });
  for (const warning of index.warnings) io.stderr(`warning: ${warning}\n`);
  for (const { id, paths } of plan.kept) io.stderr(`warning: ${keptMessage(id, paths)}\n`);
  const rows: string[][] = [['id', 'reason', 'source', 'images']];
  const reasons = new Map<SendReason, number>();
  for await (const { job, reason, partial } of jobsToSend(jobs, plan)) {
    const count = typeof job.body.n === 'number' ? job.body.n : 1;
    const images = partial ? `${partial.images.join(', ')} of ${count}` : '';
    rows.push([job.id, reason, `${job.source.file}:${job.source.line}`, images]);
    reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
  }
  const counts = countPlan(plan);
  const toSend = rows.length - 1;
  const kept = counts.skipped + counts.moved;
  const others = [...(kept > 0 ? [`${kept} already done`] : []), ...(counts.left > 0 ? [`${counts.left} left out by --only-failed`] : [])];
  if (toSend === 0) {
    io.stdout(`Nothing to send: ${counts.total} ${plural(counts.total, 'job')}${others.length > 0 ? `, ${others.join(', ')}` : ''}.\n`);
    return EXIT.ok;
  }
  io.stdout(formatTable(rows));
  const byReason = [...reasons].map(([reason, count]) => `${count} ${reason}`).join(', ');
  io.stdout(`${toSend} of ${counts.total} ${plural(counts.total, 'job')} would be sent (${byReason})${others.length > 0 ? `; ${others.join(', ')}` : ''}. Nothing was sent.\n`);
  for (const reason of reasons.keys()) io.stdout(`  ${reason}: ${REASONS[reason]}\n`);
  return EXIT.ok;
}

const plural = (count: number, word: string): string => (count === 1 ? word : `${word}s`);
