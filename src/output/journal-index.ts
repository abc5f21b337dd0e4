import { isUtf8 } from 'node:buffer';
import { createReadStream } from 'node:fs';
import { IdTable } from '../common/id-table.js';
import { KEY_BYTES } from '../jobs/digests.js';
import { answerCountsFor, journalSize, paidBy, parseRecord, type JobRecord, type RecordLocation } from './journal.js';
import { fingerprintKey, scanJobRecord, type IndexedJob, type RecordRef } from './journal-scan.js';

export { fingerprintKey, scanJobRecord, type IndexedJob, type RecordRef } from './journal-scan.js';


const DONE = 1;
const HAS_FILES = 2;
const PRESENT = 4;
/** The latest record is an answer cut off (neither DONE nor INCOMPLETE: failed). */
const INCOMPLETE = 8;
/** An answer of the offline server was set aside (see {@link IndexOptions.origin}). */
const SET_ASIDE = 16;

/** Options of {@link JournalIndex} and {@link indexJournal}. */
export interface IndexOptions {
  /**
   * The run's jobs, as validation numbered them: the index uses their numbers as its slots and keeps records of
   * those jobs only (spending still counts every record).
   */
  ids?: IdTable;
  /**
   * Where the run's answers come from (`offline`, or the API's origin): answers of the offline server it may not take
   * as its own ({@link answerCountsFor}) are set aside: they are not outcomes, and their dollars are not spent. Which
   * jobs had one is still known ({@link JournalIndex.setAsideOf}). Unset: every answer counts.
   */
  origin?: string;
}

/**
 * What the journal says, in a few dozen bytes per job: for each id, the fingerprint, state and location of its
 * latest record, plus (rarely) earlier successes with other requests. Full records, reply text included, stay
 * on disk and are read back by location with a {@link RecordReader} when a row is written.
 */
export class JournalIndex {
  runs = 0;
  /** Dollars spent by every request the journal records (priced ones, answers set aside excepted), across all runs in the folder. */
  spentUsd = 0;
  readonly warnings: string[] = [];

  /** Each job's slot in the columns below, by id. */
  private readonly slots: IdTable;
  /** The index numbers jobs as `slots` does, and keeps no record of other ids (see the constructor). */
  private readonly fixed: boolean;
  private capacity: number;
  private keys: Buffer;
  private offsets: Float64Array;
  private lengths: Uint32Array;
  private flags: Uint8Array;
  /**
   * Successes that are not the latest record of their job, by slot then fingerprint key (hex): a request edited
   * and then restored finds its earlier success instead of being paid for again.
   */
  private readonly earlier = new Map<number, Map<string, RecordRef>>();
  /**
   * Answers of ids the run does not have that end in a record number (`prompts-3`, as releases that named id-less
   * jobs by position did), by fingerprint key (hex) then id: the job that now sends the same request takes one over.
   */
  private readonly positional = new Map<string, Map<string, RecordRef>>();

  /**
   * With `ids` (the run's jobs, as validation numbered them), the index uses their numbers as its slots, sized for
   * all of them from the start, and keeps records of those jobs only (spending still counts every record): no second
   * table of a million ids. Without, it numbers the ids it meets itself and grows as they come.
   */
  /** The run's origin: see {@link IndexOptions.origin}. */
  private readonly origin: string | undefined;

  constructor(ids?: IdTable, { origin }: Pick<IndexOptions, 'origin'> = {}) {
    this.origin = origin;
    this.fixed = ids !== undefined;
    this.capacity = ids ? Math.max(1, ids.size) : 1024;
    this.slots = ids ?? new IdTable(this.capacity);
    this.keys = Buffer.alloc(this.capacity * KEY_BYTES);
    this.offsets = new Float64Array(this.capacity);
    this.lengths = new Uint32Array(this.capacity);
    this.flags = new Uint8Array(this.capacity);
  }

