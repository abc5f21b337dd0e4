/**
 * An output folder's current results read back: each row of `results.jsonl` (one per job, in input order, as the
 * last run wrote it) with the journal record it shows, for what the row does not hold (image token counts, when it
 * finished, the files' sizes). Reads files only, so it works on a folder no run holds, and on one of an older run.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { createInterface, type Interface } from 'node:readline';
import { join } from 'node:path';
import { messageOf, NightshiftError } from '../common/errors.js';
import { RESULTS_JSONL_FILE, type JournalView } from './folder.js';
import { JOURNAL_FILE, type JobRecord } from './journal.js';
import { indexJournal } from './journal-index.js';
import { RecordReader } from './record-reader.js';
import type { ResultRow, ResultStatus } from './results.js';

/** One job's current result, and the journal record behind it (none for a pending job, or a record no longer found). */
export interface CurrentResult {
  row: ResultRow;
  record?: JobRecord;
}

const STATUS_OF_STATE: Readonly<Record<string, ResultStatus>> = { done: 'ok', incomplete: 'incomplete', failed: 'failed' };

/** What {@link currentResults} reads of a journal index: the records it keeps for a job. */
export type ResultsIndex = Pick<JournalView, 'recordsOf'>;

/**
 * The folder's current results, one job at a time in input order (none when it has no `results.jsonl`: no run
 * finished writing its views there). A row is matched to the latest journal record of its job that shows the same
 * outcome (status, attempts, latency and request id), which is the record the run wrote the row from. Memory stays
 * flat in the rows: the journal is indexed (a few dozen bytes a job) and each row's record read back by location.
 * `held` is the index of the run that holds the folder and has just written its views from it: the journal is not
 * indexed a second time, and the run's heap holds one index, not two.
 */
export async function* currentResults(folder: string, onWarning?: (warning: string) => void, held?: ResultsIndex): AsyncGenerator<CurrentResult> {
  const path = join(folder, RESULTS_JSONL_FILE);
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new NightshiftError('E_OUTPUT', `Cannot read ${path}: ${messageOf(error)}`, { path }, { cause: error });
  }
  let lines: Interface | undefined;
  let reader: RecordReader | undefined;
  try {
    const journal = join(folder, JOURNAL_FILE);
    const index = held ?? (await indexed(journal, onWarning));
    if (index) reader = await RecordReader.open(journal);
    // Made only now: lines read before the loop below asks for them would be lost.
    lines = createInterface({ input: handle.createReadStream({ encoding: 'utf8', autoClose: false }), crlfDelay: Infinity });
    let lineNumber = 0;
    for await (const line of lines) {
      lineNumber++;
      if (line.trim() === '') continue;
      const row = parseRow(line, path, lineNumber);
      yield { row, ...(index && reader && row.status !== 'pending' ? await recordShown(row, index, reader) : {}) };
    }
  } finally {
    lines?.close();
    await reader?.close();
    await handle.close();
  }
}

/** The folder's journal indexed now, for a folder no run holds; undefined when it records no job. */
async function indexed(journal: string, onWarning?: (warning: string) => void): Promise<ResultsIndex | undefined> {
  const index = await indexJournal(journal);
  for (const warning of index.warnings) onWarning?.(warning);
  return index.size > 0 ? index : undefined;
}

/** The journal record `row` shows, among those the index keeps for its job. */
async function recordShown(row: ResultRow, index: ResultsIndex, reader: RecordReader): Promise<{ record?: JobRecord }> {
  for (const ref of index.recordsOf(String(row.id))) {
    const record = await reader.read(ref);
    if (shows(row, record)) return { record };
  }
  return {};
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

function parseRow(line: string, path: string, lineNumber: number): ResultRow {
  try {
    return JSON.parse(line) as ResultRow;
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    throw new NightshiftError('E_OUTPUT', `${path}:${lineNumber} is not a JSON line: results.jsonl was damaged; a run rewrites it from the journal`, { path });
  }
}
