import { createWriteStream, type WriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';
import { AtomicFile } from '../common/atomic-file.js';
import type { Job } from '../common/types.js';
import type { JobSource } from '../jobs/source.js';
import type { JournalIndex } from './journal-index.js';
import type { JobRecord } from './journal.js';
import type { RecordReader } from './record-reader.js';
import { jobResult, resultCsvLine, resultJsonLine, resultLine, resultsHeader } from './results.js';
import { UsageSummary } from './usage-table.js';

/** Rows written between two turns of the event loop, so that requests keep going out meanwhile. */
const ROWS_PER_TURN = 2048;

/** Rows are written when this much waits (characters of both files)... */
const FLUSH_BYTES = 256 * 1024;
/** ...or this long after the first of them (milliseconds), so that `tail -f` shows them soon. */
const FLUSH_MS = 100;

/**
 * Records held for their turn at most: beyond, one job holds the order back too long (retried for minutes while
 * thousands finish) and the view stops keeping the order rather than hold them all.
 */
const MAX_HELD = 8192;

/** A record journaled in this run, waiting for the rows before its own. */
interface Held {
  job: Job;
  record: JobRecord;
  /** Where it lies in the journal: it is the job's row only if the index still points there. */
  offset: number;
}

/**
 * The views of a run over jobs held in memory, written while it goes on, in input order, so that its end has nothing
 * to rebuild: `results.csv` grows row by row (its rows up to the first job still under way are written atomically,
 * then each row is appended), `results.jsonl` is written beside it and takes its place at the end, and `usage.csv`'s
 * sums are kept as the rows go. A job's row is written once no record of it can come any more in this run: it is not
 * to be sent, its record is on the disk, or the run is over. Each row is what the rewrite from the journal
 * (`OutputFolder.writeResults`) gives: the same job, the same look-up of its current record, the same order.
 *
 * When a job holds the order back too long, the remaining rows follow as jobs finish, as in a file-backed run, and the
 * end of the run rewrites the views from the journal; so it does after a write that failed (the rewrite reports it).
 */
export class OrderedResults {
  /** The position of the next row. */
  private cursor = 0;
  private readonly held = new Map<number, Held>();
  private readonly jobs: AsyncIterator<Job>;
  private readonly usage = new UsageSummary();
  /** `results.csv` until its first row that must wait: replaced whole, as a rewrite would. */
  private prefix: AtomicFile | undefined;
  /** `results.csv` once the prefix is in place: rows are appended. */
  private live: WriteStream | undefined;
  private readonly json: AtomicFile;
  /** `ordered` while every row goes in its place; `unordered` once the order was given up; `stopped` when nothing more is written. */
  private mode: 'ordered' | 'unordered' | 'stopped' = 'ordered';
  /** The run is over: no position waits for a record any more. */
  private over = false;
  private headed = false;
  /** Rows waiting for their batch to be written. */
  private pending = { csv: '', json: '' };
  private timer: NodeJS.Timeout | undefined;
  private work: Promise<void> = Promise.resolve();
  private scheduled = false;

  constructor(
    private readonly csvPath: string,
    jsonPath: string,
    private readonly source: JobSource,
    /** Whether the job at a position is to be sent in this run (its row waits for its record). */
    private readonly sending: (position: number) => boolean,
    private readonly index: JournalIndex,
    private readonly reader: RecordReader,
    /** Records held for their turn at most before the order is given up. @default 8192 */
    private readonly maxHeld = MAX_HELD,
  ) {
    this.jobs = source.open()[Symbol.asyncIterator]();
    this.prefix = new AtomicFile(csvPath, { durable: false });
    this.json = new AtomicFile(jsonPath, { durable: false });
    this.schedule();
  }

  /** A job's record is on the disk at `offset`: its row, and those after it that waited for it, can go. */
  add(job: Job, record: JobRecord, offset: number): void {
    if (this.mode === 'stopped') return;
    const position = this.source.digests.ids.indexOf(job.id);
    if (position < this.cursor) return;
    this.held.set(position, { job, record, offset });
    this.schedule();
  }

  /**
   * The run is over: writes the rows still to write and puts `results.csv` and `results.jsonl` in place. Returns the
   * sums of `usage.csv`, or undefined when the views must be rewritten from the journal (the order was given up, or a
   * write failed).
   */
  async finish(): Promise<UsageSummary | undefined> {
    this.over = true;
    this.schedule();
    await this.work;
    if (this.mode !== 'ordered' || this.cursor < this.source.count) {
      await this.stop();
      return undefined;
    }
    try {
      await this.flush();
      this.mode = 'stopped';
      if (this.prefix) await this.prefix.commit();
      else await this.endLive();
      await this.json.commit();
      return this.usage;
    } catch {
      // The rewrite from the journal that follows writes the views again, and reports what stops it.
      await this.stop();
      return undefined;
    }
  }

  /** Nothing more is written; a view left unfinished is rewritten by the next run that ends (the journal is the truth). */
  async stop(): Promise<void> {
    this.mode = 'stopped';
    await this.work;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = { csv: '', json: '' };
    this.held.clear();
    // Temporary files that cannot be removed are swept by the next run.
    await this.prefix?.discard().catch(() => {});
    this.prefix = undefined;
    await this.json.discard().catch(() => {});
    await this.endLive().catch(() => {});
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.work = this.work.then(() => {
      this.scheduled = false;
      return this.write();
    });
  }

  /** Writes every row whose turn has come; never fails: a view that cannot be written is rewritten at the end. */
  private write(): Promise<void> {
    return this.guarded(async () => {
      if (this.mode === 'ordered' && this.held.size > this.maxHeld) await this.giveUpOrder();
      if (this.mode === 'ordered') await this.writeInOrder();
      else if (this.mode === 'unordered') this.writeAsFinished();
    });
  }

  private async guarded(step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch {
      // The rewrite at the end of the run writes every row again from the journal, and reports a failure it meets.
      this.mode = 'stopped';
      this.held.clear();
    }
  }

  private async writeInOrder(): Promise<void> {
    // Rows are written a batch at a time: one write per row would cost a system call per answer.
    let csv = '';
    let json = '';
    if (!this.headed) {
      this.headed = true;
      csv = resultsHeader();
    }
    const { count, digests } = this.source;
    let rows = 0;
    while (this.mode === 'ordered' && this.cursor < count && (this.over || this.held.has(this.cursor) || !this.sending(this.cursor))) {
      if (++rows % ROWS_PER_TURN === 0) {
        await this.writeRows(csv, json);
        csv = json = '';
        await new Promise((resolve) => setImmediate(resolve));
        if (this.mode !== 'ordered') return;
      }
      const position = this.cursor;
      const next = await this.jobs.next();
      if (next.done) throw new Error('fewer jobs than validated');
      const job = next.value;
      const ref = this.index.current(job.id, digests.key(position));
      const mine = this.held.get(position);
      this.held.delete(position);
      const record = ref === undefined ? undefined : mine !== undefined && mine.offset === ref.offset ? mine.record : await this.reader.read(ref);
      this.usage.add(job, record);
      const row = jobResult(job, record);
      csv += resultCsvLine(row);
      json += resultJsonLine(row);
      this.cursor++;
    }
    await this.writeRows(csv, json);
    // The first row that must wait: the rows before it take the place of the old file, and rows are appended from now on.
    if (this.mode === 'ordered' && this.prefix && this.cursor < count && !this.over) await this.openLive();
  }

  /** Rows go to the files in batches, at least every {@link FLUSH_MS}: one write per row would cost a system call per answer. */
  private async writeRows(csv: string, json: string): Promise<void> {
    this.pending.csv += csv;
    this.pending.json += json;
    if (this.pending.csv.length + this.pending.json.length >= FLUSH_BYTES) await this.flush();
    else if (this.pending.csv !== '' && this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.work = this.work.then(() => this.guarded(() => this.flush()));
      }, FLUSH_MS);
      // Rows waiting for their batch never keep the process alive: the run's end flushes them.
      this.timer.unref();
    }
  }

  private async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const { csv, json } = this.pending;
    this.pending = { csv: '', json: '' };
    if (this.mode === 'stopped' || csv === '') return;
    if (this.prefix) await this.prefix.write(csv);
    else this.live!.write(csv);
    if (this.mode === 'ordered') await this.json.write(json);
  }

  /** Rows follow as jobs finish from now on; the end of the run rewrites the views in input order from the journal. */
  private async giveUpOrder(): Promise<void> {
    await this.flush();
    this.mode = 'unordered';
    await this.json.discard();
    if (this.prefix) await this.openLive();
    this.writeAsFinished();
  }

  private writeAsFinished(): void {
    let csv = '';
    for (const { job, record } of this.held.values()) csv += resultLine(job, record);
    this.held.clear();
    if (csv !== '') this.live!.write(csv);
  }

  private async openLive(): Promise<void> {
    await this.flush();
    const prefix = this.prefix!;
    this.prefix = undefined;
    await prefix.commit();
    this.live = createWriteStream(this.csvPath, { flags: 'a' });
    // Reported by the end of the stream (`endLive`); until then a row that cannot be written is rewritten at the end.
    this.live.on('error', () => {});
  }

  private async endLive(): Promise<void> {
    const live = this.live;
    this.live = undefined;
    if (!live) return;
    live.end();
    await finished(live);
  }
}
