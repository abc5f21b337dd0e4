/**
 * What each model costs: token prices from `@pydantic/genai-prices` (the OpenAI provider's table), a few
 * per-image prices for the DALL·E models, and the user's `--prices` overrides on top.
 *
 * A price that is not known is absent (`undefined`), never 0: `costOf` turns absence into an unknown cost.
 */
import { createRequire } from 'node:module';
import type { calcPrice as CalcPrice, ModelPrice as TablePrice } from '@pydantic/genai-prices';

// The table takes some 80 ms to load: loaded when a price is first looked up (a run's first answer), so that the
// first request does not wait for it.
const load = createRequire(import.meta.url);
let calcPrice: typeof CalcPrice | undefined;
const table = (): typeof CalcPrice => (calcPrice ??= (load('@pydantic/genai-prices') as { calcPrice: typeof CalcPrice }).calcPrice);

/**
 * USD per million tokens, one rate per token part that nightshift's `Usage` tells apart.
 * An absent rate is unknown. How `costOf` falls back when a model publishes no separate rate for a part
 * (cached → uncached, image → text) is documented there.
 */
export interface TokenRates {
  /** Uncached text input. */
  readonly input?: number;
  /** Cached text input (prompt caching). */
  readonly cachedInput?: number;
  /** Text output, reasoning tokens included. */
  readonly output?: number;
  /** Uncached image input (image models such as `gpt-image-1.5`). */
  readonly inputImage?: number;
  /** Cached image input. */
  readonly cachedInputImage?: number;
  /** Image output (generated image tokens). */
  readonly outputImage?: number;
}

/** Long-context pricing: above `aboveInputTokens` input tokens, `rates` replace the base rates for the whole request. */
export interface PriceTier {
  readonly aboveInputTokens: number;
  readonly rates: TokenRates;
}

/** The normalized price of one model. */
export interface ModelPrice extends TokenRates {
  /**
   * USD per generated image, for models billed per image rather than per token. Keys are
   * `${quality}:${size}` (`hd:1024x1792`), `*:${size}` (any quality) or `*` (anything).
   */
  readonly perImage?: Readonly<Record<string, number>>;
  /** Fraction taken off every rate for Batch API jobs, from 0 to 1. `costOf` uses 0.5 when absent, OpenAI's published Batch discount. */
  readonly batchDiscount?: number;
  /** Long-context tiers, by ascending `aboveInputTokens`. */
  readonly tiers?: readonly PriceTier[];
  /**
   * Rates of priority processing (`service_tier: "priority"`), which genai-prices does not list: known only from a
   * `--prices` file. Absent, a priority answer's cost is unknown.
   */
  readonly priority?: TokenRates;
}

/** One model's override: these fields replace or add to the table's (see `price-overrides.ts` for the file format). */
export type PriceOverride = Omit<ModelPrice, 'tiers'>;

/** Overrides by model name (case-insensitive). */
export type PriceOverrides = Readonly<Record<string, PriceOverride>>;

/** Options of {@link createPriceBook}. */
export interface PriceBookOptions {
  /** Prices that replace or add to the table's, usually from `parsePriceOverrides`. */
  overrides?: PriceOverrides;
  /**
   * The moment whose prices apply, for models whose price changed on a date (`o3` before and after 2025-06-10).
   * @default the time `createPriceBook` is called
   */
  at?: Date;
}

/** Looks up model prices. Each model is resolved once and then served from a cache. */
export interface PriceBook {
  /**
   * The price of `model` (an API model name, as sent: dated names and fine-tune names such as
   * `ft:gpt-4o-mini-2024-07-18:acme::abc123` resolve as genai-prices resolves them), or `undefined` when no price is known.
   */
  priceOf(model: string): ModelPrice | undefined;
}

/** A rate of {@link TokenRates}. */
export type RateField = keyof TokenRates;

/** Where each rate lives in genai-prices' table. Other table keys (audio, web searches, cache writes) have no part in `Usage`. */
const TABLE_KEYS = {
  input: 'input_mtok',
  cachedInput: 'cache_read_mtok',
  output: 'output_mtok',
  inputImage: 'input_image_mtok',
  cachedInputImage: 'cache_image_read_mtok',
  outputImage: 'output_image_mtok',
} as const satisfies Record<RateField, string>;

/** Field names in a `--prices` file. */
export const FILE_KEYS = {
  input: 'input',
  cachedInput: 'cached_input',
  output: 'output',
  inputImage: 'input_image',
  cachedInputImage: 'cached_input_image',
  outputImage: 'output_image',
} as const satisfies Record<RateField, string>;

export const RATE_FIELDS = Object.keys(TABLE_KEYS) as RateField[];

