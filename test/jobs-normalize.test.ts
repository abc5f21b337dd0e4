import { describe, expect, test } from 'vitest';
import { parseFileDefaults } from '../src/jobs/defaults.js';
import type { ImageLoader } from '../src/jobs/images.js';
import { toJob, type NormalizeContext, type NormalizeResult } from '../src/jobs/normalize.js';
import type { JsonJobRecord, RowRecord } from '../src/jobs/records.js';
import type { Job, Problem } from '../src/common/types.js';

const PNG_URL = 'data:image/png;base64,AAAA';
const loadImage: ImageLoader = async (path) => (path.endsWith('.png') ? { url: PNG_URL } : { error: `cannot read ${path}` });

const context = (overrides: Partial<NormalizeContext> = {}): NormalizeContext => ({ cli: {}, fileDefaults: {}, loadImage, ...overrides });
const jobRecord = (value: unknown, index = 1, file = 'dir/prompts.jsonl'): JsonJobRecord => ({ type: 'job', source: { file, line: index }, index, value });
const rowRecord = (cells: Record<string, string>, line = 2): RowRecord => ({ type: 'row', source: { file: 'dir/table.csv', line }, index: line - 1, cells });

function jobOf(result: NormalizeResult): Job {
  if ('problems' in result) throw new Error(`expected a job, got problems: ${JSON.stringify(result.problems)}`);
  return result.job;
}
function problemsOf(result: NormalizeResult): Problem[] {
  if ('job' in result) throw new Error(`expected problems, got job ${result.job.id}`);
  return result.problems;
}
const normalize = async (value: unknown, overrides: Partial<NormalizeContext> = {}) => toJob(jobRecord(value), context(overrides));

describe('ids', () => {
  test('names a job without an id by its file name and a hash of its request, wherever it stands', async () => {
    const job = jobOf(await toJob(jobRecord({ model: 'gpt-5-mini', prompt: 'Hi' }, 3), context()));
    expect(job.id).toMatch(/^prompts-[0-9a-f]{12}$/);
    expect(jobOf(await toJob(jobRecord({ model: 'gpt-5-mini', prompt: 'Hi' }, 7), context())).id).toBe(job.id);
    expect(jobOf(await toJob(jobRecord({ model: 'gpt-5-mini', prompt: 'Hello' }, 3), context())).id).not.toBe(job.id);
  });

  test('turns a numeric id into a string', async () => {
    expect(jobOf(await normalize({ id: 7, model: 'gpt-5-mini', prompt: 'Hi' })).id).toBe('7');
  });

  test('reports an id that is neither a string nor a number, and claims no id', async () => {
    const result = await normalize({ id: ['a'], model: 'gpt-5-mini', prompt: 'Hi' });
    const [problem] = problemsOf(result);
    expect(problem).toMatchObject({ field: 'id', line: 1 });
    expect(problem?.jobId).toBeUndefined();
    expect(result).toHaveProperty('id', undefined);
  });

  test('tells the id of an invalid record, so duplicates can still be found', async () => {
    expect(await normalize({ id: 'x', prompt: 'Hi' })).toHaveProperty('id', 'x');
    // A record without an id is named by its request, which an invalid record does not have.
    expect(await toJob(jobRecord({ prompt: 'Hi' }, 4), context())).toHaveProperty('id', undefined);
  });
});

