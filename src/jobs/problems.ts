import type { Problem, SourceLocation } from '../common/types.js';

/** A problem within one record: the field concerned (dotted path) and what is wrong with it. */
export interface ProblemDetail {
  field?: string;
  message: string;
}

/** The record a problem belongs to. */
export interface ProblemScope {
  source: SourceLocation;
  jobId?: string;
  /** CSV rows: a problem's column is the header of its field. */
  csv?: boolean;
}

/**
 * A `Problem` for a record. The message does not repeat the field: printers show `field: message`
 * (`temperature: expected a number from 0 to 2, got "hot"`).
 */
export function toProblem(scope: ProblemScope, { field, message }: ProblemDetail): Problem {
  const problem: Problem = {
    file: scope.source.file,
    line: scope.source.line,
    message,
  };
  if (scope.csv === true && field !== undefined) problem.column = field.split('.')[0];
  if (field !== undefined) problem.field = field;
  if (scope.jobId !== undefined) problem.jobId = scope.jobId;
  return problem;
}

/** A short rendering of a value for messages: strings quoted and cut at 40 characters. */
export function describeValue(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value !== null && typeof value === 'object') return 'an object';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 39)}…` : value);
  return String(value);
}
