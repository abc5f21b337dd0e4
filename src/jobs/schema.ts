import * as z from 'zod';
import type { Endpoint } from '../common/types.js';
import { DEFAULT_IMAGE_MODEL, IMAGE_CHOICES, IMAGE_SIZE, isImageModel, JOB_KINDS, MESSAGE_ROLES, SERVICE_TIERS, splitList, type ServiceTier } from './job-fields.js';

export { DEFAULT_IMAGE_MODEL, isImageModel, JOB_KINDS, SERVICE_TIERS, type ServiceTier };

/*
 * Every job field, with what it means (TSDoc, the source of the README's field reference) and what it
 * accepts (`describe`, quoted in error messages as "expected ..."). Schemas check types and ranges only;
 * which fields are required, and how fields combine, is decided in normalize.ts.
 */

/** Endpoints a Batch API input line may target. */
const ENDPOINTS = ['/v1/chat/completions', '/v1/images/generations'] as const satisfies readonly Endpoint[];

const text = () => z.string().regex(/\S/);
const oneOf = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values).describe(`one of ${values.join(', ')}`);

const contentPart = z.looseObject(
  { type: z.string({ error: 'expected a content part with a "type", such as "text" or "image_url"' }) },
  { error: 'expected a content part object, such as {"type": "text", "text": "..."}' },
);

const message = z
  .looseObject(
    {
      role: z.enum(MESSAGE_ROLES, { error: `expected one of ${MESSAGE_ROLES.join(', ')}` }),
      content: z
        .union([z.string(), z.array(contentPart), z.null()], { error: 'expected a string or an array of content parts' })
        .optional(),
    },
    { error: 'expected a message object, such as {"role": "user", "content": "..."}' },
  )
  .superRefine((value, context) => {
    // Only an assistant message (one carrying tool_calls) may leave its content out.
    if (value.content == null && value.role !== 'assistant') {
      context.addIssue({ code: 'custom', path: ['content'], message: `required in a ${value.role} message` });
    }
  });

const chatResponseFormat = z
  .union([
    z.enum(['json', 'json_object', 'text']).transform((shorthand) => ({ type: shorthand === 'text' ? 'text' : 'json_object' })),
    z.looseObject({ type: z.enum(['text', 'json_object']) }),
    z.looseObject({ type: z.literal('json_schema'), json_schema: z.looseObject({ name: text() }) }),
  ])
  .describe('an object such as {"type": "json_object"}, or one of "json", "json_object", "text"');

/** Fields every job may have. */
export const commonFields = {
  /**
   * The job's unique id across all files of a run: names its result row and its image files.
   * A number is turned into a string. Default: `<file name without extension>-<record number>`, e.g. `prompts-3`.
   */
  id: z
    .union([text(), z.number()])
    .transform(String)
    .describe('a non-empty string or a number'),
  /**
   * `chat`, `vision` or `image`. Default: inferred. `images` makes a vision job; any image-only field
   * (`size`, `quality`, `n`, `output_format`, `background`, `moderation`, `output_compression`, `style`,
   * `output`) or an image model (`gpt-image-*`, `chatgpt-image-*`, `dall-e-*`) makes an image job; `prompt`, `system` or
   * `messages` make a chat job (a vision job when a message has an `image_url` part).
   */
  kind: oneOf(JOB_KINDS),
  /**
   * The model, e.g. `gpt-5-mini` or `gpt-image-1.5`. Default: the file's `defaults`, then `--model`;
   * image jobs fall back to `gpt-image-1.5` (and take `--model` only when it names an image model).
   */
  model: text().describe('a model name, such as "gpt-5-mini"'),
  /** Labels copied to the results, for filtering and cost breakdowns: a list, or a `;`-separated string. */
  tags: z
    .union([z.array(z.string()), z.string().transform(splitList)])
    .describe('a list of strings, or a ";"-separated string'),
};

