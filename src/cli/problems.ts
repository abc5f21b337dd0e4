import type { Problem } from '../common/types.js';

/** Prints every problem as `file:line[:column]: field: message`, sorted by place. */
export function formatProblems(problems: readonly Problem[]): string {
  return problems
    .map((problem) => {
      const where = problem.line > 0 ? `${problem.file}:${problem.line}` : problem.file;
      const column = problem.column && problem.column !== problem.field ? ` (column ${problem.column})` : '';
      const field = problem.field ? `${problem.field}: ` : '';
      const job = problem.jobId ? ` (job ${problem.jobId})` : '';
      return `${where}${column}: ${field}${problem.message}${job}\n`;
    })
    .join('');
}
