import { createRequire } from 'node:module';
import type * as Tokenizer from 'gpt-tokenizer';

// o200k_base (gpt-tokenizer's default) is the encoding of every current OpenAI model. Counting costs a few
// microseconds for a typical prompt, cheap enough for tens of thousands of requests a second. Its tables take a
// few hundred milliseconds to load, so they are loaded with the first request rather than with the CLI.
const load = createRequire(import.meta.url);
let tokenizer: typeof Tokenizer | undefined;
const encoding = (): typeof Tokenizer => (tokenizer ??= load('gpt-tokenizer') as typeof Tokenizer);

// Special-token strings such as `<|endoftext|>` in user text are ordinary text to the API, not an error.
const AS_TEXT = { disallowedSpecial: new Set<string>() };

export const countTextTokens = (text: string): number => (text === '' ? 0 : encoding().countTokens(text, AS_TEXT));

/** The longest prefix of `text` that fits in `limit` tokens. */
export const truncateToTokens = (text: string, limit: number): string => {
  const { decode, encode } = encoding();
  return decode(encode(text, AS_TEXT).slice(0, limit));
};