describe('kind inference', () => {
  test.each([
    [{ prompt: 'Hi', model: 'gpt-5-mini' }, 'chat'],
    [{ system: 'Be brief.', prompt: 'Hi', model: 'gpt-5-mini' }, 'chat'],
    [{ messages: [{ role: 'user', content: 'Hi' }], model: 'gpt-5-mini' }, 'chat'],
    [{ prompt: 'What is this?', images: ['cat.png'], model: 'gpt-4.1-mini' }, 'vision'],
    [{ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x.test/a.png' } }] }], model: 'gpt-4.1-mini' }, 'vision'],
    [{ prompt: 'A cat', size: '1024x1024' }, 'image'],
    [{ prompt: 'A cat', output: 'cat.png' }, 'image'],
    [{ prompt: 'A cat', model: 'gpt-image-1-mini' }, 'image'],
    [{ prompt: 'A cat', model: 'dall-e-3' }, 'image'],
  ])('infers %j as %s', async (value, kind) => {
    expect(jobOf(await normalize(value)).kind).toBe(kind);
  });

  test('reports a record that gives nothing to infer a kind from', async () => {
    const [problem] = problemsOf(await normalize({ model: 'gpt-5-mini', temperature: 1 }));
    expect(problem).toMatchObject({ field: 'kind', line: 1 });
  });

  test('reports an unknown stated kind', async () => {
    const [problem] = problemsOf(await normalize({ kind: 'audio', prompt: 'Hi' }));
    expect(problem).toMatchObject({ field: 'kind' });
  });

  test('infers an image job from an image model given on the command line', async () => {
    expect(jobOf(await normalize({ prompt: 'A cat' }, { cli: { model: 'gpt-image-1' } })).kind).toBe('image');
  });
});

describe('defaults', () => {
  const fileDefaults = (value: Record<string, unknown>) => parseFileDefaults(value).defaults;

  test('takes job fields over file defaults over command-line defaults', async () => {
    const defaults = { cli: { model: 'cli-model', system: 'cli system' }, fileDefaults: fileDefaults({ model: 'file-model', temperature: 0.5 }) };
    const own = jobOf(await normalize({ prompt: 'Hi', model: 'job-model', temperature: 1, system: 'job system' }, defaults));
    expect(own.body).toMatchObject({ model: 'job-model', temperature: 1, messages: [{ role: 'system', content: 'job system' }, { role: 'user' }] });

    const fromFile = jobOf(await normalize({ prompt: 'Hi' }, defaults));
    expect(fromFile.body).toMatchObject({ model: 'file-model', temperature: 0.5, messages: [{ role: 'system', content: 'cli system' }, { role: 'user' }] });

    const fromCli = jobOf(await normalize({ prompt: 'Hi' }, { cli: defaults.cli }));
    expect(fromCli.model).toBe('cli-model');
  });

  test('does not give a job with messages a default prompt or system', async () => {
    const job = jobOf(
      await normalize(
        { model: 'gpt-5-mini', messages: [{ role: 'user', content: 'Hi' }] },
        { cli: { system: 'cli system' }, fileDefaults: fileDefaults({ prompt: 'Default prompt', system: 'file system' }) },
      ),
    );
    expect(job.body['messages']).toEqual([{ role: 'user', content: 'Hi' }]);
  });

  test('applies only the defaults that fit the job kind', async () => {
    const defaults = fileDefaults({ model: 'gpt-5-mini', temperature: 0.2, quality: 'low' });
    const chat = jobOf(await normalize({ kind: 'chat', prompt: 'Hi' }, { fileDefaults: defaults }));
    expect(chat.body).not.toHaveProperty('quality');
    const image = jobOf(await normalize({ kind: 'image', prompt: 'A cat', model: 'gpt-image-1.5' }, { fileDefaults: defaults }));
    expect(image.body).toEqual({ model: 'gpt-image-1.5', prompt: 'A cat', quality: 'low' });
  });

  test('gives image jobs gpt-image-2, not a chat model from the command line', async () => {
    const job = jobOf(await normalize({ prompt: 'A cat', size: '1024x1024' }, { cli: { model: 'gpt-5-mini' } }));
    expect(job.model).toBe('gpt-image-2');
  });

  test('reports invalid, unknown and id defaults once, with a defaults. path', () => {
    const { defaults, problems } = parseFileDefaults({ temperature: 'hot', colour: 'red', id: 'x', model: 'gpt-5-mini' });
    expect(problems.map((problem) => problem.field)).toEqual(['defaults.temperature', 'defaults.colour', 'defaults.id']);
    expect(defaults).toEqual({ model: 'gpt-5-mini' });
  });

  test('keeps a default that is valid for some kind', () => {
    expect(parseFileDefaults({ response_format: 'b64_json' }).defaults).toEqual({ response_format: 'b64_json' });
    expect(parseFileDefaults({ response_format: 'json' }).defaults).toEqual({ response_format: 'json' });
  });
});

describe('chat bodies', () => {
  test('builds the body from model, messages, the given fields and params', async () => {
    const job = jobOf(
      await normalize({
        model: 'gpt-5-mini',
        system: 'Be brief.',
        prompt: 'Hi',
        top_p: 0.9,
        seed: 3,
        max_tokens: 50,
        response_format: 'json',
        params: { reasoning_effort: 'low' },
        tags: 'a; b;',
      }),
    );
    expect(job).toMatchObject({ kind: 'chat', endpoint: '/v1/chat/completions', tags: ['a', 'b'] });
    expect(job.body).toEqual({
      model: 'gpt-5-mini',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
      ],
      top_p: 0.9,
      seed: 3,
      max_completion_tokens: 50,
      response_format: { type: 'json_object' },
      reasoning_effort: 'low',
    });
  });

  test('passes a response_format object through', async () => {
    const format = { type: 'json_schema', json_schema: { name: 'answer', schema: { type: 'object' } } };
    expect(jobOf(await normalize({ model: 'gpt-5-mini', prompt: 'Hi', response_format: format })).body['response_format']).toEqual(format);
  });

  test.each([
    [{ model: 'm', prompt: 'Hi', messages: [{ role: 'user', content: 'Hi' }] }, 'prompt'],
    [{ model: 'm', system: 'Be brief.', messages: [{ role: 'user', content: 'Hi' }] }, 'system'],
    [{ model: 'm', kind: 'chat' }, 'prompt'],
    [{ prompt: 'Hi' }, 'model'],
    [{ model: 'm', prompt: 'Hi', max_tokens: 5, max_completion_tokens: 5 }, 'max_tokens'],
    [{ model: 'm', prompt: 'Hi', temperature: 0, params: { temperature: 1 } }, 'params.temperature'],
    [{ model: 'm', prompt: 'Hi', params: { model: 'other' } }, 'params.model'],
    [{ model: 'm', prompt: 'Hi', params: { stream: true } }, 'params.stream'],
    [{ model: 'm', prompt: 'Hi', params: [] }, 'params'],
    [{ model: 'm', prompt: 'Hi', temperature: 3 }, 'temperature'],
    [{ model: 'm', prompt: 'Hi', max_completion_tokens: 0 }, 'max_completion_tokens'],
    [{ model: 'm', prompt: 'Hi', seed: 1.5 }, 'seed'],
    [{ model: 'm', prompt: 'Hi', response_format: 'yaml' }, 'response_format'],
    [{ model: 'm', prompt: '   ' }, 'prompt'],
    [{ model: 'm', messages: [] }, 'messages'],
    [{ model: 'm', messages: [{ role: 'user' }] }, 'messages.0.content'],
    [{ model: 'm', messages: [{ role: 'user', content: 5 }] }, 'messages.0.content'],
    [{ model: 'm', messages: ['Hi'] }, 'messages.0'],
    [{ model: 'm', prompt: 'Hi', tags: [1] }, 'tags'],
    [{ model: 'm', prompt: 'Hi', size: '1024x1024', kind: 'chat' }, 'size'],
    [{ model: 'm', prompt: 'Hi', frequency_penalty: 1 }, 'frequency_penalty'],
  ])('reports %j at field %s', async (value, field) => {
    const problems = problemsOf(await normalize(value));
    expect(problems.map((problem) => problem.field)).toContain(field);
  });

  test('reports every problem of a record at once', async () => {
    const problems = problemsOf(await normalize({ prompt: 'Hi', temperature: 'hot', top_p: 2, colour: 'red' }));
    expect(problems.map((problem) => problem.field).sort()).toEqual(['colour', 'model', 'temperature', 'top_p']);
  });

  test('accepts an assistant message without content (tool calls)', async () => {
    const messages = [
      { role: 'user', content: 'Weather?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'w', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'c1', content: 'Sunny' },
    ];
    expect(jobOf(await normalize({ model: 'gpt-5-mini', messages })).body['messages']).toEqual(messages);
  });
});

describe('vision bodies', () => {
  test('puts the images after the prompt, inlining local files', async () => {
    const job = jobOf(await normalize({ model: 'gpt-4.1-mini', prompt: 'Compare', images: ['a.png', 'https://x.test/b.jpg'], detail: 'high' }));
    expect(job.body['messages']).toEqual([
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Compare' },
          { type: 'image_url', image_url: { url: PNG_URL, detail: 'high' } },
          { type: 'image_url', image_url: { url: 'https://x.test/b.jpg', detail: 'high' } },
        ],
      },
    ]);
  });

  test('resolves local images against the job file folder', async () => {
    const seen: string[] = [];
    const spy: ImageLoader = async (path) => (seen.push(path), { url: PNG_URL });
    await toJob(jobRecord({ model: 'm', prompt: 'x', images: ['img/a.png', '/abs/b.png'] }, 1, 'jobs/day1/prompts.jsonl'), context({ loadImage: spy }));
    expect(seen).toEqual(['jobs/day1/img/a.png', '/abs/b.png']);
  });

  test('appends the images to the last user message, omitting detail when not given', async () => {
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'First' },
      { role: 'assistant', content: 'Ok' },
      { role: 'user', content: 'What is this?' },
    ];
    const job = jobOf(await normalize({ model: 'gpt-4.1-mini', messages, images: 'a.png' }));
    expect(job.kind).toBe('vision');
    expect((job.body['messages'] as unknown[])[3]).toEqual({
      role: 'user',
      content: [
        { type: 'text', text: 'What is this?' },
        { type: 'image_url', image_url: { url: PNG_URL } },
      ],
    });
    expect(messages[3]).toEqual({ role: 'user', content: 'What is this?' });
  });

  test('reports each image that cannot be used, by position', async () => {
    const problems = problemsOf(await normalize({ model: 'm', prompt: 'x', images: ['ok.png', 'missing.gif', 'ftp://host/a.png'] }));
    expect(problems.map((problem) => problem.field)).toEqual(['images.1', 'images.2']);
  });

  test('requires images for a stated vision job', async () => {
    const [problem] = problemsOf(await normalize({ kind: 'vision', model: 'm', prompt: 'x' }));
    expect(problem).toMatchObject({ field: 'images' });
  });
});

