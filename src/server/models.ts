import type OpenAI from 'openai';

/**
 * Listed by `GET /v1/models` unless the server is given its own `models`. The server then answers for any model name;
 * these are just what a client can discover.
 */
const MODEL_IDS = [
  'gpt-4.1-mini',
  'gpt-4.1',
  'gpt-5.2',
  'gpt-5.4',
  'gpt-5.4-mini',
  'gpt-5.4-nano',
  'o4-mini',
  'gpt-image-2',
];

export function listModels(created: number, models: Iterable<string> = MODEL_IDS): { object: 'list'; data: OpenAI.Model[] } {
  return { object: 'list', data: [...models].map((id) => ({ id, object: 'model', created, owned_by: 'system' })) };
}
