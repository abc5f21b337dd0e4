/**
 * Input tokens of the images in a vision request, from each image's real pixel size.
 *
 * The rules are OpenAI's ("Images and vision" guide, "Calculating costs", developers.openai.com/api/docs/guides/images-vision):
 *
 * - Tile models (GPT-4o, GPT-4.1, GPT-4.5, GPT-5, o1, o3, ...): `detail: "low"` costs the model's base tokens whatever
 *   the size. Otherwise the image is scaled to fit in 2048x2048, then so that its shortest side is at most 768px, and
 *   costs the base tokens plus a fixed number per 512px tile needed to cover it. Examples from the guide (GPT-4o):
 *   1024x1024 high → 4 tiles → 85 + 4·170 = 765; 2048x4096 high → 768x1536 → 6 tiles → 1105; any size low → 85.
 * - Patch models (GPT-4.1-mini, GPT-4.1-nano, o4-mini, GPT-5-mini, GPT-5-nano): the number of 32px patches needed to
 *   cover the image, scaled down to at most 1536 patches, times a per-model multiplier. `detail` does not apply.
 *   Examples from the guide: 1024x1024 → 1024 patches; 1800x2400 → 1452 patches.
 *
 * `detail: "auto"` (and no detail) lets the model choose; the estimate counts it as `high`, the dearer choice.
 */
import { readImageInfo } from '../common/image-info.js';
import { baseModelName } from './tokens.js';

/** An image's size in pixels. */
export interface ImageSize {
  readonly width: number;
  readonly height: number;
}

/** How a model turns an image into tokens. */
export type VisionRule =
  | { readonly kind: 'tiles'; readonly base: number; readonly perTile: number }
  | { readonly kind: 'patches'; readonly multiplier: number };

/** A model's vision rule, and whether it was recognised or assumed. */
export interface ModelVisionRule {
  readonly rule: VisionRule;
  /** The model is not one nightshift knows: GPT-4o's rule is assumed. */
  readonly assumed: boolean;
}

/** What one image in a request is estimated to cost. */
export interface ImageInputTokens {
  /** Tokens for the image's real size, or for {@link ASSUMED_IMAGE_SIZE} when its size cannot be known. */
  readonly tokens: number;
  /** The most the image can cost: `tokens` when its size is known, the rule's maximum when it is not. */
  readonly worstTokens: number;
  /** The image is an http(s) URL (or unreadable data), so its size was assumed. */
  readonly sizeAssumed: boolean;
  /** The model's vision rule was assumed. */
  readonly ruleAssumed: boolean;
}

/** The size assumed for an image nightshift cannot see (an http(s) URL it does not fetch). */
export const ASSUMED_IMAGE_SIZE: ImageSize = { width: 1024, height: 1024 };

const GPT_4O_TILES: VisionRule = { kind: 'tiles', base: 85, perTile: 170 };

/** Vision rules by model name prefix, most specific first (`gpt-4o-mini` before `gpt-4o`), per the guide's tables. */
const RULES: readonly (readonly [RegExp, VisionRule])[] = [
  [/^(gpt-4\.1-mini|gpt-5(\.\d+)?-mini)/, { kind: 'patches', multiplier: 1.62 }],
  [/^(gpt-4\.1-nano|gpt-5(\.\d+)?-nano)/, { kind: 'patches', multiplier: 2.46 }],
  [/^o4-mini/, { kind: 'patches', multiplier: 1.72 }],
  // GPT-4o mini bills images at many more tokens, priced so that a picture costs about what it does on GPT-4o.
  [/^gpt-4o-mini/, { kind: 'tiles', base: 2833, perTile: 5667 }],
  [/^gpt-5/, { kind: 'tiles', base: 70, perTile: 140 }],
  [/^(o1|o3)/, { kind: 'tiles', base: 75, perTile: 150 }],
  [/^computer-use-preview/, { kind: 'tiles', base: 65, perTile: 129 }],
  [/^(gpt-4|chatgpt-4o)/, GPT_4O_TILES],
];

