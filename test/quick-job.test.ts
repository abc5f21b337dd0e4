import { describe, expect, it } from 'vitest';
import type { SourceLocation } from '../src/common/types.js';
import { CHAT_FIELD_NAMES, IMAGE_FIELD_NAMES } from '../src/jobs/job-fields.js';
import type { CliDefaults } from '../src/jobs/defaults.js';
import { toJob, type NormalizeContext } from '../src/jobs/normalize.js';
import { quickJob } from '../src/jobs/quick-job.js';
import type { JsonJobRecord } from '../src/jobs/records.js';
import { chatFields, imageFields } from '../src/jobs/schema.js';

/** Values of each field the generator picks from: valid ones, edges and wrong types. */
const VALUES: Record<string, unknown[]> = {
  id: ['a', 'job-1', 7, 0, -0, 1.5, 1e21, '', ' ', '\u00a0', 'é✓', null, true, [], {}],
  kind: ['chat', 'vision', 'image', 'Chat', '', null],
  model: ['gpt-4o-mini', 'gpt-5-mini', 'gpt-image-1.5', 'dall-e-3', '', ' ', 3, null],
  tags: [[], ['a', 'b'], [''], ['a', 1], 'a;b', ' a ; ;b ', '', ';', 3, null, { a: 1 }],
  prompt: ['Hello', 'ünïcødé ✓ 𝄞', '  padded  ', '', ' ', '\n', 42, null, ['Hello'], { text: 'Hi' }],
  system: ['Be brief.', '', ' ', 0, null],
  messages: [
    [{ role: 'user', content: 'Hi' }],
    [{ content: 'Hi', role: 'user' }],
    [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: '' },
      { role: 'assistant', content: 'Yes' },
    ],
    [{ role: 'developer', content: 'x' }, { role: 'tool', content: 'y' }],
    [{ role: 'user', content: 'Hi', name: 'me' }],
    [{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }],
    [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/a.png' } }] }],
    [{ role: 'assistant', content: null }],
    [{ role: 'user', content: null }],
    [{ role: 'user' }],
    [{ role: 'robot', content: 'Hi' }],
    [{ role: 'user', content: 3 }],
    [],
    ['Hi'],
    'Hi',
    null,
  ],
  temperature: [0, 0.7, 2, -0, 2.5, -1, '0.7', null, 1e-9],
  top_p: [0, 0.5, 1, 1.1, '1', null],
  max_completion_tokens: [1, 50, Number.MAX_SAFE_INTEGER, 0, -5, 1.5, '50', Number.MAX_SAFE_INTEGER + 2, null],
  max_tokens: [1, 100, 0, 2.5, '100'],
  seed: [0, -3, 42, 1.5, '42', Number.MAX_SAFE_INTEGER + 2],
  response_format: [
    'json',
    'json_object',
    'text',
    'JSON',
    { type: 'text' },
    { type: 'json_object' },
    { type: 'json_object', extra: 1 },
    { type: 'json_schema', json_schema: { name: 'x', schema: {} } },
    { type: 'other' },
    'url',
    'b64_json',
    null,
  ],
  params: [
    {},
    { reasoning_effort: 'low' },
    { stop: ['\n'], logprobs: true, nested: { deep: [1, { x: null }] } },
    { temperature: 0.3 },
    { temperature: 0.3, top_p: 0.9, reasoning_effort: 'high' },
    { temperature: 5 },
    { seed: '1' },
    { model: 'gpt-4o' },
    { messages: [] },
    { stream: true },
    { stream_options: {} },
    JSON.parse('{"__proto__": {"x": 1}, "y": 2}') as unknown,
    [],
    'x',
    null,
  ],
  service_tier: ['auto', 'default', 'flex', 'priority', 'scale', '', null],
  size: ['1024x1024', '1536x1024', 'auto', '1024X1024', '0x10', '512x512', 1024, ''],
  quality: ['auto', 'low', 'medium', 'high', 'standard', 'hd', 'ultra', null],
  n: [1, 2, 10, 11, 0, 1.5, '2'],
  output_format: ['png', 'jpeg', 'webp', 'gif'],
  background: ['auto', 'transparent', 'opaque', 'clear'],
  moderation: ['auto', 'low', 'high'],
  output_compression: [0, 50, 100, 101, -1, 2.5],
  style: ['vivid', 'natural', 'bold'],
  output: ['{id}.png', '{id}-{index}.png', 'cats/{id}.webp', '', '../x.png', '/abs.png', 'a.png', 3],
  // Of no kind the quick check knows: a record with them is never its.
  images: ['https://example.com/a.png'],
  detail: ['low'],
  custom_id: ['x'],
  promt: ['Hello'],
};

