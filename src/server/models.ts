import type OpenAI from 'openai';

/**
 * Listed by `GET /v1/models` unless the server is given its own `models`. The server then answers for any model name;
 * these are just what a client can discover.
 */
const MODEL_IDS = [
  'gpt-4o-mini',
  'gpt-4o',
  'gpt-4.1-mini',
  'gpt-4.1',
  'gpt-5-mini',
  'gpt-5',
  'o4-mini',
  'gpt-image-1',
  'gpt-image-1-mini',
  'gpt-image-1.5',
  'dall-e-2',
  'dall-e-3',
];

export function listModels(created: number, models: Iterable<string> = MODEL_IDS): { object: 'list'; data: OpenAI.Model[] } {
  return { object: 'list', data: [...models].map((id) => ({ id, object: 'model', created, owned_by: 'system' })) };
}
