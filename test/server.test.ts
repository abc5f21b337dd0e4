import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { crc32, gunzipSync, inflateSync } from 'node:zlib';
import OpenAI, { APIConnectionError, BadRequestError, InternalServerError, RateLimitError } from 'openai';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { NightshiftError } from '../src/common/errors.js';
import { encodePng } from '../src/server/png.js';
import { formatDuration, RateLimiter } from '../src/server/rate-limit.js';
import { startOfflineServer, type FaultRule, type OfflineServer, type OfflineServerOptions } from '../src/server/server.js';

const servers: OfflineServer[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function start(options?: OfflineServerOptions): Promise<{ server: OfflineServer; client: OpenAI }> {
  const server = await startOfflineServer(options);
  servers.push(server);
  return { server, client: new OpenAI({ apiKey: 'offline', baseURL: server.url, maxRetries: 0 }) };
}

const ask = (client: OpenAI, content: string, extra: Partial<OpenAI.ChatCompletionCreateParamsNonStreaming> = {}) =>
  client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], ...extra });

/** Rejection of a promise, for asserting on error classes and fields. */
async function failure(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the request to fail');
}

/** Checks a PNG's structure (signature, chunk CRCs, pixel data length) and returns its header fields. */
function parsePng(bytes: Buffer): { width: number; height: number; colorType: number } {
  expect(bytes.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  const idat: Buffer[] = [];
  let header: Buffer | undefined;
  let offset = 8;
  while (offset < bytes.length) {
    const length = bytes.readUInt32BE(offset);
    const type = bytes.toString('latin1', offset + 4, offset + 8);
    const data = bytes.subarray(offset + 8, offset + 8 + length);
    const crc = crc32(bytes.subarray(offset + 4, offset + 8 + length));
    expect(bytes.readUInt32BE(offset + 8 + length), `CRC of ${type}`).toBe(crc);
    if (type === 'IHDR') header = data;
    if (type === 'IDAT') idat.push(data);
    offset += length + 12;
  }
  if (header === undefined) throw new Error('no IHDR chunk');
  const width = header.readUInt32BE(0);
  const height = header.readUInt32BE(4);
  const colorType = header[9] ?? -1;
  const channels = colorType === 6 ? 4 : 3;
  expect(inflateSync(Buffer.concat(idat)).length).toBe(height * (1 + width * channels));
  return { width, height, colorType };
}

const decodePng = (b64: string | undefined) => parsePng(Buffer.from(b64 ?? '', 'base64'));

const pngDataUrl = (width: number, height: number): string => {
  const row = new Uint8Array(width * 3).fill(200);
  return `data:image/png;base64,${encodePng({ width, height, channels: 3, row: () => row }).toString('base64')}`;
};

const look = (
  client: OpenAI,
  text: string,
  images: OpenAI.ChatCompletionContentPartImage.ImageURL[],
  model = 'gpt-4o-mini',
) =>
  client.chat.completions.create({
    model,
    messages: [
      {
        role: 'user',
        content: [{ type: 'text', text }, ...images.map((image_url) => ({ type: 'image_url' as const, image_url }))],
      },
    ],
  });

describe('chat completions', () => {
  it('answers the same input with the same reply and different inputs with different replies', async () => {
    const { client } = await start();
    const first = await ask(client, 'Name three rivers in France.');
    const again = await ask(client, 'Name three rivers in France.');
    const other = await ask(client, 'Name three rivers in Spain.');

    expect(first.object).toBe('chat.completion');
    expect(first.choices[0]?.message.content).toContain('Name three rivers in France.');
    expect(again.choices[0]?.message.content).toBe(first.choices[0]?.message.content);
    expect(again.usage).toEqual(first.usage);
    expect(other.choices[0]?.message.content).not.toBe(first.choices[0]?.message.content);
  });

  it('reports usage whose total is prompt plus completion tokens', async () => {
    const { client } = await start();
    const { usage } = await ask(client, 'Summarize the plot of Hamlet in one sentence.');

    expect(usage?.prompt_tokens).toBeGreaterThan(5);
    expect(usage?.completion_tokens).toBeGreaterThan(5);
    expect(usage?.total_tokens).toBe((usage?.prompt_tokens ?? 0) + (usage?.completion_tokens ?? 0));
    expect(usage?.completion_tokens_details?.reasoning_tokens).toBe(0);
    expect(usage?.prompt_tokens_details?.cached_tokens).toBe(0);
  });

  it('counts reasoning tokens for reasoning models as part of the completion', async () => {
    const { client } = await start();
    for (const model of ['o4-mini', 'gpt-5-mini']) {
      const { usage } = await ask(client, 'Why is the sky blue?', { model });
      const reasoning = usage?.completion_tokens_details?.reasoning_tokens ?? 0;
      expect(reasoning, model).toBeGreaterThan(0);
      expect(usage?.completion_tokens, model).toBeGreaterThan(reasoning);
    }
  });

  it('stops at max_completion_tokens with finish_reason length', async () => {
    const { client } = await start();
    const completion = await ask(client, 'Write a long essay about the sea.', { max_completion_tokens: 5 });

    expect(completion.choices[0]?.finish_reason).toBe('length');
    expect(completion.usage?.completion_tokens).toBe(5);
    expect(completion.choices[0]?.message.content?.length).toBeLessThan(40);
  });

  it('returns n different choices', async () => {
    const { client } = await start();
    const completion = await ask(client, 'Suggest a name for a cat.', { n: 3 });

    expect(completion.choices.map((choice) => choice.index)).toEqual([0, 1, 2]);
    expect(new Set(completion.choices.map((choice) => choice.message.content)).size).toBe(3);
  });

  it('answers with a JSON object when response_format asks for one', async () => {
    const { client } = await start();
    const completion = await ask(client, 'Reply in JSON: what is the capital of Italy?', {
      response_format: { type: 'json_object' },
    });

    expect(JSON.parse(completion.choices[0]?.message.content ?? '')).toMatchObject({ reply: expect.any(String) });
  });

  it('reports cached tokens when a long prompt is sent again', async () => {
    const { client } = await start();
    const longPrompt = `Context: ${'the quick brown fox jumps over the lazy dog. '.repeat(200)}`;
    const first = await ask(client, longPrompt);
    const second = await ask(client, longPrompt);

    expect(first.usage?.prompt_tokens).toBeGreaterThanOrEqual(1024);
    expect(first.usage?.prompt_tokens_details?.cached_tokens).toBe(0);
    const cached = second.usage?.prompt_tokens_details?.cached_tokens ?? 0;
    expect(cached % 128).toBe(0);
    expect(cached).toBeGreaterThan((second.usage?.prompt_tokens ?? 0) - 128);
  });

  it('reports 1024 cached tokens for a new prompt that shares a long prefix with an earlier one', async () => {
    const { client } = await start();
    const instructions = `Instructions: ${'always answer politely and cite your sources. '.repeat(150)}`;
    const send = (question: string) =>
      client.chat.completions.create({
        model: 'gpt-4o-mini',
        messages: [
          { role: 'system', content: instructions },
          { role: 'user', content: question },
        ],
      });
    await send('What is the tallest mountain?');
    const second = await send('What is the longest river?');

    expect(second.usage?.prompt_tokens_details?.cached_tokens).toBe(1024);
  });

  it('rejects a request without model or messages with a 400 naming the parameter', async () => {
    const { client } = await start();
    const messages = [{ role: 'user', content: 'hi' }];
    const noModel = await failure(client.chat.completions.create({ messages } as never));
    const noMessages = await failure(client.chat.completions.create({ model: 'gpt-4o-mini' } as never));

    expect(noModel).toBeInstanceOf(BadRequestError);
    expect((noModel as BadRequestError).param).toBe('model');
    expect((noMessages as BadRequestError).param).toBe('messages');
    expect((noMessages as BadRequestError).type).toBe('invalid_request_error');
  });

  it('answers any model name', async () => {
    const { client } = await start();
    const completion = await ask(client, 'hello', { model: 'my-local-model' });

    expect(completion.model).toBe('my-local-model');
  });
});

describe('vision', () => {
  it('counts the images of a message and mentions them in the reply', async () => {
    const { client } = await start();
    const completion = await look(client, 'What differs between these?', [
      { url: pngDataUrl(64, 64) },
      { url: 'https://example.com/cat.jpg' },
    ]);

    expect(completion.choices[0]?.message.content).toContain('I see 2 images');
  });

  it("adds GPT-4o's image tokens by detail and size: 85 for low, 85 + 170 per 512px tile otherwise", async () => {
    const { client } = await start();
    const prompt = async (images: OpenAI.ChatCompletionContentPartImage.ImageURL[]) =>
      (await look(client, 'Describe.', images, 'gpt-4o')).usage?.prompt_tokens ?? 0;
    const textOnly = await prompt([]);

    expect((await prompt([{ url: pngDataUrl(1024, 1024), detail: 'low' }])) - textOnly).toBe(85);
    // 1024x1024 is scaled to 768x768: four tiles.
    expect((await prompt([{ url: pngDataUrl(1024, 1024), detail: 'high' }])) - textOnly).toBe(85 + 170 * 4);
    expect((await prompt([{ url: pngDataUrl(300, 200) }])) - textOnly).toBe(85 + 170);
  });

  it('reads the size of JPEG, GIF and WebP images from their headers', async () => {
    const { client } = await start();
    const prompt = async (mime: string, bytes: Buffer) =>
      (await look(client, 'Describe.', [{ url: `data:${mime};base64,${bytes.toString('base64')}` }], 'gpt-4o')).usage
        ?.prompt_tokens ?? 0;
    const textOnly = (await look(client, 'Describe.', [], 'gpt-4o')).usage?.prompt_tokens ?? 0;
    const u16be = (value: number) => Buffer.from([value >> 8, value & 255]);
    const u16le = (value: number) => Buffer.from([value & 255, value >> 8]);
    const u24le = (value: number) => Buffer.from([value & 255, (value >> 8) & 255, value >> 16]);
    // An APP0 segment first, so the reader has to skip to the start-of-frame marker.
    const jpeg = Buffer.concat([
      Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 0x00, 0x00, 0xff, 0xc0, 0x00, 0x11, 0x08]),
      u16be(512),
      u16be(2048),
      Buffer.alloc(12),
    ]);
    const gif = Buffer.concat([Buffer.from('GIF89a'), u16le(300), u16le(200), Buffer.alloc(8)]);
    const webp = Buffer.concat([
      Buffer.from('RIFF'),
      Buffer.alloc(4),
      Buffer.from('WEBPVP8X'),
      Buffer.from([10, 0, 0, 0, 0, 0, 0, 0]),
      u24le(1000 - 1),
      u24le(500 - 1),
    ]);

    expect((await prompt('image/jpeg', jpeg)) - textOnly).toBe(85 + 170 * 4);
    expect((await prompt('image/gif', gif)) - textOnly).toBe(85 + 170);
    expect((await prompt('image/webp', webp)) - textOnly).toBe(85 + 170 * 2);
  });

  it('rejects a data URL that does not hold an image', async () => {
    const { client } = await start();
    const error = await failure(
      look(client, 'What is this?', [{ url: 'data:image/png;base64,bm90IGFuIGltYWdl' }]),
    );

    expect(error).toBeInstanceOf(BadRequestError);
    expect((error as BadRequestError).code).toBe('invalid_image_format');
  });
});

