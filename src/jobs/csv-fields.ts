import { isNestedDeeperThan, TOO_DEEP } from '../common/json-depth.js';
import type { ProblemDetail } from './problems.js';
import { FIELDS_BY_KIND } from './schema.js';
import { closest } from './suggest.js';

/*
 * A CSV cell is always text. These rules give each field the type it has in JSON, so that CSV, JSON and
 * JSONL jobs go through the same validation. A cell that does not convert is left as text and the
 * schema reports it ("temperature: expected a number from 0 to 2, got \"hot\""), except bad JSON,
 * whose syntax error is the useful message.
 */

const KNOWN_FIELDS = new Set(Object.values(FIELDS_BY_KIND).flatMap((fields) => Object.keys(fields)));
const NUMBER_FIELDS = new Set(['temperature', 'top_p', 'max_completion_tokens', 'max_tokens', 'seed', 'n', 'output_compression']);
const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?$/i;

const isJsonCell = (name: string, cell: string): boolean =>
  name === 'messages' || name === 'params' || (name === 'response_format' && cell.startsWith('{')) || (name === 'images' && cell.startsWith('['));

/** Problems with a CSV header: unnamed, repeated or unknown columns. Reported once, not on every row. */
export function checkHeader(columns: readonly string[]): ProblemDetail[] {
  const problems: ProblemDetail[] = [];
  const seen = new Set<string>();
  columns.forEach((name, i) => {
    if (name === '') problems.push({ message: `column ${i + 1} has no name` });
    else if (seen.has(name)) problems.push({ field: name, message: 'column appears more than once' });
    else if (!KNOWN_FIELDS.has(name)) {
      const typo = closest(name, KNOWN_FIELDS);
      const message = typo === undefined ? 'unknown column: not a job field' : `unknown column (did you mean ${JSON.stringify(typo)}?)`;
      problems.push({ field: name, message });
    }
    seen.add(name);
  });
  return problems;
}

/** A CSV row's cells as typed job fields. */
export interface DecodedRow {
  fields: Record<string, unknown>;
  /** Cells that are not valid JSON where JSON is expected. */
  problems: ProblemDetail[];
  /** Fields whose cell failed to decode; they hold the cell text so the field still counts as given. */
  failed: Set<string>;
}

/**
 * Types a CSV row's cells: empty cells are absent; numeric fields become numbers; `messages` and
 * `params` are JSON; `response_format` is JSON when it starts with `{`; `images` is a JSON array when it
 * starts with `[`, else a `;`-separated list. Columns that are not job fields are skipped (see `checkHeader`).
 */
export function decodeRow(cells: Readonly<Record<string, string>>): DecodedRow {
  const row: DecodedRow = { fields: {}, problems: [], failed: new Set() };
  for (const [name, cell] of Object.entries(cells)) {
    if (cell === '' || !KNOWN_FIELDS.has(name)) continue;
    const trimmed = cell.trim();
    if (NUMBER_FIELDS.has(name)) {
      row.fields[name] = NUMBER.test(trimmed) ? Number(trimmed) : cell;
    } else if (isJsonCell(name, trimmed)) {
      let value: unknown;
      try {
        value = JSON.parse(cell);
      } catch (error) {
        row.fields[name] = cell;
        row.failed.add(name);
        row.problems.push({ field: name, message: `not valid JSON: ${(error as SyntaxError).message}` });
        continue;
      }
      if (isNestedDeeperThan(value)) {
        row.fields[name] = cell;
        row.failed.add(name);
        row.problems.push({ field: name, message: TOO_DEEP });
      } else {
        row.fields[name] = value;
      }
    } else if (name === 'images') {
      // `;base64,` belongs to a data: URL and does not separate images.
      row.fields[name] = cell
        .split(/;(?!base64,)/)
        .map((image) => image.trim())
        .filter((image) => image !== '');
    } else {
      row.fields[name] = cell;
    }
  }
  return row;
}
