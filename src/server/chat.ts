import type OpenAI from 'openai';
import { invalidRequest } from './api-error.js';
import { fnv1a } from './hash.js';
import { isReasoningModel } from '../cost/reasoning.js';
import { asRecord, missing, optionalEnum, optionalInteger, requireString } from './request-fields.js';
import { countChatTokens, countDefinitionTokens, countTextTokens, DEFAULT_OUTPUT_BOUND, encodingFor, type EncodingName } from '../cost/tokens.js';
import { truncateToTokens } from './tokens.js';
import { checkedImagePartTokens } from './vision.js';

/** A validated `POST /v1/chat/completions` request, reduced to what the reply and its usage depend on. */
export interface ChatRequest {
  model: string;
  /** The model's tokenizer, for the prompt and the reply alike. */
  encoding: EncodingName;
  n: number;
  /** `max_completion_tokens`, or the deprecated `max_tokens`. */
  maxCompletionTokens: number | undefined;
  /** `response_format` asks for JSON (`json_object` or `json_schema`). */
  json: boolean;
  reasoningEffort: string | undefined;
  /** Text of the last user message: what the reply quotes and what the request log records. */
  key: string;
  /** `image_url` parts across all messages. */
  images: number;
  promptTokens: number;
  /** All message text in order: what the reply is derived from and what prompt caching compares. */
  promptText: string;
  /** The tier that serves the request, as the answer reports it: the one asked for, `default` for `auto` or none. */
  serviceTier: string;
}

/** `service_tier` values the API takes on chat requests. */
const SERVICE_TIERS = ['auto', 'default', 'flex', 'scale', 'priority'];

/**
 * Models the offline server serves at the flex tier, as OpenAI offers it (the o3 and o4-mini reasoning models and
 * GPT-5 and its successors, not their chat variants); any other model refuses flex, as the API does.
 */
export const offersFlex = (model: string): boolean => /^(o3|o4-mini|gpt-5)/.test(model) && !/-chat/.test(model);


const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool', 'function']);
const EFFORTS: Record<string, number> = { none: 0, minimal: 0, low: 0.5, medium: 1, high: 2, xhigh: 3 };
const EXCERPT_CHARS = 60;

const SENTENCES = [
  'This answer was produced offline, so no tokens were billed.',
  'A real model would weigh the details more carefully.',
  'The offline server keeps its answers short and deterministic.',
  'Ask the same question again and you will get the same answer.',
  'Consider this a placeholder until the job runs against the real API.',
  'Nothing in this reply depends on the time of day.',
  'The reply is derived from a hash of the prompt.',
  'Batch runs can be rehearsed end to end this way.',
  'Usage numbers are computed with the o200k_base tokenizer.',
  'No network access was needed to write this.',
  'The details would matter in a real answer.',
  'Short prompts get short answers here.',
];

/** The model and key of a chat body, read leniently (before validation) for fault matching and the log. */
export function describeChat(body: unknown): { model?: string; key: string; serviceTier?: string } {
  const { model, messages, service_tier: serviceTier } = asRecord(body);
  const lastUser = Array.isArray(messages)
    ? [...messages].reverse().find((message) => asRecord(message).role === 'user')
    : undefined;
  return {
    model: typeof model === 'string' ? model : undefined,
    key: lastUser === undefined ? '' : contentText(asRecord(lastUser).content),
    ...(typeof serviceTier === 'string' ? { serviceTier } : {}),
  };
}

