import type { JobKind } from '../common/types.js';

/*
 * The names and fixed values of job fields that the modules on the way to a run's first request need, without the
 * schemas of `schema.ts` (and zod with them), which are loaded only for a record the quick check does not vouch for.
 */

/** The job kinds, in the order the README lists them. */
export const JOB_KINDS = ['chat', 'vision', 'image'] as const satisfies readonly JobKind[];

/** Roles a chat message may have. */
export const MESSAGE_ROLES = ['system', 'developer', 'user', 'assistant', 'tool'] as const;

/** Values of a chat request's `service_tier` that nightshift sends (the API has others, for other contracts). */
export const SERVICE_TIERS = ['auto', 'default', 'flex', 'priority'] as const;

/** One of {@link SERVICE_TIERS}. */
export type ServiceTier = (typeof SERVICE_TIERS)[number];

/** The values of the image job fields that take one of a list. */
export const IMAGE_CHOICES = {
  quality: ['auto', 'low', 'medium', 'high', 'standard', 'hd'],
  output_format: ['png', 'jpeg', 'webp'],
  background: ['auto', 'transparent', 'opaque'],
  moderation: ['auto', 'low'],
  style: ['vivid', 'natural'],
  response_format: ['url', 'b64_json'],
} as const;

/** What an image job's `size` may be: `auto` or `WIDTHxHEIGHT`. */
export const IMAGE_SIZE = /^(auto|[1-9]\d*x[1-9]\d*)$/;

/** Model of image jobs that name none. */
export const DEFAULT_IMAGE_MODEL = 'gpt-image-2';

/** Models served by the images endpoint: an image job is inferred from such a model. */
export const isImageModel = (model: string): boolean => /^(gpt-image|chatgpt-image|dall-e)/.test(model);

/** Splits a `;`-separated list, trimming items and dropping empty ones. */
export const splitList = (value: string): string[] =>
  value
    .split(';')
    .map((item) => item.trim())
    .filter((item) => item !== '');

/** The fields of chat jobs, as `chatFields` in `schema.ts` has them (test/quick-job.test.ts checks that they agree). */
export const CHAT_FIELD_NAMES = [
  'id',
  'kind',
  'model',
  'tags',
  'prompt',
  'system',
  'messages',
  'temperature',
  'top_p',
  'max_completion_tokens',
  'max_tokens',
  'response_format',
  'seed',
  'params',
  'service_tier',
] as const;

/** The fields of image jobs, as `imageFields` in `schema.ts` has them (test/quick-job.test.ts checks that they agree). */
export const IMAGE_FIELD_NAMES = [
  'id',
  'kind',
  'model',
  'tags',
  'prompt',
  'size',
  'quality',
  'n',
  'output_format',
  'background',
  'moderation',
  'output_compression',
  'style',
  'response_format',
  'output',
] as const;
