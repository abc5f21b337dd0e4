/**
 * Input tokens of a Chat Completions request, counted locally the way OpenAI bills them: the text of every
 * message in the model's encoding, plus a fixed overhead per message and for priming the reply.
 *
 * The overhead is OpenAI's published rule for the GPT-4 and later chat formats (openai-cookbook,
 * "How to count tokens with tiktoken", `num_tokens_from_messages`): 3 tokens per message, 1 more when the message has
 * a `name`, and 3 for the `<|start|>assistant<|message|>` that every reply is primed with. gpt-tokenizer's own chat
 * counter (`countChatCompletionTokens`) applies the same constants, but only on its per-model entry points and only
 * to models it lists; counting with the per-encoding entry points here works for any model name, fine-tunes included.
 */
import { createRequire } from 'node:module';
import type { countTokens as CountTokens } from 'gpt-tokenizer/encoding/o200k_base';
import type { ChatMessage } from '../jobs/body.js';

/** The tokenizer encodings OpenAI's chat models use. */
export type EncodingName = 'o200k_base' | 'cl100k_base';

/** The encoding of a model, and whether it was recognised or assumed. */
export interface ModelEncoding {
  readonly name: EncodingName;
  /** The model name is not one nightshift knows, so `o200k_base`, the encoding of every current OpenAI model, is assumed. */
  readonly assumed: boolean;
}

/** Tokens added for each message, whatever its content. */
export const TOKENS_PER_MESSAGE = 3;
/** Tokens added for a message's `name` field, on top of the name's own tokens. */
export const TOKENS_PER_NAME = 1;
/** Tokens that prime every reply. */
export const REPLY_PRIMING_TOKENS = 3;

/**
 * Output tokens a chat request without `max_completion_tokens` is taken to reserve, per choice, against a
 * tokens-per-minute limit until nightshift's rate scheduler learns what the server charges for one; the offline
 * server's limiter charges that much by default.
 */
export const DEFAULT_OUTPUT_BOUND = 256;

// An encoding's tables take a few hundred milliseconds to load: loaded on first use, so that commands and runs that
// count no tokens (no --tpm, no estimate) start without them.
const load = createRequire(import.meta.url);
const counters: Partial<Record<EncodingName, typeof CountTokens>> = {};
const counter = (encoding: EncodingName): typeof CountTokens =>
  (counters[encoding] ??= (load(`gpt-tokenizer/encoding/${encoding}`) as { countTokens: typeof CountTokens }).countTokens);

// Special-token strings such as `<|endoftext|>` in user text are ordinary text to the API, not an error.
const AS_TEXT = { disallowedSpecial: new Set<string>() };

/** Model families by name prefix. GPT-4 and GPT-3.5 come after the GPT-4o/4.1/4.5 prefixes they would otherwise swallow. */
const FAMILIES: readonly (readonly [RegExp, EncodingName])[] = [
  [/^(gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o1|o3|o4|gpt-image|chatgpt-image|computer-use)/, 'o200k_base'],
  [/^(gpt-4|gpt-3\.5)/, 'cl100k_base'],
];

/**
 * The name a model's family is recognised by: lower case, and for a fine-tune (`ft:gpt-4o-mini-2024-07-18:acme::abc`)
 * the model it was tuned from.
 */
export function baseModelName(model: string): string {
  const name = model.trim().toLowerCase();
  return name.startsWith('ft:') ? (name.split(':')[1] ?? '') : name;
}

/** The encoding `model` tokenizes with: o200k_base for GPT-4o and later, cl100k_base for GPT-4 and GPT-3.5. */
export function encodingFor(model: string): ModelEncoding {
  const name = baseModelName(model);
  const family = FAMILIES.find(([pattern]) => pattern.test(name));
  return family ? { name: family[1], assumed: false } : { name: 'o200k_base', assumed: true };
}

/** Tokens of `text` in `encoding`. */
export function countTextTokens(text: string, encoding: EncodingName): number {
  return text === '' ? 0 : counter(encoding)(text, AS_TEXT);
}

/**
 * Input tokens of `messages` apart from their non-text content parts (images, audio, files), which the caller
 * counts by their own rules. Every other message field counts as its text: strings as they are, anything else
 * (`tool_calls`) as its JSON, as the cookbook counts every value of a message.
 */
export function countChatTokens(messages: readonly ChatMessage[], encoding: EncodingName): number {
  let tokens = REPLY_PRIMING_TOKENS;
  for (const message of messages) {
    tokens += TOKENS_PER_MESSAGE;
    for (const [field, value] of Object.entries(message)) {
      if (value === undefined || value === null) continue;
      if (field === 'name') tokens += TOKENS_PER_NAME;
      if (field === 'content' && Array.isArray(value)) {
        for (const part of value as unknown[]) tokens += countTextPart(part, encoding);
      } else {
        tokens += countTextTokens(typeof value === 'string' ? value : JSON.stringify(value), encoding);
      }
    }
  }
  return tokens;
}

/**
 * Tokens of the definitions a Chat Completions body adds to the prompt: `tools`, legacy `functions` and a
 * `response_format` JSON schema, each counted as its JSON text. OpenAI renders them in its own format first, so this
 * approximates; JSON's quotes and braces usually make it err on the high side.
 */
export function countDefinitionTokens(body: Readonly<Record<string, unknown>>, encoding: EncodingName): number {
  const format = body.response_format as { json_schema?: unknown } | undefined;
  let tokens = 0;
  for (const value of [body.tools, body.functions, format?.json_schema]) {
    if (value !== undefined && value !== null) tokens += countTextTokens(JSON.stringify(value), encoding);
  }
  return tokens;
}

/** A content part's text: a `text` part's, or the `refusal` an earlier assistant turn gave, which the model reads too. */
function countTextPart(part: unknown, encoding: EncodingName): number {
  if (typeof part !== 'object' || part === null) return 0;
  const { type, text, refusal } = part as { type?: unknown; text?: unknown; refusal?: unknown };
  if (type === 'text' && typeof text === 'string') return countTextTokens(text, encoding);
  return type === 'refusal' && typeof refusal === 'string' ? countTextTokens(refusal, encoding) : 0;
}
