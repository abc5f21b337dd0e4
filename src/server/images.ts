import type OpenAI from 'openai';
import { invalidRequest } from './api-error.js';
import { imageOutputTokens, STANDARD_IMAGE_SIZES } from '../cost/image-output-tokens.js';
import { renderPng } from './render.js';
import { asRecord, optionalEnum, optionalInteger, requireString } from './request-fields.js';
import { countTextTokens, encodingFor } from '../cost/tokens.js';

/** The model used when the body names none (the real API would pick `dall-e-2`; nightshift always names one). */
const DEFAULT_IMAGE_MODEL = 'gpt-image-1.5';

type Family = 'gpt-image' | 'dall-e-2' | 'dall-e-3';
type Quality = 'low' | 'medium' | 'high' | 'standard' | 'hd';

/** A validated `POST /v1/images/generations` request. */
export interface ImageRequest {
  model: string;
  family: Family;
  prompt: string;
  n: number;
  width: number;
  height: number;
  /** `auto` and the other choices resolved to what the response reports. */
  quality: Quality;
  background: 'opaque' | 'transparent';
  /** As requested; the bytes are PNG whatever this says. */
  outputFormat: 'png' | 'jpeg' | 'webp';
  /** `dall-e-*` only: GPT image models always answer with `b64_json`. */
  responseFormat: 'url' | 'b64_json';
  promptTokens: number;
}

const SIZES: Record<Family, string[]> = {
  'gpt-image': [...STANDARD_IMAGE_SIZES, 'auto'],
  'dall-e-2': ['256x256', '512x512', '1024x1024'],
  'dall-e-3': ['1024x1024', '1792x1024', '1024x1792'],
};
const QUALITIES: Record<Family, Quality[]> = {
  'gpt-image': ['low', 'medium', 'high'],
  'dall-e-2': ['standard'],
  'dall-e-3': ['standard', 'hd'],
};
/** What `quality: 'auto'` (the default) turns into. */
const AUTO_QUALITY: Record<Family, Quality> = { 'gpt-image': 'high', 'dall-e-2': 'standard', 'dall-e-3': 'standard' };
const MAX_PROMPT_CHARS: Record<Family, number> = { 'gpt-image': 32_000, 'dall-e-2': 1000, 'dall-e-3': 4000 };


/** The model and key (the prompt) of an images body, read leniently for fault matching and the log. */
export function describeImages(body: unknown): { model?: string; key: string } {
  const { model, prompt } = asRecord(body);
  return {
    model: typeof model === 'string' ? model : DEFAULT_IMAGE_MODEL,
    key: typeof prompt === 'string' ? prompt : '',
  };
}

/** Validates an images body the way the real API does for the common mistakes; throws {@link ApiError} 400s. */
export function parseImageRequest(body: unknown): ImageRequest {
  const fields = asRecord(body);
  const model =
    fields.model === undefined || fields.model === null ? DEFAULT_IMAGE_MODEL : requireString(fields, 'model');
  const family = familyOf(model);
  const prompt = requireString(fields, 'prompt');
  if (prompt.length > MAX_PROMPT_CHARS[family]) {
    throw invalidRequest(
      `Invalid 'prompt': string too long. Expected a string with maximum length ${MAX_PROMPT_CHARS[family]}, ` +
        `but got a string with length ${prompt.length} instead.`,
      'prompt',
      'string_above_max_length',
    );
  }
  if (fields.stream === true) {
    throw invalidRequest('The offline server does not stream; omit `stream`.', 'stream', 'unsupported_value');
  }
  const n = optionalInteger(fields, 'n', 1, family === 'dall-e-3' ? 1 : 10) ?? 1;
  const { width, height } = readSize(fields.size, model, family);
  const quality = optionalEnum(fields, 'quality', [...QUALITIES[family], 'auto']) ?? 'auto';
  const outputFormat = (optionalEnum(fields, 'output_format', ['png', 'jpeg', 'webp']) ??
    'png') as ImageRequest['outputFormat'];
  const background = optionalEnum(fields, 'background', ['transparent', 'opaque', 'auto']) ?? 'auto';
  if (background === 'transparent' && (outputFormat === 'jpeg' || model.startsWith('gpt-image-2'))) {
    throw invalidRequest(
      outputFormat === 'jpeg'
        ? "Transparent background is not supported for output format 'jpeg'; use 'png' or 'webp'."
        : "Transparent background is not supported for this model; use 'opaque' or 'auto'.",
      'background',
      'invalid_value',
    );
  }
  optionalInteger(fields, 'output_compression', 0, 100);
  optionalEnum(fields, 'moderation', ['low', 'auto']);
  optionalEnum(fields, 'style', ['vivid', 'natural']);
  const responseFormat = optionalEnum(fields, 'response_format', ['url', 'b64_json']) ?? 'url';
  return {
    model,
    family,
    prompt,
    n,
    width,
    height,
    quality: quality === 'auto' ? AUTO_QUALITY[family] : (quality as Quality),
    background: background === 'transparent' ? 'transparent' : 'opaque',
    outputFormat,
    responseFormat: family === 'gpt-image' ? 'b64_json' : (responseFormat as ImageRequest['responseFormat']),
    promptTokens: countTextTokens(prompt, encodingFor(model).name),
  };
}

