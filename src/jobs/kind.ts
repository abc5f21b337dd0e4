import type { JobKind } from '../common/types.js';
import { isJsonObject } from './records.js';
import { imageFields, isImageModel, visionFields } from './schema.js';

/** Fields only image jobs have: any of them makes a job an image job. */
const IMAGE_ONLY_FIELDS: readonly string[] = Object.keys(imageFields).filter((field) => !Object.hasOwn(visionFields, field));

/**
 * The kind of a job that does not state one, from its fields (defaults applied) and the model it will
 * use: `images` → vision; an image-only field or an image model → image; `messages` with an `image_url`
 * part → vision; `prompt`, `system` or `messages` → chat. Undefined when nothing tells.
 */
export function inferKind(fields: Readonly<Record<string, unknown>>, model: string | undefined): JobKind | undefined {
  const has = (field: string) => Object.hasOwn(fields, field);
  if (has('images')) return 'vision';
  if (IMAGE_ONLY_FIELDS.some(has)) return 'image';
  if (model !== undefined && isImageModel(model)) return 'image';
  if (hasImagePart(fields['messages'])) return 'vision';
  if (has('messages') || has('prompt') || has('system')) return 'chat';
  return undefined;
}

/** True when some message of `messages` has an `image_url` content part. */
export function hasImagePart(messages: unknown): boolean {
  if (!Array.isArray(messages)) return false;
  const isImagePart = (part: unknown) => isJsonObject(part) && part['type'] === 'image_url';
  return messages.some((message: unknown) => isJsonObject(message) && Array.isArray(message['content']) && message['content'].some(isImagePart));
}
