// What a test or `serve` asks of `/v1/batches`: timings, limits and injected failures. `options.ts` resolves them.

/** A line the server answers with an error instead of its real answer (see {@link BatchOptions.failLines}). */
export interface BatchLineFault {
  /** HTTP status of the line's answer, 400-599: 500 or 429 for what a client would retry, 400 for what it would not. */
  status: number;
  /** `error.type`; defaults as for {@link FaultRule}. */
  type?: string;
  /** `error.code`. */
  code?: string;
  /** `error.message`. */
  message?: string;
  /**
   * How many lines the rule fails, across batches, before it is spent (so a line sent again can succeed).
   * @default Infinity
   */
  times?: number;
  /** Fail only the lines matching every given field. */
  match?: {
    customId?: string;
    /** 1-based line number in the input file. */
    line?: number;
    /** A substring of the line's key: its last user message's text, or its image prompt. */
    promptIncludes?: string;
  };
}

/** A batch that ends early, with the lines answered so far kept (see {@link BatchOptions.expire}). */
export interface BatchEndEarly {
  /** Lines answered before the batch ends; the rest are reported in its error file. */
  afterLines: number;
  /**
   * How many batches this happens to, in the order they reach it.
   * @default Infinity
   */
  times?: number;
}

/**
 * How the offline server runs `/v1/batches`. A batch moves through its statuses on the server's clock: `validating`
 * for `validatingMs`, then `in_progress` with its lines answered evenly over `processingMs` (all at once when 0),
 * `finalizing` for `finalizingMs`, then `completed`. The status is brought up to date whenever a request reads
 * the batch, so with the defaults a batch is `validating` when created and `completed` when next retrieved.
 */
export interface BatchOptions {
  /** @default 0 */
  validatingMs?: number;
  /** @default 0 */
  processingMs?: number;
  /** @default 0 */
  finalizingMs?: number;
  /**
   * How long a cancelled batch stays `cancelling`.
   * @default 0
   */
  cancellingMs?: number;
  /**
   * When a batch expires after its creation (its `expires_at`): lines not answered by then are reported in its
   * error file with code `batch_expired`.
   * @default 86_400_000 (the 24h completion window)
   */
  expiresAfterMs?: number;
  /** @default 50_000 */
  maxRequests?: number;
  /** @default 209_715_200 (200 MB) */
  maxBytes?: number;
  /**
   * The most enqueued tokens per model: a batch whose lines would take the tokens of the model's unfinished
   * batches past it fails validation with `token_limit_exceeded` (line `null`), as the API refuses a batch when
   * the model's enqueued-token limit is full. A line counts as it would against a tokens-per-minute limit.
   * Unset: no limit.
   */
  enqueuedTokenLimit?: number;
  /** Lines answered with an error instead of their answer, checked in order, the first match applies. */
  failLines?: BatchLineFault[];
  /** The next batches (`times`, default all) fail validation with this error. */
  failValidation?: { code: string; message?: string; line?: number | null; times?: number };
  /** Batches expire after answering `afterLines` lines (status `expired`, the rest `batch_expired`). */
  expire?: BatchEndEarly;
  /** Batches are cancelled (as from the dashboard) after answering `afterLines` lines; the rest `batch_cancelled`. */
  cancel?: BatchEndEarly;
  /**
   * Output and error files list their lines in a shuffled order, as the API does not promise input order (the
   * shuffled files are held in memory).
   * @default false
   */
  shuffleOutput?: boolean;
}

/** Batch options with defaults applied. */
export type ResolvedBatchOptions = Required<Omit<BatchOptions, 'enqueuedTokenLimit' | 'failValidation' | 'expire' | 'cancel'>> &
  Pick<BatchOptions, 'enqueuedTokenLimit' | 'failValidation' | 'expire' | 'cancel'>;

/** Whether a {@link BatchLineFault} applies to a line; `key` is the line's key (see {@link BatchLineFault.match}). */
export function lineMatches({ match }: BatchLineFault, line: { customId: string; number: number }, key: string): boolean {
  if (match === undefined) return true;
  return (
    (match.customId === undefined || match.customId === line.customId) &&
    (match.line === undefined || match.line === line.number) &&
    (match.promptIncludes === undefined || key.includes(match.promptIncludes))
  );
}
