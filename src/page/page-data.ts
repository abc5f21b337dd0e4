/**
 * What the HTML page shows, gathered from output folders by reading their files only: the current results
 * (`results.jsonl` and the journal records behind them), every request the journals record (for the money paid and
 * the charts), the latest run's facts, and, where the job files can still be read, each job's prompt, size and quality.
 */
import { access } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { Job } from '../common/types.js';
import { loadJobs } from '../jobs/load.js';
import { addUsd, currentCostOf, journalFiles, repriced, type MoneyFigures } from '../cost/money.js';
import type { PriceBook } from '../cost/prices.js';
import { isRequest, UNTAGGED } from '../cost/report.js';
import { readCurrentResults, type CurrentResult } from '../output/current-results.js';
import { answeredOffline, answerCountsFor, JOURNAL_FILE, OFFLINE_ORIGIN, readJournalRecords, type JobRecord } from '../output/journal.js';

/** A reply longer than this is cut in the page (the whole of it is in results.jsonl): the page of 100,000 jobs stays small. */
export const REPLY_CHARS = 4_000;

/** One job as the page shows it. */
export interface PageJob {
  /** Which of {@link PageData.folders} it belongs to. */
  folder: number;
  id: string;
  kind: string;
  model: string;
  status: string;
  tokens: number;
  /** Dollars of its current outcome; null when unknown or pending. */
  costUsd: number | null;
  /** The reply (chat, vision), cut at {@link REPLY_CHARS}; the error of a failed job. */
  reply: string;
  replyCut: boolean;
  error: string;
  finishReason: string;
  tags: string[];
  source: string;
  /** The job's prompt, size and quality, when its job file could be read. */
  prompt?: string;
  size?: string;
  quality?: string;
  /** Its images, as links relative to the page. */
  images: string[];
  /** Its current outcome came from the folder's latest run. */
  regenerated: boolean;
}

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

/** Everything the page shows. */
export interface PageData {
  folders: string[];
  money: MoneyFigures & {
    /** The folders' answers came from the offline server: nothing was billed. */
    offline: boolean;
    /** Requests of unknown cost, left out of the figures. */
    unpriced: number;
  };
  /** Dollars paid in all, by model, by tag (a request counts under each of its tags) and by UTC day. */
  charts: { byModel: [string, number][]; byTag: [string, number][]; byDay: [string, number][] };
  runs: RunFacts[];
  jobs: PageJob[];
}

/** What the caller knows beyond the folders' files. */
export interface PageOptions {
  /** The folder the page is written in: image links are relative to it. */
  pageDir: string;
  /** The jobs of a folder, when the caller holds them (a run); otherwise the job files its latest run names are read. */
  jobsOf?: (folder: string, files: readonly string[]) => AsyncIterable<Job> | undefined;
  /** Prices every request again, as `report --prices`. */
  prices?: PriceBook;
  /** The concurrency of the run writing the page. */
  concurrency?: number;
  onWarning?: (warning: string) => void;
}

/** A request of a journal, as much of it as the figures and charts need. */
interface Paid {
  model: string;
  tags: string[];
  day: string;
  costUsd: number | null;
  /** Where its answer came from (see `JobRecord.origin`): whether it counts depends on the folder's own origin. */
  origin?: string;
  /** Recorded after the latest run record of `journal.jsonl`. */
  latest: boolean;
  attempts: number;
  serviceTier?: string;
  batchId?: string;
}

