import { mkdir, open, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { NightshiftError } from '../common/errors.js';
import { describeFileSystemError, isFileSystemError } from '../common/fs-errors.js';
import type { Endpoint } from '../common/types.js';
import { STATE_DIR } from '../output/folder.js';

/** The folder's batch ledger: every step of every part, appended and on disk before the step is taken. */
export const BATCH_LEDGER = join(STATE_DIR, 'batches.jsonl');
/** Where the parts' input files and id lists are written, one folder per submission. */
export const PARTS_DIR = join(STATE_DIR, 'batches');

/**
 * One step of a part's life. `part` is written before its file is uploaded and `uploaded` before its batch is
 * created, so a process killed at any instant leaves a ledger that says what may exist on the account: the next
 * run looks for it (the batch list, by the part's metadata) before it submits anything.
 */
export type LedgerRecord =
  | {
      type: 'part';
      part: string;
      endpoint: Endpoint;
      model: string;
      requests: number;
      bytes: number;
      /** The input file and the id list, relative to the output folder. */
      file: string;
      ids: string;
      /** With a budget: the most the part's jobs can cost, held against the budget until the part is collected. */
      worstUsd?: number;
      at: string;
    }
  | { type: 'uploaded'; part: string; fileId: string; at: string }
  | { type: 'submitted'; part: string; batchId: string; createdAt?: number; expiresAt?: number; at: string }
  /** The API refused the batch for now (the model's enqueued-token limit is full): the part waits to be submitted again. */
  | { type: 'refused'; part: string; batchId: string; error: string; at: string }
  /** Collecting the batch's lines has begun: a process stopped after this may have journaled some of them. */
  | { type: 'collecting'; part: string; batchId: string; at: string }
  /** Every line of the batch is journaled (or left pending, when the batch never ran it). */
  | { type: 'collected'; part: string; batchId: string; status: string; completed?: number; failed?: number; at: string }
  /** Not found on the account after a kill before its batch was created: its jobs are planned again. */
  | { type: 'abandoned'; part: string; reason: string; at: string }
  /** Its files are deleted from the account. */
  | { type: 'cleaned'; part: string; at: string };

/** Where a part stands, from its records. */
export type PartStage = 'intended' | 'uploaded' | 'submitted' | 'refused' | 'collected' | 'abandoned';

/** A part as its intent records it. */
type PartRecord = Extract<LedgerRecord, { type: 'part' }>;

export interface PartState extends Omit<PartRecord, 'type' | 'at'> {
  /** When the part was recorded (ISO time). */
  createdAt: string;
  stage: PartStage;
  fileId?: string;
  /** The batch running or last run for the part. */
  batchId?: string;
  /** The last batch's status when collected, and its request counts. */
  status?: string;
  completed?: number;
  failed?: number;
  /** The last batch's creation and expiry, in seconds since the epoch. */
  batchCreatedAt?: number;
  expiresAt?: number;
  cleaned: boolean;
}

/** Parts whose batch may still run or hold answers not yet journaled. */
export const isOpen = (part: PartState): boolean => part.stage === 'intended' || part.stage === 'uploaded' || part.stage === 'submitted' || part.stage === 'refused';

/** The ledger of an output folder: read once, then appended to, each record on disk before `append` returns. */
export class Ledger {
  readonly #parts = new Map<string, PartState>();
  /** `part\nbatchId` of the batches whose collection has begun. */
  readonly #collecting = new Set<string>();
  #handle: FileHandle | undefined;

  private constructor(readonly path: string) {}

  /** Reads the ledger of `outDir` (none yet: empty). A damaged line is skipped with a warning, like the journal's. */
  static async open(outDir: string, onWarning: (message: string) => void = () => {}): Promise<Ledger> {
    const ledger = new Ledger(join(outDir, BATCH_LEDGER));
    let text = '';
    try {
      text = await readFile(ledger.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw ledgerError(ledger.path, error);
    }
    text.split('\n').forEach((line, index) => {
      if (line.trim() === '') return;
      const record = parseLedgerLine(line);
      if (record) ledger.#apply(record);
      else onWarning(`${ledger.path}:${index + 1}: skipped a line that is not a batch ledger record (torn by a process killed while writing it, or damaged)`);
    });
    return ledger;
  }

  /** Every part, in the order they were recorded. */
  parts(): PartState[] {
    return [...this.#parts.values()];
  }

  part(key: string): PartState | undefined {
    return this.#parts.get(key);
  }

  /** Whether collecting batch `batchId` of part `part` (given as `part\nbatchId`) has begun. */
  collecting(key: string): boolean {
    return this.#collecting.has(key);
  }

  /** Appends `record` and makes it durable before it counts. */
  async append(record: LedgerRecord): Promise<void> {
    try {
      if (this.#handle === undefined) {
        await mkdir(join(this.path, '..'), { recursive: true });
        this.#handle = await open(this.path, 'a');
      }
      await this.#handle.write(`${JSON.stringify(record)}\n`);
      await this.#handle.datasync();
    } catch (error) {
      throw ledgerError(this.path, error);
    }
    this.#apply(record);
  }

  async close(): Promise<void> {
    const handle = this.#handle;
    this.#handle = undefined;
    await handle?.close();
  }

  #apply(record: LedgerRecord): void {
    if (record.type === 'part') {
      const { part, endpoint, model, requests, bytes, file, ids, worstUsd, at } = record;
      const held = typeof worstUsd === 'number' ? { worstUsd } : {};
      this.#parts.set(part, { part, endpoint, model, requests, bytes, file, ids, ...held, createdAt: at, stage: 'intended', cleaned: false });
      return;
    }
    const state = this.#parts.get(record.part);
    if (state === undefined) return;
    switch (record.type) {
      case 'uploaded':
        state.fileId = record.fileId;
        state.stage = 'uploaded';
        break;
      case 'submitted':
        state.batchId = record.batchId;
        state.stage = 'submitted';
        if (typeof record.createdAt === 'number') state.batchCreatedAt = record.createdAt;
        if (typeof record.expiresAt === 'number') state.expiresAt = record.expiresAt;
        break;
      case 'refused':
        state.stage = 'refused';
        break;
      case 'collecting':
        this.#collecting.add(`${record.part}\n${record.batchId}`);
        break;
      case 'collected':
        state.stage = 'collected';
        state.status = record.status;
        if (typeof record.completed === 'number') state.completed = record.completed;
        if (typeof record.failed === 'number') state.failed = record.failed;
        break;
      case 'abandoned':
        state.stage = 'abandoned';
        break;
      case 'cleaned':
        state.cleaned = true;
        break;
    }
  }
}

const STEPS = new Set(['uploaded', 'submitted', 'refused', 'collecting', 'collected', 'abandoned', 'cleaned']);

function parseLedgerLine(line: string): LedgerRecord | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    if (error instanceof SyntaxError) return undefined;
    throw error;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const record = value as Record<string, unknown>;
  if (typeof record.part !== 'string' || typeof record.at !== 'string') return undefined;
  if (record.type === 'part') {
    const { endpoint, model, requests, bytes, file, ids } = record;
    const counts = [requests, bytes].every((count) => typeof count === 'number' && Number.isInteger(count) && count >= 0);
    return typeof endpoint === 'string' && typeof model === 'string' && typeof file === 'string' && typeof ids === 'string' && counts
      ? (record as LedgerRecord)
      : undefined;
  }
  if (typeof record.type !== 'string' || !STEPS.has(record.type)) return undefined;
  const named = (field: string): boolean => typeof record[field] === 'string';
  if (record.type === 'uploaded' && !named('fileId')) return undefined;
  if (['submitted', 'refused', 'collecting', 'collected'].includes(record.type) && !named('batchId')) return undefined;
  return record as LedgerRecord;
}

function ledgerError(path: string, error: unknown): NightshiftError {
  const cause = isFileSystemError(error) ? describeFileSystemError(error) : String(error);
  return new NightshiftError('E_OUTPUT', `Cannot write the batch ledger ${path}: ${cause}`, { path }, { cause: error });
}