  /** True while the index holds nothing a job could be compared with: no record, none set aside, no positional answer. */
  get empty(): boolean {
    return this.positional.size === 0 && this.flags.every((flags) => flags === 0);
  }

  /** Jobs with a record. */
  get size(): number {
    let count = 0;
    for (let slot = 0; slot < this.slots.size; slot++) if ((this.flags[slot]! & PRESENT) !== 0) count++;
    return count;
  }

  /** Jobs with at least one paid answer (a success, superseded ones included, or an answer cut off). */
  answered(): number {
    let count = 0;
    for (let slot = 0; slot < this.slots.size; slot++) if ((this.flags[slot]! & (DONE | INCOMPLETE)) !== 0 || this.earlier.has(slot)) count++;
    return count;
  }

  /**
   * Records `ref` as the latest of job `id`. A later record of a request supersedes every earlier record of the
   * same request, success included (a `--force` rerun that failed answers as failed); an earlier success of a
   * different request stays, for undoing an edit. Reading the journal and journaling an outcome both come here,
   * so a run and a later reload of its journal agree.
   */
  add(id: string, ref: RecordRef): void {
    const slot = this.fixed ? this.slots.indexOf(id) : this.slots.add(id);
    if (slot < 0) {
      if (POSITIONAL.test(id)) this.notePositional(id, ref);
      return;
    }
    if (slot >= this.capacity) this.grow();
    if ((this.flags[slot]! & PRESENT) === 0) {
      this.store(slot, ref);
      return;
    }
    const previous = this.latest(slot);
    // An answer (a success, or one cut off: both paid) to another request stays, so that undoing an edit pays for neither again.
    if ((previous.state === 'done' || previous.state === 'incomplete') && !previous.key.equals(ref.key)) this.keep(slot, previous);
    this.forget(slot, ref.key);
    this.store(slot, ref);
  }

  /**
   * The one way a job record enters the index, whether read from the journal, just journaled, or moved: an answer of
   * the offline server is set aside when the index says so, any other is added, and what it cost counts as spent
   * (unless it sent nothing: images renamed).
   */
  take(job: IndexedJob): void {
    if (this.origin !== undefined && !answerCountsFor(job, this.origin)) return this.setAside(job.id);
    this.add(job.id, job.ref);
    if (job.costUsd !== null && job.attempts > 0) this.spentUsd += job.costUsd;
  }

  /** Whether some id the run does not have, ending in a record number, holds an answer to request `key` (see {@link takePositional}). */
  hasPositional(key: Buffer): boolean {
    return this.positional.has(key.toString('hex'));
  }

  /**
   * An answer (done or cut off) to request `key` under an id the run does not have and that `accepts` (one a job
   * was given by its position), handed over once: two identical jobs take two answers, never the same one twice.
   */
  takePositional(key: Buffer, accepts: (id: string) => boolean): { id: string; ref: RecordRef } | undefined {
    const hex = key.toString('hex');
    const byId = this.positional.get(hex);
    if (!byId) return undefined;
    for (const [id, ref] of byId) {
      if (ref.state === 'failed' || !accepts(id)) continue;
      byId.delete(id);
      if (byId.size === 0) this.positional.delete(hex);
      return { id, ref };
    }
    return undefined;
  }

  private notePositional(id: string, ref: RecordRef): void {
    const hex = ref.key.toString('hex');
    let byId = this.positional.get(hex);
    if (!byId) this.positional.set(hex, (byId = new Map()));
    // The latest record of the id and request: a rerun that failed takes the place of its answer, as for any job.
    byId.set(id, { ...ref, key: Buffer.from(ref.key) });
  }

  /** Notes that an answer of the offline server to job `id` was set aside. */
  private setAside(id: string): void {
    const slot = this.fixed ? this.slots.indexOf(id) : this.slots.add(id);
    if (slot < 0) return;
    if (slot >= this.capacity) this.grow();
    this.flags[slot]! |= SET_ASIDE;
  }

