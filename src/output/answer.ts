import { imageFormat } from '../common/image-info.js';
import { zeroUsage, type Usage } from '../common/types.js';
import type { ImageItem } from './images.js';
import type { JobState } from './journal.js';

/*
 * Reading an answer's body, wherever it came from: a live response (`run/execute.ts`) or a line of a Batch API output
 * file (`batch/collect.ts`). Both get the same checks and the same usage, so a batch answer and a live one of the
 * same request journal the same record.
 */

/** A JSON object, as far as reading it goes. */
export type Json = Record<string, unknown>;

/**
 * An answer that is not the answer asked for: a chat completion without choices, an image answer without its
 * images. `problem` names it (`a chat completion without choices`); `usage` is what it says it cost, when it says:
 * it was billed, usable or not.
 */
export class AnswerProblem extends Error {
  override name = 'AnswerProblem';
  usage: Usage | undefined;

  constructor(readonly problem: string) {
    super(problem);
  }
}

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);
const isText = (value: unknown): value is string | null | undefined => value === undefined || value === null || typeof value === 'string';

/** One choice of a chat completion, checked. */
export interface ChatChoice {
  /** The reply, or the refusal; `''` when there is neither. */
  text: string;
  finishReason: string | undefined;
}

/** The choices of a chat completion; a completion without any, or with a choice that has no message, is refused. */
export function chatChoices(data: Json): ChatChoice[] {
  const { choices } = data;
  if (!Array.isArray(choices)) throw new AnswerProblem(`a chat completion whose choices are ${choices === null ? 'null' : 'missing'}`);
  if (choices.length === 0) throw new AnswerProblem('a chat completion without choices');
  return choices.map((choice: unknown, index) => {
    const message = isObject(choice) ? choice.message : undefined;
    if (!isObject(choice) || !isObject(message)) throw new AnswerProblem(`a chat completion whose choice ${index + 1} has no message`);
    const { content, refusal } = message;
    if (!isText(content) || !isText(refusal) || !isText(choice.finish_reason)) {
      throw new AnswerProblem(`a chat completion whose choice ${index + 1} has a message that is not text`);
    }
    return { text: content ?? refusal ?? '', finishReason: choice.finish_reason ?? undefined };
  });
}

/**
 * The images of an image answer, b64 ones decoded. An answer with fewer images than `expected`, an image with
 * neither `b64_json` nor `url`, or a `b64_json` that is not a PNG, JPEG, GIF or WebP file is refused before
 * anything is written.
 */
export function answerImages(data: Json, expected: number): ImageItem[] {
  const items = data.data;
  if (!Array.isArray(items)) throw new AnswerProblem('an image answer without data');
  if (items.length < expected) throw new AnswerProblem(`an image answer with ${items.length} of the ${expected} images asked for`);
  return items.map((item: unknown, index) => {
    const b64 = isObject(item) ? item.b64_json : undefined;
    const url = isObject(item) ? item.url : undefined;
    if (typeof b64 === 'string' && b64 !== '') {
      const bytes = Buffer.from(b64, 'base64');
      if (imageFormat(bytes) === undefined) throw new AnswerProblem(`an image answer whose image ${index + 1} is not a PNG, JPEG, GIF or WebP file`);
      return { bytes };
    }
    if (typeof url === 'string' && url !== '') return { url };
    throw new AnswerProblem(`an image answer whose image ${index + 1} has neither b64_json nor url`);
  });
}

/** A chat answer read: its reply, why it ended, what it cost and the tier that served it. */
export interface ChatAnswer {
  output: string;
  finishReason?: string;
  /** Undefined when the answer carried no usage that reads as token counts: its cost is unknown, not zero. */
  usage: Usage | undefined;
  serviceTier?: string;
}

/**
 * A chat completion's reply, finish reasons (`;`-separated, one per choice) and usage. Several choices (n > 1) are
 * kept apart as a JSON array so they can be split again without guessing. `redact` cleans what the server wrote.
 */
