/**
 * The usage and cost audit of past runs, rebuilt from their journals alone: every request a journal records,
 * grouped by one key. Pure: the caller streams the records in.
 *
 * Every `job` record is a request that was sent and finished (ok, incomplete or failed), so a job that failed and was later
 * rerun counts once per outcome, and journals set aside by `--fresh` still count: they were billed. Records with
 * `attempts: 0` are the exception: they mark image files renamed on a resume, which sent nothing.
 */
import { answeredOffline, paidBy, type JournalRecord, type JobRecord, type JobState } from '../output/journal.js';
import { UsageTable, type UsageGrouping } from '../output/usage-table.js';

/** What `nightshift report --by` groups by. */
export const REPORT_KEYS = ['model', 'kind', 'tag', 'day', 'file'] as const;

export type ReportKey = (typeof REPORT_KEYS)[number];

/** The row of a job without tags when grouping by tag. */
export const UNTAGGED = '(untagged)';

const GROUPINGS: Readonly<Record<ReportKey, UsageGrouping<JobRecord>>> = {
  model: { columns: ['model'], keysOf: (record) => [[record.model]], sorted: true },
  kind: { columns: ['kind'], keysOf: (record) => [[record.kind]], sorted: true },
  // A job counts under each of its tags, so tag rows can add up to more than the TOTAL.
  tag: {
    columns: ['tag'],
    keysOf: (record) => (record.tags.length > 0 ? [...new Set(record.tags)].map((tag) => [tag]) : [[UNTAGGED]]),
    sorted: true,
  },
  day: { columns: ['day'], keysOf: (record) => [[utcDay(record.finishedAt)]], sorted: true },
  file: { columns: ['file'], keysOf: (record) => [[jobFile(record.source)]], sorted: true },
};

/** An empty report grouped by `by`; feed it journal records with {@link addToReport}. */
export function createReport(by: ReportKey): UsageTable<JobRecord> {
  return new UsageTable(GROUPINGS[by]);
}

/**
 * Whether a journal record is an answer of the offline server: no request to an API, no dollar billed. The report
 * shows them apart, so that nobody audits their dollars as real ones.
 */
export const isOfflineAnswer = (record: JournalRecord): boolean => record.type === 'job' && answeredOffline(record);

/** Counts `record` in `report` when it stands for a request that was sent. */
export function addToReport(report: UsageTable<JobRecord>, record: JournalRecord): void {
  // A record that kept images an earlier record paid for counts what its own request paid.
  if (isRequest(record)) report.add(record, { ...record, ...paidBy(record) });
}

const OUTCOMES = new Set<JobState>(['done', 'incomplete', 'failed']);

/**
 * Whether a journal record stands for a request that was sent and finished: a job outcome, apart from resume-time
 * image renames. States other than done, incomplete and failed (the Batch API's `submitted`, to come) are not
 * outcomes yet.
 */
export const isRequest = (record: JournalRecord): record is JobRecord => record.type === 'job' && sentAndFinished(record);

/** {@link isRequest} for what is known to be a job record. */
export const sentAndFinished = (record: Pick<JobRecord, 'attempts' | 'state'>): boolean => record.attempts > 0 && OUTCOMES.has(record.state);

/** The UTC date (`2025-06-30`) of an ISO timestamp. */
function utcDay(timestamp: string): string {
  const date = new Date(timestamp);
  return Number.isNaN(date.getTime()) ? '(unknown)' : date.toISOString().slice(0, 10);
}

/** The job file of a `file:line` source; the file name may itself hold colons (`C:\jobs\a.jsonl:3`). */
function jobFile(source: string): string {
  const colon = source.lastIndexOf(':');
  return colon < 0 ? source : source.slice(0, colon);
}
