import { lstat, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { JournalWriter } from '../src/output/journal-writer.js';
import { cli, offlineServerPerTest, tempDir, writeJobs } from './helpers.js';

const noStack = /\n\s+at /;
const offline = offlineServerPerTest('sk-test-links-key-1234567890');

/** A file outside the output folder whose last line lacks its newline, as a torn journal line would. */
const OUTSIDE = 'a line someone cares about\nand a last line without its newline';

describe.skipIf(process.platform === 'win32')('links in the output folder', () => {
  it.each(['journal.jsonl', 'results.csv', 'usage.csv', 'nightshift.lock'])(
    'refuses (exit 4, nothing sent) a %s that is a link leading outside, leaving its target untouched',
    async (name) => {
      const env = await offline.serve();
      const dir = await tempDir();
      const out = join(dir, 'out');
      await mkdir(out);
      const outside = join(dir, 'outside.txt');
      await writeFile(outside, OUTSIDE);
      await symlink(outside, join(out, name));
      const file = await writeJobs(dir, [{ id: 'a', model: 'gpt-4o-mini', prompt: 'Hello' }]);

      const { code, stderr } = await cli(['run', file, '--out', out], { env });
      expect(code).toBe(4);
      expect(stderr).toContain(name);
      expect(stderr).not.toMatch(noStack);
      expect(offline.server.stats.requests).toBe(0);
      expect(await readFile(outside, 'utf8')).toBe(OUTSIDE);
      expect((await lstat(join(out, name))).isSymbolicLink()).toBe(true);
    },
  );

  it.each(['.nightshift', 'images'])('refuses (exit 4, nothing sent) a %s folder that is a link leading outside, writing nothing there', async (name) => {
    const env = await offline.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    await mkdir(out);
    const outside = join(dir, 'outside');
    await mkdir(outside);
    await writeFile(join(outside, 'keep.txt'), OUTSIDE);
    await symlink(outside, join(out, name));
    const file = await writeJobs(dir, [{ id: 'pic', kind: 'image', model: 'dall-e-2', size: '256x256', prompt: 'A kite' }]);

    const { code, stderr } = await cli(['run', file, '--out', out], { env });
    expect(code).toBe(4);
    expect(stderr).toContain(name);
    expect(stderr).not.toMatch(noStack);
    expect(offline.server.stats.requests).toBe(0);
    expect(await readdir(outside)).toEqual(['keep.txt']);
  });

  it('saves no validation of a large job file where a linked .nightshift leads', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    await mkdir(out);
    const outside = join(dir, 'outside');
    await mkdir(outside);
    await symlink(outside, join(out, '.nightshift'));
    // Long tags (not sent) make the file too large to keep in memory: its validation would be saved for the next run.
    const jobs = Array.from({ length: 30 }, (_, i) => ({ id: `j${i}`, model: 'gpt-4o-mini', prompt: 'Hi', tags: 'x'.repeat(300_000) }));
    const file = await writeJobs(dir, jobs);

    const { code } = await cli(['run', file, '--out', out, '--quiet'], { env });
    expect(code).toBe(4);
    expect(await readdir(outside)).toEqual([]);
  });

  it('never truncates what a link in place of its write probe leads to', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    await mkdir(out);
    const outside = join(dir, 'outside.txt');
    await writeFile(outside, OUTSIDE);
    // The probe is named after the process: this one, for a run in process.
    await symlink(outside, join(out, `.write-test-${process.pid}`));
    const file = await writeJobs(dir, [{ id: 'a', model: 'gpt-4o-mini', prompt: 'Hello' }]);

    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    expect(await readFile(outside, 'utf8')).toBe(OUTSIDE);
  });

  it('never appends to the file a journal link leads to, even past the opening checks', async () => {
    const dir = await tempDir();
    const outside = join(dir, 'outside.txt');
    await writeFile(outside, OUTSIDE);
    await symlink(outside, join(dir, 'journal.jsonl'));
    await expect(JournalWriter.open(join(dir, 'journal.jsonl'))).rejects.toThrow();
    expect(await readFile(outside, 'utf8')).toBe(OUTSIDE);
  });
});
