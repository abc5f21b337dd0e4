import { readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { scanJobRecord } from '../src/output/journal-index.js';
import { cli, journalLines, offlineServerPerTest, readCsv, tempDir, writeJobs } from './helpers.js';

const offline = offlineServerPerTest('sk-test-rerun-plan-1234567890');

const IMAGE = { model: 'gpt-image-2', size: '1024x1024', quality: 'low' };
/** The `jobs` cell of the estimate's TOTAL row. */
const estimatedJobs = (stdout: string): number => Number(/^TOTAL\s+(\d+)\s/m.exec(stdout)?.[1]);
/** The dry run's rows (the table before its summary line): each job id with its reason. */
const listed = (stdout: string): Record<string, string> =>
  Object.fromEntries(
    stdout
      .split(/^\d+ of \d+ jobs? would be sent/m)[0]!
      .split('\n')
      .slice(1)
      .map((line) => line.trim().split(/\s+/))
      .filter((cells) => ['new', 'offline', 'failed', 'incomplete', 'changed', 'missing', 'damaged', 'forced'].includes(cells[1] ?? ''))
      .map((cells) => [cells[0]!, cells[1]!]),
  );

describe('estimate, the dry run and run agree on what a rerun sends', () => {
  it('an image deleted after a run is priced by estimate, listed by the dry run, and made again by run', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, [{ id: 'fox', prompt: 'A fox', ...IMAGE }, { id: 'owl', prompt: 'An owl', ...IMAGE }]);
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    await rm(join(out, 'images', 'fox.png'));

    const estimate = await cli(['estimate', file, '--out', out]);
    expect(estimate.code).toBe(0);
    expect(estimatedJobs(estimate.stdout)).toBe(1);
    const dry = await cli(['run', file, '--out', out, '--dry-run']);
    expect(dry.code).toBe(0);
    expect(listed(dry.stdout)).toEqual({ fox: 'missing' });
    expect(offline.server.stats.requests).toBe(2);

    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    expect(offline.server.stats.requests).toBe(3);
    expect(offline.server.countByKey('A fox')).toBe(2);
  });

  it('--dry-run lists each job a run would send with why, sends nothing and needs no key', async () => {
    const env = await offline.serve({ faults: [{ status: 400, times: 1, match: { promptIncludes: 'will fail' } }] });
    const dir = await tempDir();
    const out = join(dir, 'out');
    const jobs = [
      { id: 'done', model: 'gpt-4o-mini', prompt: 'Say hello.' },
      { id: 'failing', model: 'gpt-4o-mini', prompt: 'This will fail once.' },
      { id: 'edited', model: 'gpt-4o-mini', prompt: 'Before the edit.' },
      { id: 'cut', model: 'gpt-4o-mini', prompt: 'Write a long essay about the sea.', max_completion_tokens: 3 },
      { id: 'gone', prompt: 'A fox', ...IMAGE },
      { id: 'torn', prompt: 'An owl', ...IMAGE },
    ];
    const file = await writeJobs(dir, jobs);
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(1);
    const sent = offline.server.stats.requests;
    jobs[2] = { ...jobs[2]!, prompt: 'After the edit.' };
    jobs.push({ id: 'added', model: 'gpt-4o-mini', prompt: 'A new question.' });
    await writeJobs(dir, jobs);
    await rm(join(out, 'images', 'gone.png'));
    await truncate(join(out, 'images', 'torn.png'), 100);

    // No OPENAI_API_KEY, no server address: nothing is sent.
    const dry = await cli(['run', file, '--out', out, '--dry-run'], { env: {} });
    expect(dry.code).toBe(0);
    expect(listed(dry.stdout)).toEqual({ failing: 'failed', edited: 'changed', gone: 'missing', torn: 'damaged', added: 'new' });
    const onlyFailed = await cli(['run', file, '--out', out, '--dry-run', '--only-failed'], { env: {} });
    expect(listed(onlyFailed.stdout)).toEqual({ failing: 'failed', cut: 'incomplete' });
    const forced = await cli(['run', file, '--out', out, '--dry-run', '--force'], { env: {} });
    expect(Object.values(listed(forced.stdout)).filter((reason) => reason === 'forced')).toHaveLength(6);
    expect(offline.server.stats.requests).toBe(sent);

    // The run sends exactly what the dry run listed.
    const run = await cli(['run', file, '--out', out], { env });
    expect(run.code).toBe(1);
    expect(offline.server.stats.requests).toBe(sent + 5);
    const again = await cli(['run', file, '--out', out, '--dry-run'], { env: {} });
    expect(again.stdout).toMatch(/^Nothing to send/);
  });
});

