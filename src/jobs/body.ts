import type { ImageJobFields, VisionJobFields } from './schema.js';

/*
 * Request bodies from validated job fields: pure, so the cost estimator can build the exact body
 * a job would send. Only fields the job gives are sent; the API's own defaults apply to the rest.
 */

/** A chat message as sent: `role`, `content`, and whatever else the job gave (`name`, `tool_calls`, ...). */
export interface ChatMessage {
  role: string;
  content?: string | ContentPart[] | null;
  [key: string]: unknown;
}

/** One part of a multi-part message content (`text`, `image_url`, ...). */
export interface ContentPart {
  type: string;
  [key: string]: unknown;
}

/** Top-level Chat Completions parameters that are job fields: `params` may not set them. */
export const CHAT_BODY_FIELDS = [
  'model',
  'messages',
  'temperature',
  'top_p',
  'max_completion_tokens',
  'max_tokens',
  'response_format',
  'seed',
  'service_tier',
] as const;

const OPTIONAL_CHAT_FIELDS = ['temperature', 'top_p', 'max_completion_tokens', 'response_format', 'seed', 'service_tier'] as const;
const OPTIONAL_IMAGE_FIELDS = [
  'n',
  'size',
  'quality',
  'output_format',
  'background',
  'style',
  'response_format',
  'moderation',
  'output_compression',
] as const;

/**
 * The messages of a chat or vision job: `messages` as given, or a `system` message and a user message
 * with `prompt`. Image URLs follow the prompt as `image_url` parts, or are appended to the last user
 * message of `messages` (to a new user message when there is none).
 */
export function buildMessages(
  fields: Pick<VisionJobFields, 'prompt' | 'system' | 'messages' | 'detail'>,
  imageUrls: readonly string[] = [],
): ChatMessage[] {
  const images: ContentPart[] = imageUrls.map((url) => ({
    type: 'image_url',
    image_url: fields.detail === undefined ? { url } : { url, detail: fields.detail },
  }));
  if (fields.messages !== undefined) {
    const messages: ChatMessage[] = fields.messages.map((message) => ({ ...message }));
    if (images.length === 0) return messages;
    const last = messages.findLastIndex((message) => message.role === 'user');
    const target = messages[last];
    if (target === undefined) return [...messages, { role: 'user', content: images }];
    target.content = [...asParts(target.content), ...images];
    return messages;
  }
  const messages: ChatMessage[] = fields.system === undefined ? [] : [{ role: 'system', content: fields.system }];
  const prompt = fields.prompt ?? '';
  messages.push({ role: 'user', content: images.length === 0 ? prompt : [{ type: 'text', text: prompt }, ...images] });
  return messages;
}

const asParts = (content: ChatMessage['content']): ContentPart[] =>
  typeof content === 'string' ? [{ type: 'text', text: content }] : (content ?? []);

/**
 * The Chat Completions body: `model`, `messages`, the sampling fields the job gives
 * (`max_tokens` sent as `max_completion_tokens`), then `params`.
 */
export function buildChatBody(model: string, messages: ChatMessage[], fields: VisionJobFields): Record<string, unknown> {
  const body: Record<string, unknown> = { model, messages };
  for (const key of OPTIONAL_CHAT_FIELDS) if (fields[key] !== undefined) body[key] = fields[key];
  if (fields.max_tokens !== undefined) body['max_completion_tokens'] = fields.max_tokens;
  return { ...body, ...fields.params };
}

/** The Images API body: `model`, `prompt` and the image fields the job gives. */
export function buildImageBody(model: string, prompt: string, fields: ImageJobFields): Record<string, unknown> {
  const body: Record<string, unknown> = { model, prompt };
  for (const key of OPTIONAL_IMAGE_FIELDS) if (fields[key] !== undefined) body[key] = fields[key];
  return body;
}

/** A request field's value when it is a whole number above 0 (`n`, `max_completion_tokens`), else undefined. */
export function positiveInteger(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : undefined;
}