/** Gathers the page's data from output folders. */
export async function collectPageData(folders: readonly string[], options: PageOptions): Promise<PageData> {
  const data: PageData = {
    folders: [...folders],
    money: { thisRunUsd: 0, currentUsd: 0, paidUsd: 0, offline: true, unpriced: 0 },
    charts: { byModel: [], byTag: [], byDay: [] },
    runs: [],
    jobs: [],
  };
  const byModel = new Map<string, number>();
  const byTag = new Map<string, number>();
  const byDay = new Map<string, number>();
  for (const [index, folder] of folders.entries()) {
    const { paid, run } = await readJournals(folder, options);
    const origin = run.origin ?? 'https://api.openai.com';
    if (origin !== OFFLINE_ORIGIN) data.money.offline = false;
    let retries = 0;
    for (const request of paid) {
      // The rule of cost/money.ts `countsAsPaid`, for a request already known to be one (`isRequest`).
      if (!answerCountsFor(request, origin)) continue;
      if (request.latest) {
        run.sent++;
        retries += request.attempts - 1;
        if (request.serviceTier) run.tiers[request.serviceTier] = (run.tiers[request.serviceTier] ?? 0) + 1;
        if (request.batchId && !run.batches.includes(request.batchId)) run.batches.push(request.batchId);
      }
      if (request.costUsd === null) {
        data.money.unpriced++;
        continue;
      }
      data.money.paidUsd = addUsd(data.money.paidUsd, request.costUsd);
      if (request.latest) data.money.thisRunUsd = addUsd(data.money.thisRunUsd, request.costUsd);
      add(byModel, request.model, request.costUsd);
      add(byDay, request.day, request.costUsd);
      for (const tag of request.tags.length > 0 ? new Set(request.tags) : [UNTAGGED]) add(byTag, tag, request.costUsd);
    }
    run.retries = retries;
    const results = await readCurrentResults(folder);
    const current = currentCostOf(results, options.prices);
    data.money.currentUsd = addUsd(data.money.currentUsd, origin === OFFLINE_ORIGIN ? addUsd(current.usd, current.offlineUsd) : current.usd);
    const details = await jobDetails(folder, run.files, options);
    if (!details) run.warnings.push(`the job files (${run.files.join(', ') || 'none named'}) could not be read from here: prompts are not shown`);
    run.warnings.push(...addJobs(data, { index, folder, results, runStartedAt: run.startedAt, details: details ?? new Map() }, options));
    data.runs.push({ ...run, ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}) });
  }
  data.charts = { byModel: sorted(byModel), byTag: sorted(byTag), byDay: [...byDay].sort(([a], [b]) => (a < b ? -1 : 1)) };
  return data;
}

/** Every request of a folder's journals, and the facts of its latest run. */
async function readJournals(folder: string, options: PageOptions): Promise<{ paid: Paid[]; run: RunFacts }> {
  const paid: Paid[] = [];
  const run: RunFacts = { folder, files: [], jobs: 0, sent: 0, retries: 0, tiers: {}, batches: [], warnings: [] };
  let damaged = 0;
  for (const path of await journalFiles(folder)) {
    const current = path === join(folder, JOURNAL_FILE);
    // Requests before the latest run record are earlier runs'; the marks are moved as later run records come.
    let sinceRun: Paid[] = [];
    const onWarning = (warning: string): void => {
      damaged++;
      options.onWarning?.(warning);
    };
    for await (const read of readJournalRecords(path, { onWarning })) {
      if (read.type === 'run' && current) {
        for (const request of sinceRun) request.latest = false;
        sinceRun = [];
        delete run.finishedAt;
        Object.assign(run, { startedAt: read.startedAt, files: read.files, jobs: read.jobs, ...(read.origin !== undefined ? { origin: read.origin } : {}) });
        continue;
      }
      if (read.type !== 'job') continue;
      const record = options.prices ? repriced(read, options.prices) : read;
      if (!isRequest(record)) continue;
      const request: Paid = {
        model: record.model,
        tags: record.tags,
        day: utcDay(record.finishedAt),
        costUsd: record.costUsd,
        ...(record.origin !== undefined ? { origin: record.origin } : {}),
        latest: current,
        attempts: record.attempts,
        ...(record.serviceTier ? { serviceTier: record.serviceTier } : {}),
        ...(record.batchId ? { batchId: record.batchId } : {}),
      };
      if (current) {
        sinceRun.push(request);
        if (record.finishedAt > (run.finishedAt ?? '')) run.finishedAt = record.finishedAt;
      }
      paid.push(request);
    }
  }
  if (damaged > 0) run.warnings.push(`${damaged} journal line${damaged === 1 ? ' is' : 's are'} not a valid record and left out`);
  return { paid, run };
}

