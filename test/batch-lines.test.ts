import { describe, expect, it } from 'vitest';
import { CUSTOM_ID_MAX, customIdOf, parseResultLine, readCustomId, requestLine } from '../src/batch/lines.js';
import type { Job } from '../src/common/types.js';
import { fingerprint } from '../src/jobs/fingerprint.js';
import { loadJobs } from '../src/jobs/load.js';
import { tempDir, writeJobs } from './helpers.js';

const PIXEL = 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';

async function load(records: object[]): Promise<Job[]> {
  const file = await writeJobs(await tempDir(), records);
  const { jobs, problems } = await loadJobs([file]);
  expect(problems).toEqual([]);
  return jobs;
}

const chatJob = (id: string, prompt: string): Job => ({
  id,
  kind: 'chat',
  model: 'gpt-4o-mini',
  tags: [],
  source: { file: 'jobs.jsonl', line: 1 },
  endpoint: '/v1/chat/completions',
  body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }] },
});

describe('a job as a Batch API input line', () => {
  it('sends the job endpoint and the exact body a live run sends: the same request fingerprint', async () => {
    const jobs = await load([
      { id: 'chat', model: 'gpt-4o-mini', system: 'Be brief.', prompt: 'Ünïcödé ✓', temperature: 0.2, max_tokens: 50, params: { stop: ['\n'] } },
      { id: 'vision', model: 'gpt-4o-mini', prompt: 'What is this?', images: [PIXEL], detail: 'low' },
      { id: 'image', model: 'gpt-image-1', prompt: 'A lighthouse', size: '1024x1024', n: 2 },
    ]);
    for (const job of jobs) {
      const sent = JSON.parse(JSON.stringify(requestLine(job))) as Record<string, unknown>;
      expect(Object.keys(sent).sort()).toEqual(['body', 'custom_id', 'method', 'url']);
      expect(sent.method).toBe('POST');
      expect(sent.url).toBe(job.endpoint);
      expect(sent.body).toEqual(job.body);
      expect(fingerprint({ endpoint: job.endpoint, body: sent.body as Record<string, unknown> })).toBe(fingerprint(job));
      expect(sent.custom_id).toBe(customIdOf(job.id, fingerprint(job)));
    }
  });

  it('names the job and its request in the custom_id, so the answer maps back to that job', () => {
    const job = chatJob('q-17', 'Hello');
    const fp = fingerprint(job);
    const key = readCustomId(customIdOf(job.id, fp));
    expect(key).toEqual({ id: 'q-17', fingerprintTag: fp.slice(0, key!.fingerprintTag.length) });
    expect(key!.fingerprintTag.length).toBeGreaterThanOrEqual(12);
  });

  it('gives an id reused with another request another custom_id, and the same request the same one', () => {
    const first = chatJob('same', 'First question');
    const edited = chatJob('same', 'Edited question');
    expect(customIdOf('same', fingerprint(first))).not.toBe(customIdOf('same', fingerprint(edited)));
    expect(customIdOf('same', fingerprint(first))).toBe(customIdOf('same', fingerprint(chatJob('same', 'First question'))));
  });

  it('keeps every custom_id within the limit, and apart, whatever the ids look like', () => {
    const fp = fingerprint(chatJob('x', 'Hello'));
    const long = 'x'.repeat(300);
    const ids = [
      'a',
      '7',
      long,
      `${long}y`,
      'x'.repeat(CUSTOM_ID_MAX),
      'ends~0123456789ab',
      '#looks-like-a-digest',
      'naïve façade 🌙',
      'line\nbreak',
      '🌙'.repeat(40),
      ' spaced ',
    ];
    const customIds = ids.map((id) => customIdOf(id, fp));
    for (const customId of customIds) {
      expect(customId.length).toBeLessThanOrEqual(CUSTOM_ID_MAX);
      expect(Buffer.byteLength(customId)).toBeLessThanOrEqual(CUSTOM_ID_MAX);
      expect(customId).toMatch(/^[\x21-\x7e]+$/);
    }
    expect(new Set(customIds).size).toBe(ids.length);
    // An id shown as it is reads back as itself; one that is not reads back as a digest, never as another id.
    for (const [index, id] of ids.entries()) {
      const key = readCustomId(customIds[index]!);
      expect(key).toBeDefined();
      if (key && 'id' in key) expect(key.id).toBe(id);
    }
    expect(readCustomId(customIdOf('a', fp))).toMatchObject({ id: 'a' });
    expect(readCustomId(customIdOf(long, fp))).not.toHaveProperty('id');
  });

  it('reads no job from a custom_id nightshift did not write', () => {
    for (const foreign of ['', 'request-1', 'a~xyz', '~0123456789ab', 'a~0123456789AB']) expect(readCustomId(foreign)).toBeUndefined();
  });
});

