import { access, readFile, stat, writeFile, mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { cli, CLI_PATH, journalLines, offlineServerPerTest, readCsv, tempDir, writeJobs } from './helpers.js';
import { findChromium, openPage, pngSize } from './chromium.js';

/** The heap (MB) `report --html` is given for 100,000 jobs. */
const HEAP_MB = 64;

const api = offlineServerPerTest('sk-test-html-key-1234567890');

/** The three money figures a page shows, from the values it keeps beside their text. */
function pageFigures(html: string): Record<string, number> {
  return Object.fromEntries([...html.matchAll(/data-figure="(\w+)" data-usd="([0-9.e-]+)"/g)].map(([, key, usd]) => [key!, Number(usd)]));
}

/** The jobs a page holds, as objects. */
function pageJobs(html: string): Record<string, unknown>[] {
  const json = /<script type="application\/json" id="nightshift-data">(.*?)<\/script>/s.exec(html)![1]!;
  const { fields, jobs } = JSON.parse(json) as { fields: string[]; jobs: unknown[][] };
  return jobs.map((job) => Object.fromEntries(fields.map((field, index) => [field, job[index]])));
}

async function reportTotal(folders: string[]): Promise<number> {
  const csv = join(await tempDir(), 'report.csv');
  expect((await cli(['report', ...folders, '--csv', csv])).code).toBe(0);
  return Number((await readCsv(csv)).at(-1)!.cost_usd);
}

const chat = (second: string): object[] => [
  { id: 'a', model: 'gpt-4o-mini', prompt: 'What is a lighthouse?', max_completion_tokens: 50, tags: ['sea'] },
  { id: 'b', model: 'gpt-4o-mini', prompt: second, max_completion_tokens: 50, tags: ['sea', 'tall'] },
];

const images = [
  { id: 'boat', kind: 'image', model: 'gpt-image-2', prompt: 'A small boat at dawn', size: '1024x1024', quality: 'low' },
  { id: 'two', kind: 'image', model: 'gpt-image-2', prompt: 'Two gulls', size: '1024x1024', quality: 'low', output: 'birds/{id}-{index}.png', n: 2 },
];

describe('report.html', () => {
  it('a run writes report.html whose money figures are the summary\'s, usage.csv\'s and report\'s', async () => {
    const env = await api.serve();
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, chat('Name a tall lighthouse.'));
    expect((await cli(['run', file, '--out', out], { env })).code).toBe(0);
    await writeJobs(dir, chat('Name the tallest lighthouse in the world.'));
    const second = await cli(['run', file, '--out', out], { env });
    expect(second.code).toBe(0);

    const html = await readFile(join(out, 'report.html'), 'utf8');
    const figures = pageFigures(html);
    expect(figures.currentUsd).toBeCloseTo(Number((await readCsv(join(out, 'usage.csv'))).at(-1)!.cost_usd), 9);
    expect(figures.paidUsd).toBeCloseTo(await reportTotal([out]), 9);
    expect(figures.thisRunUsd).toBeCloseTo(Number(/this run spent \$([0-9.]+)/.exec(second.stdout)![1]), 9);
    expect(figures.paidUsd).toBeGreaterThan(figures.currentUsd!);
    // The page shows every job with its prompt, and says which answer came from the latest run.
    const jobs = pageJobs(html);
    expect(jobs.map((job) => [job.id, job.status, job.regenerated])).toEqual([
      ['a', 'ok', false],
      ['b', 'ok', true],
    ]);
    expect(jobs[1]!.prompt).toBe('Name the tallest lighthouse in the world.');
  });

  it('--no-html writes no page', async () => {
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, chat('Name a tall lighthouse.'));
    expect((await cli(['run', file, '--out', out, '--offline', '--no-html'])).code).toBe(0);
    await expect(access(join(out, 'report.html'))).rejects.toThrow();
    expect((await stat(join(out, 'results.csv'))).isFile()).toBe(true);
  });

  it('shows markup from job files and replies as text: nothing of it becomes an element or runs', async () => {
    const dir = await tempDir();
    const out = join(dir, 'out');
    const hostile = '</script><script>window.pwned = 1</script><img src=x onerror="window.pwned = 2"><!--';
    const file = await writeJobs(dir, [
      { id: 'x<b>y</b>', model: 'gpt-4o-mini', prompt: hostile, tags: ['<i>tag</i>'] },
      { id: 'pic', kind: 'image', model: 'gpt-image-2', prompt: hostile, size: '1024x1024', quality: 'low' },
    ]);
    expect((await cli(['run', file, '--out', out, '--offline'])).code).toBe(0);
    const html = await readFile(join(out, 'report.html'), 'utf8');
    // The hostile text is in the page only as data its script shows as text.
    expect(html).not.toContain('<script>window.pwned');
    expect(html).not.toContain('<img src=x');
    expect(html.match(/<script/g)).toHaveLength(2);
    expect(html).not.toContain('<i>tag</i>');
    const jobs = pageJobs(html);
    expect(jobs[0]!.id).toBe('x<b>y</b>');
    expect(jobs[0]!.prompt).toBe(hostile);

    const chromium = findChromium();
    if (!chromium) return;
    const page = await openPage(chromium, pathToFileURL(join(out, 'report.html')).href, { readyExpression: "document.body.dataset.ready === 'true'" });
    try {
      expect(await page.evaluate('window.pwned === undefined && document.querySelectorAll("#jobs-body b, .sheet img[src=x]").length === 0')).toBe(true);
      expect(await page.evaluate('document.querySelector("#jobs-body td").textContent')).toBe('x<b>y</b>');
      expect(page.errors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('links every image by a relative path that resolves to its file, from the run\'s folder and from report --html elsewhere', async () => {
    const dir = await tempDir();
    const out = join(dir, 'runs', 'pictures');
    const file = await writeJobs(dir, images);
    expect((await cli(['run', file, '--out', out, '--offline'])).code).toBe(0);
    const elsewhere = join(dir, 'pages', 'all.html');
    await mkdir(dirname(elsewhere));
    const report = await cli(['report', join(dir, 'runs'), '--html', elsewhere]);
    expect(report.code).toBe(0);
    for (const page of [join(out, 'report.html'), elsewhere]) {
      const jobs = pageJobs(await readFile(page, 'utf8'));
      const links = jobs.flatMap((job) => job.images as string[]);
      expect(links).toHaveLength(3);
      for (const link of links) {
        expect(link).not.toMatch(/^(\/|[a-z]+:)/i);
        await access(resolve(dirname(page), decodeURIComponent(link)));
      }
      expect(jobs.find((job) => job.id === 'two')).toMatchObject({ model: 'gpt-image-2', size: '1024x1024', quality: 'low', prompt: 'Two gulls' });
    }
    const records = (await journalLines(out)).filter((line) => line.type === 'job');
    expect(records).toHaveLength(2);
  });

  it('shows the prompts of the job file as it is now, after jobs were inserted, moved and deleted in it', async () => {
    const dir = await tempDir();
    const out = join(dir, 'out');
    const jobs = Array.from({ length: 30 }, (_, i) => ({ id: `q${i}`, model: 'gpt-4o-mini', prompt: `Question ${i}`, max_completion_tokens: 500 }));
    const file = await writeJobs(dir, jobs);
    expect((await cli(['run', file, '--out', out, '--offline', '--no-html'])).code).toBe(0);
    // A new job at the top, q5 deleted, q20 moved to the end, q3's prompt edited.
    const edited = [{ id: 'new', model: 'gpt-4o-mini', prompt: 'Inserted', max_completion_tokens: 500 }, ...jobs.filter((job) => job.id !== 'q5' && job.id !== 'q20'), jobs[20]!];
    edited[4] = { ...edited[4]!, prompt: 'Question 3, edited' };
    await writeFile(file, edited.map((job) => JSON.stringify(job)).join('\n'));
    const html = join(dir, 'page.html');
    expect((await cli(['report', out, '--html', html])).code).toBe(0);
    const shown = new Map(pageJobs(await readFile(html, 'utf8')).map((job) => [job.id, job.prompt]));
    expect(shown.size).toBe(30);
    for (let i = 0; i < 30; i++) {
      if (i === 5) expect(shown.get('q5')).toBeNull();
      else expect(shown.get(`q${i}`)).toBe(i === 3 ? 'Question 3, edited' : `Question ${i}`);
    }
  });
});

describe('report.html in flat memory', () => {
  it('writes the page of 100,000 jobs job by job: report --html needs no more heap than for a few', { timeout: 120_000 }, async () => {
    const count = 100_000;
    const out = await largeFolder(count);
    const html = join(out, 'all.html');
    // Gathering the page whole took about 3 KB a job (300 MB here); written job by job it fits a small heap.
    const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((done) => {
      execFile(process.execPath, [`--max-old-space-size=${HEAP_MB}`, CLI_PATH, 'report', out, '--html', html], (error, _stdout, stderr) =>
        done({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stderr }),
      );
    });
    expect(stderr).not.toMatch(/heap/i);
    expect(code).toBe(0);
    const jobs = pageJobs(await readFile(html, 'utf8'));
    expect(jobs).toHaveLength(count);
    expect(jobs.at(-1)).toMatchObject({ id: `job-${count - 1}`, status: 'ok', costUsd: 0.000027 });
    expect(pageFigures(await readFile(html, 'utf8')).currentUsd).toBeCloseTo(0.000027 * count, 9);
  });
});

/** Writes an output folder of `count` finished chat jobs as a run would have left it, without sending them. */
async function largeFolder(count: number): Promise<string> {
  const out = join(await tempDir(), 'large');
  await mkdir(out);
  const started = '2026-12-01T00:00:00.000Z';
  const journal: string[] = [JSON.stringify({ type: 'run', startedAt: started, files: ['jobs.jsonl'], jobs: count, origin: 'offline' })];
  const results: string[] = [];
  for (let i = 0; i < count; i++) {
    const id = `job-${i}`;
    const failed = i % 97 === 0;
    const usage = { input_tokens: 20, cached_input_tokens: 0, output_tokens: 40, reasoning_tokens: 0, total_tokens: 60, input_image_tokens: 0, cached_input_image_tokens: 0, output_image_tokens: 0, images: 0 };
    const output = failed ? '' : `Reply number ${i}: a short answer about lighthouses and the sea.`;
    const record = {
      type: 'job', id, fingerprint: `f${i}`, state: failed ? 'failed' : 'done', kind: 'chat', model: i % 3 ? 'gpt-4o-mini' : 'gpt-4.1-mini', tags: [`t${i % 5}`],
      source: `jobs.jsonl:${i + 1}`, attempts: 1, output, files: [], ...(failed ? { error: '500 server_error' } : {}), usage, costUsd: 0.000027,
      latencyMs: 100, requestId: `req_${i}`, startedAt: started, finishedAt: '2026-12-01T00:10:00.000Z', origin: 'offline',
    };
    journal.push(JSON.stringify(record));
    results.push(JSON.stringify({
      id, kind: 'chat', model: record.model, status: failed ? 'failed' : 'ok', attempts: 1, output, finish_reason: failed ? null : 'stop', error: failed ? '500 server_error' : null,
      input_tokens: 20, cached_input_tokens: 0, output_tokens: 40, reasoning_tokens: 0, total_tokens: 60, images: 0, cost_usd: 0.000027, latency_ms: 100, request_id: `req_${i}`,
      source: record.source, tags: record.tags, service_tier: null,
    }));
  }
  await writeFile(join(out, 'journal.jsonl'), `${journal.join('\n')}\n`);
  await writeFile(join(out, 'results.jsonl'), `${results.join('\n')}\n`);
  return out;
}

describe('report.html in a browser', () => {
  const chromium = findChromium();
  // CI installs Chromium (.ci/run): there, a missing browser is a failure, not a skip.
  const skip = !chromium && !process.env.CI;

  it.skipIf(skip)('the harness sees console errors and images that do not load', async () => {
    const dir = await tempDir();
    const path = join(dir, 'broken.html');
    await writeFile(path, '<!doctype html><body><img src="missing.png"><script>console.error("boom")</script></body>');
    const page = await openPage(chromium!, pathToFileURL(path).href);
    try {
      await new Promise((done) => setTimeout(done, 300));
      expect(page.errors.length).toBeGreaterThanOrEqual(2);
    } finally {
      await page.close();
    }
  });

  it.skipIf(skip)('the demo-like page opens with no console error, its images load, and its screenshot is of a sane size', async () => {
    const dir = await tempDir();
    const out = join(dir, 'out');
    const file = await writeJobs(dir, [...chat('Name a tall lighthouse.'), ...images]);
    expect((await cli(['run', file, '--out', out, '--offline'])).code).toBe(0);
    const page = await openPage(chromium!, pathToFileURL(join(out, 'report.html')).href, {
      readyExpression: "document.body.dataset.ready === 'true' && [...document.images].every((image) => image.complete)",
    });
    try {
      expect(page.errors).toEqual([]);
      expect(await page.evaluate('[...document.querySelectorAll(".sheet img")].filter((image) => image.naturalWidth > 0).length')).toBe(3);
      expect(await page.evaluate('document.querySelectorAll("#jobs-body tr").length')).toBe(2);
      expect(await page.evaluate('document.querySelectorAll("svg rect").length')).toBeGreaterThan(0);
      // A click on a row shows the whole reply under it.
      await page.evaluate('document.querySelector("#jobs-body tr").click()');
      expect(await page.evaluate('document.querySelector("#jobs-body tr.detail td").textContent')).toContain('What is a lighthouse?');
      const png = await page.screenshot();
      expect(pngSize(png)).toEqual({ width: 1280, height: 900 });
      expect(png.length).toBeGreaterThan(20_000);
      expect(png.length).toBeLessThan(3_000_000);
    } finally {
      await page.close();
    }
  });

  it.skipIf(skip)('100,000 jobs make a page of reasonable size that opens at once, one page of the table at a time, searchable', { timeout: 120_000 }, async () => {
    const count = 100_000;
    const out = await largeFolder(count);
    const html = join(out, 'all.html');
    const report = await cli(['report', out, '--html', html]);
    expect(report.code).toBe(0);
    const bytes = (await stat(html)).size;
    // About 200 bytes a job: the replies and the ids, not markup.
    expect(bytes).toBeLessThan(count * 300);
    const started = Date.now();
    const page = await openPage(chromium!, pathToFileURL(html).href, { readyExpression: "document.body.dataset.ready === 'true'", timeoutMs: 60_000 });
    try {
      // Browser start included, on a machine busy with the other tests: a page that froze would take minutes.
      expect(Date.now() - started).toBeLessThan(45_000);
      expect(page.errors).toEqual([]);
      expect(await page.evaluate('document.querySelectorAll("#jobs-body tr").length')).toBe(100);
      expect(await page.evaluate('document.getElementById("jobs-pager").textContent')).toContain(String(count));
      await page.evaluate('(() => { const s = document.getElementById("jobs-status"); s.value = "failed"; s.dispatchEvent(new Event("change")); })()');
      expect(await page.evaluate('document.getElementById("jobs-pager").textContent')).toContain(`(${Math.ceil(count / 97)})`);
      const png = await page.screenshot();
      expect(pngSize(png)).toEqual({ width: 1280, height: 900 });
    } finally {
      await page.close();
    }
  });
});
