import { stringify } from 'csv-stringify/sync';
import { zeroUsage, type Job, type Usage } from '../common/types.js';
import type { JobRecord } from './journal.js';
import { spreadsheetSafeRow } from './spreadsheet-safe.js';

/** The columns of a usage table after its key columns: counts, token sums and cost. */
export const USAGE_METRIC_COLUMNS = [
  'jobs',
  'ok',
  'failed',
  'input_tokens',
  'cached_input_tokens',
  'output_tokens',
  'reasoning_tokens',
  'images',
  'cost_usd',
  'unpriced_jobs',
  // Last, so that the columns of earlier releases keep their places.
  'incomplete',
] as const;

/** Columns of `usage.csv`: one row per model and kind, then `TOTAL`. */
export const USAGE_COLUMNS = ['model', 'kind', ...USAGE_METRIC_COLUMNS] as const;

/** Formats a cost for a CSV cell: empty when unknown (never 0), otherwise decimal dollars to the nano-dollar the cost module keeps. */
export function formatUsd(usd: number | null): string {
  if (usd === null) return '';
  return usd.toFixed(9).replace(/\.?0+$/, '') || '0';
}

/** Running totals for one row of a usage table. */
export interface UsageGroup {
  /** One value per key column of the table; the TOTAL row's are `TOTAL` then empty. */
  keys: readonly string[];
  jobs: number;
  ok: number;
  /** Answers cut off (paid for, so their usage and cost count). */
  incomplete: number;
  failed: number;
  usage: Usage;
  costUsd: number;
  unpricedJobs: number;
}

/** How a {@link UsageTable} groups what it is given into rows. */
export interface UsageGrouping<T> {
  /** The key columns, which come first in the CSV. */
  readonly columns: readonly string[];
  /** The rows `item` counts in, each as one value per key column. An item may count in several rows; the TOTAL counts it once. */
  keysOf(item: T): readonly (readonly string[])[];
  /** Rows in key order rather than first-seen order. */
  readonly sorted?: boolean;
}

/** `usage.csv`'s grouping: one row per model and kind. */
export const BY_MODEL_AND_KIND: UsageGrouping<Pick<Job, 'model' | 'kind'>> = {
  columns: ['model', 'kind'],
  keysOf: (job) => [[job.model, job.kind]],
};

/** Sums jobs' records into rows chosen by a {@link UsageGrouping}, with a TOTAL row at the end. */
export class UsageTable<T> {
  private readonly groups = new Map<string, UsageGroup>();
  private readonly unpriced = new Set<string>();
  readonly total: UsageGroup;

  constructor(private readonly grouping: UsageGrouping<T>) {
    this.total = emptyGroup(grouping.columns.map((_, index) => (index === 0 ? 'TOTAL' : '')));
  }

  /** Counts one job (`record` undefined: not finished) in its rows and in the total. */
  add(item: T, record: JobRecord | undefined): void {
    for (const keys of this.grouping.keysOf(item)) {
      const id = keys.join('\u0000');
      let group = this.groups.get(id);
      if (!group) {
        group = emptyGroup(keys);
        this.groups.set(id, group);
      }
      addTo(group, record);
    }
    addTo(this.total, record);
    // A priority answer can lack a price where its model has one: the priority rates are not in the table.
    if (record?.costUsd === null) this.unpriced.add(record.serviceTier === 'priority' ? `${record.model} at the priority tier` : record.model);
  }

  /** Models whose cost is unknown, for the warning that says so. */
  unpricedModels(): string[] {
    return [...this.unpriced];
  }

  rows(): UsageGroup[] {
    const groups = [...this.groups.values()];
    if (this.grouping.sorted) groups.sort((a, b) => compareKeys(a.keys, b.keys));
    return [...groups, this.total];
  }

  /**
   * The table as rows of cells, header first. A group with any unpriced job shows no cost for the group itself;
   * the TOTAL shows the priced part and `unpriced_jobs` says it is incomplete.
   */
  table(): (string | number)[][] {
    const lines = this.rows().map((group) => [
      ...group.keys,
      group.jobs,
      group.ok,
      group.failed,
      group.usage.input_tokens,
      group.usage.cached_input_tokens,
      group.usage.output_tokens,
      group.usage.reasoning_tokens,
      group.usage.images,
      group.unpricedJobs > 0 && group !== this.total ? '' : formatUsd(group.costUsd),
      group.unpricedJobs,
      group.incomplete,
    ]);
    return [[...this.grouping.columns, ...USAGE_METRIC_COLUMNS], ...lines];
  }

  toCsv(): string {
    return stringify(this.table().map(spreadsheetSafeRow));
  }
}

/** `usage.csv`: sums jobs by model and kind, in first-seen order, with a TOTAL row at the end. */
export class UsageSummary extends UsageTable<Pick<Job, 'model' | 'kind'>> {
  constructor() {
    super(BY_MODEL_AND_KIND);
  }
}

/** Code-point order, so that a report sorts the same on every machine whatever its locale. */
function compareKeys(a: readonly string[], b: readonly string[]): number {
  for (const [index, key] of a.entries()) {
    const other = b[index] ?? '';
    if (key !== other) return key < other ? -1 : 1;
  }
  return 0;
}

function emptyGroup(keys: readonly string[]): UsageGroup {
  return { keys, jobs: 0, ok: 0, incomplete: 0, failed: 0, usage: zeroUsage(), costUsd: 0, unpricedJobs: 0 };
}

function addTo(group: UsageGroup, record: JobRecord | undefined): void {
  group.jobs++;
  if (!record) return;
  if (record.state === 'done') group.ok++;
  else if (record.state === 'incomplete') group.incomplete++;
  else group.failed++;
  for (const key of Object.keys(group.usage) as (keyof Usage)[]) group.usage[key] += record.usage[key];
  if (record.costUsd === null) group.unpricedJobs++;
  else group.costUsd = Math.round((group.costUsd + record.costUsd) * 1e9) / 1e9;
}
