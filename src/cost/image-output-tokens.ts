/**
 * The image tokens a GPT Image model generates for one image of a given size and quality: what its image output is
 * billed by (tokens × the model's image output rate).
 *
 * - gpt-image-1, gpt-image-1.5 and chatgpt-image-latest: OpenAI's table for the models before gpt-image-2 (image
 *   generation guide, "Cost and latency", developers.openai.com/api/docs/guides/image-generation), three fixed sizes
 *   by three qualities. gpt-image-1-mini has no table of its own; bills reported for it match this one (272 tokens
 *   for a low-quality 1024x1024 image), so it uses it too.
 * - gpt-image-2 takes any size. Its tokens follow the formula behind the pricing calculator on that guide, which
 *   reproduces the calculator's figures (high quality: 1024x1024 → 7024, 1536x1024 → 5488).
 */

/** Image qualities with a token count; `auto` lets the model choose one of them. */
export type ImageQuality = 'low' | 'medium' | 'high';

const IMAGE_QUALITIES: readonly ImageQuality[] = ['low', 'medium', 'high'];

/** The sizes of the fixed-size models, which `size: "auto"` also chooses from. */
export const STANDARD_IMAGE_SIZES = ['1024x1024', '1024x1536', '1536x1024'] as const;

type StandardSize = (typeof STANDARD_IMAGE_SIZES)[number];

const FIXED_SIZE_TOKENS: Readonly<Record<ImageQuality, Readonly<Record<StandardSize, number>>>> = {
  low: { '1024x1024': 272, '1024x1536': 408, '1536x1024': 400 },
  medium: { '1024x1024': 1056, '1024x1536': 1584, '1536x1024': 1568 },
  high: { '1024x1024': 4160, '1024x1536': 6240, '1536x1024': 6208 },
};

const FIXED_SIZE_MODELS = new Set(['gpt-image-1', 'gpt-image-1.5', 'gpt-image-1-mini', 'chatgpt-image-latest']);

/** gpt-image-2's calculator: tokens along the long side per quality, and an area term. */
const QUALITY_FACTOR: Readonly<Record<ImageQuality, number>> = { low: 16, medium: 48, high: 96 };
const AREA_OFFSET = 2_000_000;
const AREA_SCALE = 4_000_000;

/**
 * Output image tokens of one image of `size` (`1024x1536`) at `quality`, or `undefined` when the model or the
 * combination is not one nightshift knows (a size a fixed-size model does not offer, `auto`, a model of another family).
 */
export function imageOutputTokens(model: string, size: string, quality: string): number | undefined {
  if (!isQuality(quality)) return undefined;
  const name = undated(model);
  if (FIXED_SIZE_MODELS.has(name)) return isStandardSize(size) ? FIXED_SIZE_TOKENS[quality][size] : undefined;
  if (name !== 'gpt-image-2') return undefined;
  const pixels = /^(\d+)x(\d+)$/.exec(size);
  if (pixels === null) return undefined;
  const width = Number(pixels[1]);
  const height = Number(pixels[2]);
  const long = Math.max(width, height);
  const short = Math.min(width, height);
  if (short === 0) return undefined;
  const factor = QUALITY_FACTOR[quality];
  // Tokens along the short side: the long side's count scaled by the aspect ratio, rounded half up.
  const shortFactor = Math.floor((2 * factor * short + long) / (2 * long));
  return Math.ceil((factor * shortFactor * (AREA_OFFSET + width * height)) / AREA_SCALE);
}

const isQuality = (value: string): value is ImageQuality => (IMAGE_QUALITIES as readonly string[]).includes(value);
const isStandardSize = (value: string): value is StandardSize => (STANDARD_IMAGE_SIZES as readonly string[]).includes(value);

/** Dated snapshots (`gpt-image-1.5-2025-12-16`) generate like their model. */
const undated = (model: string): string => model.trim().toLowerCase().replace(/-\d{4}-\d{2}-\d{2}$/, '');