describe('image generation', () => {
  it('returns base64 PNGs of the requested size with token usage for GPT image models', async () => {
    const { client } = await start();
    const response = await client.images.generate({
      model: 'gpt-image-1.5',
      prompt: 'a lighthouse at dusk',
      size: '1536x1024',
      n: 2,
      quality: 'low',
    });

    expect(response.data).toHaveLength(2);
    for (const image of response.data ?? []) {
      expect(decodePng(image.b64_json)).toMatchObject({ width: 1536, height: 1024 });
    }
    expect(response.data?.[0]?.b64_json).not.toBe(response.data?.[1]?.b64_json);
    expect(response).toMatchObject({ size: '1536x1024', quality: 'low', output_format: 'png', background: 'opaque' });
    expect(response.usage).toEqual({
      input_tokens: response.usage?.input_tokens_details.text_tokens,
      input_tokens_details: { text_tokens: expect.any(Number), image_tokens: 0 },
      output_tokens: 2 * 400,
      output_tokens_details: { text_tokens: 0, image_tokens: 2 * 400 },
      total_tokens: (response.usage?.input_tokens ?? 0) + 2 * 400,
    });
  });

  it('draws the same prompt the same way every time', async () => {
    const { client } = await start();
    const first = await client.images.generate({ prompt: 'a red fox' });
    const second = await client.images.generate({ prompt: 'a red fox' });
    const other = await client.images.generate({ prompt: 'a blue whale' });

    expect(second.data?.[0]?.b64_json).toBe(first.data?.[0]?.b64_json);
    expect(other.data?.[0]?.b64_json).not.toBe(first.data?.[0]?.b64_json);
    expect(decodePng(first.data?.[0]?.b64_json)).toMatchObject({ width: 1024, height: 1024 });
  });

  it('draws an RGBA image for a transparent background', async () => {
    const { client } = await start();
    const response = await client.images.generate({ model: 'gpt-image-1.5', prompt: 'a sticker of a star', background: 'transparent' });

    expect(decodePng(response.data?.[0]?.b64_json).colorType).toBe(6);
  });

  it('serves dall-e images at a URL on the same server', async () => {
    const { client } = await start();
    const response = await client.images.generate({ model: 'dall-e-2', prompt: 'a small robot', size: '256x256' });
    const url = response.data?.[0]?.url ?? '';
    const download = await fetch(url);

    expect(response.usage).toBeUndefined();
    expect(download.status).toBe(200);
    expect(download.headers.get('content-type')).toBe('image/png');
    expect(parsePng(Buffer.from(await download.arrayBuffer()))).toMatchObject({ width: 256, height: 256 });
  });

  it('rejects a missing prompt and an unsupported size', async () => {
    const { client } = await start();
    const noPrompt = await failure(client.images.generate({ model: 'gpt-image-1.5' } as never));
    const badSize = await failure(client.images.generate({ model: 'gpt-image-1.5', prompt: 'a cat', size: '256x256' }));

    expect((noPrompt as BadRequestError).param).toBe('prompt');
    expect(badSize).toBeInstanceOf(BadRequestError);
    expect((badSize as BadRequestError).param).toBe('size');
  });
});