/** Fields of chat jobs (POST /v1/chat/completions). */
export const chatFields = {
  ...commonFields,
  /** The user message. Give either `prompt` (with an optional `system`) or `messages`, not both. */
  prompt: text().describe('non-empty text'),
  /** A system message sent before `prompt`. Default: the file's `defaults`, then `--system`. Not used with `messages`. */
  system: text().describe('non-empty text'),
  /**
   * The whole conversation in the Chat Completions format: `[{"role": "user", "content": "..."}]`, roles
   * `system`, `developer`, `user`, `assistant`, `tool`; content is a string or an array of content parts. The `url` of
   * an `image_url` part may be a local file, read and inlined as for `images`.
   */
  messages: z.array(message).min(1).describe('a non-empty array of {"role", "content"} messages'),
  /** Sampling temperature, 0 to 2. */
  temperature: z.number().min(0).max(2).describe('a number from 0 to 2'),
  /** Nucleus sampling, 0 to 1. */
  top_p: z.number().min(0).max(1).describe('a number from 0 to 1'),
  /** Upper bound on generated tokens, reasoning tokens included. */
  max_completion_tokens: z.int().positive().describe('a positive integer'),
  /** Deprecated name of `max_completion_tokens`; sent as `max_completion_tokens`. */
  max_tokens: z.int().positive().describe('a positive integer'),
  /**
   * Output format: an object as in the API (`{"type": "json_schema", "json_schema": {...}}`), or the
   * shorthands `"json"`/`"json_object"` (JSON mode) and `"text"`.
   */
  response_format: chatResponseFormat,
  /** Seed for best-effort deterministic sampling. */
  seed: z.int().describe('an integer'),
  /**
   * Any other Chat Completions parameters (`reasoning_effort`, `stop`, `logprobs`, ...), merged into the
   * request body as they are. A key that is also a field above is a problem; `stream` is not supported.
   */
  params: z.record(z.string(), z.unknown()).describe('an object of Chat Completions parameters'),
  /**
   * How the API processes the request: `auto` (the project's setting), `default`, `flex` (slower, at Batch API
   * prices, for the models that offer it) or `priority`. Default: the file's `defaults`, then `--service-tier`, then
   * left out (the API's `auto`). Part of the request: changing it sends the job again.
   */
  service_tier: oneOf(SERVICE_TIERS),
};

/** Fields of vision jobs: chat jobs with images (POST /v1/chat/completions). */
export const visionFields = {
  ...chatFields,
  /**
   * One or more images: `http(s)://` URLs, `data:image/...;base64,` URLs, or local PNG, JPEG, GIF or WEBP
   * files up to 20 MB (paths relative to the job file's folder), which are inlined as `data:` URLs.
   * They follow `prompt` in the user message, or are appended to the last user message of `messages`.
   */
  images: z
    .union([text().transform((image) => [image]), z.array(text()).min(1)])
    .describe('an image URL or path, or a non-empty list of them'),
  /** Image detail level for every image of the job: `auto`, `low` or `high`. Default: the API's (`auto`). */
  detail: oneOf(['auto', 'low', 'high']),
};

/** Fields of image jobs (POST /v1/images/generations). */
export const imageFields = {
  ...commonFields,
  /** What to draw. Required. */
  prompt: text().describe('non-empty text'),
  /**
   * `auto` or `WIDTHxHEIGHT`, e.g. `1024x1024`, `1536x1024`, `1024x1536`. Sizes vary by model and are checked for the
   * models nightshift knows (src/common/image-params.ts): gpt-image-2 also takes other sizes, DALL-E its own.
   */
  size: z
    .string()
    .regex(IMAGE_SIZE)
    .describe('"auto" or WIDTHxHEIGHT, such as "1024x1024"'),
  /** `auto`, `low`, `medium`, `high` (GPT Image), or `standard` (DALL-E), `hd` (DALL-E 3); checked per model. */
  quality: oneOf(IMAGE_CHOICES.quality),
  /** Number of images, 1 to 10. Default: 1. */
  n: z.int().min(1).max(10).describe('an integer from 1 to 10'),
  /** `png`, `jpeg` or `webp` (GPT Image). Also sets the default file extension. Default: png. */
  output_format: oneOf(IMAGE_CHOICES.output_format),
  /** `transparent`, `opaque` or `auto` (GPT Image; transparent needs png or webp). */
  background: oneOf(IMAGE_CHOICES.background),
  /** Content moderation strictness: `auto` or `low` (GPT Image). */
  moderation: oneOf(IMAGE_CHOICES.moderation),
  /** Compression of jpeg and webp output, 0 to 100 (GPT Image). */
  output_compression: z.int().min(0).max(100).describe('an integer from 0 to 100'),
  /** `vivid` or `natural` (DALL-E 3, and compatible servers; GPT image models refuse it). */
  style: oneOf(IMAGE_CHOICES.style),
  /** `url` or `b64_json` (DALL-E, and compatible servers; GPT image models refuse it, they always return base64). */
  response_format: oneOf(IMAGE_CHOICES.response_format),
  /**
   * File name, or pattern, of the saved image under the run's `images/` folder; `{id}` is the job id and
   * `{index}` the image's number (1 to n). Subfolders are allowed, leaving the folder is not. Required to
   * contain `{index}` when n > 1. Default: `{id}.png`, or `{id}-{index}.png` when n > 1 (extension from `output_format`).
   */
  output: z.string().describe('a file name pattern, such as "{id}-{index}.png"'),
};

