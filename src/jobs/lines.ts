import { isUtf8 } from 'node:buffer';

/** One line of a job file, with its terminator (`\n` or `\r\n`) removed. */
export interface Line {
  /** 1-based line number. */
  number: number;
  /** The decoded text; invalid UTF-8 sequences are replaced with U+FFFD when `utf8` is false. */
  text: string;
  /** False when the line's bytes are not valid UTF-8. */
  utf8: boolean;
}

const NEWLINE = 0x0a;
const BOM = '\uFEFF';

/**
 * Splits a byte stream into lines and checks each for valid UTF-8.
 * Lines are split on bytes rather than decoded text so an invalid byte can be traced to its line;
 * a leading UTF-8 BOM is dropped, and a final line without a terminator is still yielded.
 */
export async function* splitLines(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Line> {
  for await (const lines of splitLineBatches(chunks)) yield* lines;
}

/**
 * {@link splitLines}, yielding the lines that end in each chunk together: a million-line file takes a few hundred
 * awaits, not a million. A chunk that is valid UTF-8 throughout is decoded and split as one string. `firstLine`
 * numbers the first line, for bytes that start part-way through a file.
 */
export async function* splitLineBatches(chunks: AsyncIterable<Uint8Array>, firstLine = 1): AsyncGenerator<Line[]> {
  // The start of a line that a later chunk ends, in pieces: joined once, so a long line costs one copy.
  let pending: Buffer[] = [];
  let number = firstLine - 1;

  const line = (text: string, utf8: boolean): Line => {
    number += 1;
    if (text.endsWith('\r')) text = text.slice(0, -1);
    if (number === 1 && text.startsWith(BOM)) text = text.slice(1);
    return { number, text, utf8 };
  };

  /** The lines of `bytes`, which end with a line (its newline left out). */
  const linesOf = (bytes: Buffer): Line[] => {
    if (isUtf8(bytes)) return bytes.toString('utf8').split('\n').map((text) => line(text, true));
    const lines: Line[] = [];
    let start = 0;
    for (let newline = bytes.indexOf(NEWLINE); ; newline = bytes.indexOf(NEWLINE, start)) {
      const content = bytes.subarray(start, newline === -1 ? bytes.length : newline);
      lines.push(line(content.toString('utf8'), isUtf8(content.at(-1) === 0x0d ? content.subarray(0, -1) : content)));
      if (newline === -1) return lines;
      start = newline + 1;
    }
  };

  for await (const chunk of chunks) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
    const last = buffer.lastIndexOf(NEWLINE);
    if (last === -1) {
      pending.push(buffer);
      continue;
    }
    const complete = pending.length > 0 ? Buffer.concat([...pending, buffer.subarray(0, last)]) : buffer.subarray(0, last);
    pending = last + 1 < buffer.length ? [buffer.subarray(last + 1)] : [];
    yield linesOf(complete);
  }
  const rest = Buffer.concat(pending);
  if (rest.length > 0) yield linesOf(rest);
}