describe('images changed or deleted by hand', () => {
  it('an image retouched by hand is kept and reported, never made again, and --force makes it again', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, [{ id: 'fox', prompt: 'A fox', ...IMAGE }, { id: 'owl', prompt: 'An owl', ...IMAGE }]);
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    // Another whole image in its place, as an image editor would leave it.
    const retouched = await readFile(join(out, 'images', 'owl.png'));
    await writeFile(join(out, 'images', 'fox.png'), retouched);

    const run = await cli(['run', file, '--out', out], { env });
    expect(run.code).toBe(0);
    expect(offline.server.stats.requests).toBe(2);
    expect(run.stderr).toMatch(/warning: job fox: images\/fox\.png is not the image nightshift wrote/);
    expect(await readFile(join(out, 'images', 'fox.png'))).toEqual(retouched);
    const dry = await cli(['run', file, '--out', out, '--dry-run']);
    expect(dry.stdout).toMatch(/^Nothing to send/);
    expect(dry.stderr).toContain('images/fox.png');
    const estimate = await cli(['estimate', file, '--out', out]);
    expect(estimatedJobs(estimate.stdout)).toBe(0);
    expect(estimate.stderr).toContain('images/fox.png');

    expect((await cli(['run', file, '--out', out, '--force'], { env })).code).toBe(0);
    expect(offline.server.countByKey('A fox')).toBe(2);
    expect(await readFile(join(out, 'images', 'fox.png'))).not.toEqual(retouched);
  });

  it('deleting one image of an n: 2 job makes that image alone, and its cost is counted once', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, [{ id: 'pair', prompt: 'Two foxes', n: 2, ...IMAGE }]);
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    const first = await readFile(join(out, 'images', 'pair-1.png'));
    const [firstCost] = (await readCsv(join(out, 'results.csv'))).map((row) => Number(row.cost_usd));
    await rm(join(out, 'images', 'pair-2.png'));

    const dry = await cli(['run', file, '--out', out, '--dry-run']);
    expect(listed(dry.stdout)).toEqual({ pair: 'missing' });
    expect(dry.stdout).toMatch(/pair\s+missing\s+\S+\s+2 of 2/);
    const estimate = await cli(['estimate', file, '--out', out]);
    const expectedUsd = (stdout: string): number => Number(/^TOTAL(?:\s+\S+){4}\s+(\S+)/m.exec(stdout)?.[1]);
    const whole = await cli(['estimate', file, '--out', join(dir, 'elsewhere')]);
    expect(expectedUsd(estimate.stdout)).toBeLessThan(expectedUsd(whole.stdout));

    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    expect(offline.server.stats.requests).toBe(2);
    expect(await readFile(join(out, 'images', 'pair-1.png'))).toEqual(first);
    expect((await readFile(join(out, 'images', 'pair-2.png'))).length).toBeGreaterThan(0);
    const records = (await journalLines(out)).filter((line) => line.type === 'job');
    const last = records.at(-1)! as { files: unknown[]; usage: { images: number }; costUsd: number; paid: { usage: { images: number }; costUsd: number } };
    expect(last.files).toHaveLength(2);
    // Both requests made its images: three generated (the first request's two, one of them lost, and the new one).
    expect(last.usage.images).toBe(3);
    expect(last.paid.usage.images).toBe(1);
    expect(last.costUsd).toBeCloseTo(firstCost! + last.paid.costUsd, 12);
    // Indexing reads the record by its quick scan, and counts what its own request paid as spent.
    const line = (await readFile(join(out, 'journal.jsonl'), 'latin1')).trimEnd().split('\n').at(-1)!;
    expect(scanJobRecord(Buffer.from(line, 'latin1'), line, 0, line.length, { offset: 0, length: line.length })?.costUsd).toBe(last.paid.costUsd);
    // The row shows what both images cost; the report counts each request once.
    const [row] = await readCsv(join(out, 'results.csv'));
    expect(row).toMatchObject({ status: 'ok', images: '3', output: 'images/pair-1.png;images/pair-2.png' });
    const report = await cli(['report', out]);
    const reportUsd = Number(/^TOTAL.*?(\d+\.\d+)/m.exec(report.stdout)?.[1]);
    expect(reportUsd).toBeCloseTo(last.costUsd, 9);
    const again = await cli(['run', file, '--out', out, '--dry-run']);
    expect(again.stdout).toMatch(/^Nothing to send/);
  });

  it('of an n: 2 job with one image retouched and the other deleted, makes the deleted one alone and keeps the other', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, [{ id: 'pair', prompt: 'Two owls', n: 2, ...IMAGE }, { id: 'fox', prompt: 'A fox', ...IMAGE }]);
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    const retouched = await readFile(join(out, 'images', 'fox.png'));
    await writeFile(join(out, 'images', 'pair-1.png'), retouched);
    await rm(join(out, 'images', 'pair-2.png'));

    const run = await cli(['run', file, '--out', out], { env });
    expect(run.code).toBe(0);
    expect(run.stderr).toContain('images/pair-1.png');
    expect(offline.server.stats.requests).toBe(3);
    expect(await readFile(join(out, 'images', 'pair-1.png'))).toEqual(retouched);
    expect((await readFile(join(out, 'images', 'pair-2.png'))).length).toBeGreaterThan(0);
  });

  it('when making a lost image again fails, the job is failed and the next run still makes that image alone', async () => {
    const env = await offline.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, [{ id: 'pair', prompt: 'Two hares', n: 2, ...IMAGE }, { id: 'fox', prompt: 'A fox', ...IMAGE }]);
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    const retouched = await readFile(join(out, 'images', 'fox.png'));
    await writeFile(join(out, 'images', 'pair-1.png'), retouched);
    await rm(join(out, 'images', 'pair-2.png'));

    offline.server.setFaults([{ status: 400, times: 1, match: { promptIncludes: 'Two hares' } }]);
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(1);
    expect((await readCsv(join(out, 'results.csv')))[0]).toMatchObject({ id: 'pair', status: 'failed' });
    const dry = await cli(['run', file, '--out', out, '--dry-run']);
    expect(dry.stdout).toMatch(/pair\s+failed\s+\S+\s+2 of 2/);

    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    expect(offline.server.countByKey('Two hares')).toBe(3);
    expect(await readFile(join(out, 'images', 'pair-1.png'))).toEqual(retouched);
    expect((await readFile(join(out, 'images', 'pair-2.png'))).length).toBeGreaterThan(0);
    expect((await readCsv(join(out, 'results.csv')))[0]).toMatchObject({ id: 'pair', status: 'ok', output: 'images/pair-1.png;images/pair-2.png' });
  });
});
