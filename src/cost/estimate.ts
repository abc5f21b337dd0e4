/**
 * What a job will cost, worked out before it is sent: input tokens counted locally, output bounded, and both priced
 * with `costOf`, so that an estimate and the actual cost use the same rates.
 *
 * Chat and vision jobs:
 * - input: the messages' text in the model's encoding plus OpenAI's per-message overhead (`tokens.ts`), each image by
 *   its real size (`vision-tokens.ts`), and tool and JSON-schema definitions (`tokens.ts`). No input is assumed cached.
 * - output: `max_completion_tokens` bounds the worst case when the job sets it; otherwise the worst case is a
 *   planning cap ({@link OUTPUT_DEFAULTS}), not a guarantee. The expected output is a fixed guess capped by that bound.
 *   Both are per choice, times `n`.
 *
 * The tier: a job's `service_tier` prices its expected cost (`flex` at Batch rates, `priority` at its own rates, unknown
 * without them); a flex job's worst case is at the standard rates, in case the API serves it at the default tier.
 *
 * Image jobs: models priced per image (DALL·E) cost their per-image price times `n`. GPT Image models cost the prompt's
 * text tokens plus `n` images' output tokens (`image-output-tokens.ts`) at the image output rate. Where the job leaves
 * `quality` or `size` to the model (`auto` or absent), the expected cost takes medium quality at 1024x1024 and the
 * worst case high quality at the dearest standard size.
 */
import { costOf, costOptionsOf, type CostOptions } from './cost.js';
import { STANDARD_IMAGE_SIZES, imageOutputTokens } from './image-output-tokens.js';
import { positiveInteger, type ChatMessage } from '../jobs/body.js';
import type { PriceBook } from './prices.js';
import { isReasoningModel } from './reasoning.js';
import { countChatTokens, countDefinitionTokens, countTextTokens, encodingFor } from './tokens.js';
import { zeroUsage, type Job, type JobKind, type Usage } from '../common/types.js';
import { imageInputTokens } from './vision-tokens.js';

/**
 * Output token guesses and bounds for chat and vision jobs that do not set `max_completion_tokens`.
 * Reasoning models (o1, o3, o4, GPT-5 apart from its chat variants) bill their hidden reasoning as output, hence the
 * larger figures; a job that sends `reasoning_effort: "none"` counts as non-reasoning.
 */
export const OUTPUT_DEFAULTS = {
  /** Expected output of a non-reasoning model: a few paragraphs. */
  expected: 500,
  /** Expected output of a reasoning model, reasoning included. */
  expectedReasoning: 2_000,
  /** Worst case of a non-reasoning model: long answers rarely pass this, though some models allow up to 32,768. */
  worst: 4_096,
  /** Worst case of a reasoning model, reasoning included; the API allows up to 100,000 or more. */
  worstReasoning: 32_768,
} as const;

/** Options of {@link estimateJob}. */
export interface EstimateOptions {
  /**
   * Expected output tokens per choice of a chat or vision job, for when you know your replies' length better than
   * the default guess. Still capped by the job's `max_completion_tokens`.
   * @default `OUTPUT_DEFAULTS.expected`, or `OUTPUT_DEFAULTS.expectedReasoning` for a reasoning model
   */
  expectedOutputTokens?: number;
}

/** An assumption an estimate rests on, for the warnings that say how far to trust it. */
export type EstimateNote =
  /** The model is unknown: its text was counted with o200k_base. */
  | 'encoding-assumed'
  /** The model is unknown: its images were counted with GPT-4o's rule. */
  | 'vision-rule-assumed'
  /** An image is an http(s) URL whose size cannot be known: 1024x1024 expected, the rule's maximum as worst case. */
  | 'image-size-assumed'
  /** No `max_completion_tokens`: the worst case is a planning cap from {@link OUTPUT_DEFAULTS}. */
  | 'default-output-bound'
  /** A GPT Image job leaves `quality` or `size` to the model. */
  | 'image-options-auto'
  /** A content part other than text or an image (audio, a file) was not counted. */
  | 'content-not-counted';

