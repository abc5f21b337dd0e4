/** What the CLI may touch of the outside world; `index.ts` passes the real process's. */
export interface CliIO {
  env: Record<string, string | undefined>;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  isTTY: boolean;
  /** The width of the terminal progress is drawn on, asked at each redraw; undefined when unknown. */
  columns?: () => number | undefined;
  /** Standard input, read when a job file is `-`. */
  stdin?: AsyncIterable<Buffer | string>;
  /** The time, for what depends on the date (model shutdowns). @default Date.now */
  now?: () => number;
  /** Aborted on the first Ctrl-C or SIGTERM: stop dispatching. */
  stopSignal?: AbortSignal;
  /** Aborted on the second Ctrl-C (or when the grace period ends): abandon requests in flight. */
  abortSignal?: AbortSignal;
  /** Called once a run has started, with the grace period its flags ask for. */
  onRunStart?: (graceMs: number) => void;
  /**
   * Called before job files too large to keep in memory are read: the process may trade a little CPU for flat
   * memory from then on.
   */
  onLargeJobs?: () => void;
}
