import { createWriteStream, type WriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';
import { AtomicFile } from '../common/atomic-file.js';
import type { Job } from '../common/types.js';
import type { JobDigests } from '../jobs/digests.js';
import type { JournalIndex } from './journal-index.js';
import type { JobRecord } from './journal.js';
import type { RecordReader } from './record-reader.js';
import { recordLine, resultLine, resultsHeader } from './results.js';

/** Rows the prefill writes between two turns of the event loop, so that requests keep going out meanwhile. */
const PREFILL_BATCH = 2048;

/**
 * results.csv while a run goes on: first the rows of the jobs finished before it (the prefill, written in the
 * background while the first requests go out: a resume over a million finished jobs does not wait for a million
 * rows), then a row for each job as it finishes. Rows that finish before the prefill is in place wait for it in
 * memory. It is a view: a row that cannot be written is dropped, since the rewrite at the end of the run restores
 * every row from the journal.
 */
export class ResultsView {
  private stream: WriteStream | undefined;
  private waiting: string[] | undefined = [];
  private abandoned = false;
  private readonly prefill: Promise<void>;

  /** Starts the prefill with the jobs whose records lie before `journalBytes` (the journal's size when the run began). */
  constructor(
    private readonly path: string,
    digests: JobDigests,
    index: JournalIndex,
    reader: RecordReader,
    journalBytes: number,
  ) {
    this.prefill = this.fill(digests, index, reader, journalBytes);
  }

  /** Adds the row of a job just recorded after the prefill. */
  add(job: Job, record: JobRecord): void {
    const line = resultLine(job, record);
    if (this.stream) this.stream.write(line);
    else this.waiting?.push(line);
  }

  /** The run is over: a prefill still going stops, rows waiting for it are dropped, and the file is closed. */
  async stop(): Promise<void> {
    this.abandonPrefill();
    await this.prefill;
    if (!this.stream) return;
    this.stream.end();
    // A row that could not be written is restored by the rewrite that follows.
    await finished(this.stream).catch(() => {});
  }

  private abandonPrefill(): void {
    this.abandoned = true;
    this.waiting = undefined;
  }

  /** Never fails: a view that cannot be written now is rewritten at the end of the run. */
  private async fill(digests: JobDigests, index: JournalIndex, reader: RecordReader, journalBytes: number): Promise<void> {
    const file = new AtomicFile(this.path, { durable: false });
    try {
      await file.write(resultsHeader());
      for (let position = 0; position < digests.count; position++) {
        if (position % PREFILL_BATCH === 0) {
          await new Promise((resolve) => setImmediate(resolve));
          if (this.abandoned) return await file.discard();
        }
        const ref = index.currentOf(digests.ids, position, digests.key(position));
        if (ref && ref.offset < journalBytes) await file.write(recordLine(await reader.read(ref)));
      }
      if (this.abandoned) return await file.discard();
      await file.commit();
      this.open();
    } catch {
      // The rows waiting for it are dropped too (the rewrite at the end restores them): they must not pile up.
      this.abandonPrefill();
      // Nothing to do about a temporary file that cannot be removed: the next run's sweep removes it.
      await file.discard().catch(() => {});
    }
  }

  /** The prefill is in place: rows go to the end of the file from now on. */
  private open(): void {
    this.stream = createWriteStream(this.path, { flags: 'a' });
    // A row that cannot be written is restored by the rewrite at the end of the run.
    this.stream.on('error', () => {});
    for (const line of this.waiting ?? []) this.stream.write(line);
    this.waiting = undefined;
  }
}
