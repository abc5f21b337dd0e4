import { invalidRequest } from './api-error.js';
import { readImageInfo } from '../common/image-info.js';
import { ASSUMED_IMAGE_SIZE, imageTokens, visionRuleFor, type ImageSize } from '../cost/vision-tokens.js';

const DETAILS = new Set(['low', 'high', 'auto']);
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Checks one `image_url` content part sent to `model` and returns its prompt tokens, by the estimator's vision rules so that a rehearsal
 * reports what `nightshift estimate` predicts; an http(s) URL, which the server does not fetch, counts at the size the
 * estimator assumes. `data:` URLs are decoded and must hold a PNG, JPEG, GIF or WebP image, or the request fails with
 * 400 like the real API; `param` names the part in that error.
 */
export function checkedImagePartTokens(url: unknown, detail: unknown, param: string, model: string): number {
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
  const size = imageSize(url, `${param}.url`) ?? ASSUMED_IMAGE_SIZE;
  return imageTokens(size, detail as string | undefined, visionRuleFor(model).rule);
}

function imageSize(url: string, param: string): ImageSize | undefined {
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
