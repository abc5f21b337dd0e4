/*
 * A CSV cell that starts with `=`, `+`, `-` or `@` (or a tab or carriage return, which some spreadsheets skip before
 * reading one) is run as a formula when the file is opened in a spreadsheet. Text from job files and replies may
 * start so; the OWASP rule for CSV injection is to prefix such a cell with a single quote, which spreadsheets show as
 * text. Programs that need the exact values read results.jsonl.
 */

const FORMULA_START = /^[=+\-@\t\r]/;

/** `text` as a CSV cell a spreadsheet shows as text: prefixed with `'` when it starts like a formula. */
export const spreadsheetSafe = (text: string): string => (FORMULA_START.test(text) ? `'${text}` : text);

/** A row's cells for a CSV file: text made {@link spreadsheetSafe}, numbers (written by nightshift) as they are. */
export const spreadsheetSafeRow = (cells: readonly (string | number)[]): (string | number)[] =>
  cells.map((cell) => (typeof cell === 'string' ? spreadsheetSafe(cell) : cell));
