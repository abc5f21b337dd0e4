import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { Job } from '../common/types.js';
import { safeTarget } from './images.js';
import type { JobRecord } from './journal.js';
import { refOf, type JournalIndex } from './journal-index.js';
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
 * A success whose images were renamed: it keeps the usage and cost the images took, so results.csv and usage.csv
 * still show them; `attempts: 0` marks that no request was sent, so spending and the report count that cost once.
 */
function movedRecord(record: JobRecord, moves: readonly FileMove[], job: Pick<Job, 'source'>, finishedAt: string): JobRecord {
  const files = [...record.files];
  for (const move of moves) {
    const position = files.findIndex((file) => file.path === move.from);
    if (position >= 0) files[position] = { ...files[position]!, path: move.to };
  }
  return { ...record, files, source: `${job.source.file}:${job.source.line}`, attempts: 0, finishedAt };
}

/**
 * Renames the images of jobs whose `output` changed but whose request did not, journaling each job's new record:
 * nothing is sent or paid.
 */
export async function applyMoves(
  planned: readonly PlannedMove[],
  { outDir, index, journal, now }: { outDir: string; index: JournalIndex; journal: JournalWriter; now: () => string },
): Promise<void> {
  // Every destination is checked before anything moves, so a refused one leaves all files where they were.
  const steps = new Map<PlannedMove, (FileMove & { target: string })[]>();
  for (const move of planned) {
    const list = [];
    for (const step of move.moves) list.push({ ...step, target: await safeTarget(join(outDir, 'images'), step.to.replace(/^images\//, '')) });
    steps.set(move, list);
  }
  // A file whose name another file is about to take steps aside first, so that jobs trading output names
  // (a.png <-> b.png) do not overwrite each other's images.
  const targets = new Set([...steps.values()].flatMap((list) => list.map((step) => step.to)));
  const aside = new Map<string, string>();
  for (const list of steps.values()) {
    for (const step of list.filter((step) => targets.has(step.from))) {
      const temp = `${step.from}.${process.pid}.moving`;
      await rename(join(outDir, step.from), join(outDir, temp));
      aside.set(step.from, temp);
    }
  }
  for (const [move, list] of steps) {
    for (const step of list) await rename(join(outDir, aside.get(step.from) ?? step.from), step.target);
    const moved = movedRecord(move.record, move.moves, move.job, now());
    index.add(move.job.id, refOf(moved, await journal.append(moved)));
  }
}
