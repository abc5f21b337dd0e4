import type { JsonJobRecord, RowRecord } from './records.js';
import type { NormalizeContext, NormalizeResult } from './normalize.js';
import { quickJob } from './quick-job.js';

type Normalize = typeof import('./normalize.js');

/** The full validation, once a record needed it; the promise of it while it loads. */
let full: Normalize | undefined;
let loading: Promise<Normalize> | undefined;

/**
 * Turns one raw record into a `Job`, or every problem it has: a common record by `quick-job.ts`, any other by
 * `normalize.ts` `toJob` (the one source of problems), which is loaded, zod with it, when the first such record comes.
 */
export function toJob(record: JsonJobRecord | RowRecord, context: NormalizeContext): NormalizeResult | Promise<NormalizeResult> {
  const quick = quickJob(record, context);
  if (quick !== undefined) return quick;
  if (full !== undefined) return full.toJob(record, context);
  loading ??= import('./normalize.js').then((module) => (full = module));
  return loading.then((module) => module.toJob(record, context));
}
