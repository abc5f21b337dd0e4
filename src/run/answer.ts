import type { AnswerProblem } from '../output/answer.js';
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

/** A body a 200 carried that is not the answer asked for, as the {@link BadAnswerError} retried like a 5xx. */
export function badAnswer(response: Response, problem: AnswerProblem): BadAnswerError {
  const error = new BadAnswerError(response, problem.problem);
  error.usage = problem.usage;
  return error;
}
