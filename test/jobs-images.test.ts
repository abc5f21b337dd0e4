import { copyFile, mkdir, mkdtemp, readFile, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { cachedLoader, MAX_IMAGE_BYTES, readLocalImage, resolveImage, sniffImageMime, type ImageLoader } from '../src/jobs/images.js';
import { loadJobs } from '../src/jobs/load.js';
import { cli, offlineServerPerTest, readCsv, writeJobs } from './helpers.js';

const scratch = () => mkdtemp(join(tmpdir(), 'nightshift-images-'));

describe('sniffImageMime', () => {
  test.each([
    ['fixtures/images/red-dot.png', 'image/png'],
    ['fixtures/images/blue-square.jpg', 'image/jpeg'],
    ['jobs/images/sunset.jpg', 'image/jpeg'],
    ['fixtures/images/not-an-image.png', undefined],
  ])('recognizes %s as %s', async (path, mime) => {
    expect(sniffImageMime(await readFile(path))).toBe(mime);
  });

  test('recognizes GIF and WEBP signatures', () => {
    expect(sniffImageMime(Buffer.from('GIF89a....'))).toBe('image/gif');
    expect(sniffImageMime(Buffer.from('GIF87a....'))).toBe('image/gif');
    expect(sniffImageMime(Buffer.from('RIFF\x10\x00\x00\x00WEBPVP8 ', 'latin1'))).toBe('image/webp');
    expect(sniffImageMime(Buffer.from('RIFF\x10\x00\x00\x00WAVEfmt ', 'latin1'))).toBeUndefined();
    expect(sniffImageMime(new Uint8Array())).toBeUndefined();
  });
});

describe('readLocalImage', () => {
  test('inlines a PNG and a JPEG as data URLs with the MIME of their content', async () => {
    const png = await readLocalImage('fixtures/images/red-dot.png');
    expect(png).toEqual({ url: `data:image/png;base64,${(await readFile('fixtures/images/red-dot.png')).toString('base64')}` });
    // The MIME comes from the bytes, not the name.
    const dir = await scratch();
    await writeFile(join(dir, 'photo.png'), await readFile('fixtures/images/blue-square.jpg'));
    expect(await readLocalImage(join(dir, 'photo.png'))).toMatchObject({ url: expect.stringMatching(/^data:image\/jpeg;base64,/) });
  });

  test('refuses a missing file, a folder, a text file and a file over the size limit', async () => {
    const dir = await scratch();
    const big = join(dir, 'big.png');
    await writeFile(big, await readFile('fixtures/images/red-dot.png'));
    await truncate(big, MAX_IMAGE_BYTES + 1);
    for (const path of [join(dir, 'missing.png'), dir, 'fixtures/images/not-an-image.png', big]) {
      const result = await readLocalImage(path);
      expect(result).toEqual({ error: expect.stringContaining(JSON.stringify(path)) });
    }
    expect(await readLocalImage(big)).toEqual({ error: expect.stringContaining('20 MB') });
  });

  test('accepts a file of exactly the size limit', async () => {
    const dir = await scratch();
    const path = join(dir, 'limit.png');
    await writeFile(path, await readFile('fixtures/images/red-dot.png'));
    await truncate(path, MAX_IMAGE_BYTES);
    expect(await readLocalImage(path)).toHaveProperty('url');
  });
});

describe('resolveImage', () => {
  const never: ImageLoader = async () => {
    throw new Error('should not read a file');
  };

  test('keeps http(s) and data URLs as they are', async () => {
    for (const url of ['https://example.com/a.png?x=1', 'http://localhost:8080/b.jpg', 'data:image/png;base64,iVBORw0KGgo=']) {
      expect(await resolveImage(url, 'jobs/a.jsonl', never)).toEqual({ url });
    }
  });

  test('refuses other URL schemes and malformed data URLs', async () => {
    for (const entry of ['ftp://example.com/a.png', 'file:///tmp/a.png', 'data:text/plain;base64,aGk=', 'data:image/png,raw']) {
      expect(await resolveImage(entry, 'jobs/a.jsonl', never)).toHaveProperty('error');
    }
  });

  test('reads local paths relative to the job file, and absolute paths as they are', async () => {
    const seen: string[] = [];
    const spy: ImageLoader = async (path) => (seen.push(path), { url: 'data:image/png;base64,AA' });
    await resolveImage('images/a.png', 'jobs/vision.csv', spy);
    await resolveImage('../b.png', 'jobs/vision.csv', spy);
    await resolveImage('/srv/c.png', 'jobs/vision.csv', spy);
    await resolveImage('d.png', 'vision.csv', spy);
    expect(seen).toEqual(['jobs/images/a.png', 'b.png', '/srv/c.png', 'd.png']);
  });
});

test('cachedLoader reads each path once', async () => {
  let reads = 0;
  const load = cachedLoader(async () => (reads++, { url: 'data:image/png;base64,AA' }));
  await Promise.all([load('a.png'), load('a.png'), load('b.png')]);
  expect(reads).toBe(2);
});

describe('local images in messages', () => {
  const offline = offlineServerPerTest('sk-messages-images');
  const question = (url: string) => [
    { role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image_url', image_url: { url, detail: 'low' } }] },
  ];

  test('are read relative to the job file and sent inline, exactly as the images field sends them', async () => {
    const dir = await scratch();
    await mkdir(join(dir, 'pics'));
    await copyFile('fixtures/images/red-dot.png', join(dir, 'pics', 'dot.png'));
    const file = await writeJobs(dir, [
      { id: 'in-messages', model: 'gpt-4o-mini', messages: question('pics/dot.png') },
      { id: 'in-images', model: 'gpt-4o-mini', prompt: 'What is this?', images: 'pics/dot.png', detail: 'low' },
    ]);

    const { jobs, problems } = await loadJobs([file]);
    expect(problems).toEqual([]);
    // The same body: the same bytes fingerprinted, the same vision tokens estimated.
    expect(jobs[0]!.kind).toBe('vision');
    expect(jobs[0]!.body).toEqual(jobs[1]!.body);
    const dataUrl = `data:image/png;base64,${(await readFile('fixtures/images/red-dot.png')).toString('base64')}`;
    expect(JSON.stringify(jobs[0]!.body)).toContain(dataUrl);

    const out = join(dir, 'out');
    expect((await cli(['run', file, '--out', out], { env: await offline.serve() })).code).toBe(0);
    expect((await readCsv(join(out, 'results.csv'))).map((row) => row.status)).toEqual(['ok', 'ok']);
  });

  test('of a Batch API line, whose body is sent unchanged, are refused at the part that names them', async () => {
    const dir = await scratch();
    await copyFile('fixtures/images/red-dot.png', join(dir, 'dot.png'));
    const line = (id: string, url: string) => ({ custom_id: id, method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-4o-mini', messages: question(url) } });
    const file = await writeJobs(dir, [line('remote', 'https://example.com/cat.png'), line('local', 'dot.png')]);
    const { jobs, problems } = await loadJobs([file]);
    expect(jobs.map((job) => job.id)).toEqual(['remote']);
    expect(problems.map((problem) => [problem.line, problem.field])).toEqual([[2, 'body.messages.0.content.1.image_url.url']]);
  });

  test('that cannot be read are problems at the part that names them', async () => {
    const dir = await scratch();
    const file = await writeJobs(dir, [
      { id: 'fine', model: 'gpt-4o-mini', messages: question('https://example.com/cat.png') },
      { id: 'missing', model: 'gpt-4o-mini', messages: question('pics/missing.png') },
      { id: 'not-an-image', model: 'gpt-4o-mini', messages: question(join(process.cwd(), 'fixtures/images/not-an-image.png')) },
    ]);
    const { jobs, problems } = await loadJobs([file]);
    expect(jobs.map((job) => job.id)).toEqual(['fine']);
    expect(problems.map((problem) => [problem.line, problem.field])).toEqual([
      [2, 'messages.0.content.1.image_url.url'],
      [3, 'messages.0.content.1.image_url.url'],
    ]);
  });
});
