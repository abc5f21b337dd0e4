import type { RunEvent, RunSummary } from '../run/options.js';
import { join } from 'node:path';
import { RESULTS_FILE, RESULTS_JSONL_FILE, USAGE_FILE } from '../output/folder.js';
import { MONEY_LABELS, type MoneyFigures } from '../cost/money.js';
import { formatUsd } from '../output/usage-table.js';
import { count } from './words.js';

/** Where and how progress is shown. */
export interface ProgressOptions {
  write: (text: string) => void;
  /** A terminal gets a live line; a log gets a plain line at a steady interval. */
  isTTY: boolean;
  /** Seconds between plain status lines when not on a terminal. */
  intervalSeconds: number;
  now?: () => number;
  /** The terminal's width now, asked at each redraw so that the line follows a resize; undefined when unknown. */
  columns?: () => number | undefined;
}

/** Erases from the cursor to the end of the line: clears a redrawn line without writing spaces that could wrap. */
const ERASE_LINE_END = '\u001b[K';

/**
 * Turns run events into progress output: a redrawn line on a terminal, or one plain status line every
 * interval for an overnight run writing to a log.
 */
export class Progress {
  private total = 0;
  private toSend = 0;
  private done = 0;
  private ok = 0;
  private incomplete = 0;
  private failed = 0;
  private retries = 0;
  private tokens = 0;
  private cost = 0;
  private unpriced = 0;
  private readonly started: number;
  private timer: NodeJS.Timeout | undefined;
  /** A live line is on the screen, to be erased before anything else is written. */
  private drawn = false;

  constructor(private readonly options: ProgressOptions) {
    this.started = this.now();
  }

  private now(): number {
    return this.options.now ? this.options.now() : Date.now();
  }

  handle(event: RunEvent): void {
    switch (event.type) {
      case 'planned':
        this.total = event.total;
        this.toSend = event.rerun + event.fresh;
        this.line(
          `${count(event.total, 'job')}: ${event.fresh} new, ${event.rerun} to rerun` +
            (event.offline ? ` (${event.offline} answered by the offline server, sent again)` : '') +
            `, ${event.skipped} already done` +
            (event.moved ? `, ${event.moved} with images renamed (nothing sent)` : '') +
            (event.left ? `, ${event.left} left out by --only-failed` : ''),
        );
        this.startTicking();
        break;
      case 'warning':
        this.line(`warning: ${event.message}`);
        break;
      case 'retry':
        this.retries++;
        break;
      case 'finished':
        this.done++;
        if (event.record.state === 'done') this.ok++;
        else if (event.record.state === 'incomplete') {
          this.incomplete++;
          this.line(`incomplete: ${event.job.id} (${event.job.source.file}:${event.job.source.line}): finish_reason ${event.record.finishReason ?? ''}`);
        } else {
          this.failed++;
          this.line(`failed: ${event.job.id} (${event.job.source.file}:${event.job.source.line}): ${event.record.error ?? ''}`);
        }
        this.tokens += event.record.usage.total_tokens;
        if (event.record.costUsd === null) this.unpriced++;
        else this.cost += event.record.costUsd;
        if (this.options.isTTY) this.draw();
        break;
      case 'stopping':
        this.line(event.message);
        break;
    }
  }

  /** One status line: done/total, failures, retries, tokens, cost, elapsed, ETA. */
  status(): string {
    const elapsed = (this.now() - this.started) / 1000;
    const rate = this.done / Math.max(elapsed, 0.001);
    const left = this.toSend - this.done;
    const eta = this.done > 0 && left > 0 ? ` ETA ${duration(left / rate)}` : '';
    const cost = `$${formatUsd(this.cost)}${this.unpriced ? ` + ${this.unpriced} unpriced` : ''}`;
    const incomplete = this.incomplete ? ` incomplete ${this.incomplete}` : '';
    return `${this.done}/${this.toSend} sent ok ${this.ok}${incomplete} failed ${this.failed} retries ${this.retries} | ${compact(this.tokens)} tokens | ${cost} | ${duration(elapsed)}${eta}`;
  }

  private startTicking(): void {
    if (this.toSend === 0) return;
    const every = this.options.isTTY ? 250 : this.options.intervalSeconds * 1000;
    this.timer = setInterval(() => (this.options.isTTY ? this.draw() : this.options.write(`${this.status()}\n`)), every);
    this.timer.unref();
  }

