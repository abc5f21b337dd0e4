import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { EXIT } from '../src/cli/exit.js';
import { cli, tempDir } from './helpers.js';

/** A JSON array nested `depth` deep: `[[[...]]]`. */
const nested = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth);
const DEEP = 5000;

describe('JSON nested thousands deep is a located problem (exit 2), never a crash', () => {
  test.each([
    ['a .jsonl line', 'jobs.jsonl', `{"prompt": "hi", "model": "gpt-5-mini"}\n{"prompt": "x", "model": "gpt-5-mini", "params": {"stop": ${nested(DEEP)}}}\n`, 2],
    ['a .jsonl message', 'jobs.jsonl', `{"model": "gpt-5-mini", "messages": [{"role": "user", "content": "x", "name": ${nested(DEEP)}}]}\n`, 1],
    ['a .json job', 'jobs.json', `[\n  {"prompt": "hi", "model": "gpt-5-mini"},\n  {"prompt": "x", "model": "gpt-5-mini",\n   "params": {"stop": ${nested(DEEP)}}}\n]\n`, 4],
    ['a .csv params cell', 'jobs.csv', `prompt,model,params\nhi,gpt-5-mini,\nx,gpt-5-mini,"{""stop"": ${nested(DEEP)}}"\n`, 3],
  ])('%s', async (_name, fileName, text, line) => {
    const dir = await tempDir();
    const file = join(dir, fileName);
    await writeFile(file, text);
    const { code, stderr } = await cli(['validate', file]);
    expect(code).toBe(EXIT.invalid);
    expect(stderr).toContain(`${file}:${line}:`);
    expect(stderr).not.toContain('bug');
  });

  test('a --prices file', async () => {
    const dir = await tempDir();
    const jobs = join(dir, 'jobs.jsonl');
    await writeFile(jobs, '{"prompt": "hi", "model": "gpt-5-mini"}\n');
    const prices = join(dir, 'prices.json');
    await writeFile(prices, `{\n  "gpt-5-mini": {"input": 1},\n  "other": ${nested(DEEP)}\n}\n`);
    const { code, stderr } = await cli(['estimate', jobs, '--prices', prices, '--out', join(dir, 'out')]);
    expect(code).toBe(EXIT.invalid);
    expect(stderr).toContain(`${prices}:3`);
    expect(stderr).not.toContain('bug');
  });
});
