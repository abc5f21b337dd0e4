import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { syncFolder, writeFileAtomic } from '../common/atomic-file.js';
import { NightshiftError } from '../common/errors.js';
import { pathExists } from '../common/fs-errors.js';
import type { Job } from '../common/types.js';
import { safeTarget } from './images.js';
import { isJobRecord, type JobRecord } from './journal.js';
import { fingerprintKey, indexedJob, type JournalIndex } from './journal-index.js';
import type { RecordReader } from './record-reader.js';
import type { JournalWriter } from './journal-writer.js';

/** A rename of one produced file, both paths relative to the output folder. */
export interface FileMove {
  from: string;
  to: string;
}

/** A job whose images are to be renamed, with the record that produced them. */
export interface PlannedMove {
  job: Pick<Job, 'id' | 'source'>;
  moves: FileMove[];
  record: JobRecord;
}

/**
 * The renames under way, kept on disk from before the first rename until every renamed job is journaled, so that a
 * process killed at any point is finished by the next one: no paid image is lost or made again.
 */
interface MoveIntent {
  /** `aside`: files are being renamed to their temporary names; `place`: from those to their new names. */
  phase: 'aside' | 'place';
  /** Paths relative to the output folder; `temp` is a name no other file has. */
  steps: (FileMove & { temp: string })[];
  /** The records to journal once the files are in place. */
  records: JobRecord[];
}

/** Where, in the output folder, and with whom a set of renames works. */
export interface MoveContext {
  outDir: string;
  /** The intent file's path (see {@link MoveIntent}). */
  intentPath: string;
  index: JournalIndex;
  journal: JournalWriter;
}

/**
 * A success whose images were renamed, or that its job takes over from the positional id an earlier release gave it:
 * it keeps the usage and cost of the answer, so results.csv and usage.csv still show them; `attempts: 0` marks that
 * no request was sent, so spending and the report count that cost once.
 */
function movedRecord(record: JobRecord, moves: readonly FileMove[], job: Pick<Job, 'id' | 'source'>, finishedAt: string): JobRecord {
  const files = [...record.files];
  for (const move of moves) {
    const position = files.findIndex((file) => file.path === move.from);
    if (position >= 0) files[position] = { ...files[position]!, path: move.to };
  }
  return { ...record, id: job.id, files, source: `${job.source.file}:${job.source.line}`, attempts: 0, finishedAt };
}

/**
 * Renames the images of jobs whose `output` changed but whose request did not, journaling each job's new record:
 * nothing is sent or paid. Every file first steps aside to a temporary name, then takes its new one, so that jobs
 * trading names (a.png <-> b.png) never overwrite each other's images; the intent file written first lets
 * {@link recoverMoves} finish the work after a kill at any point.
 */
export async function applyMoves(planned: readonly PlannedMove[], context: MoveContext & { now: () => string }): Promise<void> {
  if (planned.length === 0) return;
  const steps = planned.flatMap((move) => move.moves.map((step) => ({ ...step, temp: `${step.from}.${randomBytes(4).toString('hex')}.moving` })));
  // Every destination is checked before anything moves, so a refused one leaves all files where they were.
  await checkTargets(context.outDir, steps);
  const records = planned.map((move) => movedRecord(move.record, move.moves, move.job, context.now()));
  await writeIntent(context.intentPath, { phase: 'aside', steps, records });
  await finishMoves({ phase: 'aside', steps, records }, context);
}

/**
 * Finishes the renames a killed process left under way (see {@link applyMoves}), if any: the files that had not
 * stepped aside yet do, those aside take their new names, and the jobs not journaled yet are. Run on opening the
 * folder, under its lock, before anything is planned.
 */
export async function recoverMoves(context: MoveContext, reader: RecordReader): Promise<void> {
  let intent: Partial<MoveIntent> | null;
  const foreign = (): NightshiftError =>
    new NightshiftError('E_OUTPUT', `${context.intentPath} is not a record of renames; remove it to continue.`, { path: context.intentPath });
  try {
    intent = JSON.parse(await readFile(context.intentPath, 'utf8')) as Partial<MoveIntent> | null;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    // The intent is written whole or not at all: one that does not parse was not written by nightshift.
    if (error instanceof SyntaxError) throw foreign();
    throw error;
  }
  if (!intent || (intent.phase !== 'aside' && intent.phase !== 'place') || !Array.isArray(intent.steps) || !Array.isArray(intent.records)) {
    throw foreign();
  }
  // Every step three paths, every record a whole job record: anything else was not written by nightshift.
  const isStep = (step: unknown): boolean =>
    typeof step === 'object' && step !== null && (['from', 'to', 'temp'] as const).every((name) => typeof (step as Record<string, unknown>)[name] === 'string');
  if (!intent.steps.every(isStep) || !intent.records.every(isJobRecord)) throw foreign();
  await checkTargets(context.outDir, intent.steps);
  const journaled = async (record: JobRecord): Promise<boolean> => {
    const ref = context.index.current(record.id, fingerprintKey(record.fingerprint));
    if (!ref?.hasFiles) return false;
    const known = await reader.read(ref);
    return JSON.stringify(known.files) === JSON.stringify(record.files);
  };
  const records = [];
  for (const record of intent.records) if (!(await journaled(record))) records.push(record);
  await finishMoves({ phase: intent.phase, steps: intent.steps, records }, context);
}

async function finishMoves(intent: MoveIntent, { outDir, intentPath, index, journal }: MoveContext): Promise<void> {
  const path = (relative: string): string => join(outDir, relative);
  const folders = [...new Set(intent.steps.flatMap((step) => [dirname(path(step.from)), dirname(path(step.to))]))];
  if (intent.phase === 'aside') {
    for (const step of intent.steps) {
      // After a kill, some files are aside already. One found in neither place is lost: the planning that follows
      // sees its job's image missing and makes it again.
      if (!(await pathExists(path(step.temp))) && (await pathExists(path(step.from)))) await rename(path(step.from), path(step.temp));
    }
    for (const folder of folders) await syncFolder(folder);
    await writeIntent(intentPath, { ...intent, phase: 'place' });
  }
  for (const step of intent.steps) {
    if (await pathExists(path(step.temp))) await rename(path(step.temp), path(step.to));
  }
  for (const folder of folders) await syncFolder(folder);
  // Appended together, the records go to the disk in one write (group commit), not one flush each.
  const locations = await Promise.all(intent.records.map((record) => journal.append(record)));
  intent.records.forEach((record, position) => index.take(indexedJob(record, locations[position]!)));
  await rm(intentPath, { force: true });
}

/** Makes sure that no destination leads outside `images/` (through a link), creating the folders they need. */
async function checkTargets(outDir: string, steps: readonly FileMove[]): Promise<void> {
  for (const step of steps) await safeTarget(join(outDir, 'images'), step.to.replace(/^images\//, ''));
}

async function writeIntent(path: string, intent: MoveIntent): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, JSON.stringify(intent));
  await syncFolder(dirname(path));
}

