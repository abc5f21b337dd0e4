import { stringify } from 'csv-stringify/sync';
import { NightshiftError } from '../common/errors.js';
import { writeFileAtomic } from '../common/atomic-file.js';
import { spreadsheetSafeRow } from '../output/spreadsheet-safe.js';

/**
 * Lays out rows of cells (header first) in aligned columns for a terminal. Numbers get thousands separators; a column
 * whose cells are all numbers or decimal strings (costs) is right-aligned.
 */
export function formatTable(rows: readonly (readonly (string | number)[])[]): string {
  const text = rows.map((row) => row.map((cell) => (typeof cell === 'number' ? cell.toLocaleString('en-US') : cell)));
  const columns = Math.max(0, ...text.map((row) => row.length));
  const widths = Array.from({ length: columns }, (_, column) => Math.max(...text.map((row) => (row[column] ?? '').length)));
  const numeric = Array.from({ length: columns }, (_, column) =>
    rows.slice(1).every((row) => typeof row[column] === 'number' || /^(\d+(\.\d+)?)?$/.test(String(row[column] ?? ''))),
  );
  return text
    .map((row) =>
      row
        .map((cell, column) => (numeric[column] ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
    .concat('\n');
}

/**
 * Rows of cells (header first) as objects keyed by the header, for `--json`: counts stay numbers, a dollar column's
 * decimal text becomes a number and its empty cell (no price known) `null`, never 0.
 */
export function tableObjects(rows: readonly (readonly (string | number)[])[]): Record<string, string | number | null>[] {
  const [header = [], ...body] = rows;
  return body.map((row) =>
    Object.fromEntries(
      header.map((name, column) => {
        const cell = row[column] ?? '';
        const usd = String(name).endsWith('usd');
        return [String(name), usd && typeof cell === 'string' ? (cell === '' ? null : Number(cell)) : cell];
      }),
    ),
  );
}

/** Prints `value` as one line of JSON, the whole of what a `--json` command writes to stdout. */
export const printJson = (stdout: (text: string) => void, value: unknown): void => stdout(`${JSON.stringify(value)}\n`);

/** Writes rows of cells (header first) to a CSV file, text made spreadsheet-safe; a file that cannot be written is `E_OUTPUT` (exit 4), not a bug. */
export async function writeCsvFile(path: string, rows: (string | number)[][]): Promise<void> {
  try {
    await writeFileAtomic(path, stringify(rows.map(spreadsheetSafeRow)));
  } catch (error) {
    throw new NightshiftError('E_OUTPUT', `Cannot write ${path}: ${(error as Error).message}`, {}, { cause: error });
  }
}