/** Adds the rows of the folder's current results, with what the page adds to them; returns what deserves a warning. */
function addJobs(
  data: PageData,
  { index, folder, results, runStartedAt, details }: { index: number; folder: string; results: readonly CurrentResult[]; runStartedAt: string | undefined; details: Map<string, JobDetails> },
  options: PageOptions,
): string[] {
  let failed = 0;
  let incomplete = 0;
  let pending = 0;
  for (const { row, record } of results) {
    const status = String(row.status);
    if (status === 'failed') failed++;
    else if (status === 'incomplete') incomplete++;
    else if (status === 'pending') pending++;
    const cost = options.prices && record ? repriced(record, options.prices).costUsd : typeof row.cost_usd === 'number' ? row.cost_usd : null;
    const reply = status === 'failed' ? String(row.error ?? '') : record && record.files.length === 0 ? record.output : row.kind === 'image' ? '' : String(row.output ?? '');
    const detail = details.get(String(row.id));
    data.jobs.push({
      folder: index,
      id: String(row.id),
      kind: String(row.kind),
      model: String(row.model),
      status,
      tokens: Number(row.total_tokens ?? 0),
      costUsd: cost,
      reply: reply.slice(0, REPLY_CHARS),
      replyCut: reply.length > REPLY_CHARS,
      error: String(row.error ?? ''),
      finishReason: String(row.finish_reason ?? ''),
      tags: [...row.tags],
      source: String(row.source),
      ...(detail ?? {}),
      images: imagesOf(record).map((path) => linkTo(options.pageDir, join(folder, path))),
      regenerated: record !== undefined && record.attempts > 0 && runStartedAt !== undefined && record.finishedAt >= runStartedAt && !answeredOfflineElsewhere(record),
    });
  }
  const warnings: string[] = [];
  if (failed > 0) warnings.push(`${failed} job${failed === 1 ? '' : 's'} failed`);
  if (incomplete > 0) warnings.push(`${incomplete} answer${incomplete === 1 ? ' was' : 's were'} cut off (incomplete)`);
  if (pending > 0) warnings.push(`${pending} job${pending === 1 ? ' is' : 's are'} pending`);
  return warnings;
}

// An answer of the offline server in a folder of real answers is not one of its results; never shown as regenerated.
const answeredOfflineElsewhere = (record: JobRecord): boolean => answeredOffline(record) && record.origin !== OFFLINE_ORIGIN;

/** The image files of a record, relative to its output folder. */
const imagesOf = (record: JobRecord | undefined): string[] => record?.files.map((file) => file.path) ?? [];

/** A link from the page's folder to `path`, as a relative URL (each segment escaped). */
export function linkTo(pageDir: string, path: string): string {
  return relative(pageDir, path).split(sep).map(encodeURIComponent).join('/');
}

/** What the job file says of a job that the results do not. */
interface JobDetails {
  prompt?: string;
  size?: string;
  quality?: string;
}

/** Each job's prompt, size and quality, by id; undefined when the job files cannot be read. */
async function jobDetails(folder: string, files: readonly string[], options: PageOptions): Promise<Map<string, JobDetails> | undefined> {
  const jobs = options.jobsOf?.(folder, files) ?? (await readJobFiles(files));
  if (!jobs) return undefined;
  const details = new Map<string, JobDetails>();
  for await (const job of jobs) details.set(job.id, detailsOf(job));
  return details;
}

/** The jobs of the files a run named, as valid ones read now; undefined when a file is gone. */
async function readJobFiles(files: readonly string[]): Promise<AsyncIterable<Job> | undefined> {
  if (files.length === 0) return undefined;
  for (const file of files) {
    const readable = await access(file).then(
      () => true,
      // A job file moved or deleted since the run: the page goes without prompts.
      () => false,
    );
    if (!readable) return undefined;
  }
  // Jobs that no longer validate (a model left to --model, say) show no prompt; the others do.
  const { jobs } = await loadJobs(files);
  return (async function* () {
    yield* jobs;
  })();
}

function detailsOf(job: Job): JobDetails {
  const { size, quality } = job.body;
  const prompt = job.endpoint === '/v1/images/generations' ? job.body.prompt : lastUserText(job.body.messages);
  return {
    ...(typeof prompt === 'string' ? { prompt: prompt.slice(0, REPLY_CHARS) } : {}),
    ...(typeof size === 'string' ? { size } : {}),
    ...(typeof quality === 'string' ? { quality } : {}),
  };
}

/** The text of the last user message: what a person would call the prompt. */
function lastUserText(messages: unknown): string | undefined {
  if (!Array.isArray(messages)) return undefined;
  for (const message of [...(messages as unknown[])].reverse()) {
    if (typeof message !== 'object' || message === null || (message as { role?: unknown }).role !== 'user') continue;
    const content = (message as { content?: unknown }).content;
    if (typeof content === 'string') return content;
    if (Array.isArray(content)) {
      return content
        .map((part: unknown) => (typeof part === 'object' && part !== null && (part as { type?: unknown }).type === 'text' ? String((part as { text?: unknown }).text) : ''))
        .filter(Boolean)
        .join('\n');
    }
  }
  return undefined;
}

function add(map: Map<string, number>, key: string, usd: number): void {
  map.set(key, addUsd(map.get(key) ?? 0, usd));
}

const sorted = (map: Map<string, number>): [string, number][] => [...map].sort(([, a], [, b]) => b - a);

function utcDay(timestamp: string): string {
  const date = new Date(timestamp);
  return Number.isNaN(date.getTime()) ? '(unknown)' : date.toISOString().slice(0, 10);
}
