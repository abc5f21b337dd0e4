import { describe, expect, it } from 'vitest';
import { IdTable } from '../src/core/id-table.js';

describe('IdTable', () => {
  it('numbers ids in the order first added and finds each again, across growth', () => {
    const table = new IdTable();
    const ids = Array.from({ length: 50_000 }, (_, i) => (i % 3 === 0 ? `job-${i}` : `${i}`));
    ids.forEach((id, i) => expect(table.add(id)).toBe(i));
    expect(table.size).toBe(ids.length);
    // Adding again returns the first number and adds nothing.
    expect(table.add('job-0')).toBe(0);
    expect(table.add(ids[49_999]!)).toBe(49_999);
    expect(table.size).toBe(ids.length);
    for (const [i, id] of ids.entries()) expect(table.indexOf(id)).toBe(i);
  });

  it('grows past the number of ids it was sized for', () => {
    const table = new IdTable(10);
    for (let i = 0; i < 5_000; i++) expect(table.add(`id-${i}`)).toBe(i);
    for (let i = 0; i < 5_000; i++) expect(table.indexOf(`id-${i}`)).toBe(i);
    expect(table.indexOf('id-5000')).toBe(-1);
  });

  it('tells apart ids that differ only in case, spacing or unicode form', () => {
    const table = new IdTable();
    const ids = ['a', 'A', ' a', 'a ', '', 'é', 'e\u0301', '1', '01', 'a\ud800', 'a\udc00', 'a\ufffd', '🌙', 'a\ud83c'];
    for (const id of ids) table.add(id);
    expect(table.size).toBe(ids.length);
    expect(ids.map((id) => table.indexOf(id))).toEqual(ids.map((_, i) => i));
    expect(table.indexOf('b')).toBe(-1);
  });
});
