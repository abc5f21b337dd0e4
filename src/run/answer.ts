import { imageFormat } from '../common/image-info.js';
import type { ImageItem } from '../output/images.js';
import type { Usage } from '../common/types.js';

/**
 * A 200 answer that is not the answer asked for: a body that is not JSON (an empty one, a proxy's HTML page), a
 * chat completion without choices, an image answer without its images. The server failed this attempt, so it is
 * retried like a 5xx; its message names the problem for the `error` column.
 */
export class BadAnswerError extends Error {
  override name = 'BadAnswerError';
  readonly status: number;
  readonly requestId: string | undefined;
  readonly headers: Headers;
  /** What the answer says it cost, when it says: it was billed, unusable or not. */
  usage: Usage | undefined;

  constructor(response: Response, problem: string) {
    super(`the server answered ${response.status} with ${problem}`);
    this.status = response.status;
    this.requestId = response.headers.get('x-request-id') ?? undefined;
    this.headers = response.headers;
  }
}

/** A JSON object, as far as reading it goes. */
type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);
const isText = (value: unknown): value is string | null | undefined => value === undefined || value === null || typeof value === 'string';

/** An answer's body as a JSON object; anything else is a {@link BadAnswerError} saying what it is instead. */
export function parseAnswer(response: Response, text: string): Json {
  if (text.trim() === '') throw new BadAnswerError(response, 'an empty body');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    const mediaType = response.headers.get('content-type')?.split(';', 1)[0]?.trim() || 'no content type';
    throw new BadAnswerError(response, `a body that is not JSON (${mediaType})`);
  }
  if (!isObject(value)) throw new BadAnswerError(response, 'JSON that is not an object');
  return value;
}

/** One choice of a chat completion, checked. */
export interface ChatChoice {
  /** The reply, or the refusal; `''` when there is neither. */
  text: string;
  finishReason: string | undefined;
}

/** The choices of a chat completion; a completion without any, or with a choice that has no message, is refused. */
export function chatChoices(response: Response, data: Json): ChatChoice[] {
  const { choices } = data;
  if (!Array.isArray(choices)) throw new BadAnswerError(response, `a chat completion whose choices are ${choices === null ? 'null' : 'missing'}`);
  if (choices.length === 0) throw new BadAnswerError(response, 'a chat completion without choices');
  return choices.map((choice: unknown, index) => {
    const message = isObject(choice) ? choice.message : undefined;
    if (!isObject(choice) || !isObject(message)) throw new BadAnswerError(response, `a chat completion whose choice ${index + 1} has no message`);
    const { content, refusal } = message;
    if (!isText(content) || !isText(refusal) || !isText(choice.finish_reason)) {
      throw new BadAnswerError(response, `a chat completion whose choice ${index + 1} has a message that is not text`);
    }
    return { text: content ?? refusal ?? '', finishReason: choice.finish_reason ?? undefined };
  });
}

/**
 * The images of an image answer, b64 ones decoded. An answer with fewer images than `expected`, an image with
 * neither `b64_json` nor `url`, or a `b64_json` that is not a PNG, JPEG, GIF or WebP file is refused before
 * anything is written.
 */
export function answerImages(response: Response, data: Json, expected: number): ImageItem[] {
  const items = data.data;
  if (!Array.isArray(items)) throw new BadAnswerError(response, 'an image answer without data');
  if (items.length < expected) throw new BadAnswerError(response, `an image answer with ${items.length} of the ${expected} images asked for`);
  return items.map((item: unknown, index) => {
    const b64 = isObject(item) ? item.b64_json : undefined;
    const url = isObject(item) ? item.url : undefined;
    if (typeof b64 === 'string' && b64 !== '') {
      const bytes = Buffer.from(b64, 'base64');
      if (imageFormat(bytes) === undefined) throw new BadAnswerError(response, `an image answer whose image ${index + 1} is not a PNG, JPEG, GIF or WebP file`);
      return { bytes };
    }
    if (typeof url === 'string' && url !== '') return { url };
    throw new BadAnswerError(response, `an image answer whose image ${index + 1} has neither b64_json nor url`);
  });
}

/** A token count from an answer's `usage`, or undefined when it is not one. */
export function tokenCount(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 ? value : undefined;
}
