import { CHAT_BODY_FIELDS } from './body.js';
import { describeValue, type ProblemDetail } from './problems.js';
import { isJsonObject } from './records.js';

/** Job fields that `params` may hold instead: the Chat Completions parameters nightshift names, but the request's core. */
const LIFTABLE: ReadonlySet<string> = new Set(CHAT_BODY_FIELDS.filter((field) => field !== 'model' && field !== 'messages'));

/** A record's fields with what `params` held of the job fields moved out of it. */
export interface LiftedParams {
  fields: Record<string, unknown>;
  /** Values given twice, differently: in `params` and as the field. */
  problems: ProblemDetail[];
  /** A problem with a moved field, put back where the job wrote it (`temperature` → `params.temperature`). */
  moved: (detail: ProblemDetail) => ProblemDetail;
}

/**
 * Takes the job fields out of `params` (`{"params": {"temperature": 0}}` is `{"temperature": 0}`), as the OpenAI SDK's
 * habit of passing every parameter together suggests; they are then checked, defaulted and sent as the fields are. A
 * field given both ways is accepted when the two values agree and is one problem, naming both, when they differ.
 */
export function liftParams(record: Readonly<Record<string, unknown>>): LiftedParams {
  const params = record['params'];
  const lifted = new Set<string>();
  const problems: ProblemDetail[] = [];
  if (!isJsonObject(params) || !Object.keys(params).some((key) => LIFTABLE.has(key))) {
    return { fields: { ...record }, problems, moved: (detail) => detail };
  }
  const fields: Record<string, unknown> = { ...record };
  const rest: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(params)) {
    if (!LIFTABLE.has(key)) rest[key] = value;
    else if (!Object.hasOwn(record, key)) {
      fields[key] = value;
      lifted.add(key);
    } else if (JSON.stringify(record[key]) !== JSON.stringify(value)) {
      problems.push({
        field: `params.${key}`,
        message: `${describeValue(value)} here, but ${key} is ${describeValue(record[key])}: give ${key} once, as a field or in params`,
      });
    }
  }
  fields['params'] = rest;
  const moved = (detail: ProblemDetail): ProblemDetail => {
    const top = detail.field?.split('.')[0];
    return top !== undefined && lifted.has(top) ? { ...detail, field: `params.${detail.field}` } : detail;
  };
  return { fields, problems, moved };
}
