import type OpenAI from 'openai';
import { invalidRequest } from './api-error.js';
import { IMAGE_FAMILIES, imageFamilyOf, imageParamProblems, type ImageFamily, type ImageParamProblem } from '../common/image-params.js';
import { imageOutputTokens } from '../cost/image-output-tokens.js';
import { renderPng } from './render.js';
import { asRecord, optionalEnum, optionalInteger, requireString } from './request-fields.js';
import { countTextTokens, encodingFor } from '../cost/tokens.js';

/** The model used when the body names none (the real API would pick `dall-e-2`; nightshift always names one). */
const DEFAULT_IMAGE_MODEL = 'gpt-image-2';

/** How a model answers: GPT image models in base64 with usage, DALL-E models as their own. */
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

/** What `quality: 'auto'` (the default) turns into. */
const AUTO_QUALITY: Record<Family, Quality> = { 'gpt-image': 'high', 'dall-e-2': 'standard', 'dall-e-3': 'standard' };

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
  const rules = IMAGE_FAMILIES[rulesOf(model)];
  const family = familyOf(model);
  const prompt = requireString(fields, 'prompt');
  if (fields.stream === true) {
    throw invalidRequest('The offline server does not stream; omit `stream`.', 'stream', 'unsupported_value');
  }
  // Types first, as the API checks them, then what the model's family takes (the table validation uses too).
  const n = optionalInteger(fields, 'n', 1, 10) ?? 1;
  const { width, height } = readSize(fields.size);
  const quality = optionalEnum(fields, 'quality', ['auto', 'low', 'medium', 'high', 'standard', 'hd']) ?? 'auto';
  const outputFormat = (optionalEnum(fields, 'output_format', ['png', 'jpeg', 'webp']) ??
    'png') as ImageRequest['outputFormat'];
  const background = optionalEnum(fields, 'background', ['transparent', 'opaque', 'auto']) ?? 'auto';
  optionalInteger(fields, 'output_compression', 0, 100);
  optionalEnum(fields, 'moderation', ['low', 'auto']);
  optionalEnum(fields, 'style', ['vivid', 'natural']);
  const responseFormat = optionalEnum(fields, 'response_format', ['url', 'b64_json']) ?? 'url';
  const [problem] = imageParamProblems(rules, fields, model);
  if (problem !== undefined) throw refusal(problem);
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

/** A 400 as the API words it: an unknown parameter, a string too long, or a value not supported. */
function refusal({ field, message, unsupported }: ImageParamProblem) {
  if (unsupported) return invalidRequest(`Unknown parameter: '${field}'.`, field, 'unknown_parameter');
  if (field === 'prompt') return invalidRequest(`Invalid 'prompt': string too long (${message}).`, field, 'string_above_max_length');
  return invalidRequest(`Invalid value for '${field}': ${message}.`, field, 'invalid_value');
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

/** How the model answers: every model not named `dall-e-*` answers like a GPT image model. */
const familyOf = (model: string): Family =>
  model.startsWith('dall-e-3') ? 'dall-e-3' : model.startsWith('dall-e') ? 'dall-e-2' : 'gpt-image';

/** The rules the request is held to: its family's, or for a model nightshift does not know, those of the family it answers like. */
const rulesOf = (model: string): ImageFamily => imageFamilyOf(model) ?? familyOf(model);

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

/** The size to draw; whether the model takes it is checked against its family's rules. */
function readSize(value: unknown): { width: number; height: number } {
  if (value === undefined || value === null || value === 'auto') return { width: 1024, height: 1024 };
  const match = typeof value === 'string' ? /^(\d+)x(\d+)$/.exec(value) : null;
  if (match === null) {
    throw invalidRequest(`Invalid value: '${String(value)}'. Expected 'auto' or WIDTHxHEIGHT.`, 'size', 'invalid_value');
  }
  return { width: Number(match[1]), height: Number(match[2]) };
}

const takesCustomSizes = (model: string): boolean => imageFamilyOf(model) === 'gpt-image-2';
