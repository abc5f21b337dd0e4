import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { JobState, ProducedFile } from '../output/journal.js';
import { expandOutput } from '../jobs/output-path.js';
import { isFileSystemError } from '../common/fs-errors.js';
import { isWholeImage } from '../common/image-info.js';
import type { Job } from '../common/types.js';

/** How a rerun treats the jobs already in the journal. */
export interface PlanMode {
  /** Rerun only jobs whose last outcome was a failure or an answer cut off (`incomplete`). @default false */
  onlyFailed?: boolean;
  /** Send every job again, whatever the journal says. @default false */
  force?: boolean;
}

/** Why a job that ran before is sent again. */
export type RerunReason = 'failed' | 'incomplete' | 'changed' | 'missing' | 'damaged' | 'forced';

/** What to do with one job. */
export type Decision =
  /**
   * Succeeded before with the same request and its files are intact, or was cut off with the same request (it was
   * paid for, and the same request would be cut off again): nothing to send. `kept`: its images that are whole
   * images but not the ones nightshift wrote (retouched by hand), kept as they are.
   */
  | { action: 'skip'; kept?: string[] }
  /** Succeeded before with the same request, but its image files should carry other names: move them. */
  | { action: 'move'; moves: { from: string; to: string }[]; kept?: string[] }
  /** Never ran. */
  | { action: 'new' }
  /**
   * Ran before but failed (or, with --only-failed, was cut off), its request changed, or its files are missing or
   * damaged. `images`: the only images to make again (numbered from 1), when the others are still there; `kept`:
   * those of the others changed by hand, as for `skip`.
   */
  | { action: 'rerun'; reason: RerunReason; images?: number[]; kept?: string[] }
  /** Left out by --only-failed. */
  | { action: 'leave' };

/** What became of an image a job wrote, found by reading it back. */
export type FileState = 'intact' | 'missing' | 'damaged' | 'modified';

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
    if (record?.state === 'failed') return failed(record);
    if (record?.state === 'incomplete') return { action: 'rerun', reason: 'incomplete' };
    // What is already done still counts as done (and renamed images cost nothing); only sending is held back.
    const decision = decide(record, {});
    return decision === 'files' || decision.action === 'skip' ? decision : { action: 'leave' };
  }
  if (!record) return { action: 'new' };
  if (mode.force) return { action: 'rerun', reason: 'forced' };
  if (record.state === 'failed') return failed(record);
  if (!record.sameRequest) return { action: 'rerun', reason: 'changed' };
  if (record.state === 'incomplete') return { action: 'skip' };
  return record.hasFiles ? 'files' : { action: 'skip' };
}

/**
 * A failure is sent again; a failure to make some images again lists the job's images (see `run/attempt.ts`), which
 * decide which of them to make: those still there are kept.
 */
const failed = (record: KnownOutcome): Decision | 'files' => (record.sameRequest && record.hasFiles ? 'files' : { action: 'rerun', reason: 'failed' });

/**
 * Completes {@link decide} for a job whose earlier success produced `files`: reads them back, which is how a
 * deleted or damaged image is noticed, and names the moves when the job's `output` now names them otherwise. Only
 * the images missing or damaged are made again. An image that is whole but not the one written (retouched by hand)
 * is kept and named in `kept`: paying to overwrite someone's work is never silent (`--force` does it).
 */
export async function decideByFiles(job: Job, files: readonly ProducedFile[], outDir: string, mode: PlanMode): Promise<Decision> {
  const states: FileState[] = [];
  for (const file of files) states.push(await fileState(outDir, file));
  const broken = states.flatMap((state, index) => (state === 'missing' || state === 'damaged' ? [index + 1] : []));
  const kept = files.filter((_, index) => states[index] === 'modified').map((file) => file.path);
  const keptField = kept.length > 0 ? { kept } : {};
  if (broken.length > 0) {
    if (mode.onlyFailed) return { action: 'leave' };
    const reason = states.includes('damaged') ? 'damaged' : 'missing';
    return broken.length < files.length ? { action: 'rerun', reason, images: broken, ...keptField } : { action: 'rerun', reason };
  }
  const wanted = expectedImagePaths(job, files.length);
  const moves = files.map((file, index) => ({ from: file.path, to: wanted[index] ?? file.path })).filter((move) => move.from !== move.to);
  return moves.length > 0 ? { action: 'move', moves, ...keptField } : { action: 'skip', ...keptField };
}

/** The paths (relative to the output folder) a job's images should have under its current `output`. */
export function expectedImagePaths(job: Job, count: number): string[] {
  return Array.from({ length: count }, (_, index) => `images/${expandOutput(job.output ?? '{id}-{index}.png', job.id, index + 1)}`);
}

/** What became of `file`: as written (its size and SHA-256 in the journal), gone, no whole image, or another whole image. */
export async function fileState(outDir: string, file: ProducedFile): Promise<FileState> {
  let bytes: Buffer;
  try {
    bytes = await readFile(join(outDir, file.path));
  } catch (error) {
    // Missing, or something other than a readable file in its place: the image is to be made again. Not a
    // file-system error: a bug, never a reason to pay for the image twice.
    if (isFileSystemError(error)) return 'missing';
    throw error;
  }
  if (bytes.length === file.bytes && createHash('sha256').update(bytes).digest('hex') === file.sha256) return 'intact';
  return isWholeImage(bytes) ? 'modified' : 'damaged';
}
