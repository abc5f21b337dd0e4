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
  let pending: Buffer[] = [];
  let number = 0;

  const toLine = (bytes: Buffer): Line => {
    number += 1;
    const end = bytes.at(-1) === 0x0d ? bytes.length - 1 : bytes.length;
    const content = bytes.subarray(0, end);
    let text = content.toString('utf8');
    if (number === 1 && text.startsWith(BOM)) text = text.slice(1);
    return { number, text, utf8: isUtf8(content) };
  };

  for await (const chunk of chunks) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
    let start = 0;
    let newline = buffer.indexOf(NEWLINE, start);
    while (newline !== -1) {
      pending.push(buffer.subarray(start, newline));
      yield toLine(Buffer.concat(pending));
      pending = [];
      start = newline + 1;
      newline = buffer.indexOf(NEWLINE, start);
    }
    if (start < buffer.length) pending.push(buffer.subarray(start));
  }
  if (pending.length > 0) yield toLine(Buffer.concat(pending));
}
