import { isNestedDeeperThan, TOO_DEEP } from '../common/json-depth.js';
import type { ProblemDetail } from './problems.js';
import { FIELDS_BY_KIND } from './schema.js';
import { describeSuggestion, suggestField } from './suggest.js';

/*
 * A CSV cell is always text. These rules give each field the type it has in JSON, so that CSV, JSON and
 * JSONL jobs go through the same validation. A cell that does not convert is left as text and the
 * schema reports it ("temperature: expected a number from 0 to 2, got \"hot\""), except bad JSON,
 * whose syntax error is the useful message.
 */

/** Every field of some job kind. */
export const KNOWN_FIELDS: ReadonlySet<string> = new Set(Object.values(FIELDS_BY_KIND).flatMap((fields) => Object.keys(fields)));
const NUMBER_FIELDS = new Set(['temperature', 'top_p', 'max_completion_tokens', 'max_tokens', 'seed', 'n', 'output_compression']);
const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?$/i;

const isJsonCell = (name: string, cell: string): boolean =>
  name === 'messages' || name === 'params' || (name === 'response_format' && cell.startsWith('{')) || (name === 'images' && cell.startsWith('['));

/**
 * The field a CSV column names: its header trimmed, and matched to a field whatever its case (`ID`, `Model`, `Prompt`,
 * as spreadsheets write them). A header that matches no field is kept as written, for {@link checkHeader} to report.
 */
export function columnField(header: string): string {
  const name = header.trim();
  const lower = name.toLowerCase();
  return KNOWN_FIELDS.has(lower) ? lower : name;
}

/** Problems with a CSV header: unnamed, repeated or unknown columns. Reported once, not on every row. */
export function checkHeader(columns: readonly string[]): ProblemDetail[] {
  const problems: ProblemDetail[] = [];
  const seen = new Set<string>();
  columns.forEach((name, i) => {
    if (name === '') problems.push({ message: `column ${i + 1} has no name` });
    else if (seen.has(name)) problems.push({ field: name, message: 'column appears more than once' });
    else if (!KNOWN_FIELDS.has(name)) {
      const suggestion = suggestField(name, KNOWN_FIELDS);
      const message = suggestion === undefined ? 'unknown column: not a job field' : describeSuggestion('unknown column', suggestion);
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
  /** The cells of misnamed columns, by the field each column most likely means (the header's problem names it). */
  standIns: Record<string, unknown>;
  /** True when a cell is under a column that means no field: what the row seems to lack may be there. */
  opaque: boolean;
}

/**
 * Types a CSV row's cells: empty cells are absent; numeric fields become numbers; `messages` and
 * `params` are JSON; `response_format` is JSON when it starts with `{`; `images` is a JSON array when it
 * starts with `[`, else a `;`-separated list. Columns that are not job fields are skipped (see `checkHeader`).
 */
export function decodeRow(cells: Readonly<Record<string, string>>): DecodedRow {
  const row: DecodedRow = { fields: {}, problems: [], failed: new Set(), standIns: {}, opaque: false };
  for (const [name, cell] of Object.entries(cells)) {
    if (cell === '') continue;
    if (!KNOWN_FIELDS.has(name)) {
      const suggestion = suggestField(name, KNOWN_FIELDS);
      if (suggestion === undefined) row.opaque = true;
      else row.standIns[suggestion.field] = cell;
      continue;
    }
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
