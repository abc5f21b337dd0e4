import { lstat, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { NightshiftError } from '../common/errors.js';
import type { CliDefaults } from '../jobs/defaults.js';
import { validateJobFiles, type ValidationResult } from '../jobs/load.js';
import type { ServiceTier } from '../jobs/schema.js';
import { shutdownNotices } from '../jobs/model-lifecycle.js';
import { jobsInFiles, jobsInMemory, type JobSource } from '../jobs/source.js';
import { SAVED_VALIDATION, STATE_DIR } from '../output/folder.js';
import type { CliIO } from './io.js';
import { formatProblems } from './problems.js';
import { printJson } from './table.js';
import { count } from './words.js';

/**
 * Memory for keeping validated jobs between passes. Job files whose jobs fit are read and validated once; larger
 * ones are read again for each pass (planning, sending, rebuilding results.csv), so memory stays flat.
 */
export const KEEP_JOBS_BYTES = 32 * 1024 * 1024;


/** Job files found valid: what validation learned, and the jobs. */
export interface ValidJobs extends Omit<ValidationResult, 'problems' | 'jobs'> {
  /** The jobs kept from validation when they fit {@link KEEP_JOBS_BYTES}; otherwise the files, read again for each pass. */
  jobs: JobSource;
}

/** The flags that fill what jobs leave out, as `run`, `validate` and `estimate` take them. */
export interface DefaultFlags {
  model: string | undefined;
  system: string | undefined;
  'service-tier'?: ServiceTier | undefined;
  temperature?: number | undefined;
  'max-completion-tokens'?: number | undefined;
}

/** Defaults from `--model`, `--system`, `--service-tier`, `--temperature` and `--max-completion-tokens`, as `run`, `validate` and `estimate` apply them. */
export function jobDefaults(flags: DefaultFlags): CliDefaults {
  const serviceTier = flags['service-tier'];
  const maxCompletionTokens = flags['max-completion-tokens'];
  return {
    ...(flags.model ? { model: flags.model } : {}),
    ...(flags.system ? { system: flags.system } : {}),
    ...(serviceTier ? { serviceTier } : {}),
    ...(flags.temperature !== undefined ? { temperature: flags.temperature } : {}),
    ...(maxCompletionTokens !== undefined ? { maxCompletionTokens } : {}),
  };
}

/** Validates job files; on any problem prints them all and throws `E_VALIDATION` (exit 2). */
export async function loadOrExplain(
  files: string[],
  defaults: CliDefaults,
  io: CliIO,
  {
    outDir,
    say,
    names,
    json = false,
  }: { outDir?: string; say?: (line: string) => void; names?: ReadonlyMap<string, string>; /** Problems as a JSON object on stdout. */ json?: boolean } = {},
): Promise<ValidJobs> {
  const shown = files.map((file) => names?.get(file) ?? file).join(', ');
  // Jobs take several times their size on disk in memory: files that clearly will not fit are streamed from the start.
  const size = await totalSize(files);
  const keep = size * 4 <= KEEP_JOBS_BYTES ? { maxBytes: KEEP_JOBS_BYTES } : undefined;
  if (!keep) io.onLargeJobs?.();
  // Checking a large file takes seconds: say what is going on rather than sit silent.
  const started = Date.now();
  if (!keep) say?.(`checking ${shown} (${(size / 1e6).toFixed(1)} MB)`);
  // Large files are validated once per output folder: a resume validates only what changed since.
  // Not through a link: the run refuses a linked state folder (exit 4), and must not have written where it leads first.
  const saved = !keep && outDir && !(await isLink(join(outDir, STATE_DIR))) ? { saved: join(outDir, SAVED_VALIDATION) } : {};
  const { problems, jobs, digests, newJobsFrom, reused, ...found } = await validateJobFiles(files, {
    defaults,
    ...(names ? { names } : {}),
    digests: true,
    ...(keep ? { keep } : {}),
    ...saved,
  });
  if (!keep && problems.length === 0) {
    const before =
      reused === undefined ? '' : reused === found.count ? ' (checked by an earlier run)' : ` (${reused} checked by an earlier run, ${found.count - reused} new)`;
    say?.(`${count(found.count, 'job')} valid${before} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
  if (problems.length > 0) {
    if (json) printJson(io.stdout, { valid: found.count, kinds: Object.fromEntries(found.kinds), problems });
    else io.stderr(formatProblems(problems));
    throw new NightshiftError(
      'E_VALIDATION',
      `${problems.length} problem${problems.length === 1 ? '' : 's'} in the job file${files.length === 1 ? '' : 's'}; nothing was sent.`,
      { problems: problems.length },
    );
  }
  // A model OpenAI has shut down fails every request: worth a word before anything is sent.
  for (const notice of shutdownNotices(found.models, (io.now ?? Date.now)())) io.stderr(`warning: ${notice}\n`);
  // An empty file is almost always the wrong file: say so rather than report an empty success.
  if (found.count === 0) throw new NightshiftError('E_VALIDATION', `No jobs in ${shown}; nothing was sent.`);
  return { ...found, jobs: jobs ? jobsInMemory(jobs, digests) : jobsInFiles(files, { count: found.count, digests: digests!, defaults, newJobsFrom, names }) };
}

/** The files' total size in bytes; a file that cannot be read counts 0 (validation reports it). */
async function totalSize(files: readonly string[]): Promise<number> {
  const sizes = await Promise.all(
    files.map((file) =>
      stat(file).then(
        (stats) => stats.size,
        // Whatever stops the stat (missing, unreadable) stops the read too, and validation reports it with the reason.
        () => 0,
      ),
    ),
  );
  return sizes.reduce((sum, size) => sum + size, 0);
}

/** True when `path` is a symbolic link; false when it is anything else or cannot be looked at (the run reports that). */
async function isLink(path: string): Promise<boolean> {
  return lstat(path).then(
    (stats) => stats.isSymbolicLink(),
    () => false,
  );
}
