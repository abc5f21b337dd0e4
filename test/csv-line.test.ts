import { stringify } from 'csv-stringify/sync';
import { parse } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import { zeroUsage } from '../src/common/types.js';
import type { JobRecord } from '../src/output/journal.js';
import { csvLine, recordLine } from '../src/output/results.js';

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

describe('results.csv cells a spreadsheet would run', () => {
  const record = (output: string, error?: string): JobRecord => ({
    type: 'job', id: 'j', fingerprint: 'x', state: error === undefined ? 'done' : 'failed', kind: 'chat', model: 'm', tags: [],
    source: 'f.jsonl:1', attempts: 1, output, files: [], usage: zeroUsage(), costUsd: 0, latencyMs: 1, startedAt: '', finishedAt: '',
    ...(error === undefined ? {} : { error }),
  });

  it.each(['=1+1', '+1', '-1', '@SUM(A1)', '\tx', '\rx'])('a reply starting %j is prefixed with a quote', (output) => {
    const [row] = parse(recordLine(record(output)), { relax_quotes: true }) as string[][];
    expect(row![5]).toBe(`'${output}`);
  });

  it('an error starting with one of them is too, and other text is left as it is', () => {
    const [row] = parse(recordLine(record('fine', '=oops')), { relax_quotes: true }) as string[][];
    expect([row![5], row![7]]).toEqual(['fine', "'=oops"]);
  });
});
