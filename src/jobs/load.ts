import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { NightshiftError } from '../common/errors.js';
import { IdTable } from '../common/id-table.js';
import { JobDigests } from './digests.js';
import type { Job, JobKind, Problem } from '../common/types.js';
import { freeId } from './content-id.js';
import type { CliDefaults, FileDefaults } from './defaults.js';
import { cachedLoader, readLocalImage } from './images.js';
import { approximateBytes } from './approximate-bytes.js';
import { toJob } from './to-job.js';
import { settleBatch, splitForWorkers, type JobDigest, type ParallelOptions } from './parallel-check.js';
import { toProblem } from './problems.js';
import { canReadFrom, readRecords, type ReadFrom } from './read.js';
import { FileTally, hashPrefix, loadValidation, saveValidation, type SavedFile } from './saved-validation.js';
import { createUniquenessCheck, type UniquenessCheck } from './unique.js';

/** How to load job files. */
export interface LoadOptions {
  /**
   * Command-line defaults (`--model`, `--system`), used when neither the job nor its file's `defaults`
   * sets the field. `model` reaches image jobs only when it names an image model.
   */
  defaults?: CliDefaults;
  /**
   * How to name files in jobs and problems when not by their path: standard input, saved to a file to be read as often
   * as a run needs, is `<stdin>`.
   */
  names?: ReadonlyMap<string, string>;
}

/** What {@link validateJobFiles} may keep of the valid jobs. */
export interface KeepOptions {
  /**
   * Keep the jobs when all of them fit in about this many bytes of memory, so that later passes need not read and
   * validate the files again; beyond it they are dropped as soon as it is passed, and memory stays flat.
   */
  maxBytes: number;
}

/** The valid jobs of all files, in file order, and every problem found. Run the jobs only when there is no problem. */
export interface LoadResult {
  jobs: Job[];
  problems: Problem[];
}

/** What validating job files found, without keeping the jobs: stream them with {@link streamJobs} when there is no problem. */
export interface ValidationResult {
  problems: Problem[];
  /** Valid jobs. */
  count: number;
  /** Valid jobs of each kind, in first-seen order. */
  kinds: Map<JobKind, number>;
  /** The models of the valid jobs, for checking before anything is sent that each is priced. */
  models: Set<string>;
  /** Every valid job, in file order, when there is no problem and they fit `keep.maxBytes`. */
  jobs?: Job[];
  /** Each valid job's id and request fingerprint, when asked for (`digests: true`) and there is no problem. */
  digests?: JobDigests;
  /**
   * Where the jobs that a saved validation did not cover begin (jobs added at the end of the last file): reading
   * the files for those jobs can start there.
   */
  newJobsFrom?: ReadPoint;
  /** Jobs a saved validation vouched for, not checked again (the rest, if any, were added since). */
  reused?: number;
}

/** A place in the job files to start reading from: job `position`, the first of file number `file` from `byte` on. */
export type ReadPoint = ReadFrom & { position: number; file: number };

/** How {@link checkJobs} reads the files. */
interface Reading {
  /** Start part-way through. */
  from?: ReadPoint;
  /** Sees every byte read, by file number. */
  onBytes?: (file: number, chunk: Buffer) => void;
  /** Called each time a job's local image is read (its bytes are part of the request). */
  onLocalImage?: () => void;
  /** The ids validation gave the jobs, numbered by position: identical id-less jobs get the same numbers again. */
  ids?: IdTable;
  /** Validate large `.jsonl` files in byte ranges, in worker threads (when reading them whole, for every record). */
  parallel?: ParallelOptions;
}

/**
 * What checking one record gives: a valid job (or, checked in a worker thread, its digest), the record's problems
 * (several records may share a file), or a job record passed over unread.
 */
type Checked = { job: Job } | { digest: JobDigest } | { problems: Problem[] } | { skipped: true };

/**
 * Reads, validates and normalizes job files (`.json`, `.jsonl`, `.csv`) record by record, yielding each valid job
 * and each record's problems as they come. With `unique`, ids used twice and image files written twice are problems.
 */
