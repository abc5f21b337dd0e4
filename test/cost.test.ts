import { calcPrice } from '@pydantic/genai-prices';
import { describe, expect, it } from 'vitest';
import { addCost, costOf, createCostTotals, totalUsd } from '../src/cost/cost.js';
import { parsePriceOverrides } from '../src/cost/price-overrides.js';
import { createPriceBook, type PriceOverrides } from '../src/cost/prices.js';
import { zeroUsage, type Usage } from '../src/common/types.js';

/** A usage with the given counts, the rest zero. */
function usage(parts: Partial<Usage>): Usage {
  const all = { ...zeroUsage(), ...parts };
  return { ...all, total_tokens: all.input_tokens + all.output_tokens };
}

/** Overrides from a `--prices` file's JSON, failing the test if the file has problems. */
function overridesFrom(json: unknown): PriceOverrides {
  const { overrides, problems } = parsePriceOverrides(json);
  expect(problems).toEqual([]);
  return overrides ?? {};
}

// Prices below are OpenAI's published USD per million tokens, as the genai-prices table holds them.
// A cost in micro-dollars is tokens × $/Mtok; dividing by 1e6 gives dollars.
const book = createPriceBook({ at: new Date('2026-01-15T00:00:00Z') });

/** 10,000 input tokens of which 4,096 cached, 500 output tokens. */
const cachedChat = usage({ input_tokens: 10_000, cached_input_tokens: 4_096, output_tokens: 500 });

describe('token-priced chat models', () => {
  it('charges cached input at the cached rate and the rest at the input rate', () => {
    // gpt-4o-mini: input 0.15, cached 0.075, output 0.6
    // 5,904 × 0.15 + 4,096 × 0.075 + 500 × 0.6 = 885.6 + 307.2 + 300 = 1,492.8 µ$
    expect(costOf(cachedChat, 'gpt-4o-mini', book)).toEqual({ usd: 0.0014928 });
  });

  it('does not charge reasoning tokens twice: they are part of the output count', () => {
    // o3 since 2025-06-10: input 2, output 8. 3,000 output tokens, 2,400 of them reasoning.
    // 1,200 × 2 + 3,000 × 8 = 2,400 + 24,000 = 26,400 µ$
    const reasoning = usage({ input_tokens: 1_200, output_tokens: 3_000, reasoning_tokens: 2_400 });
    expect(costOf(reasoning, 'o3', book).usd).toBe(0.0264);
  });

  it('uses the price in force at the price book date', () => {
    // o3 before 2025-06-10: input 10, output 40.
    // 1,200 × 10 + 3,000 × 40 = 12,000 + 120,000 = 132,000 µ$
    const before = createPriceBook({ at: new Date('2025-05-01T00:00:00Z') });
    const reasoning = usage({ input_tokens: 1_200, output_tokens: 3_000, reasoning_tokens: 2_400 });
    expect(costOf(reasoning, 'o3', before).usd).toBe(0.132);
  });

  it('resolves dated model names as genai-prices does', () => {
    expect(costOf(cachedChat, 'gpt-4o-mini-2024-07-18', book).usd).toBe(0.0014928);
    expect(costOf(cachedChat, 'gpt-4o-mini-20240718', book).usd).toBe(0.0014928);
    expect(costOf(cachedChat, 'GPT-4o-mini', book).usd).toBe(0.0014928);
  });

  it('prices fine-tuned models and charges cached input at the input rate when no cached rate is published', () => {
    // ft:gpt-4o-mini: input 0.3, output 1.2, no cached rate in the table.
    // (5,904 + 4,096) × 0.3 + 500 × 1.2 = 3,000 + 600 = 3,600 µ$
    expect(costOf(cachedChat, 'ft:gpt-4o-mini-2024-07-18:acme::abc123', book).usd).toBe(0.0036);
  });

  it('bills a long-context request at the higher tier for the whole request', () => {
    // gpt-5.4: input 2.5, output 15; above 271,999 input tokens: input 5, output 22.5.
    // 200,000 × 2.5 + 1,000 × 15 = 500,000 + 15,000 = 515,000 µ$
    expect(costOf(usage({ input_tokens: 200_000, output_tokens: 1_000 }), 'gpt-5.4', book).usd).toBe(0.515);
    // 300,000 × 5 + 1,000 × 22.5 = 1,500,000 + 22,500 = 1,522,500 µ$
    expect(costOf(usage({ input_tokens: 300_000, output_tokens: 1_000 }), 'gpt-5.4', book).usd).toBe(1.5225);
  });

  it('halves the cost of Batch API jobs', () => {
    // 1,492.8 µ$ / 2 = 746.4 µ$
    expect(costOf(cachedChat, 'gpt-4o-mini', book, { batch: true }).usd).toBe(0.0007464);
  });
});

