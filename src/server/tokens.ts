import { createRequire } from 'node:module';
import type { decode as Decode, encode as Encode } from 'gpt-tokenizer/encoding/o200k_base';
import type { EncodingName } from '../cost/tokens.js';

// Counting is the estimator's (cost/tokens.ts), so that the server reports what `nightshift estimate` predicts;
// cutting a reply short is the server's alone. It requires the module the estimator's counter requires, so each
// encoding's tables are loaded once, on first use.
const load = createRequire(import.meta.url);
const codecs: Partial<Record<EncodingName, { encode: typeof Encode; decode: typeof Decode }>> = {};
const codec = (encoding: EncodingName) =>
  (codecs[encoding] ??= load(`gpt-tokenizer/encoding/${encoding}`) as { encode: typeof Encode; decode: typeof Decode });

// Special-token strings such as `<|endoftext|>` in user text are ordinary text to the API, not an error.
const AS_TEXT = { disallowedSpecial: new Set<string>() };

/** The longest prefix of `text` that fits in `limit` tokens of `encoding`. */
export function truncateToTokens(text: string, limit: number, encoding: EncodingName): string {
  const { decode, encode } = codec(encoding);
  return decode(encode(text, AS_TEXT).slice(0, limit));
}
