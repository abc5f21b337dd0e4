import { join } from 'node:path';
import { NightshiftError } from '../common/errors.js';
import type { Job } from '../common/types.js';
import { isPositionalId } from '../jobs/content-id.js';
import { fingerprint } from '../jobs/fingerprint.js';
import { jobFilesChanged, type JobSource } from '../jobs/source.js';
import type { OutputFolder } from '../output/folder.js';
import { JOURNAL_FILE, type JobRecord } from '../output/journal.js';
import { indexJournal, JournalIndex, type RecordRef } from '../output/journal-index.js';
import type { PlannedMove } from '../output/moves.js';
import { RecordReader } from '../output/record-reader.js';
import { decide, decideByFiles, type Decision, type PlanMode } from './decide.js';
import type { RunOptions } from './options.js';

/** Each job's decision, one byte per job. */
const ACTIONS = ['skip', 'move', 'new', 'rerun', 'leave'] as const satisfies readonly Decision['action'][];
const SEND = new Set<number>([ACTIONS.indexOf('new'), ACTIONS.indexOf('rerun')]);

/**
 * Why a job is sent: never ran (`new`), only the offline server answered it (`offline`), or, having run, the reason of
 * its rerun ({@link RerunReason}). One byte per job, 0 for a job not sent.
 */
export const SEND_REASONS = ['', 'new', 'offline', 'failed', 'incomplete', 'changed', 'missing', 'damaged', 'forced'] as const;
export type SendReason = Exclude<(typeof SEND_REASONS)[number], ''>;

/** A job of which only some images are made again: their numbers (from 1), and the record that holds the others. */
export interface PartialImages {
  images: number[];
  record: JobRecord;
}

/** What planning found, in a byte per job: decisions by input position, and the image renames to make. */
export interface Plan {
  actions: Uint8Array;
  /** Why each job to send is sent, as an index of {@link SEND_REASONS}. */
  reasons: Uint8Array;
  /** Image renames, and records taken over from the positional ids of earlier releases (see `JournalIndex.takePositional`). */
  moves: PlannedMove[];
  /** Jobs to send that the offline server answered before: set aside by a run against an API. */
  offline: number;
  /** Images kept although they are not the ones nightshift wrote (retouched by hand), by job: reported, never made again. */
  kept: { id: string; paths: string[] }[];
  /** Jobs to send for some of their images only, by position. */
  partial: Map<number, PartialImages>;
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
  /** Its position in the input, and why it is sent. */
  position: number;
  reason: SendReason;
  /** Only these of its images are made again. */
  partial?: PartialImages;
}

/**
 * Decides what each job needs, from its digest and the journal index. The job files are read again only for the
 * jobs whose decision depends on their image files or on a record of a positional id, and, with a budget, for the jobs
 * to send (each must have a worst case). `estimate` and `run --dry-run` plan with it too, so all three agree.
 */
export async function planJobs(
  source: JobSource,
  folder: Pick<OutputFolder, 'dir' | 'index' | 'readRecord'>,
  { mode = {}, budget }: Pick<RunOptions, 'mode' | 'budget'>,
): Promise<Plan> {
  const { digests } = source;
  const plan: Plan = { actions: new Uint8Array(source.count), reasons: new Uint8Array(source.count), moves: [], offline: 0, kept: [], partial: new Map() };
  const set = (position: number, decision: Decision): void => {
    plan.actions[position] = ACTIONS.indexOf(decision.action);
    plan.reasons[position] = decision.action === 'new' ? SEND_REASONS.indexOf('new') : decision.action === 'rerun' ? SEND_REASONS.indexOf(decision.reason) : 0;
  };
  // Jobs whose earlier success left image files, which decide: looked at with the job in hand.
  const byFiles = new Map<number, RecordRef>();
  // Jobs without a record of their own whose request a positional id of their file answered: they take it over.
  const positional = new Set<number>();
  // Against a journal with nothing to compare, every job is decided alike, without its fingerprint (made as it is sent).
  const alike = folder.index.empty ? decide(undefined, mode) : undefined;
  for (let position = 0; position < source.count; position++) {
    if (alike !== undefined && alike !== 'files') {
      set(position, alike);
      continue;
    }
    const key = digests.key(position);
    const ref = folder.index.answerOf(digests.ids, position, key);
    const decision = decide(ref && { state: ref.state, sameRequest: ref.key.equals(key), hasFiles: ref.hasFiles }, mode);
    if (decision === 'files') byFiles.set(position, { ...ref!, key: Buffer.from(ref!.key) });
    // Counted as answered by the offline server only when nothing since answered it: a real failure is a failure.
    else if (ref === undefined && SEND.has(ACTIONS.indexOf(decision.action)) && folder.index.setAsideOf(digests.ids, position)) {
      // An answer of the offline server is no answer for a run against an API: the job is sent again.
      plan.actions[position] = ACTIONS.indexOf('rerun');
      plan.reasons[position] = SEND_REASONS.indexOf('offline');
      plan.offline++;
    } else {
      set(position, decision);
      if (ref === undefined && !mode.force && folder.index.hasPositional(key)) positional.add(position);
    }
  }
  if (byFiles.size === 0 && positional.size === 0 && !budget) return plan;

  const unpriced = new Set<string>();
  const wanted = (position: number): boolean =>
    position >= source.count || byFiles.has(position) || positional.has(position) || (budget !== undefined && SEND.has(plan.actions[position]!));
  for await (const { position, job } of source.pick(wanted, firstWanted(wanted))) {
    if (position >= source.count || !digests.sends(position, job, fingerprint(job))) throw jobFilesChanged();
    const ref = byFiles.get(position);
    if (ref) await decideFromRecord(plan, position, job, await folder.readRecord(ref), folder.dir, mode, set);
    if (positional.has(position)) {
      // Whether the job is still id-less or was given an id since, the answer to its request is not paid for twice.
      const taken = folder.index.takePositional(digests.key(position), (id) => isPositionalId(id, job.source.file));
      if (taken) await decideFromRecord(plan, position, job, await folder.readRecord(taken.ref), folder.dir, mode, set, true);
    }
    if (budget && SEND.has(plan.actions[position]!) && budget.worstCaseUsd(job) === null) unpriced.add(job.model);
  }
  if (unpriced.size > 0) {
    const models = [...unpriced];
    throw new NightshiftError('E_USAGE', `A budget needs the worst-case cost of every job to send, and there is none for some jobs of ${models.join(', ')}.`, { models });
  }
  return plan;
}

