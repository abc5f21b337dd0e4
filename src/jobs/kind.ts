import type { JobKind } from '../common/types.js';
import { isJsonObject } from './records.js';
import { imageFields, isImageModel, visionFields } from './schema.js';

/** Fields only image jobs have: any of them makes a job an image job. */
const IMAGE_ONLY_FIELDS: readonly string[] = Object.keys(imageFields).filter((field) => !Object.hasOwn(visionFields, field));

/**
 * The kind of a job that does not state one, from its fields (file defaults applied) and the command line's
 * default model: `images` → vision; an image model → image; `messages` with an `image_url` part → vision; `prompt`,
 * `system` or `messages` → chat; failing all of those, an image-only field → image. Undefined when nothing
 * tells. One field never turns a chat job into an image job (`n: 2` on a chat model would have paid for two
 * images): on a chat job an image-only field is a problem that validation reports.
 */
export function inferKind(fields: Readonly<Record<string, unknown>>, defaultModel: string | undefined): JobKind | undefined {
  const has = (field: string) => Object.hasOwn(fields, field);
  const own = typeof fields['model'] === 'string' ? fields['model'] : undefined;
  const model = own ?? defaultModel;
  if (has('images')) return 'vision';
  if (model !== undefined && isImageModel(model)) return 'image';
  if (hasImagePart(fields['messages'])) return 'vision';
  if (has('messages') || has('prompt') || has('system')) {
    // A job that names no model (--model is only a default) is told by its fields: image-only ones make it an image job.
    return own === undefined && IMAGE_ONLY_FIELDS.some(has) ? 'image' : 'chat';
  }
  if (IMAGE_ONLY_FIELDS.some(has)) return 'image';
  return undefined;
}

/** True when some message of `messages` has an `image_url` content part. */
export function hasImagePart(messages: unknown): boolean {
  if (!Array.isArray(messages)) return false;
  const isImagePart = (part: unknown) => isJsonObject(part) && part['type'] === 'image_url';
  return messages.some((message: unknown) => isJsonObject(message) && Array.isArray(message['content']) && message['content'].some(isImagePart));
}
