import type { Job, JobKind, Problem } from '../common/types.js';
import { batchRequestToJob, isBatchRequest } from './batch.js';
import { buildChatBody, buildImageBody, buildMessages, CHAT_BODY_FIELDS } from './body.js';
import { contentId, contentIdShape } from './content-id.js';
import { liftParams } from './params.js';
import { decodeRow, KNOWN_FIELDS } from './csv-fields.js';
import { applyDefaults, type CliDefaults, type FileDefaults } from './defaults.js';
import { checkImageParams } from './image-params.js';
import { resolveImage, type ImageLoader } from './images.js';
import { hasImagePart, inferKind } from './kind.js';
import { checkOutput, defaultOutputPattern } from './output-path.js';
import { parseFields } from './parse-fields.js';
import { describeValue, toProblem, type ProblemDetail, type ProblemScope } from './problems.js';
import { isJsonObject, type JsonJobRecord, type RowRecord } from './records.js';
import { describeSuggestion, suggestField } from './suggest.js';
import {
  commonFields,
  DEFAULT_IMAGE_MODEL,
  FIELDS_BY_KIND,
  imageFields,
  isImageModel,
  JOB_KINDS,
  type FieldSchemas,
  type ImageJobFields,
  type VisionJobFields,
} from './schema.js';

/** What normalizing a record needs besides the record. */
export interface NormalizeContext {
  /** `--model`, `--system`, `--service-tier`, `--temperature` and `--max-completion-tokens`: the weakest defaults. */
  cli: CliDefaults;
  /** The `defaults` of the record's file, already checked. */
  fileDefaults: FileDefaults;
  /** Reads a local image into a `data:` URL. */
  loadImage: ImageLoader;
}

/**
 * A valid job (`idFromContent` when the record gave no id and the job is named by its request, see `content-id.ts`),
 * or every problem found in the record and the id it has (undefined when it has none, or an invalid one).
 */
export type NormalizeResult = { job: Job; idFromContent?: true } | { problems: Problem[]; id: string | undefined };

/** A record on its way to a `Job`: its fields with defaults applied, and the problems found so far. */
interface Draft {
  id: string;
  source: Job['source'];
  fields: Record<string, unknown>;
  details: ProblemDetail[];
  context: NormalizeContext;
  /** True when `field` is probably given under a name already reported as unknown: its absence is no second problem. */
  covered: (field: string) => boolean;
  /** The record is a CSV row. */
  csv: boolean;
}

/**
 * Turns one raw record into a `Job`: types CSV cells, takes Batch API lines as they stand, applies
 * defaults (job field > file `defaults` > command line), infers the kind, validates every field, inlines local
 * images, builds the request body and, for a record without an id, names the job by it. Reports all of the
 * record's problems.
 */
