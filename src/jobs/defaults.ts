import { liftParams } from './params.js';
import { parseFields } from './parse-fields.js';
import type { ProblemDetail } from './problems.js';
import { isJsonObject } from './records.js';
import { FIELDS_BY_KIND, JOB_KINDS, type FieldSchemas, type ServiceTier } from './schema.js';
import { describeSuggestion, suggestField } from './suggest.js';

/** Defaults given on the command line (`--model`, `--system`, `--service-tier`, `--temperature`, `--max-completion-tokens`): used when neither the job nor its file sets the field. */
export interface CliDefaults {
  model?: string;
  system?: string;
  /** `service_tier` of chat and vision jobs. */
  serviceTier?: ServiceTier;
  /** `temperature` of chat and vision jobs. */
  temperature?: number;
  /** `max_completion_tokens` of chat and vision jobs that give neither it nor `max_tokens`. */
  maxCompletionTokens?: number;
}

/** A file's `defaults`, checked: each value fits the field for at least one job kind. */
export type FileDefaults = Readonly<Record<string, unknown>>;

/** Fields that are alternatives: a job that gives one takes no default for the other. */
const ALTERNATIVES = [
  ['prompt', 'messages'],
  ['system', 'messages'],
  ['max_completion_tokens', 'max_tokens'],
] as const;

/**
 * Checks the `defaults` object of a `.json` file. It may hold any job field but `id`; a field valid for
 * some kind is kept (kinds differ, e.g. `response_format`), an invalid one is reported once and dropped.
 */
export function parseFileDefaults(value: unknown): { defaults: FileDefaults; problems: ProblemDetail[] } {
  if (!isJsonObject(value)) return { defaults: {}, problems: [{ field: 'defaults', message: 'expected an object of job fields' }] };
  const defaults: Record<string, unknown> = {};
  // The job fields in `params` are defaults of those fields, as they are fields of a job.
  const lifted = liftParams(value);
  const inDefaults = (problem: ProblemDetail): ProblemDetail => ({ ...problem, field: `defaults.${problem.field ?? ''}` });
  const problems: ProblemDetail[] = lifted.problems.map(inDefaults);
  for (const [key, field] of Object.entries(lifted.fields)) {
    if (key === 'id') {
      problems.push({ field: 'defaults.id', message: 'ids are unique: there is no default id' });
      continue;
    }
    const tables = JOB_KINDS.map((kind): FieldSchemas => FIELDS_BY_KIND[kind]).filter((fields) => Object.hasOwn(fields, key));
    const [first] = tables;
    if (first === undefined) {
      const suggestion = suggestField(key, JOB_KINDS.flatMap((kind) => Object.keys(FIELDS_BY_KIND[kind])));
      problems.push({ field: `defaults.${key}`, message: suggestion === undefined ? 'unknown field' : describeSuggestion('unknown field', suggestion) });
    } else if (tables.some((fields) => fits(key, field, fields))) {
      defaults[key] = field;
    } else {
      problems.push(...parseFields({ [key]: field }, first).problems.map((problem) => inDefaults(lifted.moved(problem))));
    }
  }
  return { defaults, problems };
}

/**
 * The job's own fields with the file's defaults added: only for fields the job leaves out, that its
 * kind has and whose default fits it, and not for an alternative of a field the job gives.
 */
export function applyDefaults(record: Readonly<Record<string, unknown>>, defaults: FileDefaults, fields: FieldSchemas): Record<string, unknown> {
  const merged = { ...record };
  const given = (field: string) => Object.hasOwn(record, field);
  for (const [key, value] of Object.entries(defaults)) {
    if (given(key) || !fits(key, value, fields)) continue;
    if (ALTERNATIVES.some(([a, b]) => (key === a && given(b)) || (key === b && given(a)))) continue;
    merged[key] = value;
  }
  return merged;
}

const fits = (key: string, value: unknown, fields: FieldSchemas): boolean =>
  Object.hasOwn(fields, key) && fields[key]?.safeParse(value).success === true;
