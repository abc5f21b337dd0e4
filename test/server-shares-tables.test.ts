import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Job } from '../src/common/types.js';
import { estimateJob, type JobEstimate } from '../src/cost/estimate.js';
import { createPriceBook } from '../src/cost/prices.js';
import { loadJobs } from '../src/jobs/load.js';
import { encodePng } from '../src/server/png.js';
import { startOfflineServer, type OfflineServer } from '../src/server/server.js';
import { tempDir, writeJobs } from './helpers.js';

// A rehearsal against the offline server is meant to report the tokens `nightshift estimate` predicts for the same
// jobs: both take their tables and rules from src/cost/. The jobs go through the real loader, so local images are
// inlined exactly as a run sends them, and every request goes to the server over HTTP.

const RED_DOT = resolve('fixtures/images/red-dot.png');
const BLUE_SQUARE = resolve('fixtures/images/blue-square.jpg');
/** Written by `beforeAll`: large enough to need several tiles, and to be scaled down for patch models. */
const WIDE_PNG = 'wide.png';

const CHAT_JOBS = [
  { id: 'system-and-prompt', model: 'gpt-4.1-mini', system: 'You are terse.', prompt: 'Write a haiku about servers humming at night.' },
  {
    id: 'conversation',
    model: 'gpt-4o',
    messages: [
      { role: 'developer', content: 'Answer in French.' },
      { role: 'user', name: 'dana', content: 'Where is the station?' },
      { role: 'assistant', content: [{ type: 'refusal', refusal: 'I cannot help with that.' }] },
      { role: 'user', content: [{ type: 'text', text: 'Please try.' }, { type: 'text', text: 'It is urgent.' }] },
    ],
  },
  {
    id: 'schema-and-tools',
    model: 'gpt-5-mini',
    prompt: 'Give me a contact card for Ada Lovelace.',
    response_format: { type: 'json_schema', json_schema: { name: 'contact', schema: { type: 'object', properties: { name: { type: 'string' } } } } },
    params: { tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: {} } } }] },
  },
  { id: 'older-encoding', model: 'gpt-4-turbo', prompt: 'A watercolor lighthouse at dusk' },
];

const VISION_JOBS = [
  { id: 'png-low', model: 'gpt-4o', prompt: 'What colour is this?', images: [RED_DOT], detail: 'low' },
  { id: 'jpeg-high', model: 'gpt-4o', prompt: 'What colour is this?', images: [BLUE_SQUARE], detail: 'high' },
  { id: 'both-auto', model: 'gpt-4o', prompt: 'Compare these.', images: [RED_DOT, BLUE_SQUARE] },
  { id: 'wide-high-4o-mini', model: 'gpt-4o-mini', prompt: 'Describe.', images: [WIDE_PNG], detail: 'high' },
  { id: 'wide-low-4o-mini', model: 'gpt-4o-mini', prompt: 'Describe.', images: [WIDE_PNG], detail: 'low' },
  { id: 'wide-patches', model: 'gpt-4.1-mini', prompt: 'Describe.', images: [WIDE_PNG, BLUE_SQUARE] },
  { id: 'wide-gpt-5', model: 'gpt-5-mini', prompt: 'Describe.', images: [WIDE_PNG], detail: 'high' },
  { id: 'unseen-url', model: 'o3', prompt: 'Describe.', images: ['https://example.com/cat.jpg'] },
];

const IMAGE_JOBS = [
  { id: 'square-low', model: 'gpt-image-1.5', prompt: 'A red fox', size: '1024x1024', quality: 'low' },
  { id: 'landscape-medium-two', model: 'gpt-image-1.5', prompt: 'A red fox', size: '1536x1024', quality: 'medium', n: 2 },
  { id: 'portrait-high', model: 'gpt-image-1.5', prompt: 'A red fox in the snow', size: '1024x1536', quality: 'high' },
  { id: 'mini-square-low', model: 'gpt-image-1-mini', prompt: 'A red fox', size: '1024x1024', quality: 'low' },
  { id: 'image-2-square-high', model: 'gpt-image-2', prompt: 'A red fox', size: '1024x1024', quality: 'high' },
  { id: 'image-2-landscape-high', model: 'gpt-image-2', prompt: 'A red fox', size: '1536x1024', quality: 'high' },
  { id: 'image-2-custom-medium', model: 'gpt-image-2', prompt: 'A red fox', size: '2048x1152', quality: 'medium' },
];