describe('image models', () => {
  it('charges text input, image input (cached and not) and image output each at its own rate', () => {
    // gpt-image-1.5: input 5, cached 1.25, input_image 8, cached image 2, output_image 32.
    // 1,300 input = 300 text (100 cached) + 1,000 image (200 cached); 4,160 output, all image.
    //   200 × 5 + 100 × 1.25 + 800 × 8 + 200 × 2 + 4,160 × 32
    // = 1,000 + 125 + 6,400 + 400 + 133,120 = 141,045 µ$
    const generation = usage({
      input_tokens: 1_300,
      cached_input_tokens: 300,
      input_image_tokens: 1_000,
      cached_input_image_tokens: 200,
      output_tokens: 4_160,
      output_image_tokens: 4_160,
      images: 1,
    });
    expect(costOf(generation, 'gpt-image-1.5', book).usd).toBe(0.141045);
  });

  it("agrees with genai-prices' own calculation for an image model", () => {
    const generation = usage({
      input_tokens: 1_300,
      cached_input_tokens: 300,
      input_image_tokens: 1_000,
      cached_input_image_tokens: 200,
      output_tokens: 4_160,
      output_image_tokens: 4_160,
      images: 1,
    });
    const library = calcPrice(
      { input_tokens: 1_300, cache_read_tokens: 300, input_image_tokens: 1_000, cache_image_read_tokens: 200, output_tokens: 4_160, output_image_tokens: 4_160 },
      'gpt-image-1.5',
      { providerId: 'openai' },
    );
    expect(costOf(generation, 'gpt-image-1.5', book).usd).toBeCloseTo(library?.total_price ?? Number.NaN, 9);
  });

  it('charges image output at the output rate when the model publishes no separate image output rate', () => {
    // gpt-image-2: input 5, output 30 (its image output rate).
    // 100 × 5 + 4,160 × 30 = 500 + 124,800 = 125,300 µ$
    const generation = usage({ input_tokens: 100, output_tokens: 4_160, output_image_tokens: 4_160, images: 1 });
    expect(costOf(generation, 'gpt-image-2', book).usd).toBe(0.1253);
  });

  it('prices DALL·E images per image by quality and size', () => {
    // dall-e-3 hd 1792x1024: 2 × $0.12
    expect(costOf(usage({ images: 2 }), 'dall-e-3', book, { quality: 'hd', size: '1792x1024' }).usd).toBe(0.24);
    // dall-e-3 defaults to standard 1024x1024: $0.04
    expect(costOf(usage({ images: 1 }), 'dall-e-3', book).usd).toBe(0.04);
    // dall-e-2 has one quality; 512x512: 3 × $0.018
    expect(costOf(usage({ images: 3 }), 'dall-e-2', book, { size: '512x512' }).usd).toBe(0.054);
  });

  it('reports an image size with no per-image price as unknown', () => {
    expect(costOf(usage({ images: 1 }), 'dall-e-3', book, { quality: 'hd', size: '512x512' })).toEqual({
      usd: null,
      missing: ['dall-e-3 images at hd:512x512'],
    });
  });

  it('reports images from a token-priced model that reported no tokens as unknown, not free', () => {
    expect(costOf(usage({ images: 1 }), 'gpt-image-1', book).usd).toBeNull();
  });
});

