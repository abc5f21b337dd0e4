import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { JobState, ProducedFile } from '../output/journal.js';
import { expandOutput } from '../jobs/output-path.js';
import { isFileSystemError } from '../common/fs-errors.js';
import type { Job } from '../common/types.js';

/** How a rerun treats the jobs already in the journal. */
export interface PlanMode {
  /** Rerun only jobs whose last outcome was a failure or an answer cut off (`incomplete`). @default false */
  onlyFailed?: boolean;
  /** Send every job again, whatever the journal says. @default false */
  force?: boolean;
}

/** What to do with one job. */
export type Decision =
  /**
   * Succeeded before with the same request and its files are intact, or was cut off with the same request (it was
   * paid for, and the same request would be cut off again): nothing to send.
   */
  | { action: 'skip' }
  /** Succeeded before with the same request, but its image files should carry other names: move them. */
  | { action: 'move'; moves: { from: string; to: string }[] }
  /** Never ran. */
  | { action: 'new' }
  /** Ran before but failed (or, with --only-failed, was cut off), its request changed, or its files are missing or damaged. */
  | { action: 'rerun'; reason: 'failed' | 'incomplete' | 'changed' | 'damaged' | 'forced' }
  /** Left out by --only-failed. */
  | { action: 'leave' };

/** What the journal holds for a job, as much as planning needs. */
export interface KnownOutcome {
  state: JobState;
  /** True when it is the outcome of the request the job sends now. */
  sameRequest: boolean;
  /** It produced files (images). Only a success of the same request is looked at, so only its files matter. */
  hasFiles: boolean;
}

/**
 * Decides from the journal alone what a job needs, or answers `files` when that depends on the files a previous
 * success of the same request produced (see {@link decideByFiles}). Pure: a million jobs are planned without
 * reading one of them again.
 */
export function decide(record: KnownOutcome | undefined, mode: PlanMode): Decision | 'files' {
  if (mode.onlyFailed) {
    if (record?.state === 'failed') return { action: 'rerun', reason: 'failed' };
    if (record?.state === 'incomplete') return { action: 'rerun', reason: 'incomplete' };
    // What is already done still counts as done (and renamed images cost nothing); only sending is held back.
    const decision = decide(record, {});
    return decision === 'files' || decision.action === 'skip' ? decision : { action: 'leave' };
  }
  if (!record) return { action: 'new' };
  if (mode.force) return { action: 'rerun', reason: 'forced' };
  if (record.state === 'failed') return { action: 'rerun', reason: 'failed' };
  if (!record.sameRequest) return { action: 'rerun', reason: 'changed' };
  if (record.state === 'incomplete') return { action: 'skip' };
  return record.hasFiles ? 'files' : { action: 'skip' };
}

/**
 * Completes {@link decide} for a job whose earlier success produced `files`: reads them back, which is how a
 * deleted or damaged image is noticed, and names the moves when the job's `output` now names them otherwise.
 */
export async function decideByFiles(job: Job, files: readonly ProducedFile[], outDir: string, mode: PlanMode): Promise<Decision> {
  for (const file of files) {
    if (!(await intact(outDir, file))) return mode.onlyFailed ? { action: 'leave' } : { action: 'rerun', reason: 'damaged' };
  }
  const wanted = expectedImagePaths(job, files.length);
  const moves = files.map((file, index) => ({ from: file.path, to: wanted[index] ?? file.path })).filter((move) => move.from !== move.to);
  return moves.length > 0 ? { action: 'move', moves } : { action: 'skip' };
}

/** The paths (relative to the output folder) a job's images should have under its current `output`. */
export function expectedImagePaths(job: Job, count: number): string[] {
  return Array.from({ length: count }, (_, index) => `images/${expandOutput(job.output ?? '{id}-{index}.png', job.id, index + 1)}`);
}

async function intact(outDir: string, file: ProducedFile): Promise<boolean> {
  try {
    const bytes = await readFile(join(outDir, file.path));
    return bytes.length === file.bytes && createHash('sha256').update(bytes).digest('hex') === file.sha256;
  } catch (error) {
    // Missing, or something other than a readable file in its place: the image is to be made again. Not a
    // file-system error: a bug, never a reason to pay for the image twice.
    if (isFileSystemError(error)) return false;
    throw error;
  }
}