/** Tokens the request counts against a tokens-per-minute limit. */
export const imageTokenEstimate = (request: ImageRequest): number =>
  request.promptTokens + request.n * outputImageTokens(request);

/**
 * The response for a validated request, with real PNG images drawn from the prompt.
 * `publish` stores an image and returns the URL it can be downloaded from (`dall-e-*` `url` answers).
 */
export function buildImagesResponse(
  request: ImageRequest,
  context: { created: number; publish: (png: Buffer) => string },
): OpenAI.ImagesResponse {
  const data = Array.from({ length: request.n }, (_, index): OpenAI.Image => {
    const png = renderPng({
      prompt: request.prompt,
      index,
      width: request.width,
      height: request.height,
      transparent: request.background === 'transparent',
    });
    const image: OpenAI.Image =
      request.responseFormat === 'url' ? { url: context.publish(png) } : { b64_json: png.toString('base64') };
    if (request.family === 'dall-e-3') image.revised_prompt = request.prompt;
    return image;
  });
  if (request.family !== 'gpt-image') return { created: context.created, data };

  const outputTokens = request.n * outputImageTokens(request);
  return {
    created: context.created,
    background: request.background,
    data,
    output_format: request.outputFormat,
    quality: request.quality as OpenAI.ImagesResponse['quality'],
    size: `${request.width}x${request.height}` as OpenAI.ImagesResponse['size'],
    usage: {
      input_tokens: request.promptTokens,
      input_tokens_details: { text_tokens: request.promptTokens, image_tokens: 0 },
      output_tokens: outputTokens,
      output_tokens_details: { text_tokens: 0, image_tokens: outputTokens },
      total_tokens: request.promptTokens + outputTokens,
    },
  };
}

/** Which rules apply: every model not named `dall-e-*` is treated as a GPT image model. */
const familyOf = (model: string): Family =>
  model.startsWith('dall-e-3') ? 'dall-e-3' : model.startsWith('dall-e') ? 'dall-e-2' : 'gpt-image';

/**
 * Output tokens of one image, by the estimator's table so that a rehearsal reports what `nightshift estimate` predicts.
 * A GPT image model the table does not know is answered like its nearest known kind: `gpt-image-2` for the models that
 * take custom sizes, the default model for the rest.
 */
function outputImageTokens({ model, family, quality, width, height }: ImageRequest): number {
  if (family !== 'gpt-image') return 0;
  const size = `${width}x${height}`;
  const standIn = takesCustomSizes(model) ? 'gpt-image-2' : DEFAULT_IMAGE_MODEL;
  return imageOutputTokens(model, size, quality) ?? imageOutputTokens(standIn, size, quality) ?? 0;
}

function readSize(value: unknown, model: string, family: Family): { width: number; height: number } {
  if (value === undefined || value === null || (value === 'auto' && family === 'gpt-image')) {
    return { width: 1024, height: 1024 };
  }
  const match = typeof value === 'string' ? /^(\d+)x(\d+)$/.exec(value) : null;
  const width = Number(match?.[1]);
  const height = Number(match?.[2]);
  const standard = typeof value === 'string' && SIZES[family].includes(value);
  if (match === null || !(standard || (takesCustomSizes(model) && isCustomSize(width, height)))) {
    throw badSize(value, family);
  }
  return { width, height };
}

const takesCustomSizes = (model: string): boolean => model.startsWith('gpt-image-2');

/** `gpt-image-2` takes any size with edges divisible by 16, an aspect ratio within 3:1, up to 3840x2160 pixels. */
const isCustomSize = (width: number, height: number): boolean =>
  width % 16 === 0 &&
  height % 16 === 0 &&
  width > 0 &&
  height > 0 &&
  Math.max(width, height) <= 3840 &&
  Math.max(width, height) <= 3 * Math.min(width, height) &&
  width * height <= 3840 * 2160;

const badSize = (value: unknown, family: Family) =>
  invalidRequest(
    `Invalid value: '${String(value)}'. Supported values are: ${SIZES[family].map((size) => `'${size}'`).join(', ')}.`,
    'size',
    'invalid_value',
  );
