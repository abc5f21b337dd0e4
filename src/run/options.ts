import type OpenAI from 'openai';
import type { Clock } from '../common/clock.js';
import type { Job, Usage } from '../common/types.js';
import type { MoneyFigures } from '../cost/money.js';
import type { PriceBook } from '../cost/prices.js';
import type { JournalView } from '../output/folder.js';
import type { JobRecord } from '../output/journal.js';
import type { PlanMode } from './decide.js';
import type { AttemptError } from './retry.js';

/** Why a run ended before every job had an outcome. */
export type StopReason = 'quota' | 'unauthorized' | 'budget' | 'interrupted' | 'aborted' | 'output' | 'api';

/** Progress and diagnostics, for the CLI's progress display. */
export type RunEvent =
  | { type: 'planned'; total: number; skipped: number; moved: number; rerun: number; fresh: number; left: number; offline: number }
  | { type: 'warning'; message: string }
  | { type: 'retry'; job: Job; attempt: number; delayMs: number; error: AttemptError }
  | { type: 'finished'; job: Job; record: JobRecord }
  | { type: 'stopping'; reason: StopReason; message: string };

/** Everything `runJobs` needs; the CLI builds it from flags and the environment. */
export interface RunOptions {
  /** The output folder: journal, CSVs, images. */
  outDir: string;
  client: OpenAI;
  prices: PriceBook;
  /** Requests in flight at most. */
  concurrency: number;
  /** Requests per minute to stay under, for the whole run. Unset: learned for each model from `x-ratelimit-*` headers. */
  rpm?: number;
  /** Tokens per minute (prompt plus output bound) to stay under, for the whole run. Unset: learned like `rpm`. */
  tpm?: number;
  /** Attempts per job, the first included. */
  maxAttempts: number;
  /** Per-request timeout, in milliseconds. */
  timeoutMs: number;
  /** Per-request timeout of flex requests (`service_tier: "flex"`), which can queue for minutes. @default timeoutMs */
  flexTimeoutMs?: number;
  /** The job files, recorded in the journal. */
  files: string[];
  mode?: PlanMode;
  /**
   * Where the answers come from, journaled with each: `offline` (`OFFLINE_ORIGIN`) for the offline server of
   * `--offline`. @default the origin of the client's base URL
   */
  origin?: string;
  /** The folder is started afresh (`--fresh`): outputs left without a journal are taken over, not refused. @default false */
  fresh?: boolean;
  /** When aborted: dispatch nothing new, let requests in flight finish. */
  stopSignal?: AbortSignal;
  /** When aborted: abandon requests in flight too. */
  abortSignal?: AbortSignal;
  clock?: Clock;
  random?: () => number;
  /** Removes secrets from error text before it is stored. */
  redact?: (text: string) => string;
  onEvent?: (event: RunEvent) => void;
  /**
   * Called once the plan is made, when it has requests to send, before anything is journaled: throwing stops the run
   * there, with nothing written (the CLI's refusal of a run with requests to send and no API key).
   */
  beforeSending?: () => void;
  /**
   * Called once the views are written, while the run still holds the folder, with the folder's journal index (up to
   * date with every record the run appended, and changed by nothing else until this returns) and the run's origin:
   * what reads the folder's results then (the CLI's report.html) need not index the journal again.
   */
  whileHeld?: (held: { index: JournalView; origin: string }) => Promise<void>;
  /**
   * A spending cap in dollars for the output folder, earlier runs included. Each job's worst-case cost is
   * reserved before it is sent; when the next job does not fit, dispatching stops. A job to send whose worst case
   * is unknown (`null`) fails the run with `E_USAGE` before anything is sent.
   */
  budget?: { limitUsd: number; worstCaseUsd: (job: Job) => number | null };
}

/** The outcome of a run, for the final summary and the exit status. */
export interface RunSummary {
  total: number;
  skipped: number;
  moved: number;
  rerun: number;
  fresh: number;
  ok: number;
  /** Answers cut off (`finish_reason` `length` or `content_filter`): paid for, but not whole. */
  incomplete: number;
  failed: number;
  pending: number;
  retries: number;
  usage: Usage;
  /** What the current results cost: `money.currentUsd`. */
  costUsd: number;
  /** This run's spending, the current results' cost and everything the folder paid for (see cost/money.ts). */
  money: MoneyFigures;
  unpricedModels: string[];
  /** Models the API said do not exist (404 `model_not_found`), each with how many of its jobs were not sent: they stay pending. */
  missingModels: { model: string; notSent: number }[];
  stopReason?: StopReason;
  /** The job files changed during the run: what was sent is journaled, and they must be validated again. */
  jobFilesChanged?: boolean;
  stopMessage?: string;
  /** When `--budget` stopped the run: the smallest budget that lets the job it stopped at start. */
  nextBudgetUsd?: number;
  outDir: string;
}