describe('unknown prices', () => {
  it('reports a model without a price as unknown and names it in the totals', () => {
    const totals = createCostTotals();
    addCost(totals, costOf(cachedChat, 'gpt-4o-mini', book));
    const unknown = costOf(cachedChat, 'no-such-model', book);
    addCost(totals, unknown);

    expect(unknown).toEqual({ usd: null, missing: ['no-such-model'] });
    expect(totals).toMatchObject({ priced: 1, unknown: 1, missing: new Set(['no-such-model']) });
    expect(totalUsd(totals)).toBe(0.0014928);
  });

  it('reports a usage part without a rate as unknown and names the part', () => {
    const textOnly = createPriceBook({ overrides: overridesFrom({ 'text-only': { input: 1 } }) });
    expect(costOf(usage({ input_tokens: 10, output_tokens: 5 }), 'text-only', textOnly)).toEqual({
      usd: null,
      missing: ['text-only output tokens'],
    });
  });

  it('reports usage whose parts exceed their totals as unknown', () => {
    expect(costOf(usage({ input_tokens: 10, cached_input_tokens: 20 }), 'gpt-4o-mini', book).usd).toBeNull();
  });
});

describe('price overrides', () => {
  const overridden = createPriceBook({
    at: new Date('2026-01-15T00:00:00Z'),
    overrides: overridesFrom({
      'my-finetune': { input: 0.3, cached_input: 0.15, output: 1.2 },
      'gpt-4o-mini': { output: 0.5 },
      'gpt-5.4': { input: 3 },
      'local-llama': { input: 0, output: 0 },
    }),
  });

  it('adds a model the table does not have', () => {
    // 5,904 × 0.3 + 4,096 × 0.15 + 500 × 1.2 = 1,771.2 + 614.4 + 600 = 2,985.6 µ$
    expect(costOf(cachedChat, 'my-finetune', overridden).usd).toBe(0.0029856);
  });

  it("changes one rate and keeps the table's others, for the model's dated names too", () => {
    // gpt-4o-mini with output 0.5: 5,904 × 0.15 + 4,096 × 0.075 + 500 × 0.5 = 885.6 + 307.2 + 250 = 1,442.8 µ$
    expect(costOf(cachedChat, 'gpt-4o-mini', overridden).usd).toBe(0.0014428);
    expect(costOf(cachedChat, 'gpt-4o-mini-2024-07-18', overridden).usd).toBe(0.0014428);
  });

  it('replaces a tiered rate at every tier', () => {
    // gpt-5.4 with input 3, output still 22.5 above 271,999 input tokens:
    // 300,000 × 3 + 1,000 × 22.5 = 900,000 + 22,500 = 922,500 µ$
    expect(costOf(usage({ input_tokens: 300_000, output_tokens: 1_000 }), 'gpt-5.4', overridden).usd).toBe(0.9225);
  });

  it('treats an explicit zero price as free, not unknown', () => {
    expect(costOf(cachedChat, 'local-llama', overridden)).toEqual({ usd: 0 });
  });

  it('reports every problem in a bad file with its JSON path', () => {
    const { overrides, problems } = parsePriceOverrides({
      'my-model': { input: -1, ouput: 2 },
      'gpt-4.1': 'cheap',
      'dall-e-3': { per_image: { huge: 0.1, 'hd:1024x1024': '0.08' } },
      empty: {},
      batchy: { batch_discount: 2 },
      'GPT-4o-mini': { input: 1 },
      'gpt-4o-mini': { input: 2 },
    });
    expect(overrides).toBeUndefined();
    expect(problems.map((problem) => problem.slice(0, problem.indexOf(': '))).sort()).toEqual(
      [
        '$["my-model"].input',
        '$["my-model"]',
        '$["gpt-4.1"]',
        '$["dall-e-3"].per_image["huge"]',
        '$["dall-e-3"].per_image["hd:1024x1024"]',
        '$["empty"]',
        '$["batchy"].batch_discount',
        '$["gpt-4o-mini"]',
      ].sort(),
    );
  });

  it('reports a file that is not an object of models', () => {
    expect(parsePriceOverrides([{ input: 1 }]).problems).toHaveLength(1);
  });
});

describe('totals', () => {
  it('sums 20,000 job costs without floating-point drift', () => {
    // gpt-4o-mini: 7 × 0.15 + 3 × 0.6 = 1.05 + 1.8 = 2.85 µ$ per job; × 20,000 = 57,000 µ$
    const totals = createCostTotals();
    const job = costOf(usage({ input_tokens: 7, output_tokens: 3 }), 'gpt-4o-mini', book);
    for (let i = 0; i < 20_000; i++) addCost(totals, job);
    expect(totalUsd(totals)).toBe(0.057);
  });
});
