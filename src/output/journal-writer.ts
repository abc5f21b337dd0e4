import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { parseRecord, type JournalRecord, type RecordLocation } from './journal.js';

/** A journal that is a link is never written through (`ELOOP`): records go to the folder's own file or nowhere. */
const NO_FOLLOW = constants.O_NOFOLLOW ?? 0;

/**
 * Appends records to the journal. Records appended while a write is under way are written together
 * in the next write (group commit), so durability costs one flush per batch, not per job.
 */
export class JournalWriter {
  private queue: { line: string; resolve: (location: RecordLocation) => void; reject: (error: unknown) => void }[] = [];
  private writing = false;
  private failure: unknown;

  private constructor(
    private readonly handle: FileHandle,
    /** Each write must be followed by `datasync` (where the system has no `O_DSYNC`). */
    private readonly syncAfterWrite: boolean,
    /** The journal's size: where the next record starts. */
    private size: number,
  ) {}

  /** The journal's size in bytes, records being written excluded: where the next record will start. */
  get bytes(): number {
    return this.size;
  }

  /**
   * Opens (creating) the journal for appending. A torn last line is cut off first so that new records
   * never follow a half-written one. Durable (the default): opened with `O_DSYNC`, so each write returns once its
   * data is on the disk, as `write` then `fdatasync` would, in one system call instead of two (where there is no
   * `O_DSYNC`, each write is followed by `fdatasync`).
   */
  static async open(path: string, options: { durable?: boolean } = {}): Promise<JournalWriter> {
    await cutTornTail(path);
    const { O_WRONLY, O_APPEND, O_CREAT, O_DSYNC } = constants;
    const durable = options.durable ?? true;
    // Windows has no O_DSYNC: there each write is followed by fdatasync.
    const handle = await open(path, O_WRONLY | O_APPEND | O_CREAT | NO_FOLLOW | (durable && O_DSYNC !== undefined ? O_DSYNC : 0));
    const { size } = await handle.stat();
    return new JournalWriter(handle, durable && O_DSYNC === undefined, size);
  }

  /** Resolves with where the record lies once it is written (and, when durable, flushed to disk). */
  append(record: JournalRecord): Promise<RecordLocation> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.queue.push({ line: `${JSON.stringify(record)}\n`, resolve, reject });
      if (!this.writing) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.writing = true;
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      try {
        const bytes = Buffer.from(batch.map((entry) => entry.line).join(''));
        for (let written = 0; written < bytes.length; ) written += (await this.handle.write(bytes, written)).bytesWritten;
        if (this.syncAfterWrite) await this.handle.datasync();
        let offset = this.size;
        this.size += bytes.length;
        for (const entry of batch) {
          const length = Buffer.byteLength(entry.line);
          entry.resolve({ offset, length: length - 1 });
          offset += length;
        }
      } catch (error) {
        this.failure = error;
        for (const entry of [...batch, ...this.queue]) entry.reject(error);
        this.queue = [];
      }
    }
    this.writing = false;
  }

  async close(): Promise<void> {
    while (this.writing) await new Promise((resolve) => setImmediate(resolve));
    await this.handle.close();
  }
}

async function cutTornTail(path: string): Promise<void> {
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDWR | NO_FOLLOW);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  try {
    const { size } = await handle.stat();
    if (size === 0) return;
    // Scan back from the end for the last newline; a journal line is rarely longer than a few kilobytes.
    const chunk = 64 * 1024;
    let end = size;
    while (end > 0) {
      const start = Math.max(0, end - chunk);
      const buffer = Buffer.alloc(end - start);
      await handle.read(buffer, 0, buffer.length, start);
      if (end === size && buffer[buffer.length - 1] === 0x0a) return;
      const index = buffer.lastIndexOf(0x0a);
      if (index >= 0) {
        await endTail(handle, start + index + 1, size);
        return;
      }
      end = start;
    }
    await endTail(handle, 0, size);
  } finally {
    await handle.close();
  }
}

/**
 * Ends the journal at the last full line. A last line that is a complete record and lost only its newline is
 * kept (given its newline): readers count it, so cutting it would forget a job this run already took as done.
 */
async function endTail(handle: FileHandle, from: number, size: number): Promise<void> {
  const tail = Buffer.alloc(size - from);
  await handle.read(tail, 0, tail.length, from);
  if (parseRecord(tail.toString('utf8'))) await handle.write('\n', size);
  else await handle.truncate(from);
}
