import { invalidRequest } from './api-error.js';
import { readImageInfo } from '../cost/image-info.js';

/** Image input costs, as OpenAI documents them for the GPT-4o family. */
const BASE_TOKENS = 85;
const TILE_TOKENS = 170;
const TILE = 512;
/** Tiles assumed for an image whose size the offline server cannot know (an http(s) URL it will not fetch). */
const UNKNOWN_TILES = 4;

const DETAILS = new Set(['low', 'high', 'auto']);
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Prompt tokens for one `image_url` content part. `data:` URLs are decoded and must hold a PNG, JPEG, GIF or
 * WebP image, or the request fails with 400 like the real API; `param` names the part in that error.
 */
export function imageInputTokens(url: unknown, detail: unknown, param: string): number {
  if (detail !== undefined && !DETAILS.has(detail as string)) {
    throw invalidRequest(
      `Invalid value: '${String(detail)}'. Supported values are: 'low', 'high' and 'auto'.`,
      `${param}.detail`,
      'invalid_value',
    );
  }
  if (typeof url !== 'string') {
    throw invalidRequest(`Invalid type for '${param}.url': expected a string.`, `${param}.url`, 'invalid_type');
  }
  const size = imageSize(url, `${param}.url`);
  if (detail === 'low') return BASE_TOKENS;
  return BASE_TOKENS + TILE_TOKENS * (size === undefined ? UNKNOWN_TILES : tiles(size.width, size.height));
}

function imageSize(url: string, param: string): { width: number; height: number } | undefined {
  if (/^https?:\/\//i.test(url)) return undefined;
  const data = /^data:image\/[a-z0-9.+-]+;base64,(.*)$/is.exec(url);
  if (data === null) {
    throw invalidRequest(
      'Invalid image URL: expected an http(s) URL or a base64 `data:image/...` URL.',
      param,
      'invalid_image_url',
    );
  }
  const base64 = data[1] ?? '';
  const info = BASE64.test(base64) ? readImageInfo(Buffer.from(base64, 'base64')) : undefined;
  if (info === undefined) {
    throw invalidRequest(
      'You uploaded an unsupported image. Please make sure your image is valid base64 data ' +
        "of one of the following formats: ['png', 'jpeg', 'gif', 'webp'].",
      param,
      'invalid_image_format',
    );
  }
  return info;
}

/** 512px tiles after the API's resizing: fit inside 2048x2048, then shrink so the short side is at most 768. */
function tiles(width: number, height: number): number {
  const fit = Math.min(1, 2048 / Math.max(width, height));
  let w = width * fit;
  let h = height * fit;
  const shrink = Math.min(1, 768 / Math.min(w, h));
  w *= shrink;
  h *= shrink;
  return Math.ceil(w / TILE) * Math.ceil(h / TILE);
}