/** Validates a chat body the way the real API does for the common mistakes; throws {@link ApiError} 400s. */
export function parseChatRequest(body: unknown): ChatRequest {
  const fields = asRecord(body);
  const model = requireString(fields, 'model');
  if (fields.messages === undefined) throw missing('messages');
  if (!Array.isArray(fields.messages)) {
    throw invalidRequest("Invalid type for 'messages': expected an array of objects.", 'messages', 'invalid_type');
  }
  if (fields.messages.length === 0) {
    throw invalidRequest(
      "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
      'messages',
      'empty_array',
    );
  }
  if (fields.stream === true) {
    throw invalidRequest('The offline server does not stream; omit `stream`.', 'stream', 'unsupported_value');
  }
  const reasoning = isReasoningModel(model);
  if (reasoning && fields.max_tokens !== undefined && fields.max_tokens !== null) {
    throw invalidRequest(
      "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
      'max_tokens',
      'unsupported_parameter',
    );
  }
  const serviceTier = optionalEnum(fields, 'service_tier', SERVICE_TIERS);
  // The API refuses flex for a model that does not offer it, rather than serving the request at another tier.
  if (serviceTier === 'flex' && !offersFlex(model)) {
    throw invalidRequest(`Unsupported service_tier: flex is not available for the model '${model}'.`, 'service_tier', 'unsupported_value');
  }
  const reasoningEffort = optionalEnum(fields, 'reasoning_effort', Object.keys(EFFORTS));
  if (!reasoning && reasoningEffort !== undefined) {
    throw invalidRequest(
      "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
      'reasoning_effort',
      'unsupported_parameter',
    );
  }

  let imageTokens = 0;
  let images = 0;
  let key = '';
  const texts: string[] = [];
  fields.messages.forEach((value: unknown, index) => {
    const param = `messages[${index}]`;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw invalidRequest(`Invalid type for '${param}': expected an object.`, param, 'invalid_type');
    }
    const message = value as Record<string, unknown>;
    if (!ROLES.has(message.role as string)) {
      throw invalidRequest(
        `Invalid value: '${String(message.role)}'. ` +
          "Supported values are: 'system', 'developer', 'user', 'assistant', 'tool' and 'function'.",
        `${param}.role`,
        'invalid_value',
      );
    }
    const content = readContent(message, param, model);
    imageTokens += content.imageTokens;
    images += content.images;
    texts.push(content.text);
    if (message.role === 'user') key = content.text;
  });
  const promptText = texts.join('\n');
  const json = readJsonFormat(fields.response_format);
  if (json.type === 'json_object' && !/json/i.test(promptText)) {
    throw invalidRequest(
      "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
      'messages',
    );
  }
  // Counted as the estimator counts, so that a rehearsal reports what `nightshift estimate` predicts: the messages
  // with OpenAI's per-message overhead, then tool definitions and JSON schemas, which are part of the prompt too.
  const encoding = encodingFor(model).name;
  const messages = fields.messages as Parameters<typeof countChatTokens>[0];
  const promptTokens = countChatTokens(messages, encoding) + countDefinitionTokens(fields, encoding) + imageTokens;

  return {
    model,
    encoding,
    n: optionalInteger(fields, 'n', 1, 128) ?? 1,
    maxCompletionTokens:
      optionalInteger(fields, 'max_completion_tokens', 1) ?? optionalInteger(fields, 'max_tokens', 1),
    json: json.type !== 'text',
    reasoningEffort,
    key,
    images,
    promptTokens,
    promptText,
    serviceTier: serviceTier === undefined || serviceTier === 'auto' ? 'default' : serviceTier,
  };
}

/** Tokens the request counts against a tokens-per-minute limit: its prompt plus the most it may generate. */
export const chatTokenEstimate = (request: ChatRequest): number =>
  request.promptTokens + request.n * (request.maxCompletionTokens ?? DEFAULT_OUTPUT_BOUND);

/**
 * What OpenAI charges a request against a tokens-per-minute limit on arrival: "the maximum of max_tokens and the
 * estimated number of tokens based on the character count of your request" (rate limits guide), at about four
 * characters a token. The answer's real usage is charged later (see `RateLimits.charge`).
 */
export const chatArrivalEstimate = (request: ChatRequest): number =>
  Math.max(request.n * (request.maxCompletionTokens ?? 0), Math.ceil(request.promptText.length / 4));