  /** Whether an answer of the offline server to the job whose id `ids` numbers `number` was set aside. */
  setAsideOf(ids: IdTable, number: number): boolean {
    const slot = ids === this.slots ? number : this.slots.indexOfIn(ids, number);
    return slot >= 0 && slot < this.capacity && (this.flags[slot]! & SET_ASIDE) !== 0;
  }

  /**
   * The record that answers for job `id` sending the request `key`: its success with that request if it has one
   * (undoing an edit must not pay for the same request twice), otherwise its latest record.
   */
  answer(id: string, key: Buffer): RecordRef | undefined {
    return this.answerAt(this.slots.indexOf(id), key);
  }

  /** {@link answer} for the job whose id `ids` numbers `number` (a job's position in its digests). */
  answerOf(ids: IdTable, number: number, key: Buffer): RecordRef | undefined {
    return this.answerAt(ids === this.slots ? number : this.slots.indexOfIn(ids, number), key);
  }

  /** The record for `id` when it is for request `key`: a finished outcome of the job as it stands. */
  current(id: string, key: Buffer): RecordRef | undefined {
    return sameKey(this.answer(id, key), key);
  }

  /** {@link current} for the job whose id `ids` numbers `number`. */
  currentOf(ids: IdTable, number: number, key: Buffer): RecordRef | undefined {
    return sameKey(this.answerOf(ids, number, key), key);
  }

  /** Every record the index keeps for `id`: its latest first, then its earlier successes with other requests. */
  recordsOf(id: string): RecordRef[] {
    const slot = this.slots.indexOf(id);
    if (slot < 0 || slot >= this.capacity || (this.flags[slot]! & PRESENT) === 0) return [];
    return [this.latest(slot), ...(this.earlier.get(slot)?.values() ?? [])];
  }

  private answerAt(slot: number, key: Buffer): RecordRef | undefined {
    if (slot < 0 || slot >= this.capacity || (this.flags[slot]! & PRESENT) === 0) return undefined;
    return this.earlier.get(slot)?.get(key.toString('hex')) ?? this.latest(slot);
  }

  private latest(slot: number): RecordRef {
    const flags = this.flags[slot]!;
    return {
      key: this.keys.subarray(slot * KEY_BYTES, (slot + 1) * KEY_BYTES),
      state: (flags & DONE) !== 0 ? 'done' : (flags & INCOMPLETE) !== 0 ? 'incomplete' : 'failed',
      hasFiles: (flags & HAS_FILES) !== 0,
      offset: this.offsets[slot]!,
      length: this.lengths[slot]!,
    };
  }

  private keep(slot: number, ref: RecordRef): void {
    let bySlot = this.earlier.get(slot);
    if (!bySlot) this.earlier.set(slot, (bySlot = new Map()));
    // The latest record's key is a view of the shared column, which the next store overwrites.
    bySlot.set(ref.key.toString('hex'), { ...ref, key: Buffer.from(ref.key) });
  }

  private forget(slot: number, key: Buffer): void {
    const bySlot = this.earlier.get(slot);
    if (!bySlot) return;
    bySlot.delete(key.toString('hex'));
    if (bySlot.size === 0) this.earlier.delete(slot);
  }

  private store(slot: number, ref: RecordRef): void {
    ref.key.copy(this.keys, slot * KEY_BYTES, 0, KEY_BYTES);
    this.offsets[slot] = ref.offset;
    this.lengths[slot] = ref.length;
    this.flags[slot] = (this.flags[slot]! & SET_ASIDE) | PRESENT | (ref.state === 'done' ? DONE : ref.state === 'incomplete' ? INCOMPLETE : 0) | (ref.hasFiles ? HAS_FILES : 0);
  }

  private grow(): void {
    this.capacity *= 2;
    const keys = Buffer.alloc(this.capacity * KEY_BYTES);
    this.keys.copy(keys);
    this.keys = keys;
    this.offsets = grown(this.offsets, new Float64Array(this.capacity));
    this.lengths = grown(this.lengths, new Uint32Array(this.capacity));
    this.flags = grown(this.flags, new Uint8Array(this.capacity));
  }
}

