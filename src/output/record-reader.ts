import { open, type FileHandle } from 'node:fs/promises';
import { NightshiftError } from '../common/errors.js';
import { parseRecord, type JobRecord, type RecordLocation } from './journal.js';

/**
 * How much of the journal one read brings in. Records are read in input order, which is mostly journal order, so
 * a large window serves many; when records come scattered (a folder resumed many times) the window shrinks.
 */
const WINDOW_BYTES = { large: 1 << 20, small: 16 << 10 };

/**
 * Reads full journal records back by location, through a window of the file so that neighbouring records
 * cost one read.
 */
export class RecordReader {
  private window = Buffer.alloc(0);
  private windowStart = 0;
  private hits = 0;

  private constructor(
    private readonly path: string,
    private readonly handle: FileHandle,
  ) {}

  static async open(path: string): Promise<RecordReader> {
    return new RecordReader(path, await open(path, 'r'));
  }

  async read({ offset, length }: RecordLocation): Promise<JobRecord> {
    const end = offset + length;
    if (offset < this.windowStart || end > this.windowStart + this.window.length) {
      const buffer = Buffer.allocUnsafe(Math.max(this.hits > 1 ? WINDOW_BYTES.large : WINDOW_BYTES.small, length));
      const { bytesRead } = await this.handle.read(buffer, 0, buffer.length, offset);
      this.window = buffer.subarray(0, bytesRead);
      this.windowStart = offset;
      this.hits = 0;
      if (bytesRead < length) throw new Error(`journal record at byte ${offset} is cut short`);
    }
    this.hits++;
    const record = parseRecord(this.window.toString('utf8', offset - this.windowStart, end - this.windowStart));
    // Indexing checked every record: one that no longer reads back was changed by something else since.
    if (record?.type !== 'job') throw new NightshiftError('E_OUTPUT', `${this.path} changed during the run: the record at byte ${offset} is no longer valid`, { path: this.path });
    return record;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}
