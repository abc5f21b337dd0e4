import type { Job } from '../common/types.js';
import { buildChatBody, buildMessages, CHAT_BODY_FIELDS, type ChatMessage } from './body.js';
import { contentId } from './content-id.js';
import { CHAT_FIELD_NAMES, isImageModel, MESSAGE_ROLES, SERVICE_TIERS, splitList } from './job-fields.js';
import type { NormalizeContext, NormalizeResult } from './normalize.js';
import { liftParams } from './params.js';
import { isJsonObject, type JsonJobRecord, type RowRecord } from './records.js';
import type { VisionJobFields } from './schema.js';

/*
 * The common job, normalized without zod: a chat job of a `.json` or `.jsonl` file without `defaults`, whose fields are
 * all chat fields of the plainest shapes (text, numbers in range, string message contents, shorthand or plain
 * `response_format`) and combine without a problem. It makes exactly the `Job` that `normalize.ts` makes of such a
 * record (test/quick-job.test.ts compares the two on many records); anything else it declines, and `normalize.ts`
 * decides, words every problem, and is loaded (zod with it) only then.
 */

const CHAT_FIELDS: ReadonlySet<string> = new Set(CHAT_FIELD_NAMES);
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

/** The value `field` takes once checked, as its schema in `schema.ts` outputs it, or {@link DECLINE}. */
function quickField(field: string, value: unknown): unknown {
  switch (field) {
    case 'id':
      return isText(value) ? value : typeof value === 'number' && Number.isFinite(value) ? String(value) : DECLINE;
    case 'kind':
      return value === 'chat' ? value : DECLINE;
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
  for (const key in own) if (!CHAT_FIELDS.has(key)) return undefined;
  const lifted = liftParams(own);
  if (lifted.problems.length > 0) return undefined;
  const fields = lifted.fields;

  const values: Record<string, unknown> = {};
  for (const key in fields) {
    const checked = quickField(key, fields[key]);
    if (checked === DECLINE) return undefined;
    values[key] = checked;
  }
  const given = (field: string) => Object.hasOwn(fields, field);
  const { cli } = context;
  const model = (values['model'] as string | undefined) ?? cli.model;
  if (model === undefined) return undefined;
  // The kind as `kind.ts` infers it: an image model makes an image job, unless the job says it is a chat job.
  if (!given('kind') && isImageModel(model)) return undefined;
  if (given('prompt') === given('messages')) return undefined;
  if (given('system') && given('messages')) return undefined;
  if (given('max_tokens') && given('max_completion_tokens')) return undefined;

  const job = values as VisionJobFields;
  const system = job.system ?? (given('messages') ? undefined : cli.system);
  const messages = buildMessages({ ...job, system }, []);
  const sent: VisionJobFields = { ...job };
  if (job.service_tier === undefined && cli.serviceTier !== undefined) sent.service_tier = cli.serviceTier;
  if (job.temperature === undefined && cli.temperature !== undefined) sent.temperature = cli.temperature;
  if (job.max_completion_tokens === undefined && job.max_tokens === undefined && cli.maxCompletionTokens !== undefined) {
    sent.max_completion_tokens = cli.maxCompletionTokens;
  }
  const built: Job = {
    id: job.id ?? '',
    kind: 'chat',
    model,
    tags: job.tags ?? [],
    source: record.source,
    endpoint: '/v1/chat/completions',
    body: buildChatBody(model, messages, sent),
  };
  if (job.id !== undefined) return { job: built };
  return { job: { ...built, id: contentId(record.source.file, built) }, idFromContent: true };
}
