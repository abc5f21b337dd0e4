import { readdir } from 'node:fs/promises';
import OpenAI, { BadRequestError, InternalServerError, NotFoundError, toFile, type APIError } from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { multipartBoundary, readMultipart } from '../src/server/multipart.js';
import { tempDir } from './helpers.js';
import { startOfflineServer, type OfflineServer, type OfflineServerOptions } from '../src/server/server.js';

const servers: OfflineServer[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

/** A server on a clock the test moves, and a client of it through the real SDK. */
async function start(options: OfflineServerOptions = {}) {
  let now = Date.UTC(2026, 11, 6, 12);
  const server = await startOfflineServer({ now: () => now, ...options });
  servers.push(server);
  const client = new OpenAI({ apiKey: 'offline', baseURL: server.url, maxRetries: 0 });
  return { server, client, advance: (ms: number) => (now += ms) };
}

interface Line {
  custom_id: string;
  method: string;
  url: string;
  body: Record<string, unknown>;
}

const chatLine = (id: string, text = `Question ${id}`, model = 'gpt-4o-mini'): Line => ({
  custom_id: id,
  method: 'POST',
  url: '/v1/chat/completions',
  body: { model, messages: [{ role: 'user', content: text }] },
});

const jsonl = (lines: unknown[]): string => lines.map((line) => (typeof line === 'string' ? line : JSON.stringify(line))).join('\n') + '\n';

async function upload(client: OpenAI, lines: unknown[], name = 'input.jsonl') {
  return client.files.create({ file: await toFile(Buffer.from(jsonl(lines)), name), purpose: 'batch' });
}

async function submit(client: OpenAI, lines: unknown[], endpoint: '/v1/chat/completions' | '/v1/images/generations' = '/v1/chat/completions') {
  const file = await upload(client, lines);
  return client.batches.create({ input_file_id: file.id, endpoint, completion_window: '24h', metadata: { part: '1' } });
}

/** What tests read of an answer's body in an output or error file. */
interface AnswerBody {
  choices: OpenAI.ChatCompletion['choices'];
  usage: { prompt_tokens: number; output_tokens: number };
  data: Array<{ b64_json: string }>;
  error: { type: string; code: string | null; param: string | null };
}

/** A line of an output or error file. */
interface OutputLine {
  id: string;
  custom_id: string;
  response: { status_code: number; request_id: string; body: AnswerBody } | null;
  error: { code: string; message: string } | null;
}

/** The lines of a file on the server, parsed. */
async function readJsonl(client: OpenAI, id: string | null | undefined): Promise<OutputLine[]> {
  if (id === null || id === undefined) return [];
  const text = await (await client.files.content(id)).text();
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as OutputLine);
}

/** Rejection of a promise, for asserting on error classes and fields. */
async function failure(promise: Promise<unknown>): Promise<APIError> {
  try {
    await promise;
  } catch (error) {
    return error as APIError;
  }
  throw new Error('expected the request to fail');
}

describe('multipart uploads', () => {
  it('reads what fetch encodes, whatever the chunk sizes it arrives in', async () => {
    const form = new FormData();
    const content = `${'{"a":1}\r\n--not-the-boundary\r\n'.repeat(300)}\r\n`;
    form.append('file', new Blob([content]), 'lines.jsonl');
    form.append('purpose', 'batch');
    const encoded = new Request('http://offline/', { method: 'POST', body: form });
    const body = Buffer.from(await encoded.arrayBuffer());
    const boundary = multipartBoundary(encoded.headers.get('content-type') ?? undefined);
    expect(boundary).toBeTruthy();
    for (const size of [1, 2, 7, 64, body.length]) {
      const chunks = Array.from({ length: Math.ceil(body.length / size) }, (_, index) => body.subarray(index * size, (index + 1) * size));
      const written: Buffer[] = [];
      const read = await readMultipart(chunks, boundary!, { write: async (chunk) => void written.push(Buffer.from(chunk)) }, 1 << 20);
      expect(read.fields.get('purpose'), `chunks of ${size}`).toBe('batch');
      expect(read.file).toEqual({ field: 'file', filename: 'lines.jsonl', bytes: Buffer.byteLength(content) });
      expect(Buffer.concat(written).toString('utf8'), `chunks of ${size}`).toBe(content);
    }
  });
});

