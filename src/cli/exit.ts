import { NightshiftError, type ErrorCode } from '../common/errors.js';
import type { RunSummary, StopReason } from '../run/options.js';

/** Exit statuses, documented in the README's "Exit codes". */
export const EXIT = {
  ok: 0,
  jobsFailed: 1,
  invalid: 2,
  stopped: 3,
  outputUnusable: 4,
  unauthorized: 5,
  bug: 70,
  interrupted: 130,
} as const;

/** One of {@link EXIT}'s statuses. */
export type ExitStatus = (typeof EXIT)[keyof typeof EXIT];

// Typed as complete records so that a new error code or stop reason cannot compile without a status.
const BY_ERROR_CODE: Readonly<Record<ErrorCode, ExitStatus>> = {
  // Nothing was sent: the job files, the command line or the configuration must change first.
  E_VALIDATION: EXIT.invalid,
  E_USAGE: EXIT.invalid,
  E_CONFIG: EXIT.invalid,
  E_LOCKED: EXIT.outputUnusable,
  E_OUTPUT: EXIT.outputUnusable,
  // The engine journals an unsaved image as a failed job (and stops the run when the folder cannot be written):
  // one reaching the top is a bug.
  E_IMAGE_UNSAVED: EXIT.bug,
};

const BY_STOP_REASON: Readonly<Record<StopReason, ExitStatus>> = {
  // Rerunning continues where the run stopped, once there is credit or a larger --budget.
  quota: EXIT.stopped,
  budget: EXIT.stopped,
  // The key is refused (401): every request would be; rerunning once it is fixed continues.
  unauthorized: EXIT.unauthorized,
  interrupted: EXIT.interrupted,
  aborted: EXIT.interrupted,
  output: EXIT.outputUnusable,
  // A Batch API call failed after its retries (the network, the API): what was submitted is on record.
  api: EXIT.stopped,
};

/** The status for an error that ended a command: by its code for a `NightshiftError`; anything else is a bug. */
export function exitStatusOfError(error: unknown): ExitStatus {
  return (error instanceof NightshiftError ? BY_ERROR_CODE[error.code] : undefined) ?? EXIT.bug;
}

/** The status for a run that finished or stopped: why it stopped, else whether any job failed or was cut off. */
export function exitStatusOfRun(summary: Pick<RunSummary, 'stopReason' | 'failed' | 'incomplete' | 'jobFilesChanged'>): ExitStatus {
  // Why the run stopped says what to do first; then job files changed under it must be validated again.
  if (summary.stopReason) return BY_STOP_REASON[summary.stopReason];
  if (summary.jobFilesChanged) return EXIT.invalid;
  return summary.failed > 0 || summary.incomplete > 0 ? EXIT.jobsFailed : EXIT.ok;
}

/** What is printed for a bug (exit 70): that it is one, and the stack, with secrets removed by `redact`. */
export function bugReport(error: unknown, redact: (text: string) => string): string {
  const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
  return `nightshift: unexpected error; this is a bug, please report it with the text below.\n${redact(text)}\n`;
}
