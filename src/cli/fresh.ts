import { rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { NightshiftError } from '../common/errors.js';
import { MOVES_INTENT, RESULTS_FILE, RESULTS_JSONL_FILE, STATE_DIR, USAGE_FILE } from '../output/folder.js';
import { JOURNAL_FILE } from '../output/journal.js';
import { indexJournal } from '../output/journal-index.js';
import { acquireLock } from '../output/lock.js';

/** Applies `--fresh`: the old journal is kept beside the new one (for audit) and the CSV views are rebuilt. */
export async function startFresh(outDir: string, force: boolean, { origin }: { origin: string }): Promise<void> {
  const path = join(outDir, JOURNAL_FILE);
  const exists = await stat(path).then(
    () => true,
    // No journal to set aside, whatever the reason: a folder that cannot be read is refused by the run itself (exit 4).
    () => false,
  );
  if (!exists) return;
  // Under the folder's lock: moving the journal of a run in progress would make it send everything again.
  const release = await acquireLock(outDir);
  try {
    // Any success counts, including one a later edit superseded: a plain rerun could still reuse it. So does an answer
    // cut off: it was paid for, and a plain rerun keeps it. A run against an API would send again what only the
    // offline server answered anyway: those answers cost nothing to set aside.
    const finished = (await indexJournal(path, { origin })).answered();
    if (finished > 0 && !force) {
      throw new NightshiftError(
        'E_USAGE',
        `${outDir} holds ${finished} finished job${finished === 1 ? '' : 's'}; --fresh would send them again. Add --force to do so, or choose another --out.`,
      );
    }
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    try {
      await rename(path, join(outDir, `journal-${stamp}.jsonl`));
      // Renames a killed run left under way belong to the old journal: finished, they would journal its records in the
      // new one and keep jobs from being sent. Set aside with it; every job is sent again anyway.
      await rename(join(outDir, MOVES_INTENT), join(outDir, STATE_DIR, `moves-${stamp}.json`)).catch((error: unknown) => {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      });
      // The views of the old journal go too, so they are never taken for this run's results.
      await Promise.all([RESULTS_FILE, RESULTS_JSONL_FILE, USAGE_FILE].map((name) => rm(join(outDir, name), { force: true })));
    } catch (error) {
      throw new NightshiftError('E_OUTPUT', `Cannot start afresh in ${outDir}: ${(error as Error).message}`, { outDir }, { cause: error });
    }
  } finally {
    await release();
  }
}
