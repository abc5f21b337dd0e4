import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import type { Clock } from '../common/clock.js';
import { zeroUsage, type Usage } from '../common/types.js';
import { costOf, type CostOptions } from '../cost/cost.js';
import type { PriceBook } from '../cost/prices.js';
import { AnswerProblem, answerState, readChatAnswer, readImageAnswer } from '../output/answer.js';
import type { OutputFolder } from '../output/folder.js';
import { ImageSaveError, saveImages } from '../output/images.js';
import { jobRecord, type Outcome } from '../output/job-record.js';
import { fingerprintKey } from '../output/journal-index.js';
import type { JobRecord } from '../output/journal.js';
import type { Batch, BatchApi } from './api.js';
import type { PartState } from './ledger.js';
import { parseResultLine, type BatchLineError, type BatchResult } from './lines.js';
import type { PartEntry } from './part-file.js';

/** What collecting a batch needs. */
export interface CollectContext {
  api: BatchApi;
  folder: Pick<OutputFolder, 'dir' | 'collect' | 'index' | 'readRecord'>;
  prices: PriceBook;
  clock: Clock;
  /** The origin journaled with each answer (as a live run's). */
  origin: string;
  redact: (text: string) => string;
  /** Per-download timeout of images answered as URLs. */
  timeoutMs: number;
  /** How many times each job was submitted by this command, for the records' `attempts`. @default 1 */
  attemptsOf?: (id: string) => number;
  /** The part was being collected when a process stopped: lines already journaled from this batch are not journaled twice. */
  resumed?: boolean;
  warn: (message: string) => void;
}

/** What a batch's lines came to. */
export interface Collected {
  done: number;
  incomplete: number;
  failed: number;
  /** Jobs journaled as failed with an error a new attempt may not have: they are not sent again by this command. */
  failedForGood: string[];
  /** Jobs without an answer to send again: lines the batch never ran (expired, cancelled), or that failed retryably. */
  again: string[];
  /** The batch was refused because the model's enqueued-token limit is full: nothing ran, the part waits. */
  refused?: string;
}

/** The batch-level error code of a batch refused because its model's enqueued tokens are at the limit. */
const TOKEN_LIMIT = 'token_limit_exceeded';
/** Line errors of requests the batch never ran: sent again, not failed. */
const NEVER_RAN = new Set(['batch_expired', 'batch_cancelled']);

/**
 * Journals every line of an ended batch as its job's outcome, priced at Batch API rates: its output file and its
 * error file are read as streams, in whatever order their lines come, each matched to its job by custom_id through
 * the part's id list. Lines the batch never ran, and lines missing from both files, are left pending (returned in
 * `again`); a batch that failed validation fails the lines it names, with their job file and line.
 */
export async function collectBatch(part: PartState, batch: Batch, context: CollectContext): Promise<Collected> {
  const pending: Promise<void>[] = [];
  try {
    return await collectLines(part, batch, context, pending);
  } finally {
    await settle(pending);
  }
}

/** Records handed to the journal before waiting for them to be on disk. */
const JOURNAL_WINDOW = 1024;

/** Waits for every record handed to the journal; the first failure is thrown once all have settled. */
async function settle(pending: Promise<void>[]): Promise<void> {
  const results = await Promise.allSettled(pending.splice(0));
  const failure = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failure) throw failure.reason;
}