describe('files', () => {
  it('stores an upload and gives back its metadata and its exact bytes', async () => {
    const { client } = await start();
    const lines = [chatLine('a', 'Ünïcödé ✓'), chatLine('b')];
    const file = await upload(client, lines, 'jobs.jsonl');
    expect(file).toMatchObject({ object: 'file', purpose: 'batch', filename: 'jobs.jsonl', bytes: Buffer.byteLength(jsonl(lines)) });
    expect(file.id).toMatch(/^file-/);
    expect(await client.files.retrieve(file.id)).toEqual(file);
    expect(await (await client.files.content(file.id)).text()).toBe(jsonl(lines));
  });

  it('streams a large upload to disk and back', async () => {
    const { client } = await start();
    const big = Buffer.alloc(5 * 1024 * 1024, 'x');
    const file = await client.files.create({ file: await toFile(big, 'big.jsonl'), purpose: 'batch' });
    expect(file.bytes).toBe(big.length);
    const back = Buffer.from(await (await client.files.content(file.id)).arrayBuffer());
    expect(back.equals(big)).toBe(true);
  });

  it('refuses an upload without a purpose, and a batch file that is not .jsonl', async () => {
    const { client } = await start();
    const bad = await failure(client.files.create({ file: await toFile(Buffer.from('{}\n'), 'x.csv'), purpose: 'batch' }));
    expect(bad).toBeInstanceOf(BadRequestError);
    expect(bad.param).toBe('file');
    const noPurpose = await failure(client.files.create({ file: await toFile(Buffer.from('{}\n'), 'x.jsonl') } as never));
    expect(noPurpose).toBeInstanceOf(BadRequestError);
    expect(noPurpose.param).toBe('purpose');
  });

  it('deletes a file: it is gone from retrieve, content and the list', async () => {
    const { client } = await start();
    const kept = await upload(client, [chatLine('a')]);
    const gone = await upload(client, [chatLine('b')]);
    expect(await client.files.delete(gone.id)).toEqual({ id: gone.id, object: 'file', deleted: true });
    expect(await failure(client.files.retrieve(gone.id))).toBeInstanceOf(NotFoundError);
    expect(await failure(client.files.content(gone.id))).toBeInstanceOf(NotFoundError);
    expect(await failure(client.files.delete(gone.id))).toBeInstanceOf(NotFoundError);
    const listed = [];
    for await (const file of client.files.list()) listed.push(file.id);
    expect(listed).toEqual([kept.id]);
  });

  it('removes its files from disk when closed, even with a batch half done', async () => {
    const filesDir = await tempDir();
    const { server, client, advance } = await start({ filesDir, batch: { processingMs: 4000 } });
    const created = await submit(client, ['a', 'b', 'c', 'd'].map((id) => chatLine(id)));
    advance(2000);
    expect((await client.batches.retrieve(created.id)).request_counts?.completed).toBe(2);
    expect(await readdir(filesDir)).toHaveLength(1);
    await server.close();
    servers.splice(servers.indexOf(server), 1);
    expect(await readdir(filesDir)).toEqual([]);
  });

  it('leaves no folder behind when the server cannot listen', async () => {
    const { server } = await start();
    const filesDir = await tempDir();
    await expect(startOfflineServer({ port: server.port, filesDir })).rejects.toThrow();
    expect(await readdir(filesDir)).toEqual([]);
  });
});

