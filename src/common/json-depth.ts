/*
 * JSON nested deeper than any request needs would overflow the stack of every recursive walk that follows (a parser,
 * zod, JSON.stringify): it is refused where it is read, with its place, before anything walks it.
 */

/** Deepest nesting of arrays and objects nightshift reads from a job or prices file. */
export const MAX_JSON_DEPTH = 128;

/** True when `value` nests arrays and objects more than `max` levels deep; walks no deeper than `max + 1`. */
export function isNestedDeeperThan(value: unknown, max = MAX_JSON_DEPTH): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (max === 0) return true;
  const children = Array.isArray(value) ? value : Object.values(value);
  return children.some((child) => isNestedDeeperThan(child, max - 1));
}

/**
 * The offset in JSON `text` of the first `[` or `{` that opens level `max + 1`, or undefined when the text nests no
 * deeper than `max`. Strings are skipped, so brackets inside them do not count; the text need not be valid JSON.
 */
export function offsetDeeperThan(text: string, max = MAX_JSON_DEPTH): number | undefined {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const char = text.charCodeAt(i);
    if (inString) {
      if (char === BACKSLASH) i++;
      else if (char === QUOTE) inString = false;
    } else if (char === QUOTE) inString = true;
    else if (char === OPEN_BRACKET || char === OPEN_BRACE) {
      depth++;
      if (depth > max) return i;
    } else if (char === CLOSE_BRACKET || char === CLOSE_BRACE) depth--;
  }
  return undefined;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

/** The problem, worded once for every file that can hold JSON. */
export const TOO_DEEP = `nested more than ${MAX_JSON_DEPTH} levels deep`;