export function toJob(record: JsonJobRecord | RowRecord, context: NormalizeContext): NormalizeResult | Promise<NormalizeResult> {
  const { file } = record.source;
  // The id the record claims, also for its problems; undefined while it has no valid one (an id-less record has
  // none until its request is built).
  const scope: ProblemScope = { source: record.source, csv: record.type === 'row' };
  const fail = (details: ProblemDetail[]): NormalizeResult => ({ problems: details.map((detail) => toProblem(scope, detail)), id: scope.jobId });

  const details: ProblemDetail[] = [];
  let own: Record<string, unknown>;
  let failed = new Set<string>();
  // Values given under names nightshift does not know, by the field each most likely means: they tell the kind and
  // stand in for required fields, so that a misnamed field is one problem, not also a missing one.
  let standIns: Record<string, unknown> = {};
  // A CSV row with a cell under a column that means nothing known: the header reported it, and what the row lacks may be in it.
  let opaque = false;
  if (record.type === 'row') {
    const row = decodeRow(record.cells);
    ({ fields: own, failed, standIns, opaque } = row);
    details.push(...row.problems);
  } else if (typeof record.value === 'string') {
    // A list of plain strings is a list of prompts.
    own = { prompt: record.value };
  } else if (!isJsonObject(record.value)) {
    scope.jobId = undefined;
    return fail([{ message: `expected a job object or a prompt string, got ${describeValue(record.value)}` }]);
  } else if (isBatchRequest(record.value)) {
    const customId = record.value['custom_id'];
    scope.jobId = typeof customId === 'string' && customId.trim() !== '' ? customId : undefined;
    const result = batchRequestToJob(record.value, record.source);
    return 'job' in result ? result : fail(result.problems);
  } else {
    own = record.value;
    standIns = standInsOf(own);
  }

  if (own['id'] !== undefined) {
    const id = commonFields.id.safeParse(own['id']);
    scope.jobId = id.success ? id.data : undefined;
  }
  const lifted = liftParams(own);
  own = lifted.fields;
  details.push(...lifted.problems);

  // Fields that are no job's tell why the kind cannot be told better than the kind does; a CSV header said so already.
  const unknown = Object.keys(own).filter((key) => !KNOWN_FIELDS.has(key));
  const kind = kindOf({ ...context.fileDefaults, ...standIns, ...own }, context.cli, details, unknown.length > 0 || opaque);
  if (kind === undefined) {
    for (const key of unknown) details.push({ field: key, message: unknownField(key, undefined) });
    return fail(details);
  }

  const fields = applyDefaults(own, context.fileDefaults, FIELDS_BY_KIND[kind]);
  const covered = (field: string) => opaque || Object.hasOwn(standIns, field);
  // An id-less job's image names are checked with an id of the length its content id will have.
  const draft: Draft = { id: scope.jobId ?? contentIdShape(file), source: record.source, fields, details, context, covered, csv: record.type === 'row' };
  const parse = <T extends FieldSchemas>(table: T) => {
    const parsed = parseFields(fields, table, { skip: failed });
    details.push(...parsed.problems.map((detail) => lifted.moved(detail)));
    for (const key of parsed.unknown) details.push({ field: key, message: unknownField(key, kind) });
    return parsed.values;
  };
  const job = kind === 'image' ? toImageJob(parse(imageFields), draft) : toChatJob(parse(FIELDS_BY_KIND[kind]), kind, draft);
  const result = (done: Job | undefined): NormalizeResult => {
    if (done === undefined) return fail(details);
    return own['id'] === undefined ? { job: { ...done, id: contentId(file, done) }, idFromContent: true } : { job: done };
  };
  // Only local images are read from disk; a job without them is normalized without a turn of the event loop.
  return job instanceof Promise ? job.then(result) : result(job);
}

/**
 * The job's kind: as stated (by the job or its file's defaults), else inferred; undefined after a problem, or when it
 * cannot be inferred from a record with `misnamed` fields (those are the problem to report).
 */
function kindOf(fields: Record<string, unknown>, cli: CliDefaults, details: ProblemDetail[], misnamed: boolean): JobKind | undefined {
  if (fields['kind'] !== undefined) {
    const parsed = commonFields.kind.safeParse(fields['kind']);
    if (parsed.success) return parsed.data;
    details.push({ field: 'kind', message: `expected one of ${JOB_KINDS.join(', ')}, got ${describeValue(fields['kind'])}` });
    return undefined;
  }
  const kind = inferKind(fields, cli.model);
  if (kind === undefined && !misnamed) {
    details.push({
      field: 'kind',
      message: 'cannot infer the kind: set kind, or give prompt or messages (chat), images (vision), or an image field such as size (image)',
    });
  }
  return kind;
}

/** The fields of a JSON record that no job kind has, by the field each most likely means (see {@link suggestField}). */
function standInsOf(record: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const standIns: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(record)) {
    if (KNOWN_FIELDS.has(key)) continue;
    const suggestion = suggestField(key, KNOWN_FIELDS);
    if (suggestion !== undefined && !Object.hasOwn(record, suggestion.field)) standIns[suggestion.field] = value;
  }
  return standIns;
}

