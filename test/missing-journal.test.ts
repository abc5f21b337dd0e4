import { mkdir, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, offlineServerPerTest, readCsv, tempDir, writeJobs } from './helpers.js';

const offline = offlineServerPerTest('sk-test-missing-journal-1234567890');

const chatJobs = (count: number): Record<string, unknown>[] =>
  Array.from({ length: count }, (_, i) => ({ id: `m${i + 1}`, model: 'gpt-4o-mini', prompt: `Missing journal ${i + 1}` }));

/** A folder a finished run wrote, and what is needed to run it again. */
async function finishedFolder(): Promise<{ env: Record<string, string>; file: string; out: string }> {
  const env = await offline.serve();
  const dir = await tempDir();
  const out = join(dir, 'out');
  const file = await writeJobs(dir, chatJobs(3));
  expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
  expect(offline.server.stats.requests).toBe(3);
  return { env, file, out };
}

describe('a folder with outputs but no journal', () => {
  it.each([
    ['deleted', (path: string) => rm(path)],
    ['emptied', (path: string) => truncate(path, 0)],
    ['emptied by `echo >`, leaving a line break', (path: string) => writeFile(path, '\n')],
  ])('is refused (exit 4) when its journal was %s, and nothing is sent again', async (_, damage) => {
    const { env, file, out } = await finishedFolder();
    await damage(join(out, 'journal.jsonl'));
    const again = await cli(['run', file, '--out', out], { env });
    expect(again.code).toBe(4);
    expect(offline.server.stats.requests).toBe(3);
    // The results of the run are left as they were.
    expect((await readCsv(join(out, 'results.csv'))).map((row) => row.status)).toEqual(['ok', 'ok', 'ok']);
  });

  it('is refused when only images are left beside no journal', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    await mkdir(join(out, 'images'), { recursive: true });
    await writeFile(join(out, 'images', 'cat-1.png'), 'not really a png');
    const file = await writeJobs(dir, chatJobs(2));
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(4);
    expect(offline.server.stats.requests).toBe(0);
  });

  it('is run afresh with --fresh', async () => {
    const { env, file, out } = await finishedFolder();
    await rm(join(out, 'journal.jsonl'));
    const again = await cli(['run', file, '--out', out, '--fresh'], { env });
    expect(again.code).toBe(0);
    expect(offline.server.stats.requests).toBe(6);
    expect((await readCsv(join(out, 'results.csv'))).map((row) => row.status)).toEqual(['ok', 'ok', 'ok']);
  });

  it('is not refused when it is new or holds only an empty images folder', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    await mkdir(join(out, 'images'), { recursive: true });
    const file = await writeJobs(dir, chatJobs(2));
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
  });
});
