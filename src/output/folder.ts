import { lstat, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AtomicFile, isTempFile, writeFileAtomic } from '../common/atomic-file.js';
import { messageOf, NightshiftError } from '../common/errors.js';
import { isFileSystemError, pathExists } from '../common/fs-errors.js';
import type { IdTable } from '../common/id-table.js';
import type { Job } from '../common/types.js';
import { fingerprint } from '../jobs/fingerprint.js';
import type { JobSource } from '../jobs/source.js';
import { JOURNAL_FILE, journalSize, type JobRecord, type RunRecord } from './journal.js';
import { fingerprintKey, indexedJob, indexJournal, type JournalIndex, type RecordRef } from './journal-index.js';
import { RecordReader } from './record-reader.js';
import { JournalWriter } from './journal-writer.js';
import { acquireLock } from './lock.js';
import { applyMoves, recoverMoves, type PlannedMove } from './moves.js';
import { jobResult, resultCsvLine, resultJsonLine, resultsHeader } from './results.js';
import { restoreSetAside } from './leftovers.js';
import { OrderedResults } from './ordered-results.js';
import { ResultsView } from './results-view.js';
import { UsageSummary } from './usage-table.js';

/** The view of every job's latest outcome, one row per job in input order. */
export const RESULTS_FILE = 'results.csv';
/** The same results with their exact values, one JSON object per line, for programs. */
export const RESULTS_JSONL_FILE = 'results.jsonl';
/** The view of tokens and dollars by model and kind. */
export const USAGE_FILE = 'usage.csv';
/** nightshift's own state beside the outputs: caches, safe to delete. */
export const STATE_DIR = '.nightshift';
/** Where the validation of large job files is saved for the next run (see `jobs/saved-validation.ts`). */
export const SAVED_VALIDATION = join(STATE_DIR, 'validated-jobs.bin');
/** The renames of images under way, kept until they are done and journaled (see `output/moves.ts`). */
export const MOVES_INTENT = join(STATE_DIR, 'moves.json');

/** What planning and budgeting read of the journal index; only {@link OutputFolder.record} adds to it. */
export type JournalView = Pick<JournalIndex, 'empty' | 'answerOf' | 'current' | 'currentOf' | 'recordsOf' | 'setAsideOf' | 'hasPositional' | 'takePositional' | 'spentUsd' | 'warnings'>;

/**
 * An output folder, held by one process at a time: its journal (the truth), the views rebuilt from it
 * (results.csv, results.jsonl, usage.csv) and the images. Whatever engine sends the jobs records their outcomes here.
 */
export interface OutputFolder {
  readonly dir: string;
  /** What the journal holds, in a few bytes per job: enough to plan a run. */
  readonly index: JournalView;
  /** A full record (reply text included) read back from the journal. */
  readRecord(ref: RecordRef): Promise<JobRecord>;
  /** Marks the start of a run in the journal. */
  startRun(run: Omit<RunRecord, 'type'>): Promise<void>;
  /** Renames the images of jobs whose output names changed (nothing is sent), journaling each job's new record. */
  moveImages(moves: readonly PlannedMove[], now: () => string): Promise<void>;
  /**
   * Starts the views for the run: over jobs held in memory, every view in input order as jobs finish (`sending` says
   * which jobs' rows wait for a record), so that {@link writeResults} has nothing left to rebuild; over job files,
   * results.csv with the jobs finished before the run, then each job as it is recorded.
   */
  startResults(source: JobSource, sending: (position: number) => boolean): void;
  /**
   * Journals a job's outcome. Resolves once the record is on the disk and the job counted (index, results.csv);
   * rejects with `E_OUTPUT` when the journal cannot be written, and from then on every record does.
   */
  record(job: Job, record: JobRecord): Promise<void>;
  /** Like {@link record}, for an outcome collected without its job in hand (a batch's line): no live results row. */
  collect(record: JobRecord): Promise<void>;
  /**
   * Rewrites results.csv, results.jsonl and usage.csv from the journal, a row for every job of `source` (its own
   * outcome, matched by id and request); returns the totals, and whether the job files no longer hold the jobs
   * validated (changed during the run: the rows are those of the files as they are now).
   */
  writeResults(source: JobSource): Promise<{ usage: UsageSummary; jobFilesChanged: boolean }>;
  /** Closes the journal and releases the folder. */
  close(): Promise<void>;
}

