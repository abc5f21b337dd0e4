import type { Job } from '../common/types.js';
import { buildChatBody, buildImageBody, buildMessages, CHAT_BODY_FIELDS, type ChatMessage } from './body.js';
import { contentId, contentIdShape } from './content-id.js';
import { checkImageParams } from './image-params.js';
import {
  CHAT_FIELD_NAMES,
  DEFAULT_IMAGE_MODEL,
  IMAGE_CHOICES,
  IMAGE_FIELD_NAMES,
  IMAGE_SIZE,
  isImageModel,
  MESSAGE_ROLES,
  SERVICE_TIERS,
  splitList,
} from './job-fields.js';
import type { NormalizeContext, NormalizeResult } from './normalize.js';
import { checkOutput, defaultOutputPattern } from './output-path.js';
import { liftParams } from './params.js';
import { isJsonObject, type JsonJobRecord, type RowRecord } from './records.js';
import type { ImageJobFields, VisionJobFields } from './schema.js';

/*
 * The common job, normalized without zod: a chat or image job of a `.json` or `.jsonl` file without `defaults`, whose
 * fields are all fields of its kind, of the plainest shapes (text, numbers in range, values from a list, string message
 * contents, shorthand or plain `response_format`), and combine without a problem. It makes exactly the `Job` that
 * `normalize.ts` makes of such a record (test/quick-job.test.ts compares the two on many records); anything else it
 * declines, and `normalize.ts` decides, words every problem, and is loaded (zod with it) only then.
 */

const CHAT_FIELDS: ReadonlySet<string> = new Set(CHAT_FIELD_NAMES);
const IMAGE_FIELDS: ReadonlySet<string> = new Set(IMAGE_FIELD_NAMES);
/** Fields only image jobs have (`kind.ts` infers an image job from them). */
const IMAGE_ONLY_FIELDS: readonly string[] = IMAGE_FIELD_NAMES.filter((field) => !CHAT_FIELDS.has(field));
/** {@link IMAGE_CHOICES}, as sets. */
const CHOICES: Readonly<Record<string, ReadonlySet<unknown>>> = Object.fromEntries(
  Object.entries(IMAGE_CHOICES).map(([field, values]) => [field, new Set<unknown>(values)]),
);
const ROLES: ReadonlySet<string> = new Set(MESSAGE_ROLES);
const TIERS: ReadonlySet<string> = new Set(SERVICE_TIERS);
/** Keys of `params` that are a problem there: the request's own fields, and streaming. */
const NOT_IN_PARAMS: ReadonlySet<string> = new Set([...CHAT_BODY_FIELDS, 'stream', 'stream_options']);

const isText = (value: unknown): value is string => typeof value === 'string' && /\S/.test(value);
const inRange = (value: unknown, min: number, max: number): value is number =>
  typeof value === 'number' && Number.isFinite(value) && value >= min && value <= max;
const isInteger = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value);

/** Reason enough to decline a record: the full validation will look at it. */
const DECLINE = Symbol('decline');

/** The value an image job's `field` takes once checked, as its schema in `schema.ts` outputs it, or {@link DECLINE}. */
function quickImageField(field: string, value: unknown): unknown {
  const choices = CHOICES[field];
  if (choices !== undefined) return choices.has(value) ? value : DECLINE;
  switch (field) {
    case 'size':
      return typeof value === 'string' && IMAGE_SIZE.test(value) ? value : DECLINE;
    case 'n':
      return isInteger(value) && value >= 1 && value <= 10 ? value : DECLINE;
    case 'output_compression':
      return isInteger(value) && value >= 0 && value <= 100 ? value : DECLINE;
    case 'output':
      return typeof value === 'string' ? value : DECLINE;
    default:
      return quickField(field, value);
  }
}

/** The value a chat job's `field` takes once checked, as its schema in `schema.ts` outputs it, or {@link DECLINE}. */
function quickField(field: string, value: unknown): unknown {
  switch (field) {
    case 'id':
      return isText(value) ? value : typeof value === 'number' && Number.isFinite(value) ? String(value) : DECLINE;
    case 'kind':
      return value === 'chat' || value === 'image' ? value : DECLINE;
    case 'model':
    case 'prompt':
    case 'system':
      return isText(value) ? value : DECLINE;
    case 'tags':
      if (typeof value === 'string') return splitList(value);
      return Array.isArray(value) && value.every((tag) => typeof tag === 'string') ? [...value] : DECLINE;
    case 'messages':
      return quickMessages(value);
    case 'temperature':
      return inRange(value, 0, 2) ? value : DECLINE;
    case 'top_p':
      return inRange(value, 0, 1) ? value : DECLINE;
    case 'max_completion_tokens':
    case 'max_tokens':
      return isInteger(value) && value > 0 ? value : DECLINE;
    case 'seed':
      return isInteger(value) ? value : DECLINE;
    case 'service_tier':
      return typeof value === 'string' && TIERS.has(value) ? value : DECLINE;
    case 'response_format':
      return quickResponseFormat(value);
    case 'params':
      return quickParams(value);
    default:
      return DECLINE;
  }
}

/** Messages of a role and a string content each, rebuilt as zod rebuilds them (`role` first). */
function quickMessages(value: unknown): ChatMessage[] | typeof DECLINE {
  if (!Array.isArray(value) || value.length === 0) return DECLINE;
  const messages: ChatMessage[] = [];
  for (const message of value) {
    if (!isJsonObject(message)) return DECLINE;
    const { role, content } = message;
    if (typeof role !== 'string' || !ROLES.has(role) || typeof content !== 'string') return DECLINE;
    for (const key in message) if (key !== 'role' && key !== 'content') return DECLINE;
    messages.push({ role, content });
  }
  return messages;
}