/**
 * Decides a job from a record of its request: its own success with files, or (`adopted`) an answer journaled under
 * the positional id an earlier release gave it, which the job takes over under its own id (its images renamed to
 * match) when nothing is to be sent.
 */
async function decideFromRecord(
  plan: Plan,
  position: number,
  job: Job,
  record: JobRecord,
  outDir: string,
  mode: PlanMode,
  set: (position: number, decision: Decision) => void,
  adopted = false,
): Promise<void> {
  let decision: Decision;
  if (record.state === 'incomplete') decision = mode.onlyFailed ? { action: 'rerun', reason: 'incomplete' } : { action: 'skip' };
  else if (record.state === 'failed') {
    // A failure to make some of the job's images again: the lost ones are made again, the others kept.
    const byFiles = await decideByFiles(job, record.files, outDir, {});
    if (byFiles.action === 'rerun') decision = { ...byFiles, reason: 'failed' };
    else {
      // Every image is back (put back by hand): the job is done with them, nothing to send.
      const { error: _error, status: _status, ...rest } = record;
      record = { ...rest, state: 'done' };
      decision = byFiles.action === 'skip' ? { action: 'move', moves: [], ...(byFiles.kept ? { kept: byFiles.kept } : {}) } : byFiles;
    }
  } else decision = record.files.length > 0 ? await decideByFiles(job, record.files, outDir, mode) : { action: 'skip' };
  // Left out by --only-failed (its images lost): the answer stays under the positional id, for a later run to take.
  if (adopted && decision.action === 'leave') return;
  set(position, decision);
  if ('kept' in decision && decision.kept) plan.kept.push({ id: job.id, paths: decision.kept });
  if (decision.action === 'rerun' && decision.images) plan.partial.set(position, { images: decision.images, record: { ...record, id: job.id } });
  if (decision.action !== 'skip' && decision.action !== 'move') return;
  const moves = decision.action === 'move' ? decision.moves : [];
  if (decision.action === 'move' || adopted) plan.moves.push({ job: { id: job.id, source: job.source }, moves, record });
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

/** Whether the plan sends the job at `position`. */
export const sends = (plan: Plan, position: number): boolean => SEND.has(plan.actions[position]!);

/**
 * The jobs to send, in input order. A job whose request differs from the one planned (its file changed since)
 * stops the run rather than be sent unplanned.
 */
export async function* jobsToSend(source: JobSource, plan: Plan): AsyncGenerator<ToSend> {
  const wanted = (position: number): boolean => position >= plan.actions.length || SEND.has(plan.actions[position]!);
  for await (const { position, job } of source.pick(wanted, firstWanted(wanted))) {
    if (position >= plan.actions.length) throw jobFilesChanged();
    const fp = fingerprint(job);
    if (!source.digests.sends(position, job, fp)) throw jobFilesChanged();
    const partial = plan.partial.get(position);
    yield { job, fp, position, reason: SEND_REASONS[plan.reasons[position]!] as SendReason, ...(partial ? { partial } : {}) };
  }
}

/** The first position `wanted` accepts (one past the jobs planned when it accepts none of them). */
function firstWanted(wanted: (position: number) => boolean): number {
  let position = 0;
  while (!wanted(position)) position++;
  return position;
}

/**
 * Plans `source` against the journal in `outDir` without taking the folder: what a run would do now, for `estimate`
 * and `run --dry-run`. Reads only; a folder without a journal plans every job as new. `origin` is where the run's
 * answers would come from (see `IndexOptions.origin`).
 */
export async function planFromJournal(
  source: JobSource,
  outDir: string,
  { origin, mode = {}, fresh = false }: { origin: string; mode?: PlanMode; fresh?: boolean },
): Promise<{ plan: Plan; index: JournalIndex }> {
  const path = join(outDir, JOURNAL_FILE);
  // A fresh start sets the journal aside: every job is new.
  const index = fresh ? new JournalIndex(source.digests.ids, { origin }) : await indexJournal(path, { ids: source.digests.ids, origin });
  let reader: RecordReader | undefined;
  try {
    const readRecord = async (ref: RecordRef): Promise<JobRecord> => (reader ??= await RecordReader.open(path)).read(ref);
    return { plan: await planJobs(source, { dir: outDir, index, readRecord }, { mode }), index };
  } finally {
    await reader?.close();
  }
}

/** What `run` and `estimate` say of images kept although they are not the ones nightshift wrote. */
export function keptMessage(id: string, paths: readonly string[]): string {
  const one = paths.length === 1;
  return `job ${id}: ${paths.join(', ')} ${one ? 'is' : 'are'} not the image nightshift wrote (changed since); kept as ${one ? 'it is' : 'they are'}, not made again (--force makes ${one ? 'it' : 'them'} again)`;
}

/** The request a job to send makes: the job itself, or, when only some of its images are made again, the job asking for those alone. */
export function requestOf({ job, partial }: Pick<ToSend, 'job' | 'partial'>): Job {
  return partial ? { ...job, body: { ...job.body, n: partial.images.length } } : job;
}
