/**
 * The `--prices` file, checked: its own module, loaded only for a run given one, so that zod is not loaded by every
 * run before its first request.
 */
import { z } from 'zod';
import { FILE_KEYS, normalizeName, RATE_FIELDS, type PriceOverride, type PriceOverrides, type RateField, type TokenRates } from './prices.js';

const FILE_FIELDS: readonly string[] = [...Object.values(FILE_KEYS), 'per_image', 'batch_discount', 'priority'];

/** Renders a JSON path for a problem message: `$["gpt-4.1"].per_image["hd:1024x1024"]`. Names the user chose are quoted. */
function jsonPath(path: readonly PropertyKey[]): string {
  const step = (key: PropertyKey, depth: number): string =>
    depth === 1 && typeof key === 'string' && FILE_FIELDS.includes(key) ? `.${key}` : `[${JSON.stringify(String(key))}]`;
  return `$${path.map(step).join('')}`;
}

const show = (value: unknown): string => (value === undefined ? 'nothing' : JSON.stringify(value));

/** A zod error message that names the bad value, as `expected a number >= 0, got "0.3"`. */
const expected =
  (what: string) =>
  (issue: { input?: unknown }): string =>
    `expected ${what}, got ${show(issue.input)}`;

const rateSchema = z.number({ error: expected('a number >= 0') }).min(0, { error: expected('a number >= 0') });

const overrideSchema = z
  .strictObject(
    {
      input: rateSchema.optional(),
      cached_input: rateSchema.optional(),
      output: rateSchema.optional(),
      input_image: rateSchema.optional(),
      cached_input_image: rateSchema.optional(),
      output_image: rateSchema.optional(),
      per_image: z
        .record(z.string().regex(/^(\*|[^:\s]+:[^:\s]+)$/), rateSchema, {
          error: (issue) =>
            expected(issue.code === 'invalid_key' ? 'a key "<quality>:<size>", "*:<size>" or "*"' : 'an object of per-image prices')(issue),
        })
        .optional(),
      batch_discount: z
        .number({ error: expected('a number from 0 to 1') })
        .min(0, { error: expected('a number from 0 to 1') })
        .max(1, { error: expected('a number from 0 to 1') })
        .optional(),
      priority: z
        .strictObject(
          { input: rateSchema.optional(), cached_input: rateSchema.optional(), output: rateSchema.optional() },
          { error: expected('an object of priority rates: input, cached_input, output') },
        )
        .optional(),
    },
    {
      error: (issue) =>
        issue.code === 'unrecognized_keys'
          ? `unknown field ${issue.keys.map((key) => JSON.stringify(key)).join(', ')}; fields are ${FILE_FIELDS.join(', ')}`
          : expected('an object of prices')(issue),
    },
  )
  .refine((fields) => Object.keys(fields).length > 0, { error: `sets no price; give at least one of ${FILE_FIELDS.join(', ')}` });

const fileSchema = z.record(z.string().min(1), overrideSchema, {
  error: (issue) =>
    expected(issue.code === 'invalid_key' ? 'a model name' : 'an object keyed by model name')(issue),
});

/**
 * Validates the contents of a `--prices` file (already parsed from JSON) and converts it to {@link PriceOverrides}.
 * Returns every problem at once, each starting with its JSON path; `overrides` only when there are none.
 *
 * The file maps model names to prices in USD per million tokens (`per_image`: USD per image):
 *
 * ```json
 * {
 *   "my-finetune": { "input": 0.3, "cached_input": 0.15, "output": 1.2 },
 *   "gpt-image-2": { "output_image": 30 },
 *   "local-llama": { "input": 0, "output": 0 },
 *   "dall-e-3": { "per_image": { "hd:1024x1024": 0.08, "*": 0.04 } },
 *   "my-model-without-batch": { "batch_discount": 0 },
 *   "gpt-5": { "priority": { "input": 2.5, "cached_input": 0.25, "output": 20 } }
 * }
 * ```
 *
 * Fields: `input`, `cached_input`, `output`, `input_image`, `cached_input_image`, `output_image`, `per_image`
 * (keys `<quality>:<size>`, `*:<size>` or `*`), `batch_discount` (fraction off for Batch API jobs, 0 to 1) and
 * `priority` (the `input`, `cached_input` and `output` rates of priority processing).
 * Zero is a real price (a local model is free); leave a field out to keep the table's.
 */
export function parsePriceOverrides(json: unknown): { overrides?: PriceOverrides; problems: string[] } {
  const result = fileSchema.safeParse(json, { reportInput: true });
  const problems = result.success
    ? []
    : result.error.issues.map((issue) => `${jsonPath(issue.path)}: ${issue.message}`);
  const seen = new Map<string, string>();
  // Checked on the raw keys so that a case clash is reported alongside the other problems.
  const names = typeof json === 'object' && json !== null && !Array.isArray(json) ? Object.keys(json) : [];
  for (const name of names) {
    const first = seen.get(normalizeName(name));
    if (first !== undefined) problems.push(`${jsonPath([name])}: same model as ${JSON.stringify(first)} (model names ignore case)`);
    else seen.set(normalizeName(name), name);
  }
  if (!result.success || problems.length > 0) return { problems };

  const overrides: Record<string, PriceOverride> = {};
  for (const [name, fields] of Object.entries(result.data)) {
    const rates: Partial<Record<RateField, number>> = {};
    for (const field of RATE_FIELDS) {
      const value = fields[FILE_KEYS[field]];
      if (value !== undefined) rates[field] = value;
    }
    overrides[name] = {
      ...rates,
      ...(fields.per_image ? { perImage: fields.per_image } : {}),
      ...(fields.batch_discount !== undefined ? { batchDiscount: fields.batch_discount } : {}),
      ...(fields.priority ? { priority: priorityRates(fields.priority) } : {}),
    };
  }
  return { overrides, problems };
}

/** A `priority` object of a `--prices` file as {@link TokenRates}. */
function priorityRates(fields: { input?: number | undefined; cached_input?: number | undefined; output?: number | undefined }): TokenRates {
  return {
    ...(fields.input !== undefined ? { input: fields.input } : {}),
    ...(fields.cached_input !== undefined ? { cachedInput: fields.cached_input } : {}),
    ...(fields.output !== undefined ? { output: fields.output } : {}),
  };
}
