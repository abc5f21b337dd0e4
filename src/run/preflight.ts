/**
 * What can be told about a run from its jobs before anything is sent: a `--tpm` that one request alone would pass
 * (the scheduler would crawl, charging each such request a full bucket and a debt), and the jobs whose budget
 * reservation is a planning cap rather than a bound they set.
 */
import type { Job } from '../common/types.js';
import { OUTPUT_DEFAULTS } from '../cost/estimate.js';
import { isReasoningModel } from '../cost/reasoning.js';
import { positiveInteger } from '../jobs/body.js';
import { requestTokens } from './rate-limit-tokens.js';

/** What {@link preflight} found. */
export interface PreflightFindings {
  /** The job whose single request counts the most tokens against a TPM limit, with that count (when `tpm` was given). */
  largest?: { job: Job; tokens: number };
  /** Reasoning models whose chat jobs set no `max_completion_tokens`, each with how many of its jobs. */
  planningCap: Map<string, number>;
}

/** One pass over the jobs, looking only for what `checks` asks. */
export async function preflight(jobs: AsyncIterable<Job>, checks: { tpm?: number; budget?: boolean }): Promise<PreflightFindings> {
  const findings: PreflightFindings = { planningCap: new Map() };
  for await (const job of jobs) {
    if (checks.tpm !== undefined) {
      const tokens = requestTokens(job);
      if (tokens > (findings.largest?.tokens ?? 0)) findings.largest = { job, tokens };
    }
    if (checks.budget && reservesPlanningCap(job)) findings.planningCap.set(job.model, (findings.planningCap.get(job.model) ?? 0) + 1);
  }
  return findings;
}

/** The output tokens a reasoning job without `max_completion_tokens` reserves against a budget. */
export const REASONING_PLANNING_CAP = OUTPUT_DEFAULTS.worstReasoning;

/** Whether a chat job's budget reservation is the reasoning planning cap: a reasoning model, reasoning on, no bound set. */
function reservesPlanningCap(job: Job): boolean {
  if (job.endpoint === '/v1/images/generations') return false;
  if (!isReasoningModel(job.model) || job.body.reasoning_effort === 'none') return false;
  return positiveInteger(job.body.max_completion_tokens) === undefined;
}
