import { isNestedDeeperThan, MAX_JSON_DEPTH, TOO_DEEP } from '../common/json-depth.js';
import { splitLineBatches } from './lines.js';
import { problemRecord, type RawRecord, type SkippedRecord } from './records.js';

const SKIPPED: SkippedRecord = { type: 'skipped' };

/**
 * Reads a `.jsonl` file: one JSON job per non-blank line; a bad line is a problem and reading goes on. `from` gives
 * the line and record numbers of the first line when `chunks` start part-way through the file. Records that `skip`
 * names (by record number) are passed over without being parsed.
 */
export async function* readJsonl(
  chunks: AsyncIterable<Uint8Array>,
  file: string,
  from = { line: 1, index: 1 },
  skip?: (index: number) => boolean,
): AsyncGenerator<RawRecord> {
  let index = from.index - 1;
  for await (const lines of splitLineBatches(chunks, from.line)) {
    for (const line of lines) {
      if (line.text.trim() === '') continue;
      index += 1;
      if (skip?.(index)) {
        yield SKIPPED;
        continue;
      }
      if (!line.utf8) {
        yield problemRecord(file, line.number, 'line is not valid UTF-8 text');
        continue;
      }
      let value: unknown;
      try {
        value = JSON.parse(line.text);
      } catch (error) {
        yield problemRecord(file, line.number, `not valid JSON: ${(error as SyntaxError).message}`);
        continue;
      }
      // A line with fewer brackets than the limit cannot nest deeper: most lines are not walked at all.
      if (bracketsAtLeast(line.text, MAX_JSON_DEPTH + 1) && isNestedDeeperThan(value)) {
        yield problemRecord(file, line.number, TOO_DEEP);
        continue;
      }
      yield { type: 'job', source: { file, line: line.number }, index, value };
    }
  }
}

/** Whether `text` holds at least `count` opening brackets (`[` or `{`), strings included. */
function bracketsAtLeast(text: string, count: number): boolean {
  let found = 0;
  for (let at = 0; at < text.length; at++) {
    const char = text.charCodeAt(at);
    if ((char === 0x5b || char === 0x7b) && ++found >= count) return true;
  }
  return false;
}
