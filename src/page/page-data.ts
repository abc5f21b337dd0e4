/**
 * What the HTML page shows, gathered from output folders by reading their files only: the current results
 * (`results.jsonl` and the journal records behind them), every request the journals record (for the money paid and
 * the charts), the latest run's facts, and, where the job files can still be read, each job's prompt, size and quality.
 * Jobs are handed over one at a time as they are read, so that a page of a million jobs is written in flat memory.
 */
import { accessSync, constants } from 'node:fs';
import { join, relative, sep } from 'node:path';
import type { Job } from '../common/types.js';
import { isFileSystemError } from '../common/fs-errors.js';
import { readValidJobs } from '../jobs/load.js';
import { addCurrentCost, addUsd, type MoneyFigures } from '../cost/money.js';
import type { PriceBook } from '../cost/prices.js';
import { currentResults, type ResultsIndex } from '../output/current-results.js';
import { answeredOffline, OFFLINE_ORIGIN, type JobRecord } from '../output/journal.js';
import { tallyJournals, type Charts, type RunFacts } from './tally.js';

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

export type { RunFacts } from './tally.js';

/** Everything the page shows but its jobs, which {@link collectPageData} hands over one at a time. */
export interface PageSummary {
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
  /** Jobs handed over: image jobs, and chat and vision jobs. */
  images: number;
  texts: number;
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
  /**
   * The run writing the page, while it holds `folder`: its journal index, up to date with every record, and its
   * origin (that of the folder's latest run record). That folder's journal is then neither indexed again nor read
   * twice.
   */
  held?: { folder: string; index: ResultsIndex; origin: string };
  onWarning?: (warning: string) => void;
}

/**
 * Gathers the page's data from output folders, handing each job to `onJob` in input order, folder by folder, and
 * returning the rest once every job is handed over.
 */
export async function collectPageData(folders: readonly string[], options: PageOptions, onJob: (job: PageJob) => Promise<void> | void): Promise<PageSummary> {
  const summary: PageSummary = {
    folders: [...folders],
    money: { thisRunUsd: 0, currentUsd: 0, paidUsd: 0, offline: true, unpriced: 0 },
    charts: { byModel: [], byTag: [], byDay: [] },
    runs: [],
    images: 0,
    texts: 0,
  };
  const charts: Charts = { byModel: new Map(), byTag: new Map(), byDay: new Map() };
  for (const [index, folder] of folders.entries()) {
    const held = options.held?.folder === folder ? options.held : undefined;
    const { run, paidUsd, thisRunUsd, unpriced } = await tallyJournals(folder, charts, { ...options, ...(held ? { origin: held.origin } : {}) });
    const origin = run.origin ?? 'https://api.openai.com';
    if (origin !== OFFLINE_ORIGIN) summary.money.offline = false;
    summary.money.paidUsd = addUsd(summary.money.paidUsd, paidUsd);
    summary.money.thisRunUsd = addUsd(summary.money.thisRunUsd, thisRunUsd);
    summary.money.unpriced += unpriced;
    const details = jobDetails(folder, run.files, options);
    if (!details) run.warnings.push(`the job files (${run.files.join(', ') || 'none named'}) could not be read from here: prompts are not shown`);
    const current = { usd: 0, offlineUsd: 0 };
    try {
      const warnings = await handJobs({ index, folder, held: held?.index, runStartedAt: run.startedAt, details, current }, options, (job) => {
        if (job.kind === 'image') summary.images++;
        else summary.texts++;
        return onJob(job);
      });
      run.warnings.push(...warnings);
    } finally {
      await details?.close();
    }
    if (details && details.unmatched > 0) {
      run.warnings.push(`${details.unmatched} job${details.unmatched === 1 ? '' : 's'} of the results could not be found in the job files as they are now: their prompts are not shown`);
    }
    summary.money.currentUsd = addUsd(summary.money.currentUsd, origin === OFFLINE_ORIGIN ? addUsd(current.usd, current.offlineUsd) : current.usd);
    summary.runs.push({ ...run, ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}) });
  }
  summary.charts = { byModel: sorted(charts.byModel), byTag: sorted(charts.byTag), byDay: [...charts.byDay].sort(([a], [b]) => (a < b ? -1 : 1)) };
  return summary;
}