/** The shorthands, and `{"type": "text"}` or `{"type": "json_object"}` alone. */
function quickResponseFormat(value: unknown): { type: string } | typeof DECLINE {
  if (value === 'json' || value === 'json_object') return { type: 'json_object' };
  if (value === 'text') return { type: 'text' };
  if (!isJsonObject(value) || (value['type'] !== 'text' && value['type'] !== 'json_object')) return DECLINE;
  for (const key in value) if (key !== 'type') return DECLINE;
  return { type: value['type'] };
}

/** Parameters none of which is a problem there (job fields given in `params` are lifted out before). */
function quickParams(value: unknown): Record<string, unknown> | typeof DECLINE {
  if (!isJsonObject(value)) return DECLINE;
  // zod builds the record again, and a `__proto__` key does not survive that.
  for (const key in value) if (NOT_IN_PARAMS.has(key) || key === '__proto__') return DECLINE;
  return { ...value };
}

/**
 * The job a common record makes (see above), or undefined when the record is not one that this check vouches for:
 * `normalize.ts` `toJob` then decides.
 */
export function quickJob(record: JsonJobRecord | RowRecord, context: NormalizeContext): Exclude<NormalizeResult, { problems: unknown }> | undefined {
  if (record.type !== 'job') return undefined;
  for (const _ in context.fileDefaults) return undefined;
  const { value } = record;
  let own: Record<string, unknown>;
  if (typeof value === 'string') own = { prompt: value };
  else if (isJsonObject(value)) own = value;
  else return undefined;
  const lifted = liftParams(own);
  if (lifted.problems.length > 0) return undefined;
  const fields = lifted.fields;
  const kind = kindOf(fields, context.cli.model);
  if (kind === undefined) return undefined;

  const [known, check] = kind === 'image' ? [IMAGE_FIELDS, quickImageField] : [CHAT_FIELDS, quickField];
  const values: Record<string, unknown> = {};
  for (const key in fields) {
    const checked = known.has(key) ? check(key, fields[key]) : DECLINE;
    if (checked === DECLINE) return undefined;
    values[key] = checked;
  }
  const job = kind === 'image' ? imageJob(values, record, context) : chatJob(values, fields, record, context);
  if (job === undefined) return undefined;
  if (values['id'] !== undefined) return { job };
  return { job: { ...job, id: contentId(record.source.file, job) }, idFromContent: true };
}

/**
 * The kind as `normalize.ts` tells it (`kind.ts` when the job states none), when it is chat or image and can be told
 * from fields of these two kinds; undefined otherwise.
 */
function kindOf(fields: Readonly<Record<string, unknown>>, defaultModel: string | undefined): 'chat' | 'image' | undefined {
  const has = (field: string) => Object.hasOwn(fields, field);
  if (has('kind')) return fields['kind'] === 'chat' || fields['kind'] === 'image' ? fields['kind'] : undefined;
  const own = typeof fields['model'] === 'string' ? fields['model'] : undefined;
  const model = own ?? defaultModel;
  if (model !== undefined && isImageModel(model)) return 'image';
  if (has('messages') || has('prompt') || has('system')) return own === undefined && IMAGE_ONLY_FIELDS.some(has) ? 'image' : 'chat';
  return undefined;
}

function chatJob(values: VisionJobFields, fields: Record<string, unknown>, record: JsonJobRecord, { cli }: NormalizeContext): Job | undefined {
  const given = (field: string) => Object.hasOwn(fields, field);
  const model = values.model ?? cli.model;
  if (model === undefined) return undefined;
  if (given('prompt') === given('messages')) return undefined;
  if (given('system') && given('messages')) return undefined;
  if (given('max_tokens') && given('max_completion_tokens')) return undefined;
  const system = values.system ?? (given('messages') ? undefined : cli.system);
  const messages = buildMessages({ ...values, system }, []);
  const sent: VisionJobFields = { ...values };
  if (values.service_tier === undefined && cli.serviceTier !== undefined) sent.service_tier = cli.serviceTier;
  if (values.temperature === undefined && cli.temperature !== undefined) sent.temperature = cli.temperature;
  if (values.max_completion_tokens === undefined && values.max_tokens === undefined && cli.maxCompletionTokens !== undefined) {
    sent.max_completion_tokens = cli.maxCompletionTokens;
  }
  const { source } = record;
  return { id: values.id ?? '', kind: 'chat', model, tags: values.tags ?? [], source, endpoint: '/v1/chat/completions', body: buildChatBody(model, messages, sent) };
}

function imageJob(values: ImageJobFields, record: JsonJobRecord, { cli }: NormalizeContext): Job | undefined {
  if (values.prompt === undefined) return undefined;
  const model = values.model ?? (cli.model !== undefined && isImageModel(cli.model) ? cli.model : DEFAULT_IMAGE_MODEL);
  if (checkImageParams(model, values).length > 0) return undefined;
  const n = values.n ?? 1;
  const output = values.output ?? defaultOutputPattern(n, values.output_format);
  // An id-less job's image names are checked with an id of the length its content id will have, as normalize.ts does.
  const id = values.id ?? contentIdShape(record.source.file);
  if (checkOutput(output, id, n) !== undefined) return undefined;
  const { source } = record;
  return { id, kind: 'image', model, tags: values.tags ?? [], source, endpoint: '/v1/images/generations', body: buildImageBody(model, values.prompt, values), output };
}