/** The estimate of one job. Dollar figures come from `costOf` and are `null` when the model or a part has no price. */
export interface JobEstimate {
  readonly id: string;
  readonly kind: JobKind;
  readonly model: string;
  /** Input tokens, text and images; for an image job, the prompt's. */
  readonly inputTokens: number;
  /** Input tokens with every image of unknown size at its maximum; equal to `inputTokens` otherwise. */
  readonly worstInputTokens: number;
  readonly expectedOutputTokens: number;
  readonly worstOutputTokens: number;
  /** Images the job generates. */
  readonly images: number;
  readonly expectedUsd: number | null;
  readonly worstUsd: number | null;
  /** The expected cost at the Batch API discount. */
  readonly batchUsd: number | null;
  /** The most it can cost through the Batch API: what a budget reserves for it in a batch. */
  readonly worstBatchUsd: number | null;
  /** When a cost is null: what had no price, as in `Cost.missing`. */
  readonly missing: readonly string[];
  readonly notes: readonly EstimateNote[];
}

/** Estimates one job's tokens and cost. Pure: reads nothing but the job, the price book and the image bytes inlined in the job. */
export function estimateJob(job: Job, book: PriceBook, options: EstimateOptions = {}): JobEstimate {
  return job.endpoint === '/v1/images/generations' ? estimateImageJob(job, book) : estimateChatJob(job, book, options);
}

/**
 * The most `job` can cost, to reserve against a budget before sending it; `null` when it cannot be priced.
 * `batch`: sent through the Batch API, at its rates. A job without `max_completion_tokens` is bounded by {@link OUTPUT_DEFAULTS}' planning caps, not by the API.
 */
export function worstCaseCost(job: Job, book: PriceBook, { batch = false }: { batch?: boolean } = {}): number | null {
  const estimate = estimateJob(job, book);
  return batch ? estimate.worstBatchUsd : estimate.worstUsd;
}

function estimateChatJob(job: Job, book: PriceBook, options: EstimateOptions): JobEstimate {
  const notes = new Set<EstimateNote>();
  const encoding = encodingFor(job.model);
  if (encoding.assumed) notes.add('encoding-assumed');
  const messages = Array.isArray(job.body.messages) ? (job.body.messages as ChatMessage[]) : [];
  let inputTokens = countChatTokens(messages, encoding.name) + countDefinitionTokens(job.body, encoding.name);
  let worstInputTokens = inputTokens;
  for (const part of contentParts(messages)) {
    if (part.type === 'text' || part.type === 'refusal') continue;
    const image = part.type === 'image_url' ? (part.image_url as { url?: unknown; detail?: unknown } | undefined) : undefined;
    if (typeof image?.url !== 'string') {
      notes.add('content-not-counted');
      continue;
    }
    const tokens = imageInputTokens(image.url, typeof image.detail === 'string' ? image.detail : undefined, job.model);
    inputTokens += tokens.tokens;
    worstInputTokens += tokens.worstTokens;
    if (tokens.sizeAssumed) notes.add('image-size-assumed');
    if (tokens.ruleAssumed) notes.add('vision-rule-assumed');
  }

  const reasoning = isReasoning(job);
  const cap = positiveInteger(job.body.max_completion_tokens);
  if (cap === undefined) notes.add('default-output-bound');
  const worstPerChoice = cap ?? (reasoning ? OUTPUT_DEFAULTS.worstReasoning : OUTPUT_DEFAULTS.worst);
  const guess = options.expectedOutputTokens ?? (reasoning ? OUTPUT_DEFAULTS.expectedReasoning : OUTPUT_DEFAULTS.expected);
  const choices = positiveInteger(job.body.n) ?? 1;
  const expectedOutputTokens = Math.min(guess, worstPerChoice) * choices;
  const worstOutputTokens = worstPerChoice * choices;

  const expected = tokenUsage(inputTokens, expectedOutputTokens);
  const worst = tokenUsage(worstInputTokens, worstOutputTokens);
  return {
    ...identity(job),
    inputTokens,
    worstInputTokens,
    expectedOutputTokens,
    worstOutputTokens,
    images: 0,
    ...priced(job, book, expected, worst, costOptionsOf(job)),
    notes: [...notes],
  };
}

