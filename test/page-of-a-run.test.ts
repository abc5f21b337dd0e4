import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { createPriceBook } from '../src/cost/prices.js';
import { acquireLock } from '../src/output/lock.js';
import { fingerprint } from '../src/jobs/fingerprint.js';
import { fingerprintKey } from '../src/output/journal-index.js';
import { RecordReader } from '../src/output/record-reader.js';
import { runJobs } from '../src/run/run.js';
import { loadJobs } from '../src/jobs/load.js';
import { cli, offlineServerPerTest, tempDir, writeJobs } from './helpers.js';

const api = offlineServerPerTest('sk-test-page-of-a-run-1234567890');

/** A page without what only the moment and the writer make of it: when it was written, and the run's concurrency. */
const comparable = (html: string): string =>
  html.replace(/written \d{4}-\d\d-\d\dT[\d:.]+Z/, 'written (when)').replace(/(<dt>concurrency<\/dt><dd>)[^<]*/, '$1(given)');

/** The page the run wrote in `out`, and the page `report --html` writes of the same folder now, beside it. */
async function bothPages(out: string): Promise<[string, string]> {
  const again = join(out, 'again.html');
  const report = await cli(['report', out, '--html', again]);
  expect(report.code, report.stderr).toBe(0);
  return [comparable(await readFile(join(out, 'report.html'), 'utf8')), comparable(await readFile(again, 'utf8'))];
}

const jobs = (edited: string, extra: object[] = []): object[] => [
  { id: 'a', model: 'gpt-4o-mini', prompt: 'What is a lighthouse?', max_completion_tokens: 50, tags: ['sea'] },
  { id: 'b', model: 'gpt-4o-mini', prompt: edited, max_completion_tokens: 50, tags: ['sea', 'tall'] },
  { id: 'refused', model: 'gpt-4o-mini', prompt: 'This one is refused' },
  { id: 'boat', kind: 'image', model: 'gpt-image-1', prompt: 'A small boat at dawn', size: '1024x1024', quality: 'low' },
  ...extra,
];

describe('the page a run writes', () => {
  it('is the page report --html writes of its folder afterwards: first run, a resume that adds records, and --fresh', { timeout: 60_000 }, async () => {
    const env = await api.serve({ faults: [{ status: 400, times: 1, match: { promptIncludes: 'refused' } }] });
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, jobs('Name a tall lighthouse.'));
    expect((await cli(['run', file, '--out', out, '--quiet'], { env })).code).toBe(1);
    const [first, firstAgain] = await bothPages(out);
    expect(first).toBe(firstAgain);

    // A resume: an edited job, a new one, the refused one answered now.
    await writeJobs(dir, jobs('Name the tallest lighthouse in the world.', [{ id: 'c', model: 'gpt-4o-mini', prompt: 'Name a harbour.', tags: ['port'] }]));
    expect((await cli(['run', file, '--out', out, '--quiet'], { env })).code).toBe(0);
    const [resumed, resumedAgain] = await bothPages(out);
    expect(resumed).toBe(resumedAgain);
    expect(resumed).not.toBe(first);

    // --fresh sets the journal aside: the page counts its money, shows the new run's results.
    expect((await cli(['run', file, '--out', out, '--quiet', '--fresh', '--force'], { env })).code).toBe(0);
    const [fresh, freshAgain] = await bothPages(out);
    expect(fresh).toBe(freshAgain);
    expect(fresh).not.toBe(resumed);
  });

  it('charts tags and models as written, whatever their characters', async () => {
    const env = await api.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const tags = ['été', 'mer 🌊', 'plain'];
    const file = await writeJobs(dir, [{ id: 'a', model: 'gpt-4o-mini', prompt: 'A wave.', max_completion_tokens: 20, tags }]);
    expect((await cli(['run', file, '--out', out, '--quiet'], { env })).code).toBe(0);
    const [page, again] = await bothPages(out);
    expect(page).toBe(again);
    // The bars' labels: each tag once, as the job file wrote it.
    const labels = [...page.matchAll(/<text x="\d+" y="15" text-anchor="end">([^<]*)<\/text>/g)].map(([, label]) => label);
    for (const tag of tags) expect(labels.filter((label) => label === tag), tag).toHaveLength(1);
  });
});

describe('runJobs', () => {
  it('hands over the journal index while it still holds the folder, up to date with every record it journaled', async () => {
    const env = await api.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const specs = [
      { id: 'kept', model: 'gpt-4o-mini', prompt: 'Answered by the first run' },
      { id: 'sent', model: 'gpt-4o-mini', prompt: 'Answered by the second run' },
    ];
    const file = await writeJobs(dir, specs.slice(0, 1));
    expect((await cli(['run', file, '--out', out, '--quiet', '--no-html'], { env })).code).toBe(0);
    await writeJobs(dir, specs);
    const { jobs: loaded } = await loadJobs([file]);
    const client = new OpenAI({ apiKey: env.OPENAI_API_KEY, baseURL: env.OPENAI_BASE_URL, maxRetries: 0 });
    const seen: { id: string; output: string }[] = [];
    let locked: unknown;
    await runJobs(loaded, {
      outDir: out,
      client,
      prices: createPriceBook(),
      concurrency: 2,
      maxAttempts: 1,
      timeoutMs: 10_000,
      files: [file],
      whileHeld: async ({ index }) => {
        locked = await acquireLock(out).then(
          async (release) => (await release(), 'free'),
          (error: unknown) => (error as { code?: string }).code,
        );
        const reader = await RecordReader.open(join(out, 'journal.jsonl'));
        try {
          for (const job of loaded) {
            const [latest] = index.recordsOf(job.id);
            const record = await reader.read(latest!);
            expect(fingerprintKey(record.fingerprint)).toEqual(fingerprintKey(fingerprint(job)));
            seen.push({ id: record.id, output: record.output });
          }
        } finally {
          await reader.close();
        }
      },
    });
    expect(locked).toBe('E_LOCKED');
    expect(seen.map(({ id }) => id)).toEqual(['kept', 'sent']);
    expect(seen.every(({ output }) => output.length > 0)).toBe(true);
  });
});