/** Why `field` is refused for a job of `kind` (undefined when no kind could be told), with the field it most likely means. */
function unknownField(field: string, kind: JobKind | undefined): string {
  const kinds = JOB_KINDS.filter((other) => other !== kind && Object.hasOwn(FIELDS_BY_KIND[other], field));
  if (kind !== undefined && kinds.length > 0) {
    // The model decided the kind: a job meant for an image model nightshift does not know says so itself.
    const hint = kinds.includes('image') ? ' (for an image model nightshift does not know, set "kind": "image")' : '';
    return `applies to ${kinds.join(' and ')} jobs, not ${kind} jobs${hint}`;
  }
  const own = kind === undefined ? undefined : suggestField(field, Object.keys(FIELDS_BY_KIND[kind]));
  if (own !== undefined) return describeSuggestion('unknown field', own);
  const other = suggestField(field, KNOWN_FIELDS);
  if (other !== undefined) {
    const owners = JOB_KINDS.filter((each) => Object.hasOwn(FIELDS_BY_KIND[each], other.field));
    return describeSuggestion(kind === undefined ? 'unknown field' : `unknown field for ${kind} jobs`, { ...other, why: other.why ?? `${other.field} is a field of ${owners.join(' and ')} jobs` });
  }
  if (kind === undefined) return 'unknown field: a job needs prompt or messages (chat), images (vision), or an image field such as size (image)';
  return kind === 'image' ? 'unknown field for image jobs' : 'unknown field: put other Chat Completions parameters in "params"';
}

function toChatJob(values: VisionJobFields, kind: 'chat' | 'vision', draft: Draft): Job | undefined | Promise<Job | undefined> {
  const { fields, details, context, covered } = draft;
  const given = (field: string) => Object.hasOwn(fields, field);
  const present = (field: string) => given(field) || covered(field);
  const model = values.model ?? context.cli.model;
  if (model === undefined && !present('model')) {
    details.push({ field: 'model', message: 'required: set it in the job, in the file\'s "defaults", or with --model' });
  }
  if (given('prompt') && given('messages')) details.push({ field: 'prompt', message: 'give either prompt or messages, not both' });
  if (!present('prompt') && !present('messages')) details.push({ field: 'prompt', message: 'required (or give messages)' });
  if (given('system') && given('messages')) details.push({ field: 'system', message: 'not used with messages: put a system message in messages' });
  if (given('max_tokens') && given('max_completion_tokens')) {
    details.push({ field: 'max_tokens', message: 'give max_completion_tokens only (max_tokens is its deprecated name)' });
  }
  for (const key of Object.keys(values.params ?? {})) {
    if ((CHAT_BODY_FIELDS as readonly string[]).includes(key)) details.push({ field: `params.${key}`, message: `set ${key} as a field of its own` });
    if (key === 'stream' || key === 'stream_options') details.push({ field: `params.${key}`, message: 'streaming is not supported' });
  }
  if (kind === 'vision' && !present('images') && !hasImagePart(values.messages)) {
    details.push({ field: 'images', message: 'required for vision jobs' });
  }
  const images = values.images ?? [];
  const inline = values.messages !== undefined && values.messages.some((message) => partsOf(message).some((part) => urlToResolve(part) !== undefined));
  if (images.length === 0 && !inline) return chatJob(values, kind, model, [], draft);
  return (async () => {
    const messages = inline ? await resolveMessageImages(values.messages!, draft) : values.messages;
    const urls = await resolveImages(images, draft);
    return chatJob({ ...values, messages }, kind, model, urls, draft);
  })();
}

type Message = NonNullable<VisionJobFields['messages']>[number];
type Part = ReturnType<typeof partsOf>[number];
const partsOf = (message: Message) => (Array.isArray(message.content) ? message.content : []);

/** The URL of an `image_url` part that is not http(s): a local path to inline, or a data URL to check, as in `images`. */
function urlToResolve(part: Part): string | undefined {
  const image = part['image_url'];
  if (part.type !== 'image_url' || !isJsonObject(image)) return undefined;
  const url = image['url'];
  return typeof url === 'string' && !/^https?:\/\//i.test(url) ? url : undefined;
}

