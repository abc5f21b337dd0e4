import { randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';

/** A piece of a file's content. */
export type FilePiece = string | Uint8Array;

/** The names {@link AtomicFile} gives its temporary files, `<target>.<pid>.<8 hex>.tmp`, and release 0.1.0's CSVs gave theirs, `<target>.<pid>.tmp`. */
const TEMP_FILE = /\.\d+(\.[0-9a-f]{8})?\.tmp$/;

/** True for the name of a temporary file an {@link AtomicFile} left behind (its process was killed). */
export const isTempFile = (name: string): boolean => TEMP_FILE.test(name);

/**
 * A file written piece by piece, never held whole in memory, so that readers see either the old content or the
 * new, never a torn one: the pieces go to a temporary file beside the target, which `commit` renames over it.
 */
export class AtomicFile {
  private readonly temp: string;
  private readonly stream: WriteStream;

  /** `durable` (the default) flushes the file to disk before it replaces the target. */
  constructor(
    private readonly path: string,
    { durable = true }: { durable?: boolean } = {},
  ) {
    this.temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    // `wx`: a new file, never one that something (a link) already put under this name.
    this.stream = createWriteStream(this.temp, { flags: 'wx', flush: durable });
    // Reported by `write` or `commit`; without a listener a failed open would crash the process.
    this.stream.on('error', () => {});
  }

  async write(piece: FilePiece): Promise<void> {
    if (this.stream.errored) throw this.stream.errored;
    if (!this.stream.write(piece)) await once(this.stream, 'drain');
  }

  /** Replaces the target with what was written; on failure the target is left as it was. */
  async commit(): Promise<void> {
    try {
      this.stream.end();
      await finished(this.stream);
      await rename(this.temp, this.path);
    } catch (error) {
      await this.discard();
      throw error;
    }
  }

  /** Drops what was written; the target is left as it was. */
  async discard(): Promise<void> {
    this.stream.destroy();
    await rm(this.temp, { force: true });
  }
}

/**
 * Writes a file atomically (see {@link AtomicFile}) from one piece or pieces in order, which may come from an async
 * source: a million-row CSV is written without being held in memory.
 */
export async function writeFileAtomic(
  path: string,
  data: FilePiece | Iterable<FilePiece> | AsyncIterable<FilePiece>,
  options: { durable?: boolean } = {},
): Promise<void> {
  const file = new AtomicFile(path, options);
  try {
    for await (const piece of typeof data === 'string' || data instanceof Uint8Array ? [data] : data) await file.write(piece);
  } catch (error) {
    await file.discard();
    throw error;
  }
  await file.commit();
}

/**
 * Flushes a folder's entries (the renames and creations in it) to disk, so that what was renamed before stays
 * renamed after a power loss. Systems that cannot open a folder for this (Windows) keep their own order.
 */
export async function syncFolder(path: string): Promise<void> {
  if (process.platform === 'win32') return;
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