/** An id ending in a record number, as the ids releases gave id-less jobs by position (`prompts-3`). */
const POSITIONAL = /-[1-9]\d*$/;

const sameKey = (ref: RecordRef | undefined, key: Buffer): RecordRef | undefined => (ref && ref.key.equals(key) ? ref : undefined);

function grown<T extends Float64Array | Uint32Array | Uint8Array>(from: T, to: T): T {
  to.set(from);
  return to;
}

/** What the index takes of a job record written at `location`. */
export function indexedJob(record: JobRecord, location: RecordLocation): IndexedJob {
  return { id: record.id, ref: refOf(record, location), costUsd: paidBy(record).costUsd, attempts: record.attempts, ...(record.origin !== undefined ? { origin: record.origin } : {}) };
}

/** The index entry of a record written at `location`. */
export function refOf(record: Pick<JobRecord, 'fingerprint' | 'state' | 'files'>, location: RecordLocation): RecordRef {
  return { key: fingerprintKey(record.fingerprint), state: record.state, hasFiles: record.files.length > 0, ...location };
}

/**
 * Reads a journal into a {@link JournalIndex}, one line at a time. A missing journal is empty. A line that is not a
 * valid record (torn by a process killed while writing it, or damaged since) is skipped with a warning naming it:
 * its job counts as not done, so the next run sends it again.
 */
export async function indexJournal(path: string, { ids, origin }: IndexOptions = {}): Promise<JournalIndex> {
  const index = new JournalIndex(ids, origin !== undefined ? { origin } : {});
  if ((await journalSize(path)) === 0) return index;
  let lineNumber = 0;
  const addJob = (job: IndexedJob): void => index.take(job);
  /** Indexes the line at `start`..`end` of `bytes` (`text` is `bytes` as latin1: the same offsets), which lies at `offset` in the file. */
  const take = (bytes: Buffer, text: string, start: number, end: number, offset: number): void => {
    lineNumber++;
    const location = { offset, length: end - start };
    // nightshift writes UTF-8: a line that is not was damaged, and decoding it would turn the damage into text.
    const utf8 = isUtf8(bytes.subarray(start, end));
    const quick = utf8 ? scanJobRecord(bytes, text, start, end, location) : undefined;
    if (quick) return addJob(quick);
    const line = bytes.toString('utf8', start, end);
    if (line.trim() === '') return;
    const record = utf8 ? parseRecord(line) : undefined;
    if (!record) {
      index.warnings.push(`${path}:${lineNumber}: skipped a journal line that is not a valid record (torn by a process killed while writing it, or damaged); its job counts as not done`);
      return;
    }
    if (record.type === 'run') index.runs++;
    else if (record.type === 'job') addJob(indexedJob(record, location));
  };
  const takeWhole = (line: Buffer, offset: number): void => take(line, line.toString('latin1'), 0, line.length, offset);

  let position = 0;
  let pending: Buffer[] = [];
  let pendingStart = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    // One latin1 string a chunk: a character per byte, so lines are found and scanned at the bytes' own offsets.
    const text = chunk.toString('latin1');
    let start = 0;
    for (let newline = text.indexOf('\n'); newline !== -1; newline = text.indexOf('\n', start)) {
      if (pending.length > 0) {
        takeWhole(Buffer.concat([...pending, chunk.subarray(start, newline)]), pendingStart);
        pending = [];
      } else take(chunk, text, start, newline, position + start);
      start = newline + 1;
    }
    if (start < chunk.length) {
      if (pending.length === 0) pendingStart = position + start;
      pending.push(chunk.subarray(start));
    }
    position += chunk.length;
  }
  if (pending.length > 0) takeWhole(Buffer.concat(pending), pendingStart);
  return index;
}
