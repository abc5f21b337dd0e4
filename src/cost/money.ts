/**
 * The three money figures nightshift prints, defined once so that the run's summary, the budget, `usage.csv`,
 * `report` and the HTML page say the same thing:
 *
 * - **this run spent**: the requests this command sent and journaled (retries that were billed included);
 * - **current results**: what the outcomes in `results.csv` cost, one per job (the `TOTAL` of `usage.csv`);
 * - **paid in all**: every request the folder's journals record, answers superseded since and journals `--fresh` set
 *   aside included (the `TOTAL` of `report`). This is what `--budget` caps.
 *
 * An answer of the offline server counts only where the folder's own answers come from it (an `--offline` run): it
 * was never billed, and `report` shows such answers apart.
 */
import { readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { messageOf, NightshiftError } from '../common/errors.js';
import { currentResults, type CurrentResult } from '../output/current-results.js';
import { answeredOffline, answerCountsFor, JOURNAL_FILE, readJournalRecords, type JobRecord, type JournalRecord } from '../output/journal.js';
import { costOf } from './cost.js';
import type { PriceBook } from './prices.js';
import { isRequest } from './report.js';

/** The three figures, in dollars rounded to the nano-dollar. */
export interface MoneyFigures {
  /** What this command spent: the requests it sent and journaled. */
  thisRunUsd: number;
  /** What the folder's current results cost: each job's outcome as `results.csv` shows it (`usage.csv`'s TOTAL). */
  currentUsd: number;
  /** Everything the folder has paid for: every request of its journals, superseded answers included (`report`'s TOTAL). */
  paidUsd: number;
}

/** How the figures are named wherever they are shown. */
export const MONEY_LABELS: Readonly<Record<keyof MoneyFigures, string>> = {
  thisRunUsd: 'this run spent',
  currentUsd: 'current results',
  paidUsd: 'paid in all',
};

/** `a + b` in whole nano-dollars, as the cost module sums, so that figures built in different orders agree. */
export const addUsd = (a: number, b: number): number => Math.round((a + b) * 1e9) / 1e9;

/** `journal.jsonl`, and the `journal-<stamp>.jsonl` files that `--fresh` set aside. */
const JOURNAL_NAME = /^journal(-[^/\\]+)?\.jsonl$/;

/** The journal files of an output folder, oldest name first; none when it holds no journal. */
export async function journalFiles(folder: string): Promise<string[]> {
  const names = await readFolder(folder);
  return names
    .filter((name) => JOURNAL_NAME.test(name))
    .sort()
    .map((name) => join(folder, name));
}

/** The journals `--fresh` set aside in an output folder: earlier runs' spending, outside `journal.jsonl`. */
export async function setAsideJournals(folder: string): Promise<string[]> {
  return (await journalFiles(folder)).filter((path) => basename(path) !== JOURNAL_FILE);
}

/**
 * The output folders at or below `folder`: itself when it holds a journal, otherwise every folder under it that
 * does (an output folder's own subfolders, `images/` and `.nightshift/`, are not searched). Sorted by path.
 */
export async function outputFoldersUnder(folder: string): Promise<string[]> {
  if ((await journalFiles(folder)).length > 0) return [folder];
  const found: string[] = [];
  const entries = await readdir(folder, { withFileTypes: true }).catch((error: unknown) => {
    throw new NightshiftError('E_OUTPUT', `Cannot read ${folder}: ${messageOf(error)}`, { path: folder }, { cause: error });
  });
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    // Links are not followed: a loop of links would never end, and outputs are never links (see output/folder.ts).
    if (entry.isDirectory() && !entry.isSymbolicLink()) found.push(...(await outputFoldersUnder(join(folder, entry.name))));
  }
  return found;
}

/**
 * Whether a journal record counts in what a folder has paid for, for a run whose answers come from `origin`: a
 * request that was sent and finished, whose answer the run may take as its own (see `answerCountsFor`).
 */
export const countsAsPaid = (record: JournalRecord, origin: string): record is JobRecord => isRequest(record) && answerCountsFor(record, origin);

/** What the requests of `paths` cost that count for a run whose answers come from `origin` (priced ones; unknown costs add nothing). */
export async function paidInJournals(paths: readonly string[], origin: string, onWarning?: (warning: string) => void): Promise<number> {
  let paid = 0;
  for (const path of paths) {
    for await (const record of readJournalRecords(path, onWarning ? { onWarning } : {})) {
      if (countsAsPaid(record, origin) && record.costUsd !== null) paid = addUsd(paid, record.costUsd);
    }
  }
  return paid;
}

/**
 * A record priced again with `book` (`report --prices`): its usage at the rates of the tier that served it. Models
 * priced per image are priced at their default size and quality, which the journal does not keep.
 */
export function repriced(record: JobRecord, book: PriceBook): JobRecord {
  // Nothing billed (a rename, or a failure the server charged nothing for) stays free, whatever the model's price.
  if (record.attempts === 0 || Object.values(record.usage).every((count) => count === 0)) return record;
  const { usd } = costOf(record.usage, record.model, book, record.serviceTier ? { serviceTier: record.serviceTier } : {});
  return { ...record, costUsd: usd };
}

/**
 * What a folder's current results cost (`usage.csv`'s TOTAL), the answers of the offline server apart: `usd` is what
 * was billed, `offlineUsd` what the offline server's answers would have cost. With `book`, priced again with it.
 */
export async function currentCost(folder: string, book?: PriceBook): Promise<{ usd: number; offlineUsd: number }> {
  const total = { usd: 0, offlineUsd: 0 };
  for await (const result of currentResults(folder)) addCurrentCost(total, result, book);
  return total;
}

/** Adds one current result to a {@link currentCost} total; returns what it cost (null when unknown or pending). */
export function addCurrentCost(total: { usd: number; offlineUsd: number }, { row, record }: CurrentResult, book?: PriceBook): number | null {
  const cost = book && record ? repriced(record, book).costUsd : typeof row.cost_usd === 'number' ? row.cost_usd : null;
  if (cost === null) return null;
  if (record && answeredOffline(record)) total.offlineUsd = addUsd(total.offlineUsd, cost);
  else total.usd = addUsd(total.usd, cost);
  return cost;
}

async function readFolder(folder: string): Promise<string[]> {
  try {
    return await readdir(folder);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new NightshiftError('E_USAGE', `${folder} is not a folder`);
    throw new NightshiftError('E_OUTPUT', `Cannot read ${folder}: ${messageOf(error)}`, { path: folder }, { cause: error });
  }
}
