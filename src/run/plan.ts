import { NightshiftError } from '../common/errors.js';
import type { Job } from '../common/types.js';
import { fingerprint } from '../jobs/fingerprint.js';
import { jobFilesChanged, type JobSource } from '../jobs/source.js';
import type { OutputFolder } from '../output/folder.js';
import { fingerprintKey, type RecordRef } from '../output/journal-index.js';
import type { PlannedMove } from '../output/moves.js';
import { decide, decideByFiles, type Decision } from './decide.js';
import type { RunOptions } from './options.js';

/** Each job's decision, one byte per job. */
const ACTIONS = ['skip', 'move', 'new', 'rerun', 'leave'] as const satisfies readonly Decision['action'][];
const SEND = new Set<number>([ACTIONS.indexOf('new'), ACTIONS.indexOf('rerun')]);

/** What planning found, in a byte per job: decisions by input position, and the image renames to make. */
export interface Plan {
  actions: Uint8Array;
  moves: PlannedMove[];
  /** Jobs to send that the offline server answered before: set aside by a run against an API. */
  offline: number;
}

/** How many jobs each decision took, for progress and the run's summary. */
export interface PlanCounts {
  total: number;
  skipped: number;
  moved: number;
  rerun: number;
  fresh: number;
  left: number;
  /** Of the jobs to rerun, those the offline server answered before. */
  offline: number;
}

/** A job to send, with the fingerprint of its request (checked against the plan). */
export interface ToSend {
  job: Job;
  fp: string;
}

/**
 * Decides what each job needs, from its digest and the journal index. The job files are read again only for the
 * jobs whose decision depends on their image files, and, with a budget, for the jobs to send (each must have a worst case).
 */
export async function planJobs(
  source: JobSource,
  folder: Pick<OutputFolder, 'dir' | 'index' | 'readRecord'>,
  { mode = {}, budget }: Pick<RunOptions, 'mode' | 'budget'>,
): Promise<Plan> {
  const { digests } = source;
  const plan: Plan = { actions: new Uint8Array(source.count), moves: [], offline: 0 };
  // Jobs whose earlier success left image files, which decide: looked at with the job in hand.
  const byFiles = new Map<number, RecordRef>();
  for (let position = 0; position < source.count; position++) {
    const key = digests.key(position);
    const ref = folder.index.answerOf(digests.ids, position, key);
    const decision = decide(ref && { state: ref.state, sameRequest: ref.key.equals(key), hasFiles: ref.hasFiles }, mode);
    if (decision === 'files') byFiles.set(position, { ...ref!, key: Buffer.from(ref!.key) });
    // Counted as answered by the offline server only when nothing since answered it: a real failure is a failure.
    else if (ref === undefined && SEND.has(ACTIONS.indexOf(decision.action)) && folder.index.setAsideOf(digests.ids, position)) {
      // An answer of the offline server is no answer for a run against an API: the job is sent again.
      plan.actions[position] = ACTIONS.indexOf('rerun');
      plan.offline++;
    } else plan.actions[position] = ACTIONS.indexOf(decision.action);
  }
  if (byFiles.size === 0 && !budget) return plan;

  const unpriced = new Set<string>();
  const wanted = (position: number): boolean => position >= source.count || byFiles.has(position) || (budget !== undefined && SEND.has(plan.actions[position]!));
  for await (const { position, job } of source.pick(wanted, firstWanted(wanted))) {
    if (position >= source.count || !fingerprintKey(fingerprint(job)).equals(digests.key(position))) throw jobFilesChanged();
    const ref = byFiles.get(position);
    if (ref) {
      const record = await folder.readRecord(ref);
      const decision = await decideByFiles(job, record.files, folder.dir, mode);
      plan.actions[position] = ACTIONS.indexOf(decision.action);
      if (decision.action === 'move') plan.moves.push({ job: { id: job.id, source: job.source }, moves: decision.moves, record });
    }
    if (budget && SEND.has(plan.actions[position]!) && budget.worstCaseUsd(job) === null) unpriced.add(job.model);
  }
  if (unpriced.size > 0) {
    const models = [...unpriced];
    throw new NightshiftError('E_USAGE', `A budget needs the worst-case cost of every job to send, and there is none for some jobs of ${models.join(', ')}.`, { models });
  }
  return plan;
}

/** How many jobs each decision of `plan` took. */
export function countPlan(plan: Plan): PlanCounts {
  const counts = new Array<number>(ACTIONS.length).fill(0);
  for (const code of plan.actions) counts[code]!++;
  const count = (action: Decision['action']): number => counts[ACTIONS.indexOf(action)]!;
  return {
    total: plan.actions.length,
    skipped: count('skip'),
    moved: count('move'),
    rerun: count('rerun'),
    fresh: count('new'),
    left: count('leave'),
    offline: plan.offline,
  };
}

/**
 * The jobs to send, in input order. A job whose request differs from the one planned (its file changed since)
 * stops the run rather than be sent unplanned.
 */
export async function* jobsToSend(source: JobSource, plan: Plan): AsyncGenerator<ToSend> {
  const wanted = (position: number): boolean => position >= plan.actions.length || SEND.has(plan.actions[position]!);
  for await (const { position, job } of source.pick(wanted, firstWanted(wanted))) {
    if (position >= plan.actions.length) throw jobFilesChanged();
    const fp = fingerprint(job);
    if (!fingerprintKey(fp).equals(source.digests.key(position))) throw jobFilesChanged();
    yield { job, fp };
  }
}

/** The first position `wanted` accepts (one past the jobs planned when it accepts none of them). */
function firstWanted(wanted: (position: number) => boolean): number {
  let position = 0;
  while (!wanted(position)) position++;
  return position;
}
