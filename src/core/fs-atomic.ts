import { randomBytes } from 'node:crypto';
import { open, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Writes a file so readers see either the old content or the new, never a torn one:
 * write a temporary file beside it, flush it, then rename it over the target.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(temp, 'w');
  try {
    await handle.writeFile(data);
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
 * Removes temporary files a killed process left in the output folder and its `images/`. Called only while
 * holding the folder's lock, so no live writer owns them. Returns how many were removed.
 */
export async function sweepTempFiles(outDir: string): Promise<number> {
  let removed = 0;
  for (const [dir, recursive] of [[outDir, false], [join(outDir, 'images'), true]] as const) {
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