async function collectLines(part: PartState, batch: Batch, context: CollectContext, pending: Promise<void>[]): Promise<Collected> {
  const entries = await readEntries(join(context.folder.dir, part.ids));
  const collected: Collected = { done: 0, incomplete: 0, failed: 0, failedForGood: [], again: [] };
  const seen = new Set<string>();
  const journaled = context.resumed ? await alreadyJournaled(entries, batch.id, context) : new Set<string>();
  const timing = batchTiming(batch, context.clock);

  const take = async (entry: PartEntry, outcome: Outcome | 'again', retryable = false): Promise<void> => {
    if (outcome === 'again') {
      collected.again.push(entry.id);
      return;
    }
    if (journaled.has(entry.custom_id)) return;
    const attempts = context.attemptsOf?.(entry.id) ?? 1;
    const record = jobRecord({ ...entry, model: part.model }, entry.fingerprint, { ...timing, attempts }, { ...outcome, batchId: batch.id }, context.origin);
    count(collected, record, retryable);
    // The journal commits appends made together in one write: records are handed to it without waiting for each,
    // and waited for a window at a time (and all before the batch counts as collected).
    pending.push(context.folder.collect(record));
    if (pending.length >= JOURNAL_WINDOW) await settle(pending);
  };

  if (batch.status === 'failed') {
    const errors = batch.errors?.data ?? [];
    const refusal = errors.find((error) => error.code === TOKEN_LIMIT);
    if (refusal) return { ...collected, refused: context.redact(refusal.message ?? TOKEN_LIMIT) };
    const byLine = new Map(errors.filter((error) => typeof error.line === 'number').map((error) => [error.line!, error]));
    const whole = errors.find((error) => typeof error.line !== 'number');
    let line = 0;
    for (const entry of entries.values()) {
      line++;
      const error = byLine.get(line) ?? whole;
      // A line the refusal does not name was fine: it is sent again in a batch of its own.
      if (error === undefined && byLine.size > 0) {
        await take(entry, 'again');
        continue;
      }
      const message = error ? `${error.code ?? 'invalid'}: ${error.message ?? 'refused by the Batch API'}` : 'the batch failed validation without saying why';
      await take(entry, { state: 'failed', error: context.redact(`${entry.source.file}:${entry.source.line}: ${message}`), usage: zeroUsage(), costUsd: 0 });
    }
    return collected;
  }

  for (const fileId of [batch.output_file_id, batch.error_file_id]) {
    if (!fileId) continue;
    for await (const text of context.api.lines(fileId)) {
      const parsed = parseResultLine(text);
      if ('problem' in parsed) {
        context.warn(`batch ${batch.id}: ${parsed.problem}${parsed.customId ? ` (custom_id ${parsed.customId}); its job stays pending` : ''}`);
        continue;
      }
      const entry = entries.get(parsed.result.customId);
      if (entry === undefined || seen.has(parsed.result.customId)) {
        context.warn(`batch ${batch.id}: a line for ${entry ? 'a request already collected' : 'a request nightshift did not send'} (custom_id ${parsed.result.customId}) is skipped`);
        continue;
      }
      seen.add(parsed.result.customId);
      const outcome = await outcomeOf(parsed.result, entry, part.model, batch, context);
      await take(entry, outcome.outcome, outcome.retryable);
    }
  }
  let missing = 0;
  for (const [customId, entry] of entries) {
    if (seen.has(customId)) continue;
    missing++;
    collected.again.push(entry.id);
  }
  if (missing > 0 && batch.status === 'completed') context.warn(`batch ${batch.id} completed without an answer for ${missing} request${missing === 1 ? '' : 's'}: they stay pending`);
  return collected;
}

function count(collected: Collected, record: JobRecord, retryable: boolean): void {
  if (record.state === 'done') collected.done++;
  else if (record.state === 'incomplete') collected.incomplete++;
  else {
    collected.failed++;
    if (retryable) collected.again.push(record.id);
    else collected.failedForGood.push(record.id);
  }
}