/**
 * Hands over the folder's current results one at a time, with what the page adds to them, and adds up what they
 * cost into `current`; returns what deserves a warning.
 */
async function handJobs(
  {
    index,
    folder,
    held,
    runStartedAt,
    details,
    current,
  }: { index: number; folder: string; held: ResultsIndex | undefined; runStartedAt: string | undefined; details: JobDetailsCursor | undefined; current: { usd: number; offlineUsd: number } },
  options: PageOptions,
  onJob: (job: PageJob) => Promise<void> | void,
): Promise<string[]> {
  let failed = 0;
  let incomplete = 0;
  let pending = 0;
  for await (const result of currentResults(folder, undefined, held)) {
    const { row, record } = result;
    const status = String(row.status);
    if (status === 'failed') failed++;
    else if (status === 'incomplete') incomplete++;
    else if (status === 'pending') pending++;
    const cost = addCurrentCost(current, result, options.prices);
    const reply = status === 'failed' ? String(row.error ?? '') : record && record.files.length === 0 ? record.output : row.kind === 'image' ? '' : String(row.output ?? '');
    const detail = await details?.get(String(row.id));
    await onJob({
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

/** Each job's prompt, size and quality, read beside the results; undefined when the job files cannot be read. */
function jobDetails(folder: string, files: readonly string[], options: PageOptions): JobDetailsCursor | undefined {
  const jobs = options.jobsOf?.(folder, files) ?? readJobFiles(files);
  return jobs && new JobDetailsCursor(jobs);
}

/**
 * How far the job files are read ahead of the results for a job they do not hold where expected. The results list
 * jobs in input order, so the two are read side by side and nothing is held; a job file edited since the run (jobs
 * moved, inserted or deleted) costs at most this many jobs' details in memory.
 */
const LOOKAHEAD_JOBS = 5_000;

/** The details of the jobs of job files, asked for in the order the files list them (the results' order). */
class JobDetailsCursor {
  /** Jobs read past while looking for another, by id, oldest first. */
  private readonly ahead = new Map<string, JobDetails>();
  private readonly jobs: AsyncIterator<Job>;
  private ended = false;
  /** Jobs asked for and not found. */
  unmatched = 0;

  constructor(jobs: AsyncIterable<Job>) {
    this.jobs = jobs[Symbol.asyncIterator]();
  }

  async get(id: string): Promise<JobDetails | undefined> {
    const passed = this.ahead.get(id);
    if (passed) {
      this.ahead.delete(id);
      return passed;
    }
    for (let read = 0; !this.ended && read < LOOKAHEAD_JOBS; read++) {
      const next = await this.jobs.next();
      if (next.done) {
        this.ended = true;
        break;
      }
      if (next.value.id === id) return detailsOf(next.value);
      this.ahead.set(next.value.id, detailsOf(next.value));
      if (this.ahead.size > LOOKAHEAD_JOBS) this.ahead.delete(this.ahead.keys().next().value!);
    }
    this.unmatched++;
    return undefined;
  }

  async close(): Promise<void> {
    if (!this.ended) await this.jobs.return?.();
  }
}

/** The valid jobs of the files a run named, read now; undefined when a file is gone. */
function readJobFiles(files: readonly string[]): AsyncIterable<Job> | undefined {
  if (files.length === 0 || !files.every(readable)) return undefined;
  // Jobs that no longer validate (a model left to --model, say) show no prompt; the others do.
  return readValidJobs(files);
}

/** A job file moved or deleted since the run: the page goes without prompts. */
function readable(file: string): boolean {
  try {
    accessSync(file, constants.R_OK);
    return true;
  } catch (error) {
    if (isFileSystemError(error)) return false;
    throw error;
  }
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

const sorted = (map: Map<string, number>): [string, number][] => [...map].sort(([, a], [, b]) => b - a);
