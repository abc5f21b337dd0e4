/**
 * The money and charts of an output folder's page, and the facts of its latest run: every request its journals
 * record, added up one line at a time.
 */
import { join } from 'node:path';
import { addUsd, journalFiles, repriced } from '../cost/money.js';
import type { PriceBook } from '../cost/prices.js';
import { sentAndFinished, UNTAGGED } from '../cost/report.js';
import { scanRequest, type RequestFields } from '../output/journal-scan.js';
import { answerCountsFor, JOURNAL_FILE, journalLines, parseRecord, skippedLine, type JournalRecord, type RunRecord } from '../output/journal.js';

/** The facts of a folder's latest run, from its journal. */
export interface RunFacts {
  folder: string;
  startedAt?: string;
  /** When its last request finished. */
  finishedAt?: string;
  files: string[];
  jobs: number;
  origin?: string;
  /** Requests it journaled. */
  sent: number;
  retries: number;
  /** Answers by the service tier they report. */
  tiers: Record<string, number>;
  /** The Batch API batches that answered its requests (`run --batch`). */
  batches: string[];
  /** Given by the run that writes the page; the journal does not keep it. */
  concurrency?: number;
  warnings: string[];
}

/** Dollars by model, tag and UTC day. */
export interface Charts {
  byModel: Map<string, number>;
  byTag: Map<string, number>;
  byDay: Map<string, number>;
}

/** How much money and which facts a folder's journals add up to. */
export interface Tally {
  run: RunFacts;
  paidUsd: number;
  thisRunUsd: number;
  unpriced: number;
}

/** What a tally is told beyond the folder. */
export interface TallyOptions {
  /** Prices every request again, as `report --prices`. */
  prices?: PriceBook;
  /** The origin of the folder's latest run, when the caller is that run: the journal is not read twice to find it. */
  origin?: string;
  onWarning?: (warning: string) => void;
}

/**
 * Adds up every request of a folder's journals (its money and charts, into `charts`), and the facts of its latest run,
 * one line at a time. Which answers of the offline server count depends on the folder's origin, which its latest run
 * record gives: that record is found first, unless the caller says it. A record laid out as nightshift writes it is
 * read without parsing it (see `output/journal-scan.ts` `scanRequest`); any other line is parsed and checked in full.
 */
export async function tallyJournals(folder: string, charts: Charts, options: TallyOptions): Promise<Tally> {
  const run: RunFacts = { folder, files: [], jobs: 0, sent: 0, retries: 0, tiers: {}, batches: [], warnings: [] };
  const tally: Tally = { run, paidUsd: 0, thisRunUsd: 0, unpriced: 0 };
  const origin = options.origin ?? (await latestRun(join(folder, JOURNAL_FILE)))?.origin ?? 'https://api.openai.com';
  let damaged = 0;
  for (const path of await journalFiles(folder)) {
    // Requests after the latest run record of journal.jsonl are the latest run's: its counts start again at each.
    const current = path === join(folder, JOURNAL_FILE);
    const request = (record: RequestFields): void => {
      if (!sentAndFinished(record)) return;
      if (current && record.finishedAt > (run.finishedAt ?? '')) run.finishedAt = record.finishedAt;
      // The rule of cost/money.ts `countsAsPaid`, for a request already known to be one.
      if (!answerCountsFor(record, origin)) return;
      if (current) {
        run.sent++;
        run.retries += record.attempts - 1;
        if (record.serviceTier) run.tiers[record.serviceTier] = (run.tiers[record.serviceTier] ?? 0) + 1;
        if (record.batchId && !run.batches.includes(record.batchId)) run.batches.push(record.batchId);
      }
      if (record.costUsd === null) {
        tally.unpriced++;
        return;
      }
      tally.paidUsd = addUsd(tally.paidUsd, record.costUsd);
      if (current) tally.thisRunUsd = addUsd(tally.thisRunUsd, record.costUsd);
      add(charts.byModel, record.model, record.costUsd);
      add(charts.byDay, utcDay(record.finishedAt), record.costUsd);
      for (const tag of record.tags.length > 0 ? new Set(record.tags) : [UNTAGGED]) add(charts.byTag, tag, record.costUsd);
    };
    const parsed = (read: JournalRecord): void => {
      if (read.type === 'run' && current) {
        Object.assign(run, { sent: 0, retries: 0, tiers: {}, batches: [] });
        tally.thisRunUsd = 0;
        delete run.finishedAt;
        Object.assign(run, { startedAt: read.startedAt, files: read.files, jobs: read.jobs, ...(read.origin !== undefined ? { origin: read.origin } : {}) });
      } else if (read.type === 'job') request(options.prices ? repriced(read, options.prices) : read);
    };
    for await (const line of journalEntries(path, () => damaged++, options)) {
      if ('type' in line) parsed(line);
      else request(line);
    }
  }
  if (damaged > 0) run.warnings.push(`${damaged} journal line${damaged === 1 ? ' is' : 's are'} not a valid record and left out`);
  return tally;
}

/**
 * The valid lines of a journal, oldest first: a job record as `scanRequest` reads it, or any other record parsed. A
 * line that is not a valid record is skipped with a warning naming it, as `output/journal.ts` `readJournalRecords` does.
 */
async function* journalEntries(path: string, onSkipped: () => void, { prices, onWarning }: TallyOptions): AsyncGenerator<RequestFields | JournalRecord> {
  for await (const { latin1, text, lineNumber } of journalLines(path)) {
    // Repricing needs the whole record.
    const scanned = text !== undefined && !prices ? scanRequest(latin1) : undefined;
    const record = scanned ?? (text === undefined ? undefined : parseRecord(text));
    if (record) {
      yield record;
      continue;
    }
    onSkipped();
    onWarning?.(skippedLine(path, lineNumber));
  }
}

/** The latest run record of a journal, read without parsing its job records. */
async function latestRun(path: string): Promise<RunRecord | undefined> {
  let latest: RunRecord | undefined;
  for await (const { text } of journalLines(path)) {
    // A reply holding these characters has them escaped (`\"type\"`): only a record's own field matches.
    if (text === undefined || !text.includes('"type":"run"')) continue;
    const record = parseRecord(text);
    if (record?.type === 'run') latest = record;
  }
  return latest;
}

function add(map: Map<string, number>, key: string, usd: number): void {
  map.set(key, addUsd(map.get(key) ?? 0, usd));
}

function utcDay(timestamp: string): string {
  const date = new Date(timestamp);
  return Number.isNaN(date.getTime()) ? '(unknown)' : date.toISOString().slice(0, 10);
}
