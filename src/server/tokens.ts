import { countTokens, decode, encode } from 'gpt-tokenizer';

// o200k_base (gpt-tokenizer's default) is the encoding of every current OpenAI model. Counting costs a few
// microseconds for a typical prompt, cheap enough for tens of thousands of requests a second.
// Special-token strings such as `<|endoftext|>` in user text are ordinary text to the API, not an error.
const AS_TEXT = { disallowedSpecial: new Set<string>() };

export const countTextTokens = (text: string): number => (text === '' ? 0 : countTokens(text, AS_TEXT));

/** The longest prefix of `text` that fits in `limit` tokens. */
export const truncateToTokens = (text: string, limit: number): string =>
  decode(encode(text, AS_TEXT).slice(0, limit));
