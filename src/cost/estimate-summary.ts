/**
 * Sums job estimates per model and kind for `nightshift estimate`'s table and CSV. Dollar sums use the cost module's
 * exact nano-dollar totals, so the TOTAL is the sum of the rows to the last digit.
 */
import { addCost, createCostTotals, totalUsd, type CostTotals } from './cost.js';
import type { EstimateNote, JobEstimate } from './estimate.js';
import { formatUsd } from '../output/usage-table.js';
import type { JobKind } from '../common/types.js';

/** Columns of the estimate table and of `estimate --csv`. */
export const ESTIMATE_COLUMNS = [
  'model',
  'kind',
  'jobs',
  'input_tokens',
  'expected_output_tokens',
  'expected_usd',
  'worst_case_usd',
  'batch_usd',
  'unpriced_jobs',
] as const;

/** One row of the estimate: a model and kind, or the TOTAL. */
export interface EstimateGroup {
  readonly model: string;
  readonly kind: JobKind | '';
  jobs: number;
  inputTokens: number;
  expectedOutputTokens: number;
  readonly expected: CostTotals;
  readonly worst: CostTotals;
  readonly batch: CostTotals;
}

/** Running sums of job estimates, rows in first-seen order, then TOTAL. */
export class EstimateSummary {
  private readonly groups = new Map<string, EstimateGroup>();
  private readonly noted = new Map<EstimateNote, Set<string>>();
  readonly total: EstimateGroup = emptyGroup('TOTAL', '');

  add(estimate: JobEstimate): void {
    const key = `${estimate.model}\u0000${estimate.kind}`;
    let group = this.groups.get(key);
    if (!group) {
      group = emptyGroup(estimate.model, estimate.kind);
      this.groups.set(key, group);
    }
    for (const target of [group, this.total]) addTo(target, estimate);
    for (const note of estimate.notes) {
      let models = this.noted.get(note);
      if (!models) this.noted.set(note, (models = new Set()));
      models.add(estimate.model);
    }
  }

  rows(): EstimateGroup[] {
    return [...this.groups.values(), this.total];
  }

  /** What had no price (`local-llama`, `my-model output tokens`), for the warning that the total is incomplete. */
  missing(): string[] {
    return [...new Set([...this.total.expected.missing, ...this.total.worst.missing])];
  }

  /** Each assumption made, with the models whose jobs it was made for. */
  notes(): ReadonlyMap<EstimateNote, readonly string[]> {
    return new Map([...this.noted].map(([note, models]) => [note, [...models]]));
  }

  /**
   * The table as rows of cells, header first. A row with an unpriced job leaves its cost empty (never 0); the TOTAL
   * shows the priced part, and `unpriced_jobs` says whether it is complete.
   */
  table(): (string | number)[][] {
    const usd = (group: EstimateGroup, totals: CostTotals) => (totals.unknown > 0 && group !== this.total ? '' : formatUsd(totalUsd(totals)));
    return [
      [...ESTIMATE_COLUMNS],
      ...this.rows().map((group) => [
        group.model,
        group.kind,
        group.jobs,
        group.inputTokens,
        group.expectedOutputTokens,
        usd(group, group.expected),
        usd(group, group.worst),
        usd(group, group.batch),
        group.expected.unknown,
      ]),
    ];
  }
}

function emptyGroup(model: string, kind: JobKind | ''): EstimateGroup {
  return {
    model,
    kind,
    jobs: 0,
    inputTokens: 0,
    expectedOutputTokens: 0,
    expected: createCostTotals(),
    worst: createCostTotals(),
    batch: createCostTotals(),
  };
}

function addTo(group: EstimateGroup, estimate: JobEstimate): void {
  group.jobs++;
  group.inputTokens += estimate.inputTokens;
  group.expectedOutputTokens += estimate.expectedOutputTokens;
  const missing = estimate.missing.length > 0 ? { missing: estimate.missing } : {};
  addCost(group.expected, { usd: estimate.expectedUsd, ...missing });
  addCost(group.worst, { usd: estimate.worstUsd, ...missing });
  addCost(group.batch, { usd: estimate.batchUsd, ...missing });
}
