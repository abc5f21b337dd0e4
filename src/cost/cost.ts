/**
 * What a job cost, from its `Usage` and its model's price, and the run's running total.
 *
 * Cost is never silently zero: a model without a price, or a usage part without a rate, makes the cost unknown
 * (`usd: null`) and says what was missing.
 *
 * Rounding: a part costs `tokens × USD per million tokens` micro-dollars; a job's micro-dollars are summed, then rounded
 * once to a whole nano-dollar (1e-9 USD). Totals add whole nano-dollars, which is exact, so 20,000 jobs sum to the same
 * figure in any order with no visible drift. One nano-dollar is well below any real price step (the cheapest published
 * rate, with the Batch discount, is several nano-dollars per token).
 */
import type { ModelPrice, PriceBook, TokenRates } from './prices.js';
import type { Job, Usage } from '../common/types.js';

/** The cost of one job. */
export interface Cost {
  /** US dollars, rounded to the nano-dollar; `null` when unknown. */
  readonly usd: number | null;
  /**
   * When `usd` is null: what had no price, each naming the model so a summary can say "no price for …":
   * `local-llama` (the whole model), `my-model output tokens`, `dall-e-3 images at hd:512x512`.
   */
  readonly missing?: readonly string[];
}

/** Options of {@link costOf}: how the job was sent. */
export interface CostOptions {
  /** The job went through the Batch API, which OpenAI bills at a discount (see `ModelPrice.batchDiscount`), whatever its tier. */
  batch?: boolean;
  /**
   * The `service_tier` that served the request: `flex` is billed at Batch API rates, `priority` at the model's priority
   * rates (`ModelPrice.priority`; unknown without them); any other tier, or none, at the standard rates.
   */
  serviceTier?: string;
  /**
   * Image size requested, for models priced per image.
   * @default '1024x1024' (the images endpoint's default for the DALL·E models)
   */
  size?: string;
  /**
   * Image quality requested, for models priced per image.
   * @default 'standard' (the images endpoint's default for DALL·E 3; DALL·E 2 has no other)
   */
  quality?: string;
}

/**
 * The cost options a job's request sets: the image size and quality, for models priced per image, and the
 * `service_tier` it asks for (what an answer that reports no tier is billed at).
 */
export function costOptionsOf(job: Pick<Job, 'body'>): CostOptions {
  const { size, quality, service_tier: serviceTier } = job.body;
  return {
    ...(typeof size === 'string' && size ? { size } : {}),
    ...(typeof quality === 'string' && quality ? { quality } : {}),
    ...(typeof serviceTier === 'string' && serviceTier ? { serviceTier } : {}),
  };
}

/** The tiers billed otherwise than the standard rates. */
const FLEX = 'flex';
const PRIORITY = 'priority';

/** OpenAI's published Batch API discount: half price. */
const DEFAULT_BATCH_DISCOUNT = 0.5;
const NANO_PER_MICRO = 1000;
const NANO_PER_USD = 1e9;
const MICRO_PER_USD = 1e6;

/** A charge before the Batch discount and rounding: micro-dollars, or what could not be priced. */
interface Charge {
  microUsd: number;
  missing: string[];
}

/**
 * The cost of one job that used `usage` on `model`.
 *
 * Image generations are billed per image when the model has per-image prices (DALL·E), looked up by
 * `${quality}:${size}`, then `*:${size}`, then `*`; the prompt is included in that price, so tokens are not charged.
 * Everything else is billed per token, each part at its own rate:
 * - uncached text input: `input`;
 * - cached text input: `cachedInput`, else `input` (a model with no published cache discount bills cached tokens as uncached);
 * - image input: `inputImage`, else as text input (chat models bill vision inputs as ordinary input tokens);
 * - cached image input: `cachedInputImage`, else `inputImage`, else as cached text input;
 * - text output: `output`; reasoning tokens are part of the output count and are not charged again;
 * - image output: `outputImage`, else `output` (`gpt-image-2` publishes its image output rate as `output_mtok`).
 *
 * A `flex` answer costs the Batch API rate (see {@link CostOptions.serviceTier}); a `priority` one its model's priority rates.
 *
 * A part with tokens but no rate, a model with no price (or no priority price, for a priority answer), or images with
 * neither a per-image price nor any token usage make the cost unknown. Long-context tiers are chosen by `usage.input_tokens`, as OpenAI bills them.
 */