/** A line's outcome: an answer, a failure (retryable or not), or `again` for a request the batch never ran. */
async function outcomeOf(result: BatchResult, entry: PartEntry, model: string, batch: Batch, context: CollectContext): Promise<{ outcome: Outcome | 'again'; retryable: boolean }> {
  const requestId = result.requestId ? { requestId: context.redact(result.requestId) } : {};
  if (!result.ok) {
    const { status, error } = result;
    if (status === undefined) return { outcome: 'again', retryable: true };
    const message = context.redact(describeLineError(status, error));
    return { outcome: { state: 'failed', error: message, status, usage: zeroUsage(), costUsd: 0, ...requestId }, retryable: isRetryable(status, error) };
  }
  const price = (usage: Usage, tier?: string): number | null =>
    costOf(usage, model, context.prices, { ...entry.cost, batch: true, ...(tier ? { serviceTier: tier } : {}) } satisfies CostOptions).usd;
  try {
    if (entry.kind !== 'image') {
      const { usage, output, finishReason, serviceTier } = readChatAnswer(result.body, context.redact);
      if (usage === undefined) context.warn(`job ${entry.id}: batch ${batch.id} reported no token usage; its cost is unknown`);
      const outcome: Outcome = {
        state: answerState(finishReason),
        output,
        ...(finishReason ? { finishReason } : {}),
        usage: usage ?? zeroUsage(),
        costUsd: usage ? price(usage, serviceTier) : null,
        ...(serviceTier ? { serviceTier } : {}),
        ...requestId,
      };
      return { outcome, retryable: false };
    }
    const { items, usage } = readImageAnswer(result.body, entry.n);
    const answer = { usage, ...requestId, headers: new Headers() };
    const files = await saveImages(entry, items, answer, { outDir: context.folder.dir, timeoutMs: context.timeoutMs });
    return { outcome: { state: 'done', files, usage, costUsd: price(usage), ...requestId }, retryable: false };
  } catch (error) {
    if (error instanceof AnswerProblem) {
      // Not the answer asked for: tried again like a live bad answer; what it said it cost was billed.
      const usage = error.usage ?? zeroUsage();
      return { outcome: { state: 'failed', error: `the batch answered with ${error.problem}`, status: result.status, usage, costUsd: error.usage ? price(usage) : 0, ...requestId }, retryable: true };
    }
    if (error instanceof ImageSaveError) {
      const cause = context.redact(error.message);
      return { outcome: { state: 'failed', error: `The image was generated (and billed) but could not be written: ${cause}`, usage: error.usage, costUsd: price(error.usage), ...requestId }, retryable: false };
    }
    throw error;
  }
}

/** What a line's error says, as the `error` column shows a live failure: the message, then status and code. */
function describeLineError(status: number, error: BatchLineError): string {
  const label = [String(status), error.code ?? error.type].filter(Boolean).join(' ');
  return `${error.message ?? 'the request failed'} (${label})`;
}

/** A line's failure that a new attempt may get past: rate limits, server errors, requests the batch never ran. */
function isRetryable(status: number, error: BatchLineError): boolean {
  if (error.code && NEVER_RAN.has(error.code)) return true;
  if (error.type === 'insufficient_quota' || error.code === 'insufficient_quota') return false;
  return status === 408 || status === 409 || status === 429 || status >= 500;
}

/** A batch's lines ran between its creation and its end; collected now. */
function batchTiming(batch: Batch, clock: Clock): { startedAt: number; finishedAt: number; latencyMs: number } {
  const startedAt = batch.created_at * 1000;
  const endedAt = (batch.completed_at ?? batch.expired_at ?? batch.cancelled_at ?? batch.failed_at ?? clock.now() / 1000) * 1000;
  return { startedAt, finishedAt: clock.now(), latencyMs: Math.max(0, endedAt - startedAt) };
}

/** The part's id list, by custom_id, in line order. */
async function readEntries(path: string): Promise<Map<string, PartEntry>> {
  const entries = new Map<string, PartEntry>();
  for await (const line of createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Infinity })) {
    if (line === '') continue;
    const entry = JSON.parse(line) as PartEntry;
    entries.set(entry.custom_id, entry);
  }
  return entries;
}

/** The custom_ids whose job's journaled record already came from `batchId` (a collection cut short). */
async function alreadyJournaled(entries: Map<string, PartEntry>, batchId: string, context: CollectContext): Promise<Set<string>> {
  const found = new Set<string>();
  for (const [customId, entry] of entries) {
    const ref = context.folder.index.current(entry.id, fingerprintKey(entry.fingerprint));
    if (ref === undefined) continue;
    const record = await context.folder.readRecord(ref);
    if (record.batchId === batchId && record.fingerprint === entry.fingerprint) found.add(customId);
  }
  return found;
}