/** Deterministic pseudo-random numbers (mulberry32), so that a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CONTEXTS: CliDefaults[] = [
  {},
  { model: 'gpt-4o-mini' },
  { model: 'gpt-image-1.5' },
  { system: 'Answer in French.', serviceTier: 'flex', temperature: 1, maxCompletionTokens: 64 },
];

let line = 0;
const recordOf = (value: unknown): JsonJobRecord => {
  line++;
  const source: SourceLocation = { file: '/tmp/jobs.jsonl', line };
  return { type: 'job', source, index: line, value };
};
const contextOf = (cli: CliDefaults, fileDefaults: Record<string, unknown> = {}): NormalizeContext => ({
  cli,
  fileDefaults,
  loadImage: () => Promise.reject(new Error('no local image in these records')),
});

/** A record of a few fields, most of them the usual ones, each with a value picked from {@link VALUES}. */
function generate(next: () => number): unknown {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  const roll = next();
  if (roll < 0.05) return pick(['Hello', '', ' ', 'ünï ✓', 3, null, [], ['a']]);
  const record: Record<string, unknown> = {};
  // Usually valid: a model and a prompt or messages, so that many records make jobs.
  if (next() < 0.8) record['id'] = next() < 0.9 ? `job-${Math.floor(next() * 1e6)}` : pick(VALUES['id']!);
  const image = next() < 0.3;
  if (next() < 0.7) record['model'] = next() < 0.8 ? (image ? pick(['gpt-image-1.5', 'gpt-image-2', 'dall-e-3', 'dall-e-2']) : 'gpt-4o-mini') : pick(VALUES['model']!);
  if (next() < 0.6) record['prompt'] = next() < 0.8 ? 'Hello' : pick(VALUES['prompt']!);
  else if (next() < 0.8) record['messages'] = next() < 0.6 ? [{ role: 'user', content: 'Hi' }] : pick(VALUES['messages']!);
  const extra = Math.floor(next() * 4);
  const fields = Object.keys(VALUES);
  const usual: readonly string[] = image ? IMAGE_FIELD_NAMES : CHAT_FIELD_NAMES;
  for (let i = 0; i < extra; i++) {
    const field = pick(fields);
    // Fields of the other kind, or of none, now and then, never often.
    if (!usual.includes(field) && next() < 0.8) continue;
    record[field] = pick(VALUES[field]!);
  }
  return record;
}