/** True for text with something other than white space: what `text()` accepts, and returns unchanged. */
const isText = (value: unknown): boolean => typeof value === 'string' && /\S/.test(value);
const isTextList = (value: unknown): boolean => Array.isArray(value) && value.every((item) => typeof item === 'string');
const inRange =
  (min: number, max: number, integer = false) =>
  (value: unknown): boolean =>
    typeof value === 'number' && Number.isFinite(value) && value >= min && value <= max && (!integer || Number.isSafeInteger(value));

/**
 * For the fields most jobs have, a test for values their schema accepts and returns unchanged, which spares
 * a million-row file a million trips through zod. A value the test does not accept goes to the schema, which
 * decides and words the problem; test/schema-quick.test.ts checks that each test accepts only what its schema does.
 */
export const QUICK_CHECKS = new Map<z.ZodType, (value: unknown) => boolean>([
  [commonFields.id, isText],
  [commonFields.model, isText],
  [commonFields.tags, isTextList],
  [chatFields.prompt, isText],
  [chatFields.system, isText],
  [chatFields.temperature, inRange(0, 2)],
  [chatFields.top_p, inRange(0, 1)],
  [chatFields.max_completion_tokens, inRange(1, Number.MAX_SAFE_INTEGER, true)],
  [imageFields.prompt, isText],
]);

/** The fields each kind accepts, for looking up a field's schema and description. */
export const FIELDS_BY_KIND = { chat: chatFields, vision: visionFields, image: imageFields } as const;

/** Field name → schema, as in `chatFields`. */
export type FieldSchemas = Readonly<Record<string, z.ZodType>>;

/** The parsed values of a field table: every field optional (normalize.ts checks which are required). */
export type FieldValues<T extends FieldSchemas> = { -readonly [K in keyof T]?: z.output<T[K]> };

/** The validated fields of a chat or vision job (a chat job has no `images` or `detail`). */
export type VisionJobFields = FieldValues<typeof visionFields>;
/** The validated fields of an image job. */
export type ImageJobFields = FieldValues<typeof imageFields>;

/** Fields of a line in the OpenAI Batch API input format, which is accepted as it stands. */
export const batchRequestFields = {
  /** Becomes the job id. */
  custom_id: text().describe('a non-empty string'),
  /** Always `POST`. */
  method: z.literal('POST').describe('"POST"'),
  /** `/v1/chat/completions` or `/v1/images/generations`: the job's endpoint. */
  url: z.enum(ENDPOINTS).describe(`one of ${ENDPOINTS.join(', ')}`),
  /** The request body, sent unchanged; its `model` is the job's model. */
  body: z.looseObject({ model: text() }).describe('a request body object with a "model"'),
};

/**
 * The fields of a Batch line's `body` that nightshift checks, by endpoint, with the schemas its own jobs use; any
 * other body field is sent unchanged. Which of them are required is decided in batch.ts.
 */
export const batchBodyFields = {
  '/v1/chat/completions': {
    messages: chatFields.messages,
    // The SDK answers a streamed request with a Stream, which nightshift does not read.
    stream: z.literal(false).describe('false or left out: nightshift does not stream replies'),
  },
  '/v1/images/generations': {
    prompt: imageFields.prompt,
  },
} as const satisfies Record<Endpoint, FieldSchemas>;
