import type { Problem } from '../common/types.js';

/**
 * Prints every problem as `file:line[:column]: field: message`, in the order found. The same problem (file, field and
 * message) on many lines is printed once, at its first line, with the lines it recurs on: a field misnamed on every
 * line of a large file is one root cause, not a screen of copies.
 */
export function formatProblems(problems: readonly Problem[]): string {
  const recurring = new Map<string, number[]>();
  const keyOf = (problem: Problem) => JSON.stringify([problem.file, problem.field ?? '', problem.message]);
  for (const problem of problems) {
    const key = keyOf(problem);
    const lines = recurring.get(key);
    if (lines) lines.push(problem.line);
    else recurring.set(key, []);
  }
  const printed = new Set<string>();
  return problems
    .map((problem) => {
      const key = keyOf(problem);
      if (printed.has(key)) return '';
      printed.add(key);
      const where = problem.line > 0 ? `${problem.file}:${problem.line}` : problem.file;
      const column = problem.column && problem.column !== problem.field ? ` (column ${problem.column})` : '';
      const field = problem.field ? `${problem.field}: ` : '';
      const job = problem.jobId ? ` (job ${problem.jobId})` : '';
      return `${where}${column}: ${field}${problem.message}${job}${recurs(recurring.get(key) ?? [])}\n`;
    })
    .join('');
}

/** How many more lines a problem recurs on, naming the first few. */
function recurs(lines: readonly number[]): string {
  if (lines.length === 0) return '';
  const shown = lines.slice(0, 5).join(', ');
  return ` (and ${lines.length} more like it, on line${lines.length === 1 ? '' : 's'} ${shown}${lines.length > 5 ? ', ...' : ''})`;
}