describe('fault injection', () => {
  it('answers 429 with retry-after-ms visible on the SDK error', async () => {
    const { client } = await start({ faults: [{ status: 429, retryAfterMs: 250, retryAfterSeconds: 1, times: 1 }] });
    const error = await failure(ask(client, 'hello'));

    expect(error).toBeInstanceOf(RateLimitError);
    const rateLimited = error as RateLimitError;
    expect(rateLimited.headers.get('retry-after-ms')).toBe('250');
    expect(rateLimited.headers.get('retry-after')).toBe('1');
    expect(rateLimited.code).toBe('rate_limit_exceeded');
    expect(rateLimited.requestID).toMatch(/^req_/);
  });

  it('fires a rule `times` times and then answers normally', async () => {
    const { client, server } = await start({ faults: [{ status: 500, times: 2 }] });

    expect(await failure(ask(client, 'hello'))).toBeInstanceOf(InternalServerError);
    expect(await failure(ask(client, 'hello'))).toBeInstanceOf(InternalServerError);
    await expect(ask(client, 'hello')).resolves.toMatchObject({ object: 'chat.completion' });
    expect(server.stats.byStatus).toEqual({ 200: 1, 500: 2 });
  });

  it('drops the connection so the client sees a connection error', async () => {
    const { client, server } = await start({ faults: [{ status: 500, drop: true, times: 1 }] });

    expect(await failure(ask(client, 'hello'))).toBeInstanceOf(APIConnectionError);
    await expect(ask(client, 'hello')).resolves.toBeDefined();
    expect(server.requests.map((record) => record.status)).toEqual([0, 200]);
  });

  it('fires only for requests matching the rule', async () => {
    const { client } = await start({
      faults: [{ status: 503, match: { promptIncludes: 'poison', model: 'gpt-4o-mini' } }],
    });

    await expect(ask(client, 'a harmless question')).resolves.toBeDefined();
    await expect(ask(client, 'a poison question', { model: 'gpt-4.1' })).resolves.toBeDefined();
    expect(await failure(ask(client, 'a poison question'))).toMatchObject({ status: 503, type: 'server_error' });
  });

  it('replaces the rules with setFaults', async () => {
    const { client, server } = await start();
    server.setFaults([{ status: 400, code: 'custom_code', message: 'nope', match: { path: '/v1/chat/completions' } }]);

    expect(await failure(ask(client, 'hello'))).toMatchObject({ status: 400, code: 'custom_code' });
    await expect(client.images.generate({ prompt: 'a cat' })).resolves.toBeDefined();
  });

  /** A chat request sent with fetch, so that the answer's bytes are seen as they are. */
  const post = (server: OfflineServer, path = '/chat/completions', body: object = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello' }] }) =>
    fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

  it('answers 200 with the broken body a rule names, in place of the real answer', async () => {
    const { server } = await start();
    const image = { model: 'gpt-image-1', prompt: 'a cat', n: 2, size: '1024x1024', quality: 'low' };
    const answer = async (body: FaultRule['body'], path?: string, request?: object) => {
      server.setFaults([{ body, times: 1 }]);
      const response = await post(server, path, request);
      return { status: response.status, type: response.headers.get('content-type'), text: await response.text() };
    };

    expect(await answer('empty')).toEqual({ status: 200, type: 'application/json', text: '' });
    expect(await answer('html')).toMatchObject({ status: 200, type: expect.stringMatching(/^text\/html/) });
    const cut = (await answer('not-json')).text;
    expect(() => JSON.parse(cut)).toThrow(SyntaxError);
    expect(JSON.parse((await answer('choices-null')).text)).toMatchObject({ object: 'chat.completion', choices: null });
    expect(JSON.parse((await answer('no-choices')).text)).toMatchObject({ choices: [] });
    expect(JSON.parse((await answer('no-message')).text).choices[0]).not.toHaveProperty('message');
    expect(JSON.parse((await answer('no-data', '/images/generations', image)).text)).not.toHaveProperty('data');
    expect(JSON.parse((await answer('fewer-images', '/images/generations', image)).text).data).toHaveLength(1);
    const notImages = JSON.parse((await answer('not-image', '/images/generations', image)).text).data as Array<{ b64_json: string }>;
    expect(notImages).toHaveLength(2);
    for (const item of notImages) expect(Buffer.from(item.b64_json, 'base64').subarray(0, 4)).not.toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47]));
    expect(JSON.parse((await answer(undefined)).text)).toMatchObject({ object: 'chat.completion' });
  });

  it('replaces the reply and adds headers when a rule says so', async () => {
    const { server } = await start({ faults: [{ reply: 'echo', headers: { 'x-request-id': 'req_echo' }, times: 1 }] });
    const response = await post(server);
    expect(response.headers.get('x-request-id')).toBe('req_echo');
    expect(((await response.json()) as OpenAI.ChatCompletion).choices[0]?.message.content).toBe('echo');
  });

  it('resets the connection after the headers and half the body', async () => {
    const { server } = await start({ faults: [{ reset: true, times: 1 }] });
    const response = await post(server);
    expect(response.status).toBe(200);
    await expect(response.text()).rejects.toBeInstanceOf(TypeError);
    expect(server.stats.byStatus).toEqual({ 0: 1 });
  });

  it('trickles the body a byte at a time, headers first', async () => {
    const { server } = await start({ faults: [{ trickleMs: 20, times: 1 }] });
    const response = await post(server);
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    const first = await reader.read();
    expect(first.value).toHaveLength(1);
    await reader.cancel();
  });

  it('compresses answers with gzip when told to and the request accepts it', async () => {
    const { server } = await start({ gzip: true });
    const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    const raw = async (acceptEncoding: string) => {
      return new Promise<{ encoding: string | undefined; bytes: Buffer }>((resolve, reject) => {
        const sent = httpRequest(`${server.url}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'accept-encoding': acceptEncoding } }, (answer) => {
          const chunks: Buffer[] = [];
          answer.on('data', (chunk: Buffer) => chunks.push(chunk));
          answer.on('end', () => resolve({ encoding: answer.headers['content-encoding'], bytes: Buffer.concat(chunks) }));
        });
        sent.on('error', reject);
        sent.end(body);
      });
    };
    const zipped = await raw('gzip, deflate, br');
    expect(zipped.encoding).toBe('gzip');
    expect(JSON.parse(gunzipSync(zipped.bytes).toString('utf8'))).toMatchObject({ object: 'chat.completion' });
    const plain = await raw('identity');
    expect(plain.encoding).toBeUndefined();
    expect(JSON.parse(plain.bytes.toString('utf8'))).toMatchObject({ object: 'chat.completion' });
  });

  it('answers insufficient_quota once the quota of successful requests is used up', async () => {
    const { client } = await start({ quota: { afterRequests: 2 } });
    await ask(client, 'one');
    await ask(client, 'two');
    const error = await failure(ask(client, 'three'));

    expect(error).toBeInstanceOf(RateLimitError);
    expect((error as RateLimitError).code).toBe('insufficient_quota');
    expect((error as RateLimitError).type).toBe('insufficient_quota');
  });
});

describe('concurrency, rate limits and bookkeeping', () => {
  it('counts requests in flight at once', async () => {
    // Long enough that all ten are in flight together even on a loaded machine (100 ms once let one finish first).
    const { client, server } = await start({ latencyMs: 500 });
    await Promise.all(Array.from({ length: 10 }, (_, index) => ask(client, `question ${index}`)));

    expect(server.stats).toMatchObject({ requests: 10, inFlight: 0, maxInFlight: 10 });
  });

  it('sends rate-limit headers and answers 429 beyond the requests per minute', async () => {
    const { client } = await start({ rateLimit: { rpm: 2, tpm: 100_000 } });
    const { response } = await ask(client, 'one').withResponse();
    await ask(client, 'two');
    const error = await failure(ask(client, 'three'));

    expect(response.headers.get('x-ratelimit-limit-requests')).toBe('2');
    expect(response.headers.get('x-ratelimit-remaining-requests')).toBe('1');
    expect(response.headers.get('x-ratelimit-reset-requests')).toMatch(/^\d+(\.\d+)?(ms|s)$/);
    expect(response.headers.get('x-ratelimit-limit-tokens')).toBe('100000');
    expect(error).toBeInstanceOf(RateLimitError);
    const rateLimited = error as RateLimitError;
    expect(rateLimited.type).toBe('requests');
    expect(rateLimited.code).toBe('rate_limit_exceeded');
    expect(Number(rateLimited.headers.get('retry-after-ms'))).toBeGreaterThan(0);
    expect(rateLimited.headers.get('x-ratelimit-remaining-requests')).toBe('0');
  });

  it('answers 429 when a request would exceed the tokens per minute', async () => {
    const { client } = await start({ rateLimit: { tpm: 1000 } });
    await ask(client, 'one', { max_completion_tokens: 600 });
    const error = await failure(ask(client, 'two', { max_completion_tokens: 600 }));

    expect(error).toMatchObject({ status: 429, type: 'tokens', code: 'rate_limit_exceeded' });
  });

  it('logs requests by key and forgets them on reset', async () => {
    const { client, server } = await start();
    await ask(client, 'alpha');
    await ask(client, 'alpha');
    await client.images.generate({ prompt: 'beta' });

    expect(server.countByKey('alpha')).toBe(2);
    expect(server.countByKey('beta')).toBe(1);
    expect(server.requests[2]).toMatchObject({
      path: '/v1/images/generations',
      model: 'gpt-image-2',
      key: 'beta',
      status: 200,
    });
    server.reset();
    expect(server.requests).toEqual([]);
    expect(server.countByKey('alpha')).toBe(0);
    expect(server.stats).toMatchObject({ requests: 0, byStatus: {} });
  });

  it('keeps no log when recordRequests is off', async () => {
    const { client, server } = await start({ recordRequests: false });
    await ask(client, 'alpha');

    expect(server.requests).toEqual([]);
    expect(server.countByKey('alpha')).toBe(0);
    expect(server.stats.requests).toBe(1);
  });

  it('answers chat completions without usage when omitUsage is on', async () => {
    const { client } = await start({ omitUsage: true });
    const completion = await ask(client, 'alpha');

    expect(completion.choices[0]!.message.content).not.toBe('');
    expect(completion.usage).toBeUndefined();
  });

  it('tags every API answer with a request id and processing time', async () => {
    const { client } = await start();
    const { response } = await ask(client, 'hello').withResponse();
    const error = await failure(client.chat.completions.create({ model: 'gpt-4o-mini' } as never));

    expect(response.headers.get('x-request-id')).toMatch(/^req_[0-9a-f]+$/);
    expect(response.headers.get('openai-processing-ms')).toMatch(/^\d+$/);
    expect((error as BadRequestError).requestID).toMatch(/^req_[0-9a-f]+$/);
    expect((error as BadRequestError).requestID).not.toBe(response.headers.get('x-request-id'));
  });
});

describe('http surface', () => {
  it('answers health checks, lists models, and uses the OpenAI error shape for bad paths and JSON', async () => {
    const { client, server } = await start();
    const base = server.url.slice(0, -'/v1'.length);
    const health = await fetch(`${base}/health`);
    const unknown = await fetch(`${server.url}/nothing-here`, { method: 'POST', body: '{}' });
    const badJson = await fetch(`${server.url}/chat/completions`, { method: 'POST', body: '{"model":' });

    expect(health.status).toBe(200);
    expect(await health.text()).toBe('ok');
    expect((await client.models.list()).data.map((model) => model.id)).toContain('gpt-image-2');
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({
      error: { message: 'Invalid URL (POST /v1/nothing-here)', type: 'invalid_request_error', param: null, code: null },
    });
    expect(badJson.status).toBe(400);
    expect(await badJson.json()).toMatchObject({ error: { type: 'invalid_request_error' } });
  });

  it('closes promptly while answers are still waiting out their latency', async () => {
    const { client, server } = await start({ latencyMs: 60_000 });
    const pending = failure(ask(client, 'hello'));
    while (server.stats.inFlight === 0) await new Promise((resolve) => setImmediate(resolve));
    const started = Date.now();
    await server.close();

    expect(Date.now() - started).toBeLessThan(1000);
    expect(await pending).toBeInstanceOf(APIConnectionError);
    expect(server.stats).toMatchObject({ inFlight: 0, byStatus: { 0: 1 } });
  });

  it('counts a client that hangs up mid-upload as dropped, without reporting a server bug', async () => {
    const { server } = await start();
    const bugs = vi.spyOn(console, 'error').mockImplementation(() => {});
    const { hostname, port } = new URL(server.url);
    const socket = connect(Number(port), hostname);
    socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: ${hostname}\r\nContent-Length: 1000\r\n\r\n{"model":`);
    while (server.stats.inFlight === 0) await new Promise((resolve) => setImmediate(resolve));
    socket.destroy();
    while (server.stats.inFlight > 0) await new Promise((resolve) => setImmediate(resolve));
    const reported = [...bugs.mock.calls];
    bugs.mockRestore();

    expect(server.stats.byStatus).toEqual({ 0: 1 });
    expect(reported).toEqual([]);
  });

  it('rejects invalid options before listening, naming the value', async () => {
    await expect(startOfflineServer({ latencyMs: -1 })).rejects.toThrow(
      'Expected `latencyMs` to be a finite number >= 0, got `-1`',
    );
    await expect(startOfflineServer({ faults: [{ status: 200 }] })).rejects.toBeInstanceOf(NightshiftError);
    await expect(startOfflineServer({ faults: [{ times: 1 }] })).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(startOfflineServer({ faults: [{ body: 'broken' as FaultRule['body'] }] })).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(startOfflineServer({ faults: [{ reset: true, trickleMs: -1 }] })).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(startOfflineServer({ rateLimit: { rpm: 0 } })).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(startOfflineServer({ omitUsage: 'yes' as unknown as boolean })).rejects.toMatchObject({ code: 'E_USAGE' });
  });
});

describe('RateLimiter', () => {
  it('refills continuously, so a refused request fits after the announced wait', () => {
    let now = 0;
    const limiter = new RateLimiter({ rpm: 2 }, () => now);
    expect(limiter.take(0).allowed).toBe(true);
    expect(limiter.take(0).allowed).toBe(true);
    const refused = limiter.take(0);

    expect(refused).toMatchObject({ allowed: false, limit: 'requests', retryAfterMs: 30_000 });
    expect(refused.headers).toEqual({
      'x-ratelimit-limit-requests': '2',
      'x-ratelimit-remaining-requests': '0',
      'x-ratelimit-reset-requests': '1m0s',
    });
    now += 30_000;
    expect(limiter.take(0).allowed).toBe(true);
  });

  it('refuses for good a request larger than a minute of tokens', () => {
    const limiter = new RateLimiter({ tpm: 100 }, () => 0);

    expect(limiter.take(101)).toMatchObject({ allowed: false, limit: 'tokens', retryAfterMs: undefined });
  });
});

describe('formatDuration', () => {
  it('writes durations like OpenAI rate-limit reset headers', () => {
    expect([20, 1000, 8640, 90_500, 360_000, 3_723_000].map(formatDuration)).toEqual([
      '20ms',
      '1s',
      '8.64s',
      '1m30.5s',
      '6m0s',
      '1h2m3s',
    ]);
  });
});
