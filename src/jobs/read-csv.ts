import { Readable } from 'node:stream';
import { CsvError, parse, type Info } from 'csv-parse';
import { columnField } from './csv-fields.js';
import { splitLineBatches } from './lines.js';
import { problemRecord, type ProblemRecord, type RawRecord } from './records.js';

interface ParsedRow {
  record: Record<string, string>;
  raw: string;
  info: Info;
}

/**
 * Reads a `.csv` file whose header row names the job fields. Rows may span lines (quoted cells);
 * each row keeps the line it starts on. A malformed row, or one with bytes that are not UTF-8,
 * is a problem and reading goes on.
 */
export async function* readCsv(chunks: AsyncIterable<Uint8Array>, file: string): AsyncGenerator<RawRecord> {
  const badLines: number[] = [];
  // Problems found while csv-parse reads ahead; yielded in line order between rows.
  const pending: ProblemRecord[] = [];
  let columns: string[] | undefined;

  // The lines of each chunk go to csv-parse as one string.
  async function* text(): AsyncGenerator<string> {
    for await (const lines of splitLineBatches(chunks)) {
      let batch = '';
      for (const line of lines) {
        if (!line.utf8) {
          badLines.push(line.number);
          pending.push(problemRecord(file, line.number, 'line is not valid UTF-8 text'));
        }
        batch += `${line.text}\n`;
      }
      yield batch;
    }
  }

  const source = Readable.from(text());
  const parser = parse({
    bom: true,
    columns: (header: string[]) => (columns = header.map(columnField)),
    relax_column_count: false,
    skip_empty_lines: true,
    // A spreadsheet saves the rows it once had as rows of empty cells (`,,,`): they are no jobs.
    skip_records_with_empty_values: true,
    info: true,
    raw: true,
    skip_records_with_error: true,
    on_skip: (error, raw) => {
      if (error === undefined) return;
      const line = firstLine(numberOr(error['lines'], 1), raw ?? '');
      pending.push(problemRecord(file, line, describeCsvError(error)));
    },
  });
  // `pipe` does not forward errors: a read error (say, the path is a directory) must reach the loop below.
  source.once('error', (error) => parser.destroy(error));
  source.pipe(parser);

  let headerSent = false;
  function* header(): Generator<RawRecord> {
    if (headerSent || columns === undefined) return;
    headerSent = true;
    yield { type: 'header', source: { file, line: 1 }, columns };
  }
  function* problemsBefore(line: number): Generator<RawRecord> {
    pending.sort((a, b) => a.problem.line - b.problem.line);
    while (pending[0] !== undefined && pending[0].problem.line < line) yield pending.shift() as ProblemRecord;
  }

  let index = 0;
  try {
    for await (const row of parser as AsyncIterable<ParsedRow>) {
      yield* header();
      index += 1;
      const lastLine = row.info.lines;
      const line = firstLine(lastLine, row.raw);
      yield* problemsBefore(lastLine + 1);
      if (badLines.some((bad) => bad >= line && bad <= lastLine)) continue;
      yield { type: 'row', source: { file, line }, index, cells: row.record };
    }
  } catch (error) {
    if (!(error instanceof CsvError)) throw error;
    pending.push(problemRecord(file, numberOr(error['lines'], 0), describeCsvError(error)));
  } finally {
    source.destroy();
  }
  yield* header();
  yield* problemsBefore(Infinity);
}

/**
 * The line a row starts on, from csv-parse's line count when the row ended and the row's raw text.
 * The raw text starts with any skipped empty lines and ends with the row delimiter; neither counts.
 */
function firstLine(lastLine: number, raw: string): number {
  const body = raw.replace(/^\n+/, '').replace(/\n$/, '');
  let inner = 0;
  for (let i = body.indexOf('\n'); i !== -1; i = body.indexOf('\n', i + 1)) inner += 1;
  return lastLine - inner;
}

const numberOr = (value: unknown, fallback: number): number => (typeof value === 'number' ? value : fallback);

function describeCsvError(error: CsvError): string {
  switch (error.code) {
    case 'CSV_RECORD_INCONSISTENT_COLUMNS':
    case 'CSV_RECORD_INCONSISTENT_FIELDS_LENGTH': {
      const cells = Array.isArray(error['record']) ? error['record'].length : undefined;
      const expected = Array.isArray(error['columns']) ? error['columns'].length : undefined;
      return cells !== undefined && expected !== undefined
        ? `row has ${cells} cells but the header has ${expected}`
        : 'row has a different number of cells than the header';
    }
    case 'CSV_QUOTE_NOT_CLOSED':
      return 'a quoted cell is never closed';
    case 'CSV_INVALID_CLOSING_QUOTE':
    case 'INVALID_OPENING_QUOTE':
    case 'CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE':
      return 'misplaced quote: quote the whole cell and double any quote inside it ("")';
    default:
      return `not valid CSV: ${error.message}`;
  }
}