/** `messages` with the local images of their `image_url` parts inlined like those of `images`; each that cannot be is a problem. */
async function resolveMessageImages(messages: readonly Message[], { source, details, context }: Draft): Promise<Message[]> {
  const resolved: Message[] = [];
  for (const [i, message] of messages.entries()) {
    if (!Array.isArray(message.content)) {
      resolved.push(message);
      continue;
    }
    const content: Part[] = [];
    for (const [j, part] of message.content.entries()) {
      const url = urlToResolve(part);
      const image = url === undefined ? undefined : await resolveImage(url, source.file, context.loadImage);
      if (image !== undefined && 'url' in image) content.push({ ...part, image_url: { ...(part['image_url'] as object), url: image.url } });
      else content.push(part);
      if (image !== undefined && 'error' in image) details.push({ field: `messages.${i}.content.${j}.image_url.url`, message: image.error });
    }
    resolved.push({ ...message, content });
  }
  return resolved;
}

/** The URLs to send for a job's `images`, local files read and inlined; each entry that cannot be is a problem. */
async function resolveImages(images: readonly string[], { source, details, context, csv }: Draft): Promise<string[]> {
  const urls: string[] = [];
  for (const [i, entry] of images.entries()) {
    const image = await resolveImage(entry, source.file, context.loadImage);
    if ('url' in image) urls.push(image.url);
    else details.push({ field: `images.${i}`, message: `${image.error}${entry.includes(',') ? listHint(csv) : ''}` });
  }
  return urls;
}

/** For an image entry with a comma that could not be read: how several images are given. */
const listHint = (csv: boolean): string =>
  csv ? ' (to give several images in a CSV cell, separate them with ";", not ",")' : ' (to give several images, give a list: ["a.png", "b.png"])';

function chatJob(values: VisionJobFields, kind: 'chat' | 'vision', model: string | undefined, imageUrls: string[], draft: Draft): Job | undefined {
  const { id, source, fields, details, context } = draft;
  if (details.length > 0 || model === undefined) return undefined;
  const system = values.system ?? (Object.hasOwn(fields, 'messages') ? undefined : context.cli.system);
  const messages = buildMessages({ ...values, system }, imageUrls);
  const { cli } = context;
  const sent: VisionJobFields = { ...values };
  if (values.service_tier === undefined && cli.serviceTier !== undefined) sent.service_tier = cli.serviceTier;
  if (values.temperature === undefined && cli.temperature !== undefined) sent.temperature = cli.temperature;
  if (values.max_completion_tokens === undefined && values.max_tokens === undefined && cli.maxCompletionTokens !== undefined) {
    sent.max_completion_tokens = cli.maxCompletionTokens;
  }
  return { id, kind, model, tags: values.tags ?? [], source, endpoint: '/v1/chat/completions', body: buildChatBody(model, messages, sent) };
}

function toImageJob(values: ImageJobFields, { id, source, fields, details, context, covered }: Draft): Job | undefined {
  const given = (field: string) => Object.hasOwn(fields, field);
  const cliModel = context.cli.model !== undefined && isImageModel(context.cli.model) ? context.cli.model : undefined;
  const model = values.model ?? cliModel ?? DEFAULT_IMAGE_MODEL;
  if (!given('prompt') && !covered('prompt')) details.push({ field: 'prompt', message: 'required' });
  details.push(...checkImageParams(model, values));
  const n = values.n ?? 1;
  const output = values.output ?? defaultOutputPattern(n, values.output_format);
  // An invalid n or output is reported already; checking the file names against it would only add noise.
  const checkable = (values.n !== undefined || !given('n')) && (values.output !== undefined || !given('output'));
  const reason = checkable ? checkOutput(output, id, n) : undefined;
  if (reason !== undefined) {
    // A default pattern goes wrong only through the id, so the id is what to fix.
    details.push(given('output') ? { field: 'output', message: reason } : { field: 'id', message: `makes an unusable image file name: ${reason}` });
  }
  if (details.length > 0 || values.prompt === undefined) return undefined;
  return {
    id,
    kind: 'image',
    model,
    tags: values.tags ?? [],
    source,
    endpoint: '/v1/images/generations',
    body: buildImageBody(model, values.prompt, values),
    output,
  };
}
