import { describe, expect, it } from 'vitest';
import { hashId, IdTable } from '../src/common/id-table.js';

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

  it('hashes ids as MurmurHash3 x86_128 of their UTF-16 code units (reference values)', () => {
    const hex = (id: string): string => {
      const out = new Uint32Array(4);
      hashId(id, out);
      return [...out].map((word) => word.toString(16).padStart(8, '0')).join('');
    };
    // From the reference implementation over Buffer.from(id, 'utf16le'): the block loop and each tail length.
    expect(hex('j1')).toBe('f7df54da1968ed691968ed691968ed69');
    expect(hex('job-000000000123456789')).toBe('60ca73eeb19da709eacbe13dd8d350a2');
    expect(hex('a\ud800')).toBe('9c9bf76072991f3e72991f3e72991f3e');
  });

  it('looks up the ids of another table by number, without their text', () => {
    const validated = new IdTable();
    const journal = new IdTable();
    for (const id of ['x', 'y', 'z']) validated.add(id);
    for (const id of ['z', 'w', 'x']) journal.add(id);
    expect([0, 1, 2].map((n) => journal.indexOfIn(validated, n))).toEqual([2, -1, 0]);
  });
});
