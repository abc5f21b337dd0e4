/**
 * An output folder's current results read back: each row of `results.jsonl` (one per job, in input order, as the
 * last run wrote it) with the journal record it shows, for what the row does not hold (image token counts, when it
 * finished, the files' sizes). Reads files only, so it works on a folder no run holds, and on one of an older run.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { messageOf, NightshiftError } from '../common/errors.js';
import { RESULTS_JSONL_FILE } from './folder.js';
import { JOURNAL_FILE, readJournalRecords, type JobRecord } from './journal.js';
import type { ResultRow, ResultStatus } from './results.js';

/** One job's current result, and the journal record behind it (none for a pending job, or a record no longer found). */
export interface CurrentResult {
  row: ResultRow;
  record?: JobRecord;
}

const STATUS_OF_STATE: Readonly<Record<string, ResultStatus>> = { done: 'ok', incomplete: 'incomplete', failed: 'failed' };

/**
 * The folder's current results, `[]` when it has no `results.jsonl` (no run finished writing its views there). A row
 * is matched to the latest journal record of its job that shows the same outcome (status, attempts, latency and
 * request id), which is the record the run wrote the row from.
 */
export async function readCurrentResults(folder: string, onWarning?: (warning: string) => void): Promise<CurrentResult[]> {
  const rows = await readRows(join(folder, RESULTS_JSONL_FILE));
  const byId = new Map<string, number>();
  for (const [index, row] of rows.entries()) if (row.row.status !== 'pending') byId.set(String(row.row.id), index);
  for await (const record of readJournalRecords(join(folder, JOURNAL_FILE), onWarning ? { onWarning } : {})) {
    if (record.type !== 'job') continue;
    const index = byId.get(record.id);
    if (index !== undefined && shows(rows[index]!.row, record)) rows[index]!.record = record;
  }
  return rows;
}

/** Whether a results row shows this record's outcome. */
function shows(row: ResultRow, record: JobRecord): boolean {
  return (
    STATUS_OF_STATE[record.state] === row.status &&
    record.attempts === row.attempts &&
    record.latencyMs === row.latency_ms &&
    (record.requestId ?? null) === row.request_id
  );
}

async function readRows(path: string): Promise<CurrentResult[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new NightshiftError('E_OUTPUT', `Cannot read ${path}: ${messageOf(error)}`, { path }, { cause: error });
  }
  const rows: CurrentResult[] = [];
  for (const [index, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    try {
      rows.push({ row: JSON.parse(line) as ResultRow });
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      throw new NightshiftError('E_OUTPUT', `${path}:${index + 1} is not a JSON line: results.jsonl was damaged; a run rewrites it from the journal`, { path });
    }
  }
  return rows;
}
