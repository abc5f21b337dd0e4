import { describe, expect, it } from 'vitest';
import { splitLines, type Line } from '../src/jobs/lines.js';

async function* chunked(bytes: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let start = 0; start < bytes.length; start += size) yield bytes.subarray(start, start + size);
}

async function lines(bytes: Buffer, size: number): Promise<Line[]> {
  const all: Line[] = [];
  for await (const line of splitLines(chunked(bytes, size))) all.push(line);
  return all;
}

describe('splitting a job file into lines', () => {
  // A BOM, CRLF endings, a two-byte and a four-byte character, an invalid byte, a blank line, no final newline.
  const bytes = Buffer.concat([
    Buffer.from('\uFEFF{"id": "é"}\r\n{"id": "🌙"}\n', 'utf8'),
    Buffer.from([0x7b, 0xff, 0x7d, 0x0a]),
    Buffer.from('\n{"id": "last"}', 'utf8'),
  ]);
  const expected: Line[] = [
    { number: 1, text: '{"id": "é"}', utf8: true },
    { number: 2, text: '{"id": "🌙"}', utf8: true },
    { number: 3, text: '{\uFFFD}', utf8: false },
    { number: 4, text: '', utf8: true },
    { number: 5, text: '{"id": "last"}', utf8: true },
  ];

  it.each([1, 2, 3, 5, 7, 64])('gives the same lines whatever the chunk size (%i bytes)', async (size) => {
    expect(await lines(bytes, size)).toEqual(expected);
  });

  it('yields nothing for an empty file and no extra line after a final newline', async () => {
    expect(await lines(Buffer.alloc(0), 4)).toEqual([]);
    expect(await lines(Buffer.from('a\nb\n'), 3)).toEqual([
      { number: 1, text: 'a', utf8: true },
      { number: 2, text: 'b', utf8: true },
    ]);
  });
});
