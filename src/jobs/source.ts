import { NightshiftError } from '../common/errors.js';
import type { Job } from '../common/types.js';
import type { CliDefaults } from './defaults.js';
import { JobDigests } from './digests.js';
import { pickJobs, streamJobs, type ReadPoint } from './load.js';

/**
 * The jobs of a run, read as often as the run needs (planning, sending, rebuilding results.csv) and never all
 * held at once.
 */
export interface JobSource {
  /** How many jobs each pass yields. */
  count: number;
  /** A new pass over the jobs, in input order. */
  open(): AsyncIterable<Job>;
  /**
   * A pass yielding only the jobs at the positions `wanted` accepts, with their positions, passing over the others
   * cheaply (a resume that sends a few jobs of a million). No position before `first` is wanted.
   */
  pick(wanted: (position: number) => boolean, first: number): AsyncIterable<{ position: number; job: Job }>;
  /** Each job's id and request fingerprint, by position: enough to plan the run without reading the jobs. */
  digests: JobDigests;
  /** The jobs are the ones validated, whatever happens to their files (kept in memory): no pass needs to check them. */
  readonly settled?: boolean;
}

/**
 * The error for job files that no longer hold the jobs validated and planned (a line inserted, removed or edited
 * during the run): they must be validated again.
 */
export const jobFilesChanged = (): NightshiftError =>
  new NightshiftError('E_VALIDATION', 'The job files changed during the run; stopped. Run the same command again to validate and continue.');

/** A {@link JobSource} over jobs already in memory (small job files, tests); `digests` when validation made them. */
export function jobsInMemory(jobs: readonly Job[], digests = JobDigests.of(jobs)): JobSource {
  return {
    count: jobs.length,
    digests,
    settled: true,
    open: async function* () {
      yield* jobs;
    },
    pick: async function* (wanted, first) {
      for (let position = first; position < jobs.length; position++) if (wanted(position)) yield { position, job: jobs[position]! };
    },
  };
}

/**
 * A {@link JobSource} over job files that validation found valid, read again for each pass: memory stays flat
 * however many jobs they hold. `newJobsFrom` is where the jobs a saved validation did not cover start: a pass that
 * wants none before them starts reading there.
 */
export function jobsInFiles(
  files: readonly string[],
  {
    count,
    digests,
    defaults,
    newJobsFrom,
    names,
  }: { count: number; digests: JobDigests; defaults: CliDefaults; newJobsFrom?: ReadPoint | undefined; names?: ReadonlyMap<string, string> | undefined },
): JobSource {
  const options = { defaults, ...(names ? { names } : {}) };
  return {
    count,
    digests,
    open: () => streamJobs(files, { ...options, ids: digests.ids }),
    pick: (wanted, first) => pickJobs(files, wanted, { ...options, ids: digests.ids, ...(newJobsFrom && first >= newJobsFrom.position ? { from: newJobsFrom } : {}) }),
  };
}
