/**
 * What a request counts against a tokens-per-minute limit.
 *
 * OpenAI charges a request when it arrives, before anything is generated: "your rate limit is calculated as the
 * maximum of max_tokens and the estimated number of tokens based on the character count of your request" (rate
 * limits guide); OpenAI's cookbook parallel processor, and the offline server, count the prompt's tokens plus `n`
 * times `max_tokens`. Unused output is not given back, so {@link countedTokens} keeps the bound and only corrects
 * the prompt estimate. A request without an output bound is charged the estimate from its characters on arrival, and
 * what it used once answered: the scheduler learns what such an output costs from the server's headers
 * ({@link tokenClaim}: its choices are `open`), starting from {@link DEFAULT_OUTPUT_BOUND} per choice.
 */
import { imageOutputTokens } from '../cost/image-output-tokens.js';
import { positiveInteger, type ChatMessage, type ContentPart } from '../jobs/body.js';
import { countChatTokens, countDefinitionTokens, countTextTokens, DEFAULT_OUTPUT_BOUND, encodingFor } from '../cost/tokens.js';
import type { Job, Usage } from '../common/types.js';
import { imageInputTokens } from '../cost/vision-tokens.js';
import type { TokenClaim } from './rate-limit.js';

/**
 * Tokens a job's request will count against a TPM limit at most: its prompt counted locally, plus its output bound
 * ({@link DEFAULT_OUTPUT_BOUND} per choice when the job sets none).
 */
export function requestTokens(job: Job): number {
  const { known, open } = tokenClaim(job);
  return known + open * DEFAULT_OUTPUT_BOUND;
}

/** What a job's request claims of a TPM limit: its prompt counted locally and its output bound, or its open choices. */
export function tokenClaim(job: Job): TokenClaim {
  const open = unboundedChoices(job);
  return { known: promptTokens(job) + (open > 0 ? 0 : outputBound(job)), open };
}

function promptTokens(job: Job): number {
  const encoding = encodingFor(job.model).name;
  if (job.endpoint === '/v1/images/generations') {
    const prompt = typeof job.body.prompt === 'string' ? job.body.prompt : '';
    return countTextTokens(prompt, encoding);
  }
  // Validation already vouches for the body; still, a count must never throw (a run would crash mid-flight), so
  // anything it cannot read is estimated from its characters instead.
  const messages: ChatMessage[] = [];
  let tokens = countDefinitionTokens(job.body, encoding);
  for (const message of Array.isArray(job.body.messages) ? (job.body.messages as unknown[]) : []) {
    if (!isRecord(message)) {
      tokens += characterEstimate(message);
      continue;
    }
    if (!Array.isArray(message.content)) {
      messages.push(message as ChatMessage);
      continue;
    }
    const content: ContentPart[] = [];
    for (const part of message.content as unknown[]) {
      if (!isRecord(part) || typeof part.type !== 'string' || (part.type === 'text' && typeof part.text !== 'string')) {
        tokens += characterEstimate(part);
        continue;
      }
      content.push(part as ContentPart);
      const image = part.type === 'image_url' && isRecord(part.image_url) ? part.image_url : undefined;
      if (typeof image?.url !== 'string') continue;
      tokens += imageInputTokens(image.url, typeof image.detail === 'string' ? image.detail : undefined, job.model).tokens;
    }
    messages.push({ ...message, content } as ChatMessage);
  }
  return tokens + countChatTokens(messages, encoding);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** OpenAI's rule of thumb, about four characters a token, for a value the count cannot read. */
function characterEstimate(value: unknown): number {
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? '');
  return Math.ceil(text.length / 4);
}

/**
 * Tokens a finished request counted, from the usage the API reported: the real prompt, plus the output bound (or the
 * real output when it was longer, or when the job sets no bound). `undefined` when the answer reported no usage.
 */
export function countedTokens(job: Job, usage: Usage): number | undefined {
  if (usage.total_tokens === 0) return undefined;
  if (job.endpoint === '/v1/images/generations' || unboundedChoices(job) > 0) return usage.input_tokens + usage.output_tokens;
  return usage.input_tokens + Math.max(outputBound(job), usage.output_tokens);
}

/** The choices of a chat job that sets no output bound: `n`, or 0 when it sets one (image jobs always have one). */
function unboundedChoices(job: Job): number {
  if (job.endpoint === '/v1/images/generations') return 0;
  const bound = positiveInteger(job.body.max_completion_tokens) ?? positiveInteger(job.body.max_tokens);
  return bound === undefined ? (positiveInteger(job.body.n) ?? 1) : 0;
}

function outputBound(job: Job): number {
  const n = positiveInteger(job.body.n) ?? 1;
  if (job.endpoint === '/v1/images/generations') {
    const size = typeof job.body.size === 'string' && job.body.size !== 'auto' ? job.body.size : '1024x1024';
    // `auto` may turn out high; charging that is safe, and settling gives back the difference.
    const quality = typeof job.body.quality === 'string' && job.body.quality !== 'auto' ? job.body.quality : 'high';
    // Models priced per image (DALL·E) report no tokens, and no token limit applies to them.
    return n * (imageOutputTokens(job.model, size, quality) ?? 0);
  }
  // A job without a bound has none here: its choices are open (see `tokenClaim`).
  return n * (positiveInteger(job.body.max_completion_tokens) ?? positiveInteger(job.body.max_tokens) ?? 0);
}
