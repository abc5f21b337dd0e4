import { describe, expect, test } from 'vitest';
import { checkOutput, defaultOutputPattern, expandOutput } from '../src/jobs/output-path.js';

describe('expandOutput', () => {
  test('replaces every {id} and {index}', () => {
    expect(expandOutput('{id}/{id}-{index}.png', 'cat', 2)).toBe('cat/cat-2.png');
  });

  test('does not expand placeholders that come from the id', () => {
    expect(expandOutput('{id}.png', '{index}', 1)).toBe('{index}.png');
  });

  test('leaves a pattern without placeholders as it is', () => {
    expect(expandOutput('cover.webp', 'x', 1)).toBe('cover.webp');
  });
});

describe('defaultOutputPattern', () => {
  test('names one image after the id and numbers several, with the format as extension', () => {
    expect(defaultOutputPattern(1)).toBe('{id}.png');
    expect(defaultOutputPattern(3, 'jpeg')).toBe('{id}-{index}.jpeg');
  });
});

describe('checkOutput', () => {
  test.each([
    ['{id}.png', 'cat', 1],
    ['{id}-{index}.png', 'cat', 4],
    ['renders/{id}/{index}.webp', 'a/b', 2],
    ['cat.png', 'x', 1],
    ['..cat.png', 'x', 1],
  ])('accepts %s for id %s and n %i', (pattern, id, n) => {
    expect(checkOutput(pattern, id, n)).toBeUndefined();
  });

  test.each([
    ['../cat.png', 'x', 1],
    ['a/../../cat.png', 'x', 1],
    ['{id}.png', '../x', 1],
    ['/tmp/cat.png', 'x', 1],
    ['C:/cat.png', 'x', 1],
    ['c:cat.png', 'x', 1],
    ['sub\\cat.png', 'x', 1],
    ['cat\u0000.png', 'x', 1],
    ['', 'x', 1],
    ['{id}', '', 1],
    ['folder/', 'x', 1],
    ['a//b.png', 'x', 1],
    ['./b.png', 'x', 1],
    ['{id}.png', 'x', 2],
    ['{name}-{index}.png', 'x', 2],
    ['{id.png', 'x', 1],
  ])('rejects %j for id %j and n %i', (pattern, id, n) => {
    expect(checkOutput(pattern, id, n)).toEqual(expect.any(String));
  });
});

describe('checkOutput: names the disk would refuse after the image is paid for', () => {
  test('a file name over 200 bytes (counted in UTF-8) is refused; 200 bytes is fine', () => {
    expect(checkOutput(`${'a'.repeat(196)}.png`, 'x', 1)).toBeUndefined();
    expect(checkOutput(`${'a'.repeat(197)}.png`, 'x', 1)).toMatch(/file name of 201 bytes/);
    expect(checkOutput(`${'é'.repeat(99)}.png`, 'x', 1)).toMatch(/file name of 202 bytes/);
    // The id fills the default name too.
    expect(checkOutput('{id}.png', 'i'.repeat(300), 1)).toMatch(/file name of 304 bytes/);
  });

  test('a folder name over 255 bytes, or a whole path over 1024 bytes, is refused', () => {
    expect(checkOutput(`${'d'.repeat(255)}/cat.png`, 'x', 1)).toBeUndefined();
    expect(checkOutput(`${'d'.repeat(256)}/cat.png`, 'x', 1)).toMatch(/folder name of 256 bytes/);
    expect(checkOutput(`${Array.from({ length: 5 }, () => 'd'.repeat(200)).join('/')}/cat.png`, 'x', 1)).toBeUndefined();
    expect(checkOutput(`${Array.from({ length: 6 }, () => 'd'.repeat(200)).join('/')}/cat.png`, 'x', 1)).toMatch(/bytes long: at most 1024/);
  });
});
