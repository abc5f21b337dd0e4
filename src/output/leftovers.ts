import { createHash } from 'node:crypto';
import { mkdir, readFile, rename } from 'node:fs/promises';
import { dirname, join, sep } from 'node:path';
import { pathExists } from '../common/fs-errors.js';
import { JOURNAL_FILE, readJournalRecords } from './journal.js';

/** An image set aside by a rename (`<name>.<pid>.moving` in release 0.1.0, `<name>.<8 hex>.moving` since). */
const STEPPED_ASIDE = /^(.+)\.[0-9a-f]+\.moving$/;

/**
 * Puts images a killed rename of release 0.1.0 left set aside back where the journal says their content lives: 0.1.0
 * journaled renamed images only once they were in place, so its journal still names them by their old names. A
 * name taken since (a swap killed half way: `a.png` already holds b's image) is freed first by moving its occupant
 * where the journal says that one lives, when that place is free. What cannot be placed stays aside, and its job is
 * planned like any with a missing image. `names` are the paths under `images/`; renames with an intent on record
 * (`hasIntent`) are finished by `recoverMoves` instead.
 */
export async function restoreSetAside(dir: string, names: readonly string[], hasIntent: boolean): Promise<void> {
  const images = join(dir, 'images');
  const setAside = names.filter((name) => STEPPED_ASIDE.test(name));
  if (setAside.length === 0 || hasIntent) return;
  let places: Map<string, string> | undefined;
  const placeOf = async (path: string): Promise<string | undefined> => {
    places ??= await journalPlaces(dir);
    const place = places.get(await sha256Of(path));
    return place === undefined ? undefined : join(dir, place);
  };
  for (const name of setAside) {
    const aside = join(images, name);
    const original = join(images, STEPPED_ASIDE.exec(name)![1]!);
    if (!(await pathExists(original))) {
      await rename(aside, original);
      continue;
    }
    const target = await placeOf(aside);
    if (target === undefined || !target.startsWith(images + sep)) continue;
    if (await pathExists(target)) {
      const occupant = await placeOf(target);
      if (occupant === undefined || occupant === target || !occupant.startsWith(images + sep) || (await pathExists(occupant))) continue;
      await mkdir(dirname(occupant), { recursive: true });
      await rename(target, occupant);
    }
    await rename(aside, target);
  }
}

/** Where, by the journal, each image content (its SHA-256) lives: the path of the latest record naming it. */
async function journalPlaces(dir: string): Promise<Map<string, string>> {
  const places = new Map<string, string>();
  for await (const record of readJournalRecords(join(dir, JOURNAL_FILE))) {
    if (record.type === 'job') for (const file of record.files) places.set(file.sha256, file.path);
  }
  return places;
}

const sha256Of = async (path: string): Promise<string> => createHash('sha256').update(await readFile(path)).digest('hex');
