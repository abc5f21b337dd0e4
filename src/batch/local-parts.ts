import { createReadStream } from 'node:fs';
import { rm, rmdir } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import type { PartState } from './ledger.js';

/*
 * The part files an output folder keeps while their batches may run (`.nightshift/batches/<submission>/`): each
 * part's input file and its id list, read back and removed here.
 */

/** The name a part's input file is uploaded under: a kill before its id is recorded leaves it findable. */
export const uploadName = (part: string): string => `nightshift-${part}.jsonl`;

/** The custom_ids of `parts`, from their id lists: their jobs are not sent again while a batch may answer them. */
export async function customIdsOf(outDir: string, parts: readonly PartState[]): Promise<Set<string>> {
  const ids = new Set<string>();
  for (const part of parts) {
    for await (const line of linesOf(join(outDir, part.ids))) ids.add((JSON.parse(line) as { custom_id: string }).custom_id);
  }
  return ids;
}

/** Removes a part's input file and id list from the folder once nothing needs them, and its submission's folder once empty. */
export async function removePartFiles(outDir: string, part: Pick<PartState, 'file' | 'ids'>): Promise<void> {
  await rm(join(outDir, part.file), { force: true });
  await rm(join(outDir, part.ids), { force: true });
  await rmdir(join(outDir, dirname(part.file))).catch((error: unknown) => {
    if (!['ENOTEMPTY', 'ENOENT', 'EEXIST'].includes((error as NodeJS.ErrnoException).code ?? '')) throw error;
  });
}

/** The lines of a file, read as a stream, empty ones left out. */
async function* linesOf(path: string): AsyncGenerator<string> {
  for await (const line of createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Infinity })) if (line !== '') yield line;
}

/** The job ids of a part's id list, in order. */
export async function* idsOf(path: string): AsyncGenerator<string> {
  for await (const line of linesOf(path)) yield (JSON.parse(line) as { id: string }).id;
}