function estimateImageJob(job: Job, book: PriceBook): JobEstimate {
  const notes = new Set<EstimateNote>();
  const images = positiveInteger(job.body.n) ?? 1;
  const promptTokens = countTextTokens(typeof job.body.prompt === 'string' ? job.body.prompt : '', encodingFor(job.model).name);
  const size = typeof job.body.size === 'string' ? job.body.size : undefined;
  const quality = typeof job.body.quality === 'string' ? job.body.quality : undefined;
  const base = { ...identity(job), inputTokens: promptTokens, worstInputTokens: promptTokens, images };

  if (book.priceOf(job.model)?.perImage) {
    // Per-image prices include the prompt, and size and quality are fixed by the request (or the API's defaults).
    const usage = { ...zeroUsage(), images };
    return { ...base, expectedOutputTokens: 0, worstOutputTokens: 0, ...priced(job, book, usage, usage, costOptionsOf(job)), notes: [] };
  }

  const autoQuality = quality === undefined || quality === 'auto';
  const autoSize = size === undefined || size === 'auto';
  if (autoQuality || autoSize) notes.add('image-options-auto');
  const expectedEach = imageOutputTokens(job.model, autoSize ? '1024x1024' : size, autoQuality ? 'medium' : quality);
  const worstQuality = autoQuality ? 'high' : quality;
  const worstEach = maxOf((autoSize ? STANDARD_IMAGE_SIZES : [size]).map((s) => imageOutputTokens(job.model, s, worstQuality)));
  if (expectedEach === undefined || worstEach === undefined) {
    // Without a token count there is nothing to price; a model with no price at all is named alone, as costOf names it.
    const missing = book.priceOf(job.model) ? [`${job.model} image output tokens at ${quality ?? 'auto'}:${size ?? 'auto'}`] : [job.model];
    const unknown = { expectedUsd: null, worstUsd: null, batchUsd: null, worstBatchUsd: null, missing };
    return { ...base, expectedOutputTokens: 0, worstOutputTokens: 0, ...unknown, notes: [...notes] };
  }
  const expected = imageUsage(promptTokens, expectedEach * images, images);
  const worst = imageUsage(promptTokens, worstEach * images, images);
  return {
    ...base,
    expectedOutputTokens: expected.output_tokens,
    worstOutputTokens: worst.output_tokens,
    ...priced(job, book, expected, worst),
    notes: [...notes],
  };
}

type Pricing = Pick<JobEstimate, 'expectedUsd' | 'worstUsd' | 'batchUsd' | 'worstBatchUsd' | 'missing'>;

function priced(job: Job, book: PriceBook, expected: Usage, worst: Usage, options: CostOptions = {}): Pricing {
  const expectedCost = costOf(expected, job.model, book, options);
  // A flex request is expected at Batch rates, but the API may serve it at the default tier, and bill it so.
  const { serviceTier, ...standard } = options;
  const worstCost = costOf(worst, job.model, book, serviceTier === 'flex' ? standard : options);
  return {
    expectedUsd: expectedCost.usd,
    worstUsd: worstCost.usd,
    batchUsd: costOf(expected, job.model, book, { ...options, batch: true }).usd,
    worstBatchUsd: costOf(worst, job.model, book, { ...options, batch: true }).usd,
    missing: [...new Set([...(expectedCost.missing ?? []), ...(worstCost.missing ?? [])])],
  };
}

const identity = (job: Job) => ({ id: job.id, kind: job.kind, model: job.model });

/** Chat usage as the API reports it: image inputs are part of `input_tokens`, billed as text (see `costOf`). */
function tokenUsage(inputTokens: number, outputTokens: number): Usage {
  return { ...zeroUsage(), input_tokens: inputTokens, output_tokens: outputTokens, total_tokens: inputTokens + outputTokens };
}

/** Image generation usage as `execute.ts` records it: the output is all image tokens. */
function imageUsage(promptTokens: number, outputTokens: number, images: number): Usage {
  return { ...tokenUsage(promptTokens, outputTokens), output_image_tokens: outputTokens, images };
}

function* contentParts(messages: readonly ChatMessage[]): Generator<{ type: string; [key: string]: unknown }> {
  for (const message of messages) {
    if (!Array.isArray(message.content)) continue;
    for (const part of message.content) if (typeof part === 'object' && part !== null) yield part;
  }
}

/** Reasoning models bill hidden reasoning as output, unless the job turns reasoning off. */
function isReasoning(job: Job): boolean {
  return isReasoningModel(job.model) && job.body.reasoning_effort !== 'none';
}

function maxOf(values: readonly (number | undefined)[]): number | undefined {
  if (values.length === 0 || values.some((value) => value === undefined)) return undefined;
  return Math.max(...(values as number[]));
}