export function readChatAnswer(data: Json, redact: (text: string) => string): ChatAnswer {
  const usage = chatUsage(data.usage);
  const choices = billedAnyway(usage, () => chatChoices(data));
  const texts = choices.map((choice) => redact(choice.text));
  const output = texts.length === 1 ? (texts[0] ?? '') : JSON.stringify(texts);
  const finishReason = redact(choices.map((choice) => choice.finishReason ?? '').join(';'));
  const serviceTier = typeof data.service_tier === 'string' && data.service_tier ? redact(data.service_tier) : undefined;
  return { output, ...(finishReason ? { finishReason } : {}), usage, ...(serviceTier ? { serviceTier } : {}) };
}

/** An image answer's images (checked against the `n` asked for) and its usage. */
export function readImageAnswer(data: Json, expected: number): { items: ImageItem[]; usage: Usage } {
  const reported = isObject(data.usage) ? imageUsage(data.usage, 0) : undefined;
  const items = billedAnyway(reported, () => answerImages(data, expected));
  return { items, usage: imageUsage(data.usage, items.length) };
}

/** Runs a check of an answer that reported `usage`: an answer it refuses carries that usage, since it was billed. */
function billedAnyway<T>(usage: Usage | undefined, check: () => T): T {
  try {
    return check();
  } catch (error) {
    if (error instanceof AnswerProblem && usage !== undefined) error.usage = usage;
    throw error;
  }
}

/** A token count from an answer's `usage`, or undefined when it is not one. */
export function tokenCount(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 ? value : undefined;
}

/** A chat answer's usage, or undefined when it has none, or none that reads as token counts: its cost is then unknown. */
function chatUsage(reported: unknown): Usage | undefined {
  if (!isObject(reported)) return undefined;
  const input = tokenCount(reported.prompt_tokens);
  const output = tokenCount(reported.completion_tokens);
  if (input === undefined || output === undefined) return undefined;
  const inputDetails = reported.prompt_tokens_details as Json | null | undefined;
  const outputDetails = reported.completion_tokens_details as Json | null | undefined;
  const usage = zeroUsage();
  usage.input_tokens = input;
  usage.cached_input_tokens = tokenCount(inputDetails?.cached_tokens) ?? 0;
  usage.output_tokens = output;
  usage.reasoning_tokens = tokenCount(outputDetails?.reasoning_tokens) ?? 0;
  usage.total_tokens = tokenCount(reported.total_tokens) ?? input + output;
  return usage;
}

function imageUsage(reported: unknown, images: number): Usage {
  const usage = zeroUsage();
  usage.images = images;
  if (!isObject(reported)) return usage;
  const details = reported.input_tokens_details as Json | null | undefined;
  const outputDetails = reported.output_tokens_details as Json | null | undefined;
  usage.input_tokens = tokenCount(reported.input_tokens) ?? 0;
  usage.cached_input_tokens = tokenCount(details?.cached_tokens) ?? 0;
  usage.input_image_tokens = tokenCount(details?.image_tokens) ?? 0;
  usage.output_tokens = tokenCount(reported.output_tokens) ?? 0;
  // Without a breakdown, an image model's output is the image itself.
  usage.output_image_tokens = tokenCount(outputDetails?.image_tokens) ?? usage.output_tokens;
  usage.total_tokens = tokenCount(reported.total_tokens) ?? usage.input_tokens + usage.output_tokens;
  return usage;
}

/** Finish reasons of a choice the model did not end itself: its text is cut short, or missing. */
const CUT_OFF = new Set(['length', 'content_filter']);

/**
 * The state of an answer from its finish reasons (`;`-separated, one per choice): `incomplete` when any choice was cut
 * off, since the reply is then not what was asked for, though it was paid for.
 */
export function answerState(finishReason: string | undefined): Extract<JobState, 'done' | 'incomplete'> {
  return finishReason?.split(';').some((reason) => CUT_OFF.has(reason)) ? 'incomplete' : 'done';
}
