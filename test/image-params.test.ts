import OpenAI, { BadRequestError } from 'openai';
import { afterEach, describe, expect, test } from 'vitest';
import { loadJobs } from '../src/jobs/load.js';
import { startOfflineServer, type OfflineServer } from '../src/server/server.js';
import { tempDir, writeJobs } from './helpers.js';

/**
 * Image parameters per model family, as the API takes them. Each case is a job's image fields, and the field the API
 * refuses (undefined when it takes them): validation must refuse the same ones, and the offline server answer them
 * with the same 400.
 */
const CASES: [string, Record<string, unknown>, string | undefined][] = [
  ['GPT image quality', { model: 'gpt-image-1.5', quality: 'high', size: '1536x1024' }, undefined],
  ['GPT image auto size and quality', { model: 'gpt-image-1', quality: 'auto', size: 'auto' }, undefined],
  ['DALL-E quality on a GPT image model', { model: 'gpt-image-1.5', quality: 'standard' }, 'quality'],
  ['hd on a GPT image model', { model: 'gpt-image-1-mini', quality: 'hd' }, 'quality'],
  ['DALL-E size on a GPT image model', { model: 'gpt-image-1', size: '512x512' }, 'size'],
  ['a custom size on a fixed-size GPT image model', { model: 'gpt-image-1.5', size: '1536x864' }, 'size'],
  ['chatgpt-image-latest held to GPT image rules', { model: 'chatgpt-image-latest', size: '1792x1024' }, 'size'],
  ['a custom size on gpt-image-2', { model: 'gpt-image-2', size: '1536x864', quality: 'low' }, undefined],
  ['a size gpt-image-2 cannot make (edges not multiples of 16)', { model: 'gpt-image-2', size: '1000x1000' }, 'size'],
  ['a size gpt-image-2 cannot make (aspect over 3:1)', { model: 'gpt-image-2-2026-04-21', size: '3200x1024' }, 'size'],
  ['a transparent background on gpt-image-2', { model: 'gpt-image-2', background: 'transparent' }, 'background'],
  ['a transparent background in jpeg', { model: 'gpt-image-1.5', background: 'transparent', output_format: 'jpeg' }, 'background'],
  ['a transparent background in webp', { model: 'gpt-image-1.5', background: 'transparent', output_format: 'webp' }, undefined],
  ['style on a GPT image model', { model: 'gpt-image-1.5', style: 'vivid' }, 'style'],
  ['response_format on a GPT image model', { model: 'gpt-image-1', response_format: 'url' }, 'response_format'],
  ['dall-e-3 sizes and qualities', { model: 'dall-e-3', size: '1792x1024', quality: 'hd', style: 'natural' }, undefined],
  ['two images from dall-e-3', { model: 'dall-e-3', n: 2 }, 'n'],
  ['a GPT image quality on dall-e-3', { model: 'dall-e-3', quality: 'high' }, 'quality'],
  ['output_format on dall-e-3', { model: 'dall-e-3', output_format: 'webp' }, 'output_format'],
  ['dall-e-2 sizes', { model: 'dall-e-2', size: '512x512', response_format: 'b64_json', n: 3 }, undefined],
  ['hd on dall-e-2', { model: 'dall-e-2', quality: 'hd' }, 'quality'],
  ['style on dall-e-2', { model: 'dall-e-2', style: 'vivid' }, 'style'],
  ['a prompt over dall-e-2 length', { model: 'dall-e-2', prompt: 'x'.repeat(1001) }, 'prompt'],
];

describe('image parameters are checked per model family', () => {
  test('validation refuses what the API would, naming the field and the values allowed', async () => {
    const dir = await tempDir();
    const file = await writeJobs(dir, CASES.map(([, fields], i) => ({ id: `case-${i}`, prompt: 'a cat', ...fields })));
    const { problems } = await loadJobs([file]);
    expect(problems.map((problem) => [problem.line, problem.field])).toEqual(
      CASES.flatMap(([, , field], i) => (field === undefined ? [] : [[i + 1, field]])),
    );
    const quality = problems.find((problem) => problem.jobId === 'case-2');
    for (const allowed of ['auto', 'low', 'medium', 'high']) expect(quality?.message).toContain(allowed);
  });

  test('a Batch API line to the images endpoint is held to the same rules', async () => {
    const dir = await tempDir();
    const body = { model: 'gpt-image-1', prompt: 'a cat', size: '512x512' };
    const file = await writeJobs(dir, [{ custom_id: 'b1', method: 'POST', url: '/v1/images/generations', body }]);
    const { problems } = await loadJobs([file]);
    expect(problems.map((problem) => [problem.line, problem.field])).toEqual([[1, 'body.size']]);
  });

  test('a model nightshift does not know is not refused for values it cannot know', async () => {
    const dir = await tempDir();
    const jobs = [
      { kind: 'image', model: 'my-image-model', prompt: 'a cat', size: '512x512', quality: 'standard', style: 'vivid', n: 4 },
      { kind: 'image', model: 'gpt-image-3', prompt: 'a cat', size: '4096x4096', quality: 'hd' },
    ];
    const { jobs: valid, problems } = await loadJobs([await writeJobs(dir, jobs)]);
    expect(problems).toEqual([]);
    expect(valid.map((job) => job.body['size'])).toEqual(['512x512', '4096x4096']);
  });

  describe('the offline server answers the same values with a 400 naming the field', () => {
    let server: OfflineServer | undefined;
    afterEach(async () => {
      await server?.close();
      server = undefined;
    });

    test.each(CASES)('%s', async (_name, fields, field) => {
      server = await startOfflineServer();
      const client = new OpenAI({ apiKey: 'offline', baseURL: server.url, maxRetries: 0 });
      const request = client.images.generate({ prompt: 'a cat', ...fields } as unknown as OpenAI.ImageGenerateParamsNonStreaming);
      if (field === undefined) {
        await expect(request).resolves.toBeDefined();
      } else {
        const error = await request.then(() => undefined, (failure: unknown) => failure);
        expect(error).toBeInstanceOf(BadRequestError);
        expect((error as BadRequestError).param).toBe(field);
      }
    });
  });
});