const TILE = 512;
const FIT = 2048;
const SHORT_SIDE = 768;
/** After fitting in 2048x2048 with the short side at most 768, an image spans at most 2 by 4 tiles. */
const MAX_TILES = Math.ceil(SHORT_SIDE / TILE) * Math.ceil(FIT / TILE);
const PATCH = 32;
const MAX_PATCHES = 1536;
/** At least 64 KiB of image bytes, as whole base64 quads. */
const HEADER_BASE64_CHARS = 4 * Math.ceil((64 * 1024) / 3);

/** The vision rule of `model`; GPT-4o's, flagged as assumed, for a model nightshift does not know. */
export function visionRuleFor(model: string): ModelVisionRule {
  const name = baseModelName(model);
  const found = RULES.find(([pattern]) => pattern.test(name));
  return found ? { rule: found[1], assumed: false } : { rule: GPT_4O_TILES, assumed: true };
}

/**
 * Tokens of one image of `size` sent with `detail` to a model with `rule`. Patch counts times a multiplier are rounded
 * to the nearest token: the guide states no rounding, and observed bills (1536 patches × 1.62 = 2488) agree with it.
 */
export function imageTokens(size: ImageSize, detail: string | undefined, rule: VisionRule): number {
  if (rule.kind === 'patches') return Math.round(patches(size) * rule.multiplier);
  return detail === 'low' ? rule.base : rule.base + rule.perTile * tiles(size);
}

/** The most one image can cost with `detail` under `rule`, whatever its size. */
export function maxImageTokens(detail: string | undefined, rule: VisionRule): number {
  if (rule.kind === 'patches') return Math.round(MAX_PATCHES * rule.multiplier);
  return detail === 'low' ? rule.base : rule.base + rule.perTile * MAX_TILES;
}

/** The pixel size of a base64 `data:` image URL, read from the image's header; `undefined` for anything else. */
export function imageSizeFromUrl(url: string): ImageSize | undefined {
  const prefix = /^data:image\/[\w.+-]+;base64,/i.exec(url);
  if (prefix === null) return undefined;
  const base64 = url.slice(prefix[0].length);
  // Headers sit in the first bytes; a JPEG's can follow a large EXIF block, so fall back to the whole image.
  const head = base64.slice(0, HEADER_BASE64_CHARS);
  const info = readImageInfo(Buffer.from(head, 'base64')) ?? (head.length < base64.length ? readImageInfo(Buffer.from(base64, 'base64')) : undefined);
  return info ? { width: info.width, height: info.height } : undefined;
}

/** Tokens of one `image_url` content part sent to `model`. */
export function imageInputTokens(url: string, detail: string | undefined, model: string): ImageInputTokens {
  const { rule, assumed: ruleAssumed } = visionRuleFor(model);
  const size = imageSizeFromUrl(url);
  if (size) {
    const tokens = imageTokens(size, detail, rule);
    return { tokens, worstTokens: tokens, sizeAssumed: false, ruleAssumed };
  }
  return {
    tokens: imageTokens(ASSUMED_IMAGE_SIZE, detail, rule),
    worstTokens: maxImageTokens(detail, rule),
    sizeAssumed: true,
    ruleAssumed,
  };
}

/** 512px tiles after the API's resizing: fit inside 2048x2048, then shrink so the short side is at most 768. */
function tiles({ width, height }: ImageSize): number {
  const fit = Math.min(1, FIT / Math.max(width, height));
  const shrink = Math.min(1, SHORT_SIDE / (Math.min(width, height) * fit));
  const scale = fit * shrink;
  return Math.ceil((width * scale) / TILE) * Math.ceil((height * scale) / TILE);
}

/** 32px patches covering the image, after the guide's downscaling to at most 1536 patches. */
function patches({ width, height }: ImageSize): number {
  const raw = Math.ceil(width / PATCH) * Math.ceil(height / PATCH);
  if (raw <= MAX_PATCHES) return raw;
  let scale = Math.sqrt((PATCH * PATCH * MAX_PATCHES) / (width * height));
  const across = (width * scale) / PATCH;
  const down = (height * scale) / PATCH;
  // The guide then shrinks the scale so that one side is a whole number of patches.
  scale *= Math.min(Math.floor(across) / across, Math.floor(down) / down);
  // That side is whole in exact arithmetic; a rounding hair above it must not add a row of patches.
  const cover = (pixels: number) => Math.ceil(pixels / PATCH - 1e-9);
  return Math.min(MAX_PATCHES, cover(width * scale) * cover(height * scale));
}