describe('image jobs', () => {
  test('sends only the given fields and defaults the output pattern', async () => {
    const job = jobOf(await normalize({ id: 'cat', prompt: 'A cat', quality: 'high', output_format: 'webp', background: 'opaque', moderation: 'low' }));
    expect(job).toMatchObject({ kind: 'image', model: 'gpt-image-2', endpoint: '/v1/images/generations', output: '{id}.webp' });
    expect(job.body).toEqual({ model: 'gpt-image-2', prompt: 'A cat', quality: 'high', output_format: 'webp', background: 'opaque', moderation: 'low' });
  });

  test('numbers the files of a multi-image job', async () => {
    expect(jobOf(await normalize({ prompt: 'A cat', n: 3 })).output).toBe('{id}-{index}.png');
  });

  test.each([
    [{ prompt: 'A cat', n: 2, output: 'cat.png' }, 'output'],
    [{ prompt: 'A cat', output: '../cat.png' }, 'output'],
    [{ prompt: 'A cat', output: '{name}.png' }, 'output'],
    [{ id: 'a/../../b', prompt: 'A cat', size: 'auto' }, 'id'],
    [{ prompt: 'A cat', n: 11 }, 'n'],
    [{ prompt: 'A cat', size: 'big' }, 'size'],
    [{ prompt: 'A cat', background: 'pink' }, 'background'],
    [{ prompt: 'A cat', output_compression: 101 }, 'output_compression'],
    [{ prompt: 'A cat', size: 'auto', temperature: 1 }, 'temperature'],
    [{ size: '1024x1024' }, 'prompt'],
  ])('reports %j at field %s', async (value, field) => {
    expect(problemsOf(await normalize(value)).map((problem) => problem.field)).toContain(field);
  });
});