describe('a Batch API output or error line', () => {
  const answer = { id: 'chatcmpl-1', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'Hi' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } };

  it('reads an answer: its custom_id, status, request id and body', () => {
    const line = { id: 'batch_req_1', custom_id: 'q~0123456789ab', response: { status_code: 200, request_id: 'req_1', body: answer }, error: null };
    expect(parseResultLine(JSON.stringify(line))).toEqual({
      result: { customId: 'q~0123456789ab', ok: true, status: 200, requestId: 'req_1', body: answer },
    });
  });

  it('reads a line the endpoint refused: its status and the error type and code', () => {
    const body = { error: { message: 'Slow down', type: 'rate_limit_exceeded', code: 'rate_limit', param: null } };
    const line = { id: 'batch_req_2', custom_id: 'q', response: { status_code: 429, request_id: 'req_2', body }, error: null };
    expect(parseResultLine(JSON.stringify(line))).toEqual({
      result: { customId: 'q', ok: false, status: 429, requestId: 'req_2', error: { type: 'rate_limit_exceeded', code: 'rate_limit', message: 'Slow down' } },
    });
  });

  it('reads a line the batch never ran (expired, cancelled): its error code, no status', () => {
    const line = { id: 'batch_req_3', custom_id: 'q', response: null, error: { code: 'batch_expired', message: 'Not run in time.' } };
    expect(parseResultLine(JSON.stringify(line))).toEqual({ result: { customId: 'q', ok: false, error: { code: 'batch_expired', message: 'Not run in time.' } } });
  });

  it('reports a line that is not what the API writes, with its custom_id when it has one', () => {
    const deep = `{"custom_id":"q","response":{"status_code":200,"body":${'['.repeat(200)}${']'.repeat(200)}}}`;
    const cases: [string, string | undefined][] = [
      ['not json', undefined],
      ['[1,2]', undefined],
      ['null', undefined],
      ['{"response":{"status_code":200,"body":{}}}', undefined],
      ['{"custom_id":"","response":{"status_code":200,"body":{}}}', undefined],
      ['{"custom_id":5,"response":{"status_code":200,"body":{}}}', undefined],
      ['{"custom_id":"q","response":null,"error":null}', 'q'],
      ['{"custom_id":"q"}', 'q'],
      ['{"custom_id":"q","response":{"status_code":"200","body":{}}}', 'q'],
      ['{"custom_id":"q","response":{"status_code":200.5,"body":{}}}', 'q'],
      ['{"custom_id":"q","response":{"status_code":200,"body":"text"}}', 'q'],
      ['{"custom_id":"q","response":{"status_code":200,"body":[]}}', 'q'],
      ['{"custom_id":"q","response":{"status_code":200}}', 'q'],
      ['{"custom_id":"q","response":"oops"}', 'q'],
      ['{"custom_id":"q","response":null,"error":"oops"}', 'q'],
      [deep, undefined],
    ];
    for (const [text, customId] of cases) {
      const parsed = parseResultLine(text);
      expect(parsed, text).not.toHaveProperty('result');
      expect(parsed, text).toHaveProperty('problem');
      if ('problem' in parsed) expect(parsed.customId, text).toBe(customId);
    }
  });

  it('never throws, whatever part of a line it is given', () => {
    const text = JSON.stringify({ id: 'batch_req_1', custom_id: 'q', response: { status_code: 500, request_id: 'r', body: { error: { type: 5, code: [], message: {} } } }, error: null });
    for (let end = 0; end <= text.length; end++) expect(() => parseResultLine(text.slice(0, end))).not.toThrow();
    expect(parseResultLine(text)).toEqual({ result: { customId: 'q', ok: false, status: 500, requestId: 'r', error: {} } });
  });
});