export function costOf(usage: Usage, model: string, book: PriceBook, options: CostOptions = {}): Cost {
  const listed = book.priceOf(model);
  if (!listed) return { usd: null, missing: [model] };
  const priority = options.serviceTier === PRIORITY && !options.batch;
  // Priority processing has its own rates; a model whose priority rates are not known has an unknown cost, never a guess.
  if (priority && !listed.priority) return { usd: null, missing: [`${model} at the priority tier`] };
  const price: ModelPrice = priority ? { ...listed.priority } : listed;
  const charge =
    usage.images > 0 && price.perImage ? perImageCharge(usage.images, price.perImage, model, options) : tokenCharge(usage, price, model);
  if (charge.missing.length > 0) return { usd: null, missing: charge.missing };
  // Flex processing is billed at Batch API rates.
  const discounted = options.batch === true || options.serviceTier === FLEX;
  const factor = discounted ? 1 - (listed.batchDiscount ?? DEFAULT_BATCH_DISCOUNT) : 1;
  return { usd: Math.round(charge.microUsd * factor * NANO_PER_MICRO) / NANO_PER_USD };
}

function perImageCharge(images: number, perImage: Readonly<Record<string, number>>, model: string, options: CostOptions): Charge {
  const quality = options.quality ?? 'standard';
  const size = options.size ?? '1024x1024';
  const each = perImage[`${quality}:${size}`] ?? perImage[`*:${size}`] ?? perImage['*'];
  return each === undefined
    ? { microUsd: 0, missing: [`${model} images at ${quality}:${size}`] }
    : { microUsd: images * each * MICRO_PER_USD, missing: [] };
}

function tokenCharge(usage: Usage, price: ModelPrice, model: string): Charge {
  const rates = ratesFor(price, usage.input_tokens);
  const cachedText = rates.cachedInput ?? rates.input;
  const imageInput = usage.input_image_tokens - usage.cached_input_image_tokens;
  const parts: [label: string, tokens: number, rate: number | undefined][] = [
    ['input tokens', usage.input_tokens - usage.cached_input_tokens - imageInput, rates.input],
    ['cached input tokens', usage.cached_input_tokens - usage.cached_input_image_tokens, cachedText],
    ['image input tokens', imageInput, rates.inputImage ?? rates.input],
    ['cached image input tokens', usage.cached_input_image_tokens, rates.cachedInputImage ?? rates.inputImage ?? cachedText],
    ['output tokens', usage.output_tokens - usage.output_image_tokens, rates.output],
    ['image output tokens', usage.output_image_tokens, rates.outputImage ?? rates.output],
  ];
  const charge: Charge = { microUsd: 0, missing: [] };
  for (const [label, tokens, rate] of parts) {
    // Parts are differences of totals; a negative one means the usage contradicts itself, and no price fits it.
    if (tokens < 0) charge.missing.push(`${model} ${label} (usage counts inconsistent)`);
    else if (tokens === 0) continue;
    else if (rate === undefined) charge.missing.push(`${model} ${label}`);
    else charge.microUsd += tokens * rate;
  }
  // Images made by a token-priced model that reported no tokens would otherwise cost a silent $0.
  if (usage.images > 0 && usage.input_tokens === 0 && usage.output_tokens === 0) {
    charge.missing.push(`${model} images (no token usage reported)`);
  }
  return charge;
}

/** The base rates, with the last long-context tier the request's input exceeds applied on top. */
function ratesFor(price: ModelPrice, inputTokens: number): TokenRates {
  const tier = price.tiers?.findLast((t) => inputTokens > t.aboveInputTokens);
  return tier ? { ...price, ...tier.rates } : price;
}

/** A run's running cost. Create with {@link createCostTotals}, add to with {@link addCost}. */
export interface CostTotals {
  /** Sum of the known costs in whole nano-dollars (exact); {@link totalUsd} gives dollars. */
  nanoUsd: number;
  /** Jobs whose cost is known. */
  priced: number;
  /** Jobs whose cost is unknown; when above 0, the total is incomplete. */
  unknown: number;
  /** Everything that had no price, as in {@link Cost.missing}, for "total incomplete: no price for …". */
  readonly missing: Set<string>;
}

/** An empty {@link CostTotals}. */
export const createCostTotals = (): CostTotals => ({ nanoUsd: 0, priced: 0, unknown: 0, missing: new Set() });

/** Adds one job's cost to `totals` (in place: a run adds thousands). */
export function addCost(totals: CostTotals, cost: Cost): void {
  if (cost.usd === null) {
    totals.unknown++;
    for (const what of cost.missing ?? []) totals.missing.add(what);
  } else {
    totals.priced++;
    totals.nanoUsd += Math.round(cost.usd * NANO_PER_USD);
  }
}

/** The known part of the total, in dollars. */
export const totalUsd = (totals: CostTotals): number => totals.nanoUsd / NANO_PER_USD;