describe('CSV rows', () => {
  test('types numbers, JSON cells and lists, and drops empty cells', async () => {
    const job = jobOf(
      await toJob(
        rowRecord({
          id: '',
          model: 'gpt-4.1-mini',
          messages: '[{"role": "user", "content": "Hi"}]',
          temperature: ' 0.5 ',
          seed: '-3',
          params: '{"stop": ["\\n"]}',
          response_format: '{"type": "text"}',
          tags: 'x;y',
          size: '',
        }),
        context(),
      ),
    );
    expect(job.id).toMatch(/^table-[0-9a-f]{12}$/);
    expect(job.tags).toEqual(['x', 'y']);
    expect(job.body).toEqual({
      model: 'gpt-4.1-mini',
      messages: [{ role: 'user', content: 'Hi' }],
      temperature: 0.5,
      seed: -3,
      response_format: { type: 'text' },
      stop: ['\n'],
    });
  });

  test('splits images on ";" but not inside a data URL, or reads a JSON array', async () => {
    const seen: string[] = [];
    const spy: ImageLoader = async (path) => (seen.push(path), { url: PNG_URL });
    const listed = jobOf(await toJob(rowRecord({ model: 'm', prompt: 'x', images: `a.png; ${PNG_URL};b.png` }), context({ loadImage: spy })));
    expect(listed.kind).toBe('vision');
    expect(seen).toEqual(['dir/a.png', 'dir/b.png']);
    const json = jobOf(await toJob(rowRecord({ model: 'm', prompt: 'x', images: '["c.png"]' }), context({ loadImage: spy })));
    expect(json.kind).toBe('vision');
    expect(seen).toEqual(['dir/a.png', 'dir/b.png', 'dir/c.png']);
  });

  test('reports bad cells with their column, once each', async () => {
    const problems = problemsOf(await toJob(rowRecord({ model: 'm', messages: '[{"role": "user",', temperature: 'warm', n: '' }, 5), context()));
    expect(problems).toEqual([
      expect.objectContaining({ line: 5, column: 'messages', field: 'messages' }),
      expect.objectContaining({ line: 5, column: 'temperature', field: 'temperature' }),
    ]);
  });

  test('gives nested fields the column of their top-level field', async () => {
    const [problem] = problemsOf(await toJob(rowRecord({ model: 'm', messages: '[{"role": "robot", "content": "Hi"}]' }), context()));
    expect(problem).toMatchObject({ column: 'messages', field: 'messages.0.role' });
  });
});