describe('the quick check of common jobs', () => {
  it('knows the chat and image fields the schema has', () => {
    expect([...CHAT_FIELD_NAMES].sort()).toEqual(Object.keys(chatFields).sort());
    expect([...IMAGE_FIELD_NAMES].sort()).toEqual(Object.keys(imageFields).sort());
  });

  it('makes exactly the job the full validation makes, or declines, on thousands of generated records', async () => {
    const next = random(17);
    let made = 0;
    let declined = 0;
    const kinds = new Map<string, number>();
    for (let i = 0; i < 6000; i++) {
      const value = generate(next);
      const context = contextOf(CONTEXTS[i % CONTEXTS.length]!);
      const record = recordOf(value);
      const quick = quickJob(record, context);
      if (quick === undefined) {
        declined++;
        continue;
      }
      made++;
      kinds.set(quick.job.kind, (kinds.get(quick.job.kind) ?? 0) + 1);
      const full = await toJob(record, context);
      // Same job, field for field and key for key: the journal and the fingerprint see the same request.
      expect({ value, full }).toEqual({ value, full: quick });
      expect(JSON.stringify(quick)).toBe(JSON.stringify(full));
    }
    // Both paths are well exercised.
    expect(made).toBeGreaterThan(1000);
    expect(declined).toBeGreaterThan(1000);
    expect(kinds.get('image')).toBeGreaterThan(300);
    expect(kinds.get('chat')).toBeGreaterThan(300);
  });

  it('vouches for the usual chat jobs', async () => {
    const usual: unknown[] = [
      'Hello',
      { id: 'a', model: 'gpt-4o-mini', prompt: 'Hello' },
      { model: 'gpt-4o-mini', prompt: 'Hello' },
      { id: 3, model: 'gpt-5-mini', system: 'Be brief.', prompt: 'ünïcødé ✓', tags: 'a;b', max_completion_tokens: 200 },
      { id: 'b', model: 'gpt-4o-mini', messages: [{ role: 'system', content: 'x' }, { role: 'user', content: 'y' }], temperature: 0 },
      { id: 'c', model: 'gpt-4o-mini', prompt: 'Hi', params: { reasoning_effort: 'low', temperature: 0.2 }, seed: 1, response_format: 'json' },
      { id: 'd', kind: 'chat', model: 'gpt-image-1.5', prompt: 'Hi', service_tier: 'flex', top_p: 1, max_tokens: 10 },
      { id: 'e', model: 'gpt-image-1.5', prompt: 'A cat', size: '1024x1024', quality: 'low' },
      { model: 'gpt-image-2', prompt: 'A dog', n: 2, output_format: 'webp', output: 'dogs/{id}-{index}.webp', tags: ['pets'] },
      { id: 'f', prompt: 'An owl', size: '1024x1536', background: 'opaque' },
      { id: 'g', kind: 'image', model: 'dall-e-3', prompt: 'A fox', quality: 'hd', style: 'vivid', response_format: 'b64_json' },
    ];
    for (const value of usual) {
      const context = contextOf({ model: 'gpt-4o-mini', system: 'Answer briefly.' });
      const record = recordOf(value);
      const quick = quickJob(record, context);
      expect(quick, JSON.stringify(value)).toBeDefined();
      expect(quick).toEqual(await toJob(record, context));
    }
  });

  it('declines what only the full validation can decide: problems, file defaults, CSV rows, vision jobs', () => {
    const context = contextOf({});
    const declined: unknown[] = [
      { id: 'a', prompt: 'Hello' },
      { id: 'a', model: 'gpt-4o-mini', prompt: 'Hello', messages: [{ role: 'user', content: 'Hi' }] },
      { id: 'a', model: 'gpt-4o-mini', prompt: 'Hello', promt: 'x' },
      { id: 'a', model: 'gpt-4o-mini', prompt: 'Hello', temperature: '0.5' },
      { id: 'a', model: 'gpt-4o-mini', images: ['https://example.com/a.png'], prompt: 'Hi' },
      { id: 'a', model: 'gpt-image-1.5', prompt: 'A cat', temperature: 1 },
      { id: 'a', model: 'gpt-image-1.5', prompt: 'A cat', n: 2, output: '{id}.png' },
      { id: 'a', kind: 'image', model: 'my-image-model', prompt: 'A cat', n: 11 },
      { id: 'a', model: 'gpt-4o-mini', prompt: 'A cat', size: '1024x1024' },
      { custom_id: 'a', method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-4o-mini', messages: [] } },
    ];
    for (const value of declined) expect(quickJob(recordOf(value), context), JSON.stringify(value)).toBeUndefined();
    expect(quickJob(recordOf({ id: 'a', prompt: 'Hi' }), contextOf({}, { model: 'gpt-4o-mini' }))).toBeUndefined();
    const row = { type: 'row' as const, source: { file: '/tmp/jobs.csv', line: 2 }, index: 1, cells: { id: 'a', model: 'gpt-4o-mini', prompt: 'Hi' } };
    expect(quickJob(row, context)).toBeUndefined();
  });
});
