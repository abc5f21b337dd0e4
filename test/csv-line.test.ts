import { stringify } from 'csv-stringify/sync';
import { parse } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import { csvLine } from '../src/output/results.js';

describe('results.csv lines', () => {
  const cells = [
    'plain', '', 'a,b', 'say "hi"', 'two\nlines', 'carriage\rreturn', 'crlf\r\n', '"', ',', ' spaced ', 'ünïcödé 🌙',
    '=1+1', "'quoted'", 'tab\there', 0, 42, -3.5, 1e-7, 0.00001785,
  ];

  it('quotes and escapes exactly as csv-stringify does', () => {
    expect(csvLine(cells)).toBe(stringify([cells]));
    for (const cell of cells) expect(csvLine([cell, cell])).toBe(stringify([[cell, cell]]));
  });

  it('reads back as the same cells', () => {
    const [row] = parse(csvLine(cells)) as string[][];
    expect(row).toEqual(cells.map(String));
  });
});
