/*
 * What the images endpoint takes, per model family, as the API reference states it (the OpenAPI spec behind the
 * openai SDK's `ImageGenerateParams`). Validation refuses what a family does not take before anything is sent, and
 * the offline server answers the same requests with the same 400: both read this one table. A model outside these
 * families (a compatible server's own) is held to no family's rules.
 */

/** The image model families nightshift knows. */
export type ImageFamily = 'gpt-image' | 'gpt-image-2' | 'dall-e-2' | 'dall-e-3';

/** What one family takes. */
export interface ImageFamilyRules {
  /** The family's models, for messages. */
  readonly models: string;
  /** Sizes it takes by name (`auto` among them where it sizes automatically). */
  readonly sizes: readonly string[];
  /** Whether it also takes other `WIDTHxHEIGHT` sizes within {@link isCustomImageSize}. */
  readonly customSizes: boolean;
  readonly qualities: readonly string[];
  /** Most images per request. */
  readonly maxN: number;
  readonly maxPromptChars: number;
  /** Whether `background: "transparent"` is possible (it also needs png or webp output). */
  readonly transparent: boolean;
  /** Request fields of other families that this one refuses. */
  readonly refuses: readonly string[];
}

const GPT_IMAGE_SIZES = ['1024x1024', '1536x1024', '1024x1536', 'auto'];
const GPT_IMAGE_QUALITIES = ['auto', 'low', 'medium', 'high'];
/** Fields only GPT image models take. */
const GPT_IMAGE_ONLY = ['output_format', 'background', 'moderation', 'output_compression'];

export const IMAGE_FAMILIES: Readonly<Record<ImageFamily, ImageFamilyRules>> = {
  'gpt-image': {
    models: 'gpt-image-1, gpt-image-1-mini, gpt-image-1.5 and chatgpt-image-latest',
    sizes: GPT_IMAGE_SIZES,
    customSizes: false,
    qualities: GPT_IMAGE_QUALITIES,
    maxN: 10,
    maxPromptChars: 32_000,
    transparent: true,
    // GPT image models always answer in base64, and have no styles.
    refuses: ['style', 'response_format'],
  },
  'gpt-image-2': {
    models: 'gpt-image-2',
    sizes: GPT_IMAGE_SIZES,
    customSizes: true,
    qualities: GPT_IMAGE_QUALITIES,
    maxN: 10,
    maxPromptChars: 32_000,
    transparent: false,
    refuses: ['style', 'response_format'],
  },
  'dall-e-2': {
    models: 'dall-e-2',
    sizes: ['256x256', '512x512', '1024x1024'],
    customSizes: false,
    qualities: ['auto', 'standard'],
    maxN: 10,
    maxPromptChars: 1000,
    transparent: false,
    refuses: [...GPT_IMAGE_ONLY, 'style'],
  },
  'dall-e-3': {
    models: 'dall-e-3',
    sizes: ['1024x1024', '1792x1024', '1024x1792'],
    customSizes: false,
    qualities: ['auto', 'standard', 'hd'],
    maxN: 1,
    maxPromptChars: 4000,
    transparent: false,
    refuses: GPT_IMAGE_ONLY,
  },
};

/** The family of an image model, or undefined for a model nightshift does not know (a later one, a compatible server's). */
export function imageFamilyOf(model: string): ImageFamily | undefined {
  if (/^gpt-image-2(-|$)/.test(model)) return 'gpt-image-2';
  if (/^gpt-image-1([.-]|$)/.test(model) || /^chatgpt-image-/.test(model)) return 'gpt-image';
  if (/^dall-e-2(-|$)/.test(model)) return 'dall-e-2';
  if (/^dall-e-3(-|$)/.test(model)) return 'dall-e-3';
  return undefined;
}

/** Sizes gpt-image-2 takes besides its named ones: edges divisible by 16, an aspect ratio within 3:1, up to 3840x2160. */
export const isCustomImageSize = (width: number, height: number): boolean =>
  width > 0 &&
  height > 0 &&
  width % 16 === 0 &&
  height % 16 === 0 &&
  Math.max(width, height) <= 3840 &&
  Math.max(width, height) <= 3 * Math.min(width, height) &&
  width * height <= 3840 * 2160;

/** True when `size` (`auto` or `WIDTHxHEIGHT`) is one the family takes. */
export function takesSize(rules: ImageFamilyRules, size: string): boolean {
  if (rules.sizes.includes(size)) return true;
  const match = /^(\d+)x(\d+)$/.exec(size);
  return rules.customSizes && match !== null && isCustomImageSize(Number(match[1]), Number(match[2]));
}

/** A request field a family does not take: the field, and a message that says what it takes. */
export interface ImageParamProblem {
  field: string;
  message: string;
  /** The family does not take the field at all (the API calls it an unknown parameter). */
  unsupported: boolean;
}

/**
 * Every field of an images request (`size`, `quality`, `n`, `background`, ...) that `rules` refuse, worded for
 * `model`. Fields of the wrong type are left to the caller's own checks.
 */
export function imageParamProblems(rules: ImageFamilyRules, fields: Readonly<Record<string, unknown>>, model = rules.models): ImageParamProblem[] {
  const problems: ImageParamProblem[] = [];
  const refuse = (field: string, message: string, unsupported = false) => problems.push({ field, message, unsupported });
  const given = (field: string) => fields[field] !== undefined && fields[field] !== null;
  const { size, quality, n, prompt, background, output_format: format } = fields;
  for (const field of rules.refuses) if (given(field)) refuse(field, `not taken by ${model}`, true);
  if (typeof size === 'string' && !takesSize(rules, size)) {
    const custom = rules.customSizes ? ', or WIDTHxHEIGHT with edges divisible by 16, within 3:1 and up to 3840x2160' : '';
    refuse('size', `${JSON.stringify(size)} is not a size of ${model}: expected one of ${rules.sizes.join(', ')}${custom}`);
  }
  if (typeof quality === 'string' && !rules.qualities.includes(quality)) {
    refuse('quality', `${JSON.stringify(quality)} is not a quality of ${model}: expected one of ${rules.qualities.join(', ')}`);
  }
  if (typeof n === 'number' && n > rules.maxN) refuse('n', `${model} makes at most ${rules.maxN} image${rules.maxN === 1 ? '' : 's'} per request`);
  if (typeof prompt === 'string' && prompt.length > rules.maxPromptChars) {
    refuse('prompt', `${prompt.length} characters, over the ${rules.maxPromptChars} that ${model} takes`);
  }
  if (background === 'transparent' && !rules.refuses.includes('background')) {
    if (!rules.transparent) refuse('background', `${model} cannot make transparent backgrounds: expected opaque or auto`);
    else if (format === 'jpeg') refuse('background', 'a transparent background needs output_format png or webp, not jpeg');
  }
  return problems;
}