/** Options of {@link openOutputFolder}. */
export interface OpenFolderOptions {
  /** The run's jobs, as validation numbered them: the index keeps records of those jobs only. */
  ids?: IdTable;
  /** The folder is started afresh (`--fresh`): outputs without a journal are taken over rather than refused. @default false */
  fresh?: boolean;
  /**
   * Where the run's answers come from (see `JobRecord.origin`). Unless it is the offline server, the answers the
   * offline server gave earlier are set aside: they are not done, and cost nothing real. @default a real API
   */
  origin?: string;
}

/**
 * Opens an output folder for a run: creates it, proves it writable, takes its lock, removes the temporary files a
 * killed process left, and reads the journal into an index. With `ids` (the run's jobs, as validation numbered them),
 * the index keeps records of those jobs only; the others still count as spending. Outputs without a journal are
 * refused (`E_OUTPUT`) unless `fresh`: the journal was lost, and planning without it would send everything again.
 */
export async function openOutputFolder(dir: string, { ids, fresh = false, origin }: OpenFolderOptions = {}): Promise<OutputFolder> {
  await prepare(dir);
  const release = await acquireLock(dir);
  const opened: { close(): Promise<void> }[] = [];
  try {
    for (const name of [JOURNAL_FILE, STATE_DIR, 'images']) await writeOutput(join(dir, name), () => refuseLink(join(dir, name)));
    await writeOutput(dir, () => sweepTempFiles(dir));
    const journalPath = join(dir, JOURNAL_FILE);
    if (!fresh && (await journalIsBlank(journalPath))) await writeOutput(dir, () => refuseOutputsWithoutJournal(dir));
    const index = await indexJournal(journalPath, { ...(ids ? { ids } : {}), ...(origin !== undefined ? { origin } : {}) });
    const journal = await writeOutput(journalPath, () => JournalWriter.open(journalPath));
    opened.push(journal);
    const reader = await RecordReader.open(journalPath);
    opened.push(reader);
    const moves = { outDir: dir, intentPath: join(dir, MOVES_INTENT), index, journal };
    await writeOutput(join(dir, 'images'), () => recoverMoves(moves, reader));
    // The views are rewritten at the end: something in their way is found now, before anything is paid for.
    for (const name of [RESULTS_FILE, RESULTS_JSONL_FILE, USAGE_FILE]) await writeOutput(join(dir, name), () => replaceable(join(dir, name)));
    return new Folder(dir, index, journal, reader, release);
  } catch (error) {
    await closeAll(opened.reverse(), release);
    throw error;
  }
}

class Folder implements OutputFolder {
  private results: ResultsView | OrderedResults | undefined;

  constructor(
    readonly dir: string,
    readonly index: JournalIndex,
    private readonly journal: JournalWriter,
    private readonly reader: RecordReader,
    private readonly release: () => Promise<void>,
  ) {}

  readRecord(ref: RecordRef): Promise<JobRecord> {
    return this.reader.read(ref);
  }

  async startRun(run: Omit<RunRecord, 'type'>): Promise<void> {
    await writeOutput(join(this.dir, JOURNAL_FILE), () => this.journal.append({ type: 'run', ...run }));
  }

  async moveImages(moves: readonly PlannedMove[], now: () => string): Promise<void> {
    const context = { outDir: this.dir, intentPath: join(this.dir, MOVES_INTENT), index: this.index, journal: this.journal, now };
    await writeOutput(join(this.dir, 'images'), () => applyMoves(moves, context));
  }

  startResults(source: JobSource, sending: (position: number) => boolean): void {
    const path = join(this.dir, RESULTS_FILE);
    this.results = source.settled
      ? new OrderedResults(path, join(this.dir, RESULTS_JSONL_FILE), source, sending, this.index, this.reader)
      : // Records from here on are of jobs finishing now: their rows come as they finish, not in the prefill.
        new ResultsView(path, source.digests, this.index, this.reader, this.journal.bytes);
  }

