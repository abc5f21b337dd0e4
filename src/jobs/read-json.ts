import { parseTree, printParseErrorCode, type Node, type ParseError } from 'jsonc-parser';
import { offsetDeeperThan, TOO_DEEP } from '../common/json-depth.js';
import { splitLines } from './lines.js';
import { problemRecord, type RawRecord } from './records.js';

/**
 * Reads a `.json` file: an array of jobs, or `{"defaults": {...}, "jobs": [...]}`.
 * The document is parsed into a syntax tree so each job keeps the line of its opening `{`.
 */
export async function* readJson(chunks: AsyncIterable<Uint8Array>, file: string): AsyncGenerator<RawRecord> {
  const lines: string[] = [];
  for await (const line of splitLines(chunks)) {
    if (!line.utf8) {
      yield problemRecord(file, line.number, 'line is not valid UTF-8 text');
      return;
    }
    lines.push(line.text);
  }
  yield* parseJsonDocument(lines.join('\n'), file);
}

function* parseJsonDocument(text: string, file: string): Generator<RawRecord> {
  const lineOf = lineLocator(text);
  // The parser recurses: a document nested thousands deep would overflow the stack.
  const deep = offsetDeeperThan(text);
  if (deep !== undefined) {
    yield problemRecord(file, lineOf(deep), TOO_DEEP);
    return;
  }
  const errors: ParseError[] = [];
  const root = parseTree(text, errors, { allowTrailingComma: false, disallowComments: true, allowEmptyContent: false });
  if (errors.length > 0) {
    // One error per line: later errors on the same line are nearly always echoes of the first.
    const reported = new Set<number>();
    for (const error of errors) {
      const line = lineOf(error.offset);
      if (reported.has(line)) continue;
      reported.add(line);
      yield problemRecord(file, line, `not valid JSON: ${describeParseError(error, text)}`);
    }
    return;
  }
  if (root === undefined) return;

  const at = (node: Node) => ({ file, line: lineOf(node.offset) });
  // Elements are re-parsed with JSON.parse so values are ordinary objects, exactly as in a .jsonl file.
  const valueOf = (node: Node): unknown => JSON.parse(text.slice(node.offset, node.offset + node.length));

  const properties =
    root.type === 'object' ? (root.children ?? []).flatMap(({ children: [key, value] = [] }) => (key && value ? [{ key, value }] : [])) : [];
  const jobs = root.type === 'array' ? root : properties.find(({ key }) => key.value === 'jobs')?.value;
  if (jobs === undefined) {
    yield problemRecord(file, lineOf(root.offset), 'expected an array of jobs, or an object with a "jobs" array');
    return;
  }
  for (const { key, value } of properties) {
    if (key.value === 'defaults') yield { type: 'defaults', source: at(value), value: valueOf(value) };
    else if (key.value !== 'jobs') {
      yield problemRecord(file, lineOf(key.offset), `unknown top-level key ${JSON.stringify(key.value)}: expected "defaults" and "jobs"`);
    }
  }
  if (jobs.type !== 'array') {
    yield problemRecord(file, lineOf(jobs.offset), '"jobs" must be an array');
    return;
  }
  let index = 0;
  for (const element of jobs.children ?? []) {
    index += 1;
    yield { type: 'job', source: at(element), index, value: valueOf(element) };
  }
}

function describeParseError(error: ParseError, text: string): string {
  const code = printParseErrorCode(error.error);
  if (code === 'InvalidCommentToken') return 'comments are not allowed';
  if (isTrailingComma(text, error.offset)) return 'trailing comma';
  return code.replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
}

/** True when `offset` is a closing bracket or brace preceded (ignoring whitespace) by a comma. */
function isTrailingComma(text: string, offset: number): boolean {
  if (text[offset] !== ']' && text[offset] !== '}') return false;
  let before = offset - 1;
  while (before >= 0 && /\s/.test(text[before] ?? '')) before -= 1;
  return text[before] === ',';
}

/** Maps a character offset in `text` to its 1-based line. */
function lineLocator(text: string): (offset: number) => number {
  const starts = [0];
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
  return (offset) => {
    let low = 0;
    let high = starts.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if ((starts[middle] ?? 0) <= offset) low = middle;
      else high = middle - 1;
    }
    return low + 1;
  };
}