const prices = createPriceBook();
let server: OfflineServer;
let client: OpenAI;
const jobs = new Map<string, Job>();

beforeAll(async () => {
  const dir = await tempDir();
  const row = new Uint8Array(2048 * 3).fill(90);
  await writeFile(join(dir, WIDE_PNG), encodePng({ width: 2048, height: 1152, channels: 3, row: () => row }));
  const file = await writeJobs(dir, [...CHAT_JOBS, ...VISION_JOBS, ...IMAGE_JOBS]);
  const loaded = await loadJobs([file]);
  expect(loaded.problems).toEqual([]);
  for (const job of loaded.jobs) jobs.set(job.id, job);
  server = await startOfflineServer();
  client = new OpenAI({ apiKey: 'offline', baseURL: server.url, maxRetries: 0 });
});

afterAll(async () => {
  await server?.close();
});

/** The job as the loader built it (its body is what a run sends), and its estimate. */
function prepared(id: string): { job: Job; estimate: JobEstimate } {
  const job = jobs.get(id);
  if (job === undefined) throw new Error(`no job ${id}`);
  return { job, estimate: estimateJob(job, prices) };
}

const chat = (job: Job) =>
  client.chat.completions.create(job.body as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming);

describe('the offline server reports the usage nightshift estimates', () => {
  it.each(CHAT_JOBS.map((job) => job.id))('chat job %s: prompt tokens', async (id) => {
    const { job, estimate } = prepared(id);
    const { usage } = await chat(job);

    expect(usage?.prompt_tokens).toBe(estimate.inputTokens);
  });

  it.each(VISION_JOBS.map((job) => job.id))('vision job %s: prompt tokens, images included', async (id) => {
    const { job, estimate } = prepared(id);
    const { usage } = await chat(job);

    expect(usage?.prompt_tokens).toBe(estimate.inputTokens);
  });

  it.each(IMAGE_JOBS.map((job) => job.id))('image job %s: prompt and image output tokens', async (id) => {
    const { job, estimate } = prepared(id);
    const { usage } = await client.images.generate(job.body as unknown as OpenAI.ImageGenerateParamsNonStreaming);

    expect(usage?.input_tokens).toBe(estimate.inputTokens);
    expect(usage?.output_tokens).toBe(estimate.expectedOutputTokens);
    expect(usage?.output_tokens_details?.image_tokens).toBe(estimate.expectedOutputTokens);
  });

  // Pinned to OpenAI's published figures, so the two cannot drift together unnoticed.
  it("agrees with OpenAI's documented figures where the copies used to disagree", async () => {
    const promptTokens = async (id: string) => (await chat(prepared(id).job)).usage?.prompt_tokens ?? 0;
    const outputTokens = async (id: string) =>
      (await client.images.generate(prepared(id).job.body as unknown as OpenAI.ImageGenerateParamsNonStreaming)).usage
        ?.output_tokens;

    // "system" 1 + "You are terse." 4, "user" 1 + the haiku 10, 3 per message, 3 to prime the reply: the role counts.
    expect(await promptTokens('system-and-prompt')).toBe(25);
    // gpt-4o-mini bills 2,833 per image at low detail, whatever its size, not GPT-4o's 85.
    const text = (await promptTokens('wide-low-4o-mini')) - 2833;
    // 2048x1152 at high detail is scaled to 1365x768: 3x2 tiles of 5,667 on top of the base.
    expect(await promptTokens('wide-high-4o-mini')).toBe(text + 2833 + 6 * 5667);
    // gpt-image-2 has its own token formula (the pricing calculator's 7,024 and 5,488), not gpt-image-1's table.
    expect(await outputTokens('image-2-square-high')).toBe(7024);
    expect(await outputTokens('image-2-landscape-high')).toBe(5488);
    expect(await outputTokens('portrait-high')).toBe(6240);
  });
});
