import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateJobFiles, type ValidationResult } from '../src/jobs/load.js';
import { KEY_BYTES } from '../src/jobs/digests.js';
import { tempDir, writeJobs } from './helpers.js';

const jobs = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => ({ id: `v${from + i}`, model: 'gpt-4o-mini', prompt: `Prompt ${from + i}` }));
const lines = (list: object[]): string => list.map((job) => `${JSON.stringify(job)}\n`).join('');

async function setup(count = 20): Promise<{ file: string; saved: string }> {
  const dir = await tempDir();
  return { file: await writeJobs(dir, jobs(0, count)), saved: join(dir, 'out', '.nightshift', 'validated-jobs.bin') };
}

/** Each job's id lookup and fingerprint key, to compare a validation with another. */
function digestsOf(result: ValidationResult): string[] {
  const { digests } = result;
  return Array.from({ length: result.count }, (_, position) => `${digests!.ids.indexOfIn(digests!.ids, position)}:${digests!.key(position).toString('hex')}`);
}

describe('a saved validation', () => {
  it('is used as it is while the job files hold the same bytes, and not once a byte changes', async () => {
    const { file, saved } = await setup();
    const first = await validateJobFiles([file], { saved });
    expect(first).toMatchObject({ count: 20, problems: [] });
    // Proof that the second validation comes from the save: a key changed in it comes back.
    const bytes = await readFile(saved);
    bytes.writeUInt8(bytes.readUInt8(bytes.length - KEY_BYTES) ^ 0xff, bytes.length - KEY_BYTES);
    await writeFile(saved, bytes);
    const reused = await validateJobFiles([file], { saved });
    expect(reused.count).toBe(20);
    expect(reused.digests!.key(19)).not.toEqual(first.digests!.key(19));
    expect(reused.newJobsFrom).toBeUndefined();

    // Same size, one byte different: validated again.
    const text = await readFile(file, 'utf8');
    await writeFile(file, text.replace('Prompt 7"', 'Prompt 8"'));
    const again = await validateJobFiles([file], { saved });
    expect(again.digests!.key(19)).toEqual(first.digests!.key(19));
    expect(again.digests!.key(7)).toEqual(first.digests!.key(8));
  });

  it('validates only the lines added at the end, and gives what a full validation gives', async () => {
    const { file, saved } = await setup();
    await validateJobFiles([file], { saved });
    await appendFile(file, lines(jobs(20, 25)));
    const grown = await validateJobFiles([file], { saved });
    expect(grown.newJobsFrom).toMatchObject({ position: 20, line: 21, index: 21 });
    const full = await validateJobFiles([file], { digests: true });
    expect(grown).toMatchObject({ count: 25, problems: [], kinds: full.kinds, models: full.models });
    expect(digestsOf(grown)).toEqual(digestsOf(full));
    // The save now covers the new lines too.
    expect((await validateJobFiles([file], { saved })).newJobsFrom).toBeUndefined();
  });

  it('reports problems in added lines exactly as a full validation does: where, and against which earlier line', async () => {
    const { file, saved } = await setup();
    await validateJobFiles([file], { saved });
    await appendFile(file, lines([{ id: 'v3', model: 'gpt-4o-mini', prompt: 'again' }, { id: 'v99', model: 'gpt-4o-mini', prompt: '' }]));
    const result = await validateJobFiles([file], { saved });
    expect(result.problems.map((problem) => `${problem.line} ${problem.field}: ${problem.message}`)).toEqual([
      `21 id: duplicate id "v3": also at ${file}:4`,
      '22 prompt: expected non-empty text, got ""',
    ]);
  });

  it('is not used with other command-line defaults, nor for a last line extended rather than added to', async () => {
    const { file, saved } = await setup(3);
    await validateJobFiles([file], { saved });
    const other = await validateJobFiles([file], { saved, defaults: { system: 'Be brief.' } });
    expect(other.newJobsFrom).toBeUndefined();
    expect(other.digests!.key(0)).not.toEqual((await validateJobFiles([file], { digests: true })).digests!.key(0));

    // A file without a final line break: what follows may continue its last line, so it is validated in full.
    await writeFile(file, lines(jobs(0, 3)).trimEnd());
    await validateJobFiles([file], { saved });
    await appendFile(file, `\n${lines(jobs(3, 4))}`);
    const grown = await validateJobFiles([file], { saved });
    expect(grown.newJobsFrom).toBeUndefined();
    expect(digestsOf(grown)).toEqual(digestsOf(await validateJobFiles([file], { digests: true })));
  });
});