  private draw(): void {
    const width = 24;
    const filled = this.toSend === 0 ? width : Math.round((this.done / this.toSend) * width);
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] `;
    this.options.write(`\r${fitLine(bar, this.status(), this.options.columns?.())}${ERASE_LINE_END}`);
    this.drawn = true;
  }

  private line(text: string): void {
    if (this.options.isTTY && this.drawn) {
      this.options.write(`\r${ERASE_LINE_END}`);
      this.drawn = false;
    }
    this.options.write(`${text}\n`);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.options.isTTY && this.drawn) {
      this.draw();
      this.options.write('\n');
      this.drawn = false;
    }
  }
}

/**
 * The live line for a terminal `columns` wide: the bar and the status when both fit, else the status alone, cut to
 * fit. It stays a column short of the width: a line that fills the last column wraps on some terminals, and each
 * redraw would then start a new line.
 */
export function fitLine(bar: string, status: string, columns: number | undefined): string {
  if (columns === undefined || columns <= 0) return `${bar}${status}`;
  const width = columns - 1;
  if (bar.length + status.length <= width) return `${bar}${status}`;
  if (status.length <= width) return status;
  return width > 1 ? `${status.slice(0, width - 1)}…` : '';
}

/** The end-of-run summary, printed whatever the output is; `offline`: the answers came from the offline server. */
export function formatSummary(summary: RunSummary, { images, offline = false }: { images: boolean; offline?: boolean }): string {
  const lines = [
    `${count(summary.total, 'job')}: ${summary.ok} ok, ${summary.incomplete ? `${summary.incomplete} incomplete, ` : ''}${summary.failed} failed, ${summary.pending} pending` +
      ` (this run: ${summary.fresh} new, ${summary.rerun} rerun, ${summary.skipped} skipped as already done` +
      `${summary.moved ? `, ${summary.moved} renamed` : ''}; ${count(summary.retries, 'retry', 'retries')})`,
    `tokens: ${summary.usage.input_tokens} input (${summary.usage.cached_input_tokens} cached), ${summary.usage.output_tokens} output` +
      ` (${summary.usage.reasoning_tokens} reasoning); images: ${summary.usage.images}`,
    `cost: ${formatMoney(summary.money)}` +
      (summary.unpricedModels.length > 0 ? ` (incomplete: no price for ${summary.unpricedModels.join(', ')})` : '') +
      (offline ? ' (answers of the offline server: nothing billed)' : ''),
    ...summary.missingModels.map(
      ({ model, notSent }) => `model ${model} does not exist${notSent > 0 ? `: ${notSent} job${notSent === 1 ? '' : 's'} of it not sent (pending)` : ''}`,
    ),
    `outputs: ${outputPaths(summary.outDir, images).join(', ')}`,
  ];
  return `${lines.join('\n')}\n`;
}

/** The outputs a run leaves, as paths: `images/` only when there is one (a run without image jobs makes none). */
function outputPaths(outDir: string, images: boolean): string[] {
  return [join(outDir, RESULTS_FILE), join(outDir, RESULTS_JSONL_FILE), join(outDir, USAGE_FILE), ...(images ? [`${join(outDir, 'images')}/`] : [])];
}

/** What this run spent, besides the summary: the answers it journaled, priced (those without a price counted apart). */
export interface RunSpending {
  spentUsd: number;
  unpricedAnswers: number;
  /** The folder has an `images/` folder. */
  images: boolean;
}

/**
 * `run --json`: the summary as one object. `jobs` counts the folder's jobs by status, `run` what this run did and
 * spent, `tokens` the usage of the current results, `outputs` the paths written (`images` null when there is none).
 */
export function summaryObject(summary: RunSummary, { spentUsd, unpricedAnswers, images }: RunSpending): Record<string, unknown> {
  const { outDir } = summary;
  return {
    jobs: { total: summary.total, ok: summary.ok, incomplete: summary.incomplete, failed: summary.failed, pending: summary.pending },
    run: {
      new: summary.fresh,
      rerun: summary.rerun,
      skipped: summary.skipped,
      renamed: summary.moved,
      retries: summary.retries,
      costUsd: Number(spentUsd.toFixed(9)),
      unpricedAnswers,
    },
    tokens: summary.usage,
    resultsCostUsd: summary.costUsd,
    money: summary.money,
    unpricedModels: summary.unpricedModels,
    missingModels: summary.missingModels,
    stopReason: summary.stopReason ?? null,
    jobFilesChanged: summary.jobFilesChanged ?? false,
    outputs: {
      results: join(outDir, RESULTS_FILE),
      resultsJsonl: join(outDir, RESULTS_JSONL_FILE),
      usage: join(outDir, USAGE_FILE),
      images: images ? join(outDir, 'images') : null,
    },
  };
}

/** The three money figures, in their order and with their names (see cost/money.ts). */
export function formatMoney(money: MoneyFigures): string {
  return (['thisRunUsd', 'currentUsd', 'paidUsd'] as const).map((key) => `${MONEY_LABELS[key]} $${formatUsd(money[key])}`).join('; ');
}

function duration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function compact(n: number): string {
  if (n < 10_000) return String(n);
  if (n < 10_000_000) return `${(n / 1000).toFixed(1)}k`;
  return `${(n / 1_000_000).toFixed(1)}M`;
}
