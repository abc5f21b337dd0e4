import type { RunEvent, RunSummary } from '../run/options.js';
import { MONEY_LABELS, type MoneyFigures } from '../cost/money.js';
import { formatUsd } from '../output/usage-table.js';

/** Where and how progress is shown. */
export interface ProgressOptions {
  write: (text: string) => void;
  /** A terminal gets a live line; a log gets a plain line at a steady interval. */
  isTTY: boolean;
  /** Seconds between plain status lines when not on a terminal. */
  intervalSeconds: number;
  now?: () => number;
}

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
  private lastWidth = 0;

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
          `${event.total} jobs: ${event.fresh} new, ${event.rerun} to rerun` +
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
    const text = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${this.status()}`;
    this.options.write(`\r${text}${' '.repeat(Math.max(0, this.lastWidth - text.length))}`);
    this.lastWidth = text.length;
  }

  private line(text: string): void {
    if (this.options.isTTY && this.lastWidth > 0) {
      this.options.write(`\r${' '.repeat(this.lastWidth)}\r`);
      this.lastWidth = 0;
    }
    this.options.write(`${text}\n`);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.options.isTTY && this.lastWidth > 0) {
      this.draw();
      this.options.write('\n');
      this.lastWidth = 0;
    }
  }
}

/** The end-of-run summary, printed whatever the output is; `offline`: the answers came from the offline server. */
export function formatSummary(summary: RunSummary, { offline = false }: { offline?: boolean } = {}): string {
  const lines = [
    `${summary.total} jobs: ${summary.ok} ok, ${summary.incomplete ? `${summary.incomplete} incomplete, ` : ''}${summary.failed} failed, ${summary.pending} pending` +
      ` (this run: ${summary.fresh} new, ${summary.rerun} rerun, ${summary.skipped} skipped as already done` +
      `${summary.moved ? `, ${summary.moved} renamed` : ''}; ${summary.retries} retries)`,
    `tokens: ${summary.usage.input_tokens} input (${summary.usage.cached_input_tokens} cached), ${summary.usage.output_tokens} output` +
      ` (${summary.usage.reasoning_tokens} reasoning); images: ${summary.usage.images}`,
    `cost: ${formatMoney(summary.money)}` +
      (summary.unpricedModels.length > 0 ? ` (incomplete: no price for ${summary.unpricedModels.join(', ')})` : '') +
      (offline ? ' (answers of the offline server: nothing billed)' : ''),
    ...summary.missingModels.map(
      ({ model, notSent }) => `model ${model} does not exist${notSent > 0 ? `: ${notSent} job${notSent === 1 ? '' : 's'} of it not sent (pending)` : ''}`,
    ),
    `outputs: ${summary.outDir}/results.csv, ${summary.outDir}/results.jsonl, ${summary.outDir}/usage.csv, ${summary.outDir}/images/`,
  ];
  return `${lines.join('\n')}\n`;
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
