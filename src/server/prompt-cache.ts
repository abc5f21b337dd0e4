import { createHash } from 'node:crypto';

/** OpenAI caches prompts of at least this many tokens... */
const MIN_CACHED_TOKENS = 1024;
/** ...in steps of this many tokens. */
const CACHE_STEP = 128;
/** About 1,024 tokens of text: prompts sharing this much are treated as sharing a cached prefix. */
const PREFIX_CHARS = 4096;
/** Hashes kept; the least recently used go first. */
const CAPACITY = 10_000;

/**
 * A deterministic stand-in for OpenAI's automatic prompt caching. A prompt seen before in full gets every
 * whole 128-token block cached; a new prompt sharing its first ~1,024 tokens with an earlier one gets 1,024.
 * Only a bounded number of hashes is kept, so memory stays flat on long runs.
 */
export class PromptCache {
  readonly #seen = new Set<string>();

  /** Cached tokens for this prompt; the prompt is remembered for the requests that follow. */
  use(prompt: string, promptTokens: number): number {
    if (promptTokens < MIN_CACHED_TOKENS) return 0;
    const whole = `w${digest(prompt)}`;
    const prefix = `p${digest(prompt.slice(0, PREFIX_CHARS))}`;
    const cached = this.#seen.has(whole)
      ? Math.floor(promptTokens / CACHE_STEP) * CACHE_STEP
      : this.#seen.has(prefix)
        ? MIN_CACHED_TOKENS
        : 0;
    this.#remember(whole);
    this.#remember(prefix);
    return cached;
  }

  clear(): void {
    this.#seen.clear();
  }

  #remember(key: string): void {
    // Re-inserting moves the key to the back, so eviction drops the least recently used hash.
    this.#seen.delete(key);
    this.#seen.add(key);
    if (this.#seen.size > CAPACITY) {
      const oldest = this.#seen.values().next().value;
      if (oldest !== undefined) this.#seen.delete(oldest);
    }
  }
}

const digest = (text: string): string => createHash('sha1').update(text).digest('base64');