/**
 * The only prices typed in by hand. genai-prices prices tokens and has no entry for the DALL·E models, which OpenAI
 * bills per image; OpenAI-compatible servers still serve these names. These are OpenAI's last published prices
 * (openai.com/api/pricing). DALL·E 2 has a single quality, hence `*`.
 */
const PER_IMAGE_PRICES: Readonly<Record<string, ModelPrice>> = {
  'dall-e-3': {
    perImage: {
      'standard:1024x1024': 0.04,
      'standard:1024x1792': 0.08,
      'standard:1792x1024': 0.08,
      'hd:1024x1024': 0.08,
      'hd:1024x1792': 0.12,
      'hd:1792x1024': 0.12,
    },
  },
  'dall-e-2': { perImage: { '*:256x256': 0.016, '*:512x512': 0.018, '*:1024x1024': 0.02 } },
};

/** Model names are matched case-insensitively, as genai-prices matches them. */
export const normalizeName = (model: string): string => model.trim().toLowerCase();

/**
 * Creates a price book: the genai-prices table as it stood at `at`, the built-in per-image prices, then `overrides`.
 * An override keyed by the table's model id (`gpt-4o-mini`) also covers that entry's aliases (`gpt-4o-mini-2024-07-18`);
 * one keyed by the exact name sent applies last.
 */
export function createPriceBook(options: PriceBookOptions = {}): PriceBook {
  const at = options.at ?? new Date();
  if (Number.isNaN(at.getTime())) throw new TypeError(`Expected \`at\` to be a valid Date, got \`${String(at)}\``);
  const overrides = new Map(Object.entries(options.overrides ?? {}).map(([name, override]) => [normalizeName(name), override]));
  const cache = new Map<string, ModelPrice | undefined>();
  return {
    priceOf(model) {
      const name = normalizeName(model);
      if (!cache.has(name)) cache.set(name, resolvePrice(name, at, overrides));
      return cache.get(name);
    },
  };
}

function resolvePrice(name: string, at: Date, overrides: ReadonlyMap<string, PriceOverride>): ModelPrice | undefined {
  // calcPrice with no usage is the library's own lookup: model `match` rules, dated-name normalization
  // (`-20240718` → `-2024-07-18`) and the conditional price in force at `at`.
  const found = table()({}, name, { providerId: 'openai', timestamp: at });
  let price: ModelPrice = { ...PER_IMAGE_PRICES[name], ...(found ? fromTable(found.model_price) : {}) };
  const tableId = found ? normalizeName(found.model.id) : undefined;
  for (const key of new Set([tableId, name])) {
    const override = key === undefined ? undefined : overrides.get(key);
    if (override) price = applyOverride(price, override);
  }
  const priced = RATE_FIELDS.some((field) => price[field] !== undefined) || price.perImage !== undefined;
  return priced ? price : undefined;
}

/** Converts one genai-prices entry, with tiered prices (`{base, tiers}`) split into base rates and {@link PriceTier}s. */
function fromTable(table: TablePrice): ModelPrice {
  const base: Partial<Record<RateField, number>> = {};
  const starts = new Set<number>();
  for (const field of RATE_FIELDS) {
    const value = table[TABLE_KEYS[field]];
    if (typeof value === 'number') base[field] = value;
    else if (value !== undefined) {
      base[field] = value.base;
      for (const tier of value.tiers) starts.add(tier.start);
    }
  }
  const tiers = [...starts]
    .sort((a, b) => a - b)
    .map((start): PriceTier => {
      const rates: Partial<Record<RateField, number>> = {};
      for (const field of RATE_FIELDS) {
        const value = table[TABLE_KEYS[field]];
        if (typeof value !== 'object') continue;
        // genai-prices applies a field's last tier whose start is below the input token count.
        const tier = [...value.tiers].sort((a, b) => a.start - b.start).findLast((t) => t.start <= start);
        if (tier) rates[field] = tier.price;
      }
      return { aboveInputTokens: start, rates };
    });
  return tiers.length > 0 ? { ...base, tiers } : base;
}

function applyOverride(price: ModelPrice, override: PriceOverride): ModelPrice {
  const { tiers, ...rest } = price;
  // An overridden rate replaces the field outright, long-context tiers included: the user's rate is the rate.
  const keptTiers = (tiers ?? [])
    .map((tier) => ({
      ...tier,
      rates: Object.fromEntries(Object.entries(tier.rates).filter(([field]) => override[field as RateField] === undefined)),
    }))
    .filter((tier) => Object.keys(tier.rates).length > 0);
  return {
    ...rest,
    ...override,
    // Per-image prices merge by key, so an override can add one size without restating the others.
    ...(override.perImage ? { perImage: { ...rest.perImage, ...override.perImage } } : {}),
    ...(keptTiers.length > 0 ? { tiers: keptTiers } : {}),
  };
}
