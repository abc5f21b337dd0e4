import { describe, expect, it } from 'vitest';
import { QUICK_CHECKS } from '../src/jobs/schema.js';

/** Values of every JSON shape and the edges the schemas draw: empty and blank text, ranges, integers. */
const SAMPLES: unknown[] = [
  'a',
  ' x ',
  '',
  ' ',
  '\n\t',
  '\u00a0',
  'gpt-4o-mini',
  'a;b',
  0,
  1,
  -1,
  0.5,
  1.5,
  2,
  2.0001,
  -0,
  1e21,
  Number.MAX_SAFE_INTEGER,
  Number.MAX_SAFE_INTEGER + 2,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  true,
  null,
  undefined,
  [],
  ['a', 'b'],
  ['a', 1],
  [''],
  { a: 1 },
];

describe('quick checks in front of the field schemas', () => {
  it('accept only values their schema accepts, and that it returns unchanged', () => {
    let accepted = 0;
    for (const [schema, quick] of QUICK_CHECKS) {
      for (const value of SAMPLES) {
        if (!quick(value)) continue;
        accepted++;
        const parsed = schema.safeParse(value);
        expect(parsed.success, `${schema.description}: ${JSON.stringify(value)}`).toBe(true);
        expect(parsed.data).toEqual(value);
      }
    }
    // The checks do take the common cases: otherwise they would spare nothing.
    expect(accepted).toBeGreaterThan(QUICK_CHECKS.size * 2);
  });
});
