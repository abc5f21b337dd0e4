import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, journalLines, offlineServerPerTest, tempDir, writeJobs } from './helpers.js';

const offline = offlineServerPerTest('sk-test-moves-key-1234567890');
const sha = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

describe('images set aside by a killed rename of release 0.1.0', () => {
  it('puts an image left as <name>.<pid>.moving back under its name, sending nothing', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, [
      { id: 'a', kind: 'image', model: 'dall-e-2', size: '256x256', prompt: 'A blue circle', output: 'first.png' },
      { id: 'b', kind: 'image', model: 'dall-e-2', size: '256x256', prompt: 'A green square', output: 'second.png' },
    ]);
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    const first = sha(await readFile(join(out, 'images', 'first.png')));
    // 0.1.0, killed while a.png and b.png traded names: first.png had stepped aside, nothing had been renamed yet.
    await rename(join(out, 'images', 'first.png'), join(out, 'images', 'first.png.4242.moving'));

    const again = await cli(['run', file, '--out', out], { env });
    expect(again.code).toBe(0);
    expect(offline.server.stats.requests).toBe(2);
    expect(await readdir(join(out, 'images'))).toEqual(['first.png', 'second.png']);
    expect(sha(await readFile(join(out, 'images', 'first.png')))).toBe(first);
    expect((await journalLines(out)).filter((line) => line.type === 'job')).toHaveLength(2);
  });
});

describe('a swap of image names that release 0.1.0 left half done', () => {
  it('puts each image back where the journal says its content lives, then swaps them, sending nothing', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const jobs = [
      { id: 'a', kind: 'image', model: 'dall-e-2', size: '256x256', prompt: 'A blue circle', output: 'a.png' },
      { id: 'b', kind: 'image', model: 'dall-e-2', size: '256x256', prompt: 'A green square', output: 'b.png' },
    ];
    const file = await writeJobs(dir, jobs);
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    const [a, b] = [sha(await readFile(join(out, 'images', 'a.png'))), sha(await readFile(join(out, 'images', 'b.png')))];
    // 0.1.0, killed while a.png and b.png traded names: a's image stepped aside, b's took its name.
    await rename(join(out, 'images', 'a.png'), join(out, 'images', 'a.png.999.moving'));
    await rename(join(out, 'images', 'b.png'), join(out, 'images', 'a.png'));
    await writeJobs(dir, [{ ...jobs[0], output: 'b.png' }, { ...jobs[1], output: 'a.png' }]);

    const again = await cli(['run', file, '--out', out], { env });
    expect(again.code, again.stderr).toBe(0);
    expect(offline.server.stats.requests).toBe(2);
    expect((await readdir(join(out, 'images'))).sort()).toEqual(['a.png', 'b.png']);
    expect(sha(await readFile(join(out, 'images', 'b.png')))).toBe(a);
    expect(sha(await readFile(join(out, 'images', 'a.png')))).toBe(b);
  });
});

describe('the record of renames under way', () => {
  it.each(['{"phase": "pl', '{"phase": "place"}', 'null', '{"phase":"aside","steps":[null],"records":[]}', '{"phase":"aside","steps":[{"from":"a","to":5,"temp":"b"}],"records":[]}', '{"phase":"place","steps":[],"records":[{"type":"job"}]}'])('refuses (exit 4, no stack trace, nothing sent) a moves.json that is not one: %s', async (text) => {
    const env = await offline.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    await mkdir(join(out, '.nightshift'), { recursive: true });
    await writeFile(join(out, '.nightshift', 'moves.json'), text);
    const file = await writeJobs(dir, [{ id: 'a', model: 'gpt-4o-mini', prompt: 'Hello' }]);
    const { code, stderr } = await cli(['run', file, '--out', out], { env });
    expect(code).toBe(4);
    expect(stderr).toContain('moves.json');
    expect(stderr).not.toMatch(/\n\s+at /);
    expect(offline.server.stats.requests).toBe(0);
  });
});

/**
 * A folder whose one image job ran (with `runArgs`), left as a process killed while renaming first.png to renamed.png
 * leaves it: the file stepped aside, its moved record not yet journaled, and the job file asking for the new name.
 */
async function killedDuringRename(runArgs: string[], env?: Record<string, string>): Promise<{ file: string; out: string }> {
  const dir = await tempDir();
  const out = join(dir, 'out');
  const job = { id: 'a', kind: 'image', model: 'dall-e-2', size: '256x256', prompt: 'A blue circle', output: 'first.png' };
  const file = await writeJobs(dir, [job]);
  expect((await cli(['run', file, ...runArgs, '--quiet', '--out', out], env ? { env } : {})).code).toBe(0);
  const [record] = (await journalLines(out)).filter((line) => line.type === 'job') as { files: { path: string }[] }[];
  const temp = 'images/first.png.0123abcd.moving';
  await rename(join(out, 'images', 'first.png'), join(out, temp));
  const moved = { ...record, files: [{ ...record!.files[0], path: 'images/renamed.png' }], attempts: 0 };
  await mkdir(join(out, '.nightshift'), { recursive: true });
  await writeFile(join(out, '.nightshift', 'moves.json'), JSON.stringify({ phase: 'place', steps: [{ from: 'images/first.png', to: 'images/renamed.png', temp }], records: [moved] }));
  await writeJobs(dir, [{ ...job, output: 'renamed.png' }]);
  return { file, out };
}

describe('renames a killed --offline run left under way', () => {
  it('are finished without taking its offline answers for real ones: a run against the API sends the job', async () => {
    const { file, out } = await killedDuringRename(['--offline']);
    const env = await offline.serve();
    const real = await cli(['run', file, '--quiet', '--out', out], { env });
    expect(real.code, real.stderr).toBe(0);
    expect(offline.server.stats.requests).toBe(1);
    expect(await readdir(join(out, 'images'))).toEqual(['renamed.png']);
  });
});

describe('--fresh --force over renames a killed run left under way', () => {
  it('sets them aside with the old journal: every job is sent again, none kept by a finished rename', async () => {
    const env = await offline.serve();
    const { file, out } = await killedDuringRename([], env);
    const fresh = await cli(['run', file, '--quiet', '--fresh', '--force', '--out', out], { env });
    expect(fresh.code, fresh.stderr).toBe(0);
    expect(offline.server.stats.requests).toBe(2);
    expect((await journalLines(out)).filter((line) => line.type === 'job')).toMatchObject([{ id: 'a', attempts: 1 }]);
  });
});