/** The completion for a validated request. Pure: the same request and context give the same answer. */
export function buildChatCompletion(
  request: ChatRequest,
  context: { id: string; created: number; cachedTokens: number },
): OpenAI.ChatCompletion {
  const seed = fnv1a(request.promptText);
  const budget = request.maxCompletionTokens ?? Number.POSITIVE_INFINITY;
  let completionTokens = 0;
  let reasoningTokens = 0;
  const choices = Array.from({ length: request.n }, (_, index): OpenAI.ChatCompletion.Choice => {
    // Reasoning comes out of the same budget as the answer, so a tight limit can leave no room for content.
    const reasoning = Math.min(plannedReasoningTokens(request, seed + index), budget);
    const room = budget - reasoning;
    let content = replyText(request, seed + index);
    let contentTokens = countTextTokens(content, request.encoding);
    const truncated = contentTokens > room;
    if (truncated) {
      content = truncateToTokens(content, room, request.encoding);
      contentTokens = room;
    }
    completionTokens += reasoning + contentTokens;
    reasoningTokens += reasoning;
    return {
      index,
      message: { role: 'assistant', content, refusal: null, annotations: [] },
      logprobs: null,
      finish_reason: truncated ? 'length' : 'stop',
    };
  });
  return {
    id: context.id,
    object: 'chat.completion',
    created: context.created,
    model: request.model,
    choices,
    usage: {
      prompt_tokens: request.promptTokens,
      completion_tokens: completionTokens,
      total_tokens: request.promptTokens + completionTokens,
      prompt_tokens_details: { cached_tokens: context.cachedTokens, audio_tokens: 0 },
      completion_tokens_details: {
        reasoning_tokens: reasoningTokens,
        audio_tokens: 0,
        accepted_prediction_tokens: 0,
        rejected_prediction_tokens: 0,
      },
    },
    service_tier: request.serviceTier as OpenAI.ChatCompletion['service_tier'],
    system_fingerprint: 'fp_offline',
  };
}

function replyText(request: ChatRequest, seed: number): string {
  const quoted = request.key.replace(/\s+/g, ' ').trim();
  const excerpt = quoted.length > EXCERPT_CHARS ? `${quoted.slice(0, EXCERPT_CHARS)}...` : quoted;
  const reply = `Offline reply to "${excerpt}".`;
  const seen = request.images === 0 ? '' : `I see ${request.images} image${request.images === 1 ? '' : 's'}.`;
  const sentence = SENTENCES[(seed >>> 0) % SENTENCES.length] ?? '';
  if (request.json) {
    return JSON.stringify({ reply, ...(request.images > 0 && { images: request.images }), note: sentence });
  }
  return [reply, seen, sentence].filter((part) => part !== '').join(' ');
}

function plannedReasoningTokens(request: ChatRequest, seed: number): number {
  if (!isReasoningModel(request.model)) return 0;
  const effort = EFFORTS[request.reasoningEffort ?? 'medium'] ?? 1;
  return Math.round(effort * (64 + ((seed >>> 8) % 8) * 32));
}

function readContent(
  message: Record<string, unknown>,
  param: string,
  model: string,
): { text: string; images: number; imageTokens: number } {
  const { content } = message;
  if (typeof content === 'string') return { text: content, images: 0, imageTokens: 0 };
  // Assistant turns that only call tools carry no content.
  if ((content === null || content === undefined) && message.role === 'assistant') {
    return { text: '', images: 0, imageTokens: 0 };
  }
  if (!Array.isArray(content)) {
    throw invalidRequest(
      `Invalid type for '${param}.content': expected a string or an array of content parts.`,
      `${param}.content`,
      'invalid_type',
    );
  }
  const texts: string[] = [];
  let images = 0;
  let imageTokens = 0;
  content.forEach((value: unknown, index) => {
    const at = `${param}.content[${index}]`;
    const part = asRecord(value);
    if (part.type === 'text' && typeof part.text === 'string') {
      texts.push(part.text);
    } else if (part.type === 'refusal' && typeof part.refusal === 'string') {
      texts.push(part.refusal);
    } else if (part.type === 'image_url') {
      const image = asRecord(part.image_url);
      imageTokens += checkedImagePartTokens(image.url, image.detail, `${at}.image_url`, model);
      images += 1;
    } else {
      throw invalidRequest(
        `Invalid content part: the offline server understands 'text' parts with a 'text' string and 'image_url' parts.`,
        at,
        'invalid_value',
      );
    }
  });
  return { text: texts.join('\n'), images, imageTokens };
}

function readJsonFormat(format: unknown): { type: 'text' | 'json_object' | 'json_schema' } {
  if (format === undefined || format === null) return { type: 'text' };
  const { type } = asRecord(format);
  if (type === 'text' || type === 'json_object' || type === 'json_schema') return { type };
  throw invalidRequest(
    `Invalid value: '${String(type)}'. Supported values are: 'text', 'json_object' and 'json_schema'.`,
    'response_format.type',
    'invalid_value',
  );
}

/** Text of a message's content, whether a string or an array of parts. */
function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .map((part) => asRecord(part))
    .filter((part) => part.type === 'text' && typeof part.text === 'string')
    .map((part) => part.text as string)
    .join('\n');
}
