/**
 * Every error nightshift raises on purpose has a stable `code`; the CLI maps codes to exit statuses
 * and prints the message without a stack. Anything else reaching the top is a bug.
 */
export const ERROR_CODES = [
  /** A job file is invalid; `problems` lists every problem. */
  'E_VALIDATION',
  /** The command line is wrong (unknown flag, bad value). */
  'E_USAGE',
  /** Configuration is missing or wrong (no API key, bad base URL). */
  'E_CONFIG',
  /** Another nightshift process holds the output folder. */
  'E_LOCKED',
  /** The output folder cannot be written (permissions, disk full). */
  'E_OUTPUT',
  /**
   * An image was generated, and billed, but could not be saved. It never reaches the CLI: the job is journaled as
   * failed with what it cost (see `ImageSaveError`).
   */
  'E_IMAGE_UNSAVED',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class NightshiftError extends Error {
  override name = 'NightshiftError';
  readonly code: ErrorCode;
  readonly context: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, context: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.context = context;
  }
}

/** The message of anything thrown: an Error's message, or the value itself as text. */
export const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));