describe('batches', () => {
  it('runs a chat batch to completion with the same replies as the live endpoint', async () => {
    const { client } = await start();
    const lines = [chatLine('one'), chatLine('two'), chatLine('three')];
    const created = await submit(client, lines);
    expect(created).toMatchObject({ object: 'batch', status: 'validating', endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { part: '1' } });
    expect(created.expires_at).toBe(created.created_at + 24 * 3600);

    const batch = await client.batches.retrieve(created.id);
    expect(batch.status).toBe('completed');
    expect(batch.model).toBe('gpt-4o-mini');
    expect(batch.request_counts).toEqual({ total: 3, completed: 3, failed: 0 });
    expect(batch.error_file_id).toBeNull();
    for (const at of [batch.in_progress_at, batch.finalizing_at, batch.completed_at]) expect(at).toBeGreaterThanOrEqual(batch.created_at);

    const output = await readJsonl(client, batch.output_file_id);
    expect(output.map((line) => line.custom_id)).toEqual(['one', 'two', 'three']);
    for (const [index, line] of output.entries()) {
      expect(line.error).toBeNull();
      expect(line.id).toMatch(/^batch_req_/);
      expect(line.response?.status_code).toBe(200);
      expect(line.response?.request_id).toMatch(/^req_/);
      const live = await client.chat.completions.create(lines[index]!.body as never);
      expect(line.response?.body.choices).toEqual(live.choices);
      expect(line.response?.body.usage.prompt_tokens).toBe(live.usage?.prompt_tokens);
    }
    expect(batch.usage?.input_tokens).toBe(output.reduce((sum, line) => sum + (line.response?.body.usage.prompt_tokens ?? 0), 0));
    const file = await client.files.retrieve(batch.output_file_id!);
    expect(file.purpose).toBe('batch_output');
  });

  it('runs an image batch into PNG answers with usage', async () => {
    const { client } = await start();
    const line = { custom_id: 'cat', method: 'POST', url: '/v1/images/generations', body: { model: 'gpt-image-1', prompt: 'a cat', size: '1024x1024', quality: 'low' } };
    const created = await submit(client, [line], '/v1/images/generations');
    const batch = await client.batches.retrieve(created.id);
    expect(batch.status).toBe('completed');
    const [answer] = await readJsonl(client, batch.output_file_id);
    const png = Buffer.from(answer?.response?.body.data[0]?.b64_json ?? '', 'base64');
    expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
    expect(answer?.response?.body.usage.output_tokens).toBeGreaterThan(0);
  });

  it('moves through validating, in_progress with counts, finalizing and completed as time passes', async () => {
    const { client, advance } = await start({ batch: { validatingMs: 1000, processingMs: 10_000, finalizingMs: 1000 } });
    const created = await submit(client, ['a', 'b', 'c', 'd'].map((id) => chatLine(id)));
    expect((await client.batches.retrieve(created.id)).status).toBe('validating');
    advance(1000);
    expect(await client.batches.retrieve(created.id)).toMatchObject({ status: 'in_progress', request_counts: { total: 4, completed: 0, failed: 0 } });
    advance(5000);
    expect(await client.batches.retrieve(created.id)).toMatchObject({ status: 'in_progress', request_counts: { total: 4, completed: 2, failed: 0 } });
    advance(5000);
    expect(await client.batches.retrieve(created.id)).toMatchObject({ status: 'finalizing', request_counts: { completed: 4 } });
    advance(1000);
    const batch = await client.batches.retrieve(created.id);
    expect(batch.status).toBe('completed');
    expect([batch.in_progress_at, batch.finalizing_at, batch.completed_at]).toEqual([created.created_at + 1, created.created_at + 11, created.created_at + 12]);
  });

  it('maps shuffled output back to every input line by custom_id', async () => {
    const { client } = await start({ batch: { shuffleOutput: true, failLines: [{ status: 400, match: { promptIncludes: 'odd' } }] } });
    const ids = Array.from({ length: 40 }, (_, index) => `job-${index}`);
    const created = await submit(client, ids.map((id, index) => chatLine(id, `${index % 2 === 0 ? 'even' : 'odd'} ${id}`)));
    const batch = await client.batches.retrieve(created.id);
    const output = await readJsonl(client, batch.output_file_id);
    const errors = await readJsonl(client, batch.error_file_id);
    expect(output.map((line) => line.custom_id)).not.toEqual(ids.filter((_, index) => index % 2 === 0));
    expect(new Set([...output, ...errors].map((line) => line.custom_id))).toEqual(new Set(ids));
    for (const line of output) expect(line.response?.body.choices[0]?.message.content).toContain(line.custom_id);
  });

  it('answers failed lines in the error file with their status and error, and counts them', async () => {
    const { client } = await start({
      batch: {
        failLines: [
          { status: 500, match: { customId: 'retry-me' }, times: 1 },
          { status: 400, code: 'invalid_value', match: { line: 3 } },
        ],
      },
    });
    const lines = [chatLine('ok'), chatLine('retry-me'), chatLine('refused'), { ...chatLine('no-messages'), body: { model: 'gpt-4o-mini' } }];
    const batch = await client.batches.retrieve((await submit(client, lines)).id);
    expect(batch).toMatchObject({ status: 'completed', request_counts: { total: 4, completed: 1, failed: 3 } });
    const errors = Object.fromEntries((await readJsonl(client, batch.error_file_id)).map((line) => [line.custom_id, line]));
    expect(errors['retry-me']).toMatchObject({ error: null, response: { status_code: 500, body: { error: { type: 'server_error' } } } });
    expect(errors['refused']).toMatchObject({ response: { status_code: 400, body: { error: { code: 'invalid_value' } } } });
    // A body the endpoint refuses gets the endpoint's own 400.
    expect(errors['no-messages']).toMatchObject({ response: { status_code: 400, body: { error: { param: 'messages' } } } });
    expect((await readJsonl(client, batch.output_file_id)).map((line) => line.custom_id)).toEqual(['ok']);

    // The 500 rule was used up: the line sent again in a new batch succeeds.
    const again = await client.batches.retrieve((await submit(client, [chatLine('retry-me')])).id);
    expect(again.request_counts).toEqual({ total: 1, completed: 1, failed: 0 });
  });

  it('fails validation with every bad line named, and runs none of them', async () => {
    const { server, client } = await start();
    const lines = [
      chatLine('a'),
      'not json',
      chatLine('a'),
      { ...chatLine('b'), url: '/v1/images/generations' },
      { ...chatLine('c'), method: 'GET' },
      { custom_id: 'd', method: 'POST', url: '/v1/chat/completions' },
      chatLine('e', 'Question e', 'gpt-4.1'),
    ];
    const batch = await client.batches.retrieve((await submit(client, lines)).id);
    expect(batch.status).toBe('failed');
    expect(batch.failed_at).toBeGreaterThanOrEqual(batch.created_at);
    expect(batch.errors?.data?.map(({ line, code }) => [line, code])).toEqual([
      [2, 'invalid_json_line'],
      [3, 'duplicate_custom_id'],
      [4, 'invalid_url'],
      [5, 'invalid_request'],
      [6, 'missing_required_parameter'],
      [7, 'mismatched_model'],
    ]);
    for (const error of batch.errors?.data ?? []) expect(error.message).toBeTruthy();
    expect(batch.output_file_id).toBeNull();
    expect(server.batchLinesSubmitted('a')).toBe(0);
  });

  it('fails validation when told to, with the injected error', async () => {
    const { client } = await start({ batch: { failValidation: { code: 'invalid_request', line: 1, times: 1 } } });
    const first = await client.batches.retrieve((await submit(client, [chatLine('a')])).id);
    expect(first).toMatchObject({ status: 'failed', errors: { data: [{ code: 'invalid_request', line: 1 }] } });
    expect((await client.batches.retrieve((await submit(client, [chatLine('a')])).id)).status).toBe('completed');
  });

  it('refuses files over the request and size caps, and accepts them at the caps', async () => {
    const atCapsLines = ['a', 'b', 'c'].map((id) => chatLine(id, 'x'.repeat(100)));
    const { client } = await start({ batch: { maxRequests: 3, maxBytes: Buffer.byteLength(jsonl(atCapsLines)) } });
    const tooMany = await client.batches.retrieve((await submit(client, ['a', 'b', 'c', 'd'].map((id) => chatLine(id, 'q')))).id);
    expect(tooMany).toMatchObject({ status: 'failed', errors: { data: [{ code: 'too_many_tasks', line: null }] } });
    const tooBig = await client.batches.retrieve((await submit(client, [chatLine('a', 'x'.repeat(700))])).id);
    expect(tooBig).toMatchObject({ status: 'failed', errors: { data: [{ code: 'file_too_large', line: null }] } });
    const atCaps = await client.batches.retrieve((await submit(client, atCapsLines)).id);
    expect(atCaps.status).toBe('completed');
  });

  it('expires with the finished lines kept and the rest reported as batch_expired', async () => {
    const { client, advance } = await start({ batch: { processingMs: 40_000, expiresAfterMs: 20_000 } });
    const ids = ['a', 'b', 'c', 'd'];
    const created = await submit(client, ids.map((id) => chatLine(id)));
    advance(30_000);
    const batch = await client.batches.retrieve(created.id);
    expect(batch).toMatchObject({ status: 'expired', expired_at: created.expires_at, request_counts: { total: 4, completed: 2, failed: 0 } });
    expect((await readJsonl(client, batch.output_file_id)).map((line) => line.custom_id)).toEqual(['a', 'b']);
    const errors = await readJsonl(client, batch.error_file_id);
    expect(errors.map((line) => [line.custom_id, line.response, line.error?.code])).toEqual([
      ['c', null, 'batch_expired'],
      ['d', null, 'batch_expired'],
    ]);
  });

  it('expires after a given number of lines when told to', async () => {
    const { client } = await start({ batch: { expire: { afterLines: 1, times: 1 } } });
    const batch = await client.batches.retrieve((await submit(client, [chatLine('a'), chatLine('b')])).id);
    expect(batch).toMatchObject({ status: 'expired', request_counts: { completed: 1 } });
    expect((await readJsonl(client, batch.error_file_id)).map((line) => line.error?.code)).toEqual(['batch_expired']);
  });

  it('cancels a running batch: cancelling, then cancelled with its finished lines kept', async () => {
    const { client, advance } = await start({ batch: { processingMs: 4000, cancellingMs: 1000 } });
    const created = await submit(client, ['a', 'b', 'c', 'd'].map((id) => chatLine(id)));
    advance(1000);
    await client.batches.retrieve(created.id);
    advance(1000);
    const cancelling = await client.batches.cancel(created.id);
    expect(cancelling).toMatchObject({ status: 'cancelling', request_counts: { completed: 2 } });
    expect(cancelling.cancelling_at).toBeGreaterThan(0);
    advance(5000);
    const batch = await client.batches.retrieve(created.id);
    expect(batch).toMatchObject({ status: 'cancelled', request_counts: { total: 4, completed: 2 } });
    expect((await readJsonl(client, batch.output_file_id)).map((line) => line.custom_id)).toEqual(['a', 'b']);
    expect((await readJsonl(client, batch.error_file_id)).map((line) => [line.custom_id, line.error?.code])).toEqual([
      ['c', 'batch_cancelled'],
      ['d', 'batch_cancelled'],
    ]);
    expect(await failure(client.batches.cancel(created.id))).toBeInstanceOf(BadRequestError);
  });

  it('is cancelled from elsewhere after a given number of lines when told to', async () => {
    const { client } = await start({ batch: { cancel: { afterLines: 2 } } });
    const batch = await client.batches.retrieve((await submit(client, ['a', 'b', 'c'].map((id) => chatLine(id)))).id);
    expect(batch).toMatchObject({ status: 'cancelled', request_counts: { completed: 2 } });
    expect((await readJsonl(client, batch.error_file_id)).map((line) => line.custom_id)).toEqual(['c']);
  });

  it('fails a batch with token_limit_exceeded while the model has too many tokens enqueued, and takes it once they finish', async () => {
    const { client, advance } = await start({ batch: { processingMs: 10_000, enqueuedTokenLimit: 2000 } });
    const lines = ['a', 'b', 'c'].map((id) => ({ ...chatLine(id), body: { ...chatLine(id).body, max_completion_tokens: 500 } }));
    const first = await submit(client, lines);
    expect((await client.batches.retrieve(first.id)).status).toBe('in_progress');

    const refused = await client.batches.retrieve((await submit(client, [lines[0]!])).id);
    expect(refused.status).toBe('failed');
    expect(refused.errors?.data).toEqual([{ code: 'token_limit_exceeded', line: null, param: null, message: expect.stringContaining('gpt-4o-mini') }]);
    // Another model has its own limit.
    const other = await client.batches.retrieve((await submit(client, [{ ...lines[0]!, body: { ...lines[0]!.body, model: 'gpt-4.1' } }])).id);
    expect(other.status).toBe('in_progress');

    advance(10_000);
    const taken = await client.batches.retrieve((await submit(client, [lines[0]!])).id);
    expect(taken.status).toBe('in_progress');
    expect((await client.batches.retrieve(first.id)).status).toBe('completed');
  });

  it('lists batches newest first, a page at a time with after and limit', async () => {
    const { client } = await start();
    const ids = [];
    for (const id of ['a', 'b', 'c', 'd', 'e']) ids.push((await submit(client, [chatLine(id)])).id);
    const newestFirst = [...ids].reverse();
    const page = await client.batches.list({ limit: 2 });
    expect(page.data.map((batch) => batch.id)).toEqual(newestFirst.slice(0, 2));
    expect(page.has_more).toBe(true);
    const next = await client.batches.list({ limit: 2, after: page.data[1]!.id });
    expect(next.data.map((batch) => batch.id)).toEqual(newestFirst.slice(2, 4));
    const all = [];
    for await (const batch of client.batches.list({ limit: 2 })) all.push(batch);
    expect(all.map((batch) => batch.id)).toEqual(newestFirst);
    // Listing brings statuses up to date, as retrieving does.
    expect(all.every((batch) => batch.status === 'completed')).toBe(true);
    expect(all.map((batch) => batch.metadata)).toEqual(ids.map(() => ({ part: '1' })));
  });

  it('refuses bad create requests as the API does', async () => {
    const { client } = await start();
    const file = await upload(client, [chatLine('a')]);
    const create = (fields: Record<string, unknown>) =>
      failure(client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', ...fields } as never));
    expect((await create({ completion_window: '48h' })).param).toBe('completion_window');
    expect((await create({ endpoint: '/v1/embeddings' })).param).toBe('endpoint');
    expect((await create({ metadata: { key: 1 } })).param).toBe('metadata');
    expect((await create({ output_expires_after: { anchor: 'created_at', seconds: 60 } })).param).toBe('output_expires_after.seconds');
    expect(await create({ input_file_id: 'file-missing' })).toBeInstanceOf(NotFoundError);
    expect(await failure(client.batches.retrieve('batch_missing'))).toBeInstanceOf(NotFoundError);
  });

  it('keeps running a batch whose input file was deleted after submission', async () => {
    const { client, advance } = await start({ batch: { validatingMs: 1000 } });
    const file = await upload(client, [chatLine('a')]);
    const created = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    await client.files.delete(file.id);
    advance(1000);
    const batch = await client.batches.retrieve(created.id);
    expect(batch).toMatchObject({ status: 'completed', request_counts: { completed: 1 } });
  });

  it('counts each line body submitted, so a resubmitted body shows', async () => {
    const { server, client } = await start();
    await client.batches.retrieve((await submit(client, [chatLine('a'), chatLine('b')])).id);
    expect(server.batchLinesSubmittedTwice()).toEqual([]);
    await client.batches.retrieve((await submit(client, [chatLine('a', 'another question')])).id);
    expect(server.batchLinesSubmitted('a')).toBe(2);
    expect(server.batchLinesSubmittedTwice()).toEqual([]);
    await client.batches.retrieve((await submit(client, [chatLine('b')])).id);
    expect(server.batchLinesSubmitted('b', chatLine('b').body)).toBe(2);
    expect(server.batchLinesSubmittedTwice()).toEqual(['b']);
  });

  it('answers injected faults on the batch endpoints, and logs their requests, like any API request', async () => {
    const { server, client } = await start();
    const file = await upload(client, [chatLine('a')]);
    server.setFaults([{ status: 500, match: { path: '/v1/batches' }, times: 1 }]);
    const create = () => client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    expect(await failure(create())).toBeInstanceOf(InternalServerError);
    expect((await create()).status).toBe('validating');
    expect(server.requests.map((request) => [request.path, request.status])).toEqual([
      ['/v1/files', 200],
      ['/v1/batches', 500],
      ['/v1/batches', 200],
    ]);
  });
});
