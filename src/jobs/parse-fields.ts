import type * as z from 'zod';
import { describeValue, type ProblemDetail } from './problems.js';
import { QUICK_CHECKS, type FieldSchemas, type FieldValues } from './schema.js';

/** A record's fields checked against a field table. */
export interface ParsedFields<T extends FieldSchemas> {
  /** The fields that passed, as their schemas output them. */
  values: FieldValues<T>;
  problems: ProblemDetail[];
  /** Keys the table does not know, in record order; the caller words the problem. */
  unknown: string[];
}

/**
 * Checks each field of `record` on its own against `fields`, so one bad field does not hide the others
 * and the good ones can still be used. `skip` names fields already reported; `prefix` is prepended to
 * field paths (`defaults.temperature`).
 */
export function parseFields<T extends FieldSchemas>(
  record: Readonly<Record<string, unknown>>,
  fields: T,
  { skip = new Set<string>(), prefix = '' }: { skip?: ReadonlySet<string>; prefix?: string } = {},
): ParsedFields<T> {
  const values: Record<string, unknown> = {};
  const parsed: ParsedFields<T> = { values: values as FieldValues<T>, problems: [], unknown: [] };
  for (const [key, value] of Object.entries(record)) {
    if (skip.has(key)) continue;
    const schema = Object.hasOwn(fields, key) ? fields[key] : undefined;
    if (schema === undefined) {
      parsed.unknown.push(key);
      continue;
    }
    if (QUICK_CHECKS.get(schema)?.(value)) {
      values[key] = value;
      continue;
    }
    const result = schema.safeParse(value, { reportInput: true });
    if (result.success) values[key] = result.data;
    else parsed.problems.push(...describeIssues(result.error.issues, `${prefix}${key}`, schema));
  }
  return parsed;
}

/**
 * Words the zod issues of one field. An issue on the field itself reads "expected <the schema's
 * description>, got <value>"; an issue deeper inside keeps the nested schema's message.
 */
function describeIssues(issues: readonly z.core.$ZodIssue[], field: string, schema: z.ZodType): ProblemDetail[] {
  return issues.flatMap((issue): ProblemDetail[] => {
    const path = [field, ...issue.path.map(String)];
    // Inside a field, where no description words the union, a value of the right shape for one branch (an array
    // of content parts) is faulted where it goes wrong: `messages.0.content.1`, not the whole content.
    const inner = issue.code === 'invalid_union' && issue.path.length > 0 ? matchedBranch(issue) : undefined;
    if (inner !== undefined) return describeIssues(inner, path.join('.'), schema);
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ field: [...path, key].join('.'), message: 'unknown field' }));
    }
    const at = path.join('.');
    if (!('input' in issue) || issue.input === undefined) return [{ field: at, message: 'required' }];
    const expected =
      issue.path.length === 0 && schema.description !== undefined
        ? `expected ${schema.description}`
        : issue.message.replace(/^Invalid input: /, '');
    // A custom issue's input is the enclosing object, which says nothing useful.
    const got = issue.code === 'custom' ? '' : `, got ${describeValue(issue.input)}`;
    return [{ field: at, message: `${expected}${got}` }];
  });
}

/** The issues of the one union branch that got past checking the value's type, if exactly one did. */
function matchedBranch(issue: z.core.$ZodIssueInvalidUnion): z.core.$ZodIssue[] | undefined {
  const matched = issue.errors.filter((branch) => branch.some((inner) => inner.path.length > 0 || inner.code !== 'invalid_type'));
  return matched.length === 1 ? matched[0] : undefined;
}
