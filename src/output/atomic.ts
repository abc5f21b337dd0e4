import { randomBytes } from 'node:crypto';
import { open, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Writes a file (a string, bytes, or pieces of bytes in order) so readers see either the old content or the new, never a torn one:
 * write a temporary file beside it, flush it, then rename it over the target.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array | readonly Uint8Array[]): Promise<void> {
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(temp, 'w');
  try {
    // Pieces are written one after the other, never joined: a large file is not copied whole in memory.
    for (const piece of Array.isArray(data) ? data : [data]) await handle.writeFile(piece);
    await handle.datasync();
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(temp, { force: true });
    throw error;
  }
  await handle.close();
  try {
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/** The temporary files `writeFileAtomic` and streamed CSV writes leave behind when a process is killed. */
const TEMP_FILE = /\.\d+(\.[0-9a-f]{8})?\.tmp$/;

/**
 * Removes temporary files a killed process left in the output folder, its `.nightshift/` and `images/`. Called only while
 * holding the folder's lock, so no live writer owns them. Returns how many were removed.
 */
export async function sweepTempFiles(outDir: string): Promise<number> {
  let removed = 0;
  for (const [dir, recursive] of [[outDir, false], [join(outDir, '.nightshift'), false], [join(outDir, 'images'), true]] as const) {
    let names: string[];
    try {
      names = await readdir(dir, { recursive });
    } catch {
      continue;
    }
    for (const name of names) {
      if (!TEMP_FILE.test(name)) continue;
      await rm(join(dir, name), { force: true });
      removed++;
    }
  }
  return removed;
}