describe('Batch API lines', () => {
  const line = (url: string, body: Record<string, unknown>) => ({ custom_id: 'req-1', method: 'POST', url, body });

  test('takes the body as it stands and infers the kind from url and content', async () => {
    const body = { model: 'gpt-4.1-mini', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 5, foo: 'bar' };
    const chat = jobOf(await normalize(line('/v1/chat/completions', body), { cli: { model: 'ignored', system: 'ignored' } }));
    expect(chat).toMatchObject({ id: 'req-1', kind: 'chat', model: 'gpt-4.1-mini', endpoint: '/v1/chat/completions', tags: [] });
    expect(chat.body).toEqual(body);

    const vision = jobOf(
      await normalize(line('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x.test/a.png' } }] }] })),
    );
    expect(vision.kind).toBe('vision');

    const image = jobOf(await normalize(line('/v1/images/generations', { model: 'gpt-image-1', prompt: 'A cat', n: 2, output_format: 'jpeg' })));
    expect(image).toMatchObject({ kind: 'image', output: '{id}-{index}.jpeg' });
  });

  test.each([
    [{ custom_id: 'r', method: 'POST', url: '/v1/embeddings', body: { model: 'm' } }, 'url'],
    [{ custom_id: 'r', method: 'GET', url: '/v1/chat/completions', body: { model: 'm', messages: [] } }, 'method'],
    [{ custom_id: 'r', method: 'POST', url: '/v1/chat/completions', body: { messages: [] } }, 'body.model'],
    [{ custom_id: 'r', method: 'POST', url: '/v1/chat/completions', body: { model: 'm' } }, 'body.messages'],
    [{ custom_id: 'r', method: 'POST', url: '/v1/images/generations', body: { model: 'm' } }, 'body.prompt'],
    [{ custom_id: 'r', url: '/v1/chat/completions', body: { model: 'm', messages: [] } }, 'method'],
    [{ custom_id: 'r', method: 'POST', url: '/v1/chat/completions', body: { model: 'm', messages: [] }, extra: 1 }, 'extra'],
  ])('reports %j at field %s', async (value, field) => {
    const problems = problemsOf(await normalize(value));
    expect(problems).toContainEqual(expect.objectContaining({ field, jobId: 'r' }));
  });
});

test('reports a record that is not an object', async () => {
  const [problem] = problemsOf(await normalize(['not', 'a', 'job']));
  expect(problem).toMatchObject({ file: 'dir/prompts.jsonl', line: 1 });
  expect(problem?.field).toBeUndefined();
});

describe('one field never changes the kind the model gives a job', () => {
  test('n: 2 on a chat model is a problem, not an image job that pays for two images', async () => {
    const problems = problemsOf(await normalize({ id: 'a', model: 'gpt-4.1-mini', prompt: 'Hi', n: 2 }));
    expect(problems.map((problem) => [problem.field, problem.message])).toEqual([['n', 'applies to image jobs, not chat jobs (for an image model nightshift does not know, set "kind": "image")']]);
  });

  test('an image field on a model nightshift does not know asks for kind: image; with it, the job is an image job', async () => {
    expect(problemsOf(await normalize({ id: 'b', model: 'flux-dev', prompt: 'A cat', size: '1024x1024' })).map((problem) => problem.field)).toEqual(['size']);
    expect(jobOf(await normalize({ id: 'b', kind: 'image', model: 'flux-dev', prompt: 'A cat', size: '1024x1024' })).kind).toBe('image');
  });

  test('a job that names no model is still told by its image fields', async () => {
    expect(jobOf(await normalize({ id: 'c', prompt: 'A cat', size: '1024x1024' })).kind).toBe('image');
  });
});