  record(job: Job, record: JobRecord): Promise<void> {
    return this.append(record, job);
  }

  collect(record: JobRecord): Promise<void> {
    return this.append(record);
  }

  private append(record: JobRecord, job?: Job): Promise<void> {
    return this.journal.append(record).then(
      (location) => {
        this.index.take(indexedJob(record, location));
        if (job) this.results?.add(job, record, location.offset);
      },
      (error: unknown) => {
        throw new NightshiftError('E_OUTPUT', `Cannot write the journal in ${this.dir}: ${messageOf(error)}`, { jobId: record.id }, { cause: error });
      },
    );
  }

  async writeResults(source: JobSource): Promise<{ usage: UsageSummary; jobFilesChanged: boolean }> {
    if (this.results instanceof OrderedResults) {
      const ordered = this.results;
      this.results = undefined;
      // The views of jobs in memory were written as the run went: only usage.csv is left.
      const usage = await ordered.finish();
      if (usage) return { usage: await this.writeUsage(usage), jobFilesChanged: false };
    }
    await this.stopResults();
    const usage = new UsageSummary();
    const { index, reader } = this;
    // results.jsonl is written in the same pass as results.csv, so each record is read once.
    const jsonPath = join(this.dir, RESULTS_JSONL_FILE);
    const json = new AtomicFile(jsonPath, { durable: false });
    const { digests } = source;
    let changed = false;
    async function* lines(): AsyncGenerator<string> {
      yield resultsHeader();
      let position = 0;
      for await (const job of source.open()) {
        // Each row is the job's own outcome, found by its id and request: never by its position alone, which a line
        // inserted in the job file since validation would shift.
        // Jobs kept in memory are the ones validated: their keys are known.
        const key = source.settled ? digests.key(position) : fingerprintKey(fingerprint(job));
        if (!source.settled && (position >= source.count || digests.ids.indexOf(job.id) !== position || !key.equals(digests.key(position)))) changed = true;
        position++;
        const ref = index.current(job.id, key);
        const record = ref && (await reader.read(ref));
        usage.add(job, record);
        const result = jobResult(job, record);
        await writeOutput(jsonPath, () => json.write(resultJsonLine(result)));
        yield resultCsvLine(result);
      }
      if (position !== source.count) changed = true;
    }
    const resultsPath = join(this.dir, RESULTS_FILE);
    try {
      await writeOutput(resultsPath, () => writeFileAtomic(resultsPath, lines(), { durable: false }));
    } catch (error) {
      await json.discard();
      throw error;
    }
    await writeOutput(jsonPath, () => json.commit());
    return { usage: await this.writeUsage(usage), jobFilesChanged: changed };
  }

  private async writeUsage(usage: UsageSummary): Promise<UsageSummary> {
    const usagePath = join(this.dir, USAGE_FILE);
    await writeOutput(usagePath, () => writeFileAtomic(usagePath, usage.toCsv()));
    return usage;
  }

  async close(): Promise<void> {
    await closeAll([{ close: () => this.stopResults() }, this.reader, this.journal], this.release);
  }

  private async stopResults(): Promise<void> {
    const results = this.results;
    this.results = undefined;
    await results?.stop();
  }
}

/**
 * Closes each in turn whatever the others do, then releases the lock: a handle that fails to close never keeps the
 * folder locked. The first failure is thrown at the end.
 */
async function closeAll(handles: readonly { close(): Promise<void> }[], release: () => Promise<void>): Promise<void> {
  let failure: unknown;
  for (const handle of [...handles, { close: release }]) {
    try {
      await handle.close();
    } catch (error) {
      failure ??= error;
    }
  }
  if (failure !== undefined) throw failure;
}

/**
 * Runs one write to the output folder. Its failure (disk full, permissions, something in the way) is the
 * folder's problem, reported as `E_OUTPUT` (exit 4, no stack), not a bug; what the journal holds stays safe.
 */
async function writeOutput<T>(path: string, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (error) {
    if (error instanceof NightshiftError) throw error;
    throw new NightshiftError('E_OUTPUT', `Cannot write ${path}: ${messageOf(error)}`, { path }, { cause: error });
  }
}