async function* checkJobs(
  files: readonly string[],
  options: LoadOptions,
  unique?: UniquenessCheck,
  wanted?: (position: number) => boolean,
  reading: Reading = {},
): AsyncGenerator<Checked> {
  const { from } = reading;
  const loadImage = cachedLoader(async (path: string) => {
    reading.onLocalImage?.();
    return readLocalImage(path);
  });
  const cli = options.defaults ?? {};
  // Job records seen, each a job in files that validate.
  let position = from?.position ?? 0;
  // Which ids identical id-less jobs before this one took: validation's table, the one it made, or this pass's own.
  const seen = unique || reading.ids ? undefined : new IdTable();
  // The number to try first for identical id-less jobs (see `freeId`).
  const numbering = new Map<string, number>();
  const takenBefore = (at: number) => (candidate: string): boolean => {
    if (unique) return unique.taken(candidate);
    if (reading.ids) {
      const owner = reading.ids.indexOf(candidate);
      return owner >= 0 && owner !== at;
    }
    return seen!.indexOf(candidate) >= 0;
  };

  for (const [fileIndex, file] of files.entries()) {
    if (from && fileIndex < from.file) continue;
    let fileDefaults: FileDefaults = {};
    const onBytes = reading.onBytes && ((chunk: Buffer) => reading.onBytes!(fileIndex, chunk));
    const start = from && fileIndex === from.file ? from : undefined;
    // The position of the file's record number `index` (in a file whose records are all jobs, as when picking).
    const base = position - (start?.index ?? 1);
    const skip = wanted && ((index: number) => !wanted(base + index));
    const name = options.names?.get(file);
    const split = reading.parallel && !from && !wanted && canReadFrom(file) ? await splitForWorkers(file, name ?? file, cli, reading.parallel) : undefined;
    // Line breaks in the part of a split file this thread reads: the workers' lines are numbered from there on.
    let newlines = 0;
    const countLines = (chunk: Buffer): void => {
      for (let at = chunk.indexOf(0x0a); at >= 0; at = chunk.indexOf(0x0a, at + 1)) newlines++;
      onBytes?.(chunk);
    };
    const records = readRecords(file, {
      ...(start ? { from: start } : {}),
      ...(split ? { to: split.mainEnd, onBytes: countLines } : onBytes ? { onBytes } : {}),
      ...(skip ? { skip } : {}),
      ...(name !== undefined ? { name } : {}),
    });
    for await (const record of records) {
      switch (record.type) {
        case 'skipped':
          position++;
          yield { skipped: true };
          break;
        case 'problem':
          yield { problems: [record.problem] };
          break;
        case 'defaults': {
          const parsed = (await import('./defaults.js')).parseFileDefaults(record.value);
          fileDefaults = parsed.defaults;
          if (parsed.problems.length > 0) yield { problems: parsed.problems.map((detail) => toProblem({ source: record.source }, detail)) };
          break;
        }
        case 'header': {
          const problems = (await import('./csv-fields.js')).checkHeader(record.columns).map((detail) => toProblem({ source: record.source, csv: true }, detail));
          if (problems.length > 0) yield { problems };
          break;
        }
        case 'job':
        case 'row': {
          const at = position++;
          if (wanted && !wanted(at)) {
            yield { skipped: true };
            break;
          }
          let normalized = toJob(record, { cli, fileDefaults, loadImage });
          if (normalized instanceof Promise) normalized = await normalized;
          if ('job' in normalized && normalized.idFromContent) {
            normalized.job.id = freeId(normalized.job.id, takenBefore(at), numbering);
            seen?.add(normalized.job.id);
          }
          const id = 'job' in normalized ? normalized.job.id : normalized.id;
          const taken = id === undefined || !unique ? [] : unique.id(id, record.source);
          // A job with a taken id would also clash on its default file names: one problem is enough.
          if (unique && 'job' in normalized && taken.length === 0) taken.push(...unique.files(normalized.job));
          const problems = 'problems' in normalized ? [...normalized.problems] : [];
          problems.push(...taken.map((detail) => toProblem({ source: record.source, jobId: id, csv: record.type === 'row' }, detail)));
          if (problems.length > 0) yield { problems };
          else if ('job' in normalized) yield { job: normalized.job };
          break;
        }
      }
    }
    if (!split) continue;
    try {
      let firstLine = 1 + newlines;
      for (const range of split.ranges) {
        for await (const batch of range) yield* settleBatch(batch, name ?? file, firstLine, unique, takenBefore, numbering, () => position++);
        firstLine += range.newlines;
        if (range.localImages) reading.onLocalImage?.();
      }
      // The rest of the file's bytes, for those who see them all (the saved validation's hash).
      if (onBytes) for await (const chunk of createReadStream(file, { start: split.mainEnd, highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) onBytes(chunk);
    } finally {
      // Workers left at work (their outcomes no longer wanted) are stopped; those done have ended. (Should this thread's
      // own range fail, the workers finish theirs and end: each reads a range and stops.)
      await Promise.all(split.ranges.map((range) => range.close()));
    }
  }
}

/**
 * Reads, validates and normalizes job files (`.json`, `.jsonl`, `.csv`), record by record, and reports
 * every problem of every file at once, including ids used twice and image files written twice.
 * Keeps every job in memory: for large files, {@link validateJobFiles} then {@link streamJobs}.
 */
export async function loadJobs(files: readonly string[], options: LoadOptions = {}): Promise<LoadResult> {
  const result: LoadResult = { jobs: [], problems: [] };
  for await (const checked of checkJobs(files, options, createUniquenessCheck())) {
    if ('job' in checked) result.jobs.push(checked.job);
    else if ('problems' in checked) result.problems.push(...checked.problems);
  }
  return result;
}

/** The valid jobs of job files, one at a time in file order, as {@link loadJobs} keeps them but without holding them. */
export async function* readValidJobs(files: readonly string[], options: LoadOptions = {}): AsyncGenerator<Job> {
  for await (const checked of checkJobs(files, options, createUniquenessCheck())) if ('job' in checked) yield checked.job;
}

/** Options of {@link validateJobFiles}. */
export interface ValidateOptions extends LoadOptions {
  keep?: KeepOptions;
  /** Make {@link ValidationResult.digests}. */
  digests?: boolean;
  /**
   * A file to save the validation in (with digests) and to reuse it from: files that still hold the bytes it was
   * made from are not validated again, and jobs added at the end of the last `.jsonl` file are validated alone.
   */
  saved?: string;
  /**
   * How to validate large `.jsonl` files in worker threads, or `false` for one thread. Files are split only when their
   * jobs are not kept (`keep` not given).
   */
  parallel?: ParallelOptions | false;
}

/**
 * Validates job files completely, as {@link loadJobs} does, keeping only the problems and what must be known before
 * anything is sent (ids and image files, to find duplicates; counts; models). The jobs themselves are dropped.
 */
export async function validateJobFiles(files: readonly string[], options: ValidateOptions = {}): Promise<ValidationResult> {
  const reused = options.saved ? await reuseValidation(files, options, options.saved) : undefined;
  if (reused) return reused;
  const result: ValidationResult = { problems: [], count: 0, kinds: new Map(), models: new Set() };
  let kept: Job[] | undefined = options.keep ? [] : undefined;
  let bytes = 0;
  // In files without problems, the uniqueness check numbers ids exactly as the jobs come: digest positions.
  const digests = options.digests || options.saved ? new JobDigests() : undefined;
  const tallies = options.saved ? files.map(() => new FileTally()) : undefined;
  // By the name jobs give their file.
  const fileNumbers = new Map(files.map((file, index) => [options.names?.get(file) ?? file, index]));
  let localImages = false;
  const reading: Reading = {
    ...(tallies ? { onBytes: (file: number, chunk: Buffer) => tallies[file]!.see(chunk) } : {}),
    onLocalImage: () => (localImages = true),
    // Jobs kept in memory come from the thread that reads them: only files too large to keep are split.
    ...(options.parallel !== false && !options.keep ? { parallel: options.parallel ?? {} } : {}),
  };
  for await (const checked of checkJobs(files, options, createUniquenessCheck(digests?.ids), undefined, reading)) {
    if ('problems' in checked) {
      result.problems.push(...checked.problems);
      kept = undefined;
      continue;
    }
    if ('skipped' in checked) continue;
    const job = 'job' in checked ? checked.job : checked.digest;
    if (kept && 'job' in checked) {
      bytes += approximateBytes(job);
      if (bytes <= options.keep!.maxBytes) kept.push(checked.job);
      else kept = undefined;
    }
    count(result, job);
    if (digests && result.problems.length === 0) {
      if ('job' in checked) digests[kept ? 'defer' : 'add'](checked.job);
      else digests.addKey(checked.digest.key);
    }
    if (tallies) tallies[fileNumbers.get(job.source.file)!]!.records++;
  }
  if (kept) result.jobs = kept;
  else digests?.settle();
  if (!digests || result.problems.length > 0) return result;
  result.digests = digests;
  // A job's local image is not among the bytes a saved validation names: files with such jobs are validated each time.
  if (options.saved && !localImages) await save(options.saved, files, options, result, tallies!.map((tally, i) => tally.saved(files[i]!)));
  return result;
}

function count(result: ValidationResult, job: Pick<Job, 'kind' | 'model'>): void {
  result.count++;
  result.kinds.set(job.kind, (result.kinds.get(job.kind) ?? 0) + 1);
  result.models.add(job.model);
}

/** Saves a validation for the next run (see `saved-validation.ts`). */
async function save(path: string, files: readonly string[], options: LoadOptions, result: ValidationResult, saved: SavedFile[]): Promise<void> {
  const { count: jobs, kinds, models, digests } = result;
  await saveValidation(path, { defaults: options.defaults ?? {}, files: saved, count: jobs, kinds: [...kinds], models: [...models], digests: digests! });
}

/**
 * The validation saved at `path`, when every file still holds the bytes it was made from, or holds them followed by
 * new lines (the last file, `.jsonl`, with no image jobs anywhere: their file names are not saved): then only the new
 * lines are validated, and the saved validation is brought up to date. Undefined when it cannot be reused, and when the
 * new lines have any problem: a full validation then reports every problem, where it is, as always.
 */
async function reuseValidation(files: readonly string[], options: LoadOptions, path: string): Promise<ValidationResult | undefined> {
  const saved = await loadValidation(path, files, options.defaults ?? {});
  if (!saved) return undefined;
  let grown: { file: number; tally: FileTally } | undefined;
  for (const [index, file] of files.entries()) {
    const entry = saved.files[index]!;
    const size = await stat(file).then((stats) => stats.size, () => -1);
    if (size === entry.bytes) {
      if ((await hashPrefix(file, size)).digest('hex') !== entry.sha256) return undefined;
      continue;
    }
    const appendable = index === files.length - 1 && size > entry.bytes && entry.endsWithNewline && canReadFrom(file);
    if (!appendable || saved.kinds.some(([kind]) => kind === 'image')) return undefined;
    const hash = await hashPrefix(file, entry.bytes);
    if (hash.copy().digest('hex') !== entry.sha256) return undefined;
    grown = { file: index, tally: new FileTally(hash, entry.bytes, entry.lines) };
  }
  const { digests } = saved;
  const result: ValidationResult = {
    problems: [],
    count: saved.count,
    kinds: new Map(saved.kinds),
    models: new Set(saved.models),
    digests,
    reused: saved.count,
  };
  if (!grown) return result;

  const entry = saved.files[grown.file]!;
  const from: ReadPoint = { position: saved.count, file: grown.file, byte: entry.bytes, line: entry.lines + 1, index: entry.records + 1 };
  let localImages = false;
  const reading: Reading = { from, onBytes: (_file, chunk) => grown.tally.see(chunk), onLocalImage: () => (localImages = true) };
  for await (const checked of checkJobs(files, options, createUniquenessCheck(digests.ids), undefined, reading)) {
    if ('problems' in checked) return undefined;
    if (!('job' in checked)) continue;
    count(result, checked.job);
    digests.add(checked.job);
    grown.tally.records++;
  }
  result.newJobsFrom = from;
  if (!localImages) {
    const updated = saved.files.map((file, index) => (index === grown.file ? grown.tally.saved(files[index]!, entry.records + grown.tally.records) : file));
    await save(path, files, options, result, updated);
  }
  return result;
}

/**
 * Reads job files that {@link validateJobFiles} found valid again, yielding their jobs one at a time in file order.
 * A file changed since then so that a record no longer validates stops the stream with `E_VALIDATION`: nothing
 * unvalidated is ever yielded.
 */
export async function* streamJobs(files: readonly string[], options: LoadOptions & { ids?: IdTable } = {}): AsyncGenerator<Job> {
  for await (const { job } of pickJobs(files, () => true, options)) yield job;
}

/**
 * {@link streamJobs}, yielding only the jobs at the positions (0 for the first job of the first file) that `wanted`
 * accepts, each with its position. The other records are passed over without being checked or normalized; with
 * `from`, the files are read from there on (no job before it is wanted).
 */
export async function* pickJobs(
  files: readonly string[],
  wanted: (position: number) => boolean,
  options: LoadOptions & { from?: ReadPoint; ids?: IdTable } = {},
): AsyncGenerator<{ position: number; job: Job }> {
  let position = options.from?.position ?? 0;
  const reading: Reading = { ...(options.from ? { from: options.from } : {}), ...(options.ids ? { ids: options.ids } : {}) };
  for await (const checked of checkJobs(files, options, undefined, wanted, reading)) {
    if ('job' in checked) {
      yield { position: position++, job: checked.job };
      continue;
    }
    if ('skipped' in checked) {
      position++;
      continue;
    }
    // Jobs are checked here in this thread: a digest (from a worker thread) never comes.
    if (!('problems' in checked)) continue;
    const [problem] = checked.problems;
    const where = problem ? `${problem.file}:${problem.line}` : files.join(', ');
    throw new NightshiftError('E_VALIDATION', `${where} changed since it was validated and is no longer valid; stopped before sending it.`, {
      problems: checked.problems.length,
    });
  }
}
