/** The candidate closest to a misspelled `name`, when it is close enough to be a likely typo. */
export function closest(name: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.min(2, Math.floor(name.length / 3));
  for (const candidate of candidates) {
    const distance = editDistance(name.toLowerCase(), candidate);
    if (distance <= bestDistance && (best === undefined || distance < bestDistance)) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** Levenshtein distance, with a swap of two neighbouring letters counted as one edit. */
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  const at = (i: number, j: number) => rows[i]?.[j] ?? Infinity;
  for (let i = 1; i <= a.length; i += 1) {
    for (let j = 1; j <= b.length; j += 1) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let distance = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) distance = Math.min(distance, at(i - 2, j - 2) + 1);
      (rows[i] as number[])[j] = distance;
    }
  }
  return at(a.length, b.length);
}

/**
 * Names that newcomers give fields, from other tools and from the OpenAI APIs nightshift does not call (the Responses
 * API's `input`, `instructions`, `max_output_tokens`), with the field each one means. A name here is never suggested
 * for a kind that does not have its field: `count` means `n` for image jobs only.
 */
const ALIASES: Readonly<Record<string, { field: string; why?: string }>> = {
  image: { field: 'images' },
  image_url: { field: 'images' },
  image_urls: { field: 'images' },
  system_prompt: { field: 'system' },
  system_message: { field: 'system' },
  instructions: { field: 'system', why: 'instructions is the Responses API\'s name; chat jobs take system' },
  name: { field: 'id' },
  filename: { field: 'output' },
  file_name: { field: 'output' },
  count: { field: 'n' },
  num_images: { field: 'n' },
  parameters: { field: 'params' },
  options: { field: 'params' },
  input: { field: 'prompt', why: 'input is the Responses API\'s name; chat jobs take prompt (or messages)' },
  max_output_tokens: { field: 'max_completion_tokens', why: 'max_output_tokens is the Responses API\'s name; chat jobs take max_completion_tokens' },
};

/** A field a misnamed `name` most likely means, and why, when there is one among `fields`. */
export interface Suggestion {
  field: string;
  /** Why the name is wrong, when a typo does not explain it. */
  why?: string;
}

/**
 * The field that `name` (a key nightshift does not know) most likely means among `fields`: a known alias, the same
 * name in another case, or a likely typo. Undefined when nothing fits.
 */
export function suggestField(name: string, fields: Iterable<string>): Suggestion | undefined {
  const known = new Set(fields);
  const lower = name.trim().toLowerCase();
  const alias = Object.hasOwn(ALIASES, lower) ? ALIASES[lower] : undefined;
  if (alias !== undefined && known.has(alias.field)) return alias;
  if (known.has(lower)) return { field: lower };
  const typo = closest(lower, known);
  return typo === undefined ? undefined : { field: typo };
}

/** The words for a misnamed field: `unknown field (did you mean "images"?)`, with the reason when there is one. */
export function describeSuggestion(what: string, suggestion: Suggestion): string {
  return suggestion.why === undefined
    ? `${what} (did you mean ${JSON.stringify(suggestion.field)}?)`
    : `${what}: ${suggestion.why} (did you mean ${JSON.stringify(suggestion.field)}?)`;
}