/** Throws when `path` is there and is not a file, so that writing a new file over it would fail. */
async function replaceable(path: string): Promise<void> {
  await refuseLink(path);
  const stats = await lstat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (stats && !stats.isFile()) throw new Error('something other than a file is in the way');
}

/**
 * Refuses a link where nightshift writes: what it journals, views and keeps must lie in the output folder itself,
 * never in whatever a link leads to (the folder itself may be a link). Links inside `images/` are checked per image.
 */
async function refuseLink(path: string): Promise<void> {
  const stats = await lstat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (stats?.isSymbolicLink()) {
    throw new NightshiftError('E_OUTPUT', `${path} is a link: nightshift writes nothing through links in the output folder. Remove it, or choose another --out.`, { path });
  }
}

/**
 * Throws `E_OUTPUT` when the folder holds outputs (results.csv, usage.csv, a file under images/) but its journal is
 * missing or empty: a run writes its journal before any output, so the journal was deleted or emptied since.
 */
async function refuseOutputsWithoutJournal(dir: string): Promise<void> {
  const outputs: string[] = [];
  for (const name of [RESULTS_FILE, RESULTS_JSONL_FILE, USAGE_FILE]) if (await pathExists(join(dir, name))) outputs.push(name);
  if (await holdsFiles(join(dir, 'images'))) outputs.push('images/');
  if (outputs.length === 0) return;
  throw new NightshiftError(
    'E_OUTPUT',
    `${dir} holds ${outputs.join(', ')} but no ${JOURNAL_FILE}: the journal of what was done is missing or empty, so every job would be sent again. ` +
      'Restore the journal, choose another --out, or add --fresh to start this folder afresh.',
    { outDir: dir },
  );
}

/** Whether a journal holds nothing but white space (`echo > journal.jsonl` empties a file so): no record at all. */
async function journalIsBlank(path: string): Promise<boolean> {
  const size = await journalSize(path);
  if (size === 0) return true;
  // Any record takes more than this: a longer journal holds one.
  if (size > 64) return false;
  return (await readFile(path, 'utf8')).trim() === '';
}

/** Whether a folder holds a regular file at any depth (links are not what a run writes). */
async function holdsFiles(folder: string): Promise<boolean> {
  if (!(await pathExists(folder))) return false;
  const entries = await readdir(folder, { recursive: true, withFileTypes: true });
  return entries.some((entry) => entry.isFile());
}

async function prepare(dir: string): Promise<void> {
  try {
    // `images/` is made by the first image written: a run without image jobs has none.
    await mkdir(dir, { recursive: true });
    // Prove the folder is writable now rather than after the first paid request.
    const probe = join(dir, `.write-test-${process.pid}`);
    // Maybe left by a killed process with this PID; `wx` never truncates what a link put in its place leads to.
    await rm(probe, { force: true });
    await writeFile(probe, '', { flag: 'wx' });
    await rm(probe, { force: true });
  } catch (error) {
    throw new NightshiftError('E_OUTPUT', `Cannot write to the output folder ${dir}: ${messageOf(error)}`, { outDir: dir }, { cause: error });
  }
}

/**
 * Removes temporary files a killed process left in the output folder, its `.nightshift/` and `images/`, and puts back
 * images a killed rename set aside (see `restoreSetAside`). Called only while holding the folder's lock, so no live
 * writer owns them. Returns how many were removed.
 */
export async function sweepTempFiles(dir: string): Promise<number> {
  let removed = 0;
  for (const [folder, recursive] of [[dir, false], [join(dir, STATE_DIR), false], [join(dir, 'images'), true]] as const) {
    let names: string[];
    try {
      names = await readdir(folder, { recursive });
    } catch (error) {
      // Sweeping is housekeeping: a folder not made yet, or one that cannot be read, is left as it is.
      if (isFileSystemError(error)) continue;
      throw error;
    }
    for (const name of names.filter(isTempFile)) {
      await rm(join(folder, name), { force: true });
      removed++;
    }
    if (recursive) await restoreSetAside(dir, names, await pathExists(join(dir, MOVES_INTENT)));
  }
  return removed;
}


