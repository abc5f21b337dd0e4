import { APIConnectionError, APIConnectionTimeoutError } from 'openai';
import type OpenAI from 'openai';
import type { ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';
import type { ImageGenerateParamsNonStreaming } from 'openai/resources/images';
import type { ProducedFile } from '../output/journal.js';
import { saveImages, type BilledAnswer, type SaveContext } from '../output/images.js';
import { OFFLINE_ANSWER_HEADER } from '../common/offline-answer.js';
import { zeroUsage, type Job, type Usage } from '../common/types.js';
import { answerImages, BadAnswerError, chatChoices, parseAnswer, tokenCount } from './answer.js';

/** What one successful attempt produced. */
export interface AttemptResult {
  output: string;
  files: ProducedFile[];
  finishReason?: string;
  usage: Usage;
  /** False when the answer carried no `usage` (some OpenAI-compatible servers omit it): its cost is unknown, not zero. */
  usageReported: boolean;
  requestId?: string;
  /** The `service_tier` the answer reports: the tier that served (and bills) the request, which may differ from the one asked. */
  serviceTier?: string;
  headers?: Headers;
  /** The offline server answered (its header says so), whatever the address it was reached by. */
  offline: boolean;
}

/** Everything an attempt needs from the outside world. */
export interface ExecuteContext extends SaveContext {
  client: OpenAI;
  /** Removes secrets from what the server sent (reply text, request id) before it is stored. @default no change */
  redact?: (text: string) => string;
}

/**
 * Sends one job once. Throws the SDK's errors unchanged so the retry layer can classify them; an answer that broke
 * off or took longer than `timeoutMs` is a connection error (or timeout), and a 200 that is not the answer asked
 * for a `BadAnswerError`.
 */
export async function executeJob(job: Job, context: ExecuteContext): Promise<AttemptResult> {
  const redact = context.redact ?? ((text: string) => text);
  const { response, text } = await fetchAnswer(job, context);
  const data = parseAnswer(response, text);
  const requestId = response.headers.get('x-request-id');
  const offline = response.headers.get(OFFLINE_ANSWER_HEADER) === '1';
  const billed = { ...(requestId ? { requestId: redact(requestId) } : {}), headers: response.headers };
  if (job.endpoint === '/v1/chat/completions') {
    const usage = chatUsage(data.usage);
    const choices = billedAnyway(usage, () => chatChoices(response, data));
    const texts = choices.map((choice) => redact(choice.text));
    // Several choices (n > 1) are kept apart as a JSON array so they can be split again without guessing.
    const output = texts.length === 1 ? (texts[0] ?? '') : JSON.stringify(texts);
    const finishReason = redact(choices.map((choice) => choice.finishReason ?? '').join(';'));
    const serviceTier = typeof data.service_tier === 'string' && data.service_tier ? redact(data.service_tier) : undefined;
    return {
      output,
      files: [],
      ...(finishReason ? { finishReason } : {}),
      usage: usage ?? zeroUsage(),
      usageReported: usage !== undefined,
      ...(serviceTier ? { serviceTier } : {}),
      ...billed,
      offline,
    };
  }
  const reported = typeof data.usage === 'object' && data.usage !== null ? imageUsage(data.usage, 0) : undefined;
  const items = billedAnyway(reported, () => answerImages(response, data, typeof job.body.n === 'number' ? job.body.n : 1));
  const answer: BilledAnswer = { usage: imageUsage(data.usage, items.length), ...billed };
  const files = await saveImages(job, items, answer, context);
  return { output: '', files, ...answer, usageReported: true, offline };
}

/**
 * Sends the request and reads the whole answer within `timeoutMs`: the SDK's own timeout ends with the headers,
 * so the request gets a signal of its own, aborted at the deadline (or with the run's). A request that runs out of
 * time is a connection timeout, whichever part was late; a failure while the body is read is a connection error,
 * since reading is only I/O (undici's `terminated` after a reset).
 */
async function fetchAnswer(job: Job, context: ExecuteContext): Promise<{ response: Response; text: string }> {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, context.timeoutMs);
  const abort = (): void => controller.abort();
  context.signal?.addEventListener('abort', abort, { once: true });
  if (context.signal?.aborted) controller.abort();
  const options = { timeout: context.timeoutMs, signal: controller.signal };
  try {
    const sent =
      job.endpoint === '/v1/chat/completions'
        ? context.client.chat.completions.create(job.body as unknown as ChatCompletionCreateParamsNonStreaming, options)
        : context.client.images.generate(job.body as unknown as ImageGenerateParamsNonStreaming, options);
    const response = await sent.asResponse();
    const text = await response.text().catch((error: unknown) => {
      throw new APIConnectionError({ message: 'The connection broke while the answer was read.', ...(error instanceof Error ? { cause: error } : {}) });
    });
    return { response, text };
  } catch (error) {
    // The deadline, not the run, aborted the request: the SDK reports that as the caller's abort.
    if (timedOut && !context.signal?.aborted) throw new APIConnectionTimeoutError();
    throw error;
  } finally {
    clearTimeout(timer);
    context.signal?.removeEventListener('abort', abort);
  }
}

/** Runs a check of an answer that reported `usage`: an answer it refuses carries that usage, since it was billed. */
function billedAnyway<T>(usage: Usage | undefined, check: () => T): T {
  try {
    return check();
  } catch (error) {
    if (error instanceof BadAnswerError && usage !== undefined) error.usage = usage;
    throw error;
  }
}

/** A chat answer's usage, or undefined when it has none, or none that reads as token counts: its cost is then unknown. */
function chatUsage(reported: unknown): Usage | undefined {
  if (typeof reported !== 'object' || reported === null) return undefined;
  const data = reported as Record<string, unknown>;
  const input = tokenCount(data.prompt_tokens);
  const output = tokenCount(data.completion_tokens);
  if (input === undefined || output === undefined) return undefined;
  const inputDetails = data.prompt_tokens_details as Record<string, unknown> | null | undefined;
  const outputDetails = data.completion_tokens_details as Record<string, unknown> | null | undefined;
  const usage = zeroUsage();
  usage.input_tokens = input;
  usage.cached_input_tokens = tokenCount(inputDetails?.cached_tokens) ?? 0;
  usage.output_tokens = output;
  usage.reasoning_tokens = tokenCount(outputDetails?.reasoning_tokens) ?? 0;
  usage.total_tokens = tokenCount(data.total_tokens) ?? input + output;
  return usage;
}

function imageUsage(reported: unknown, images: number): Usage {
  const usage = zeroUsage();
  usage.images = images;
  if (typeof reported !== 'object' || reported === null) return usage;
  const data = reported as Record<string, unknown>;
  const details = data.input_tokens_details as Record<string, unknown> | null | undefined;
  const outputDetails = data.output_tokens_details as Record<string, unknown> | null | undefined;
  usage.input_tokens = tokenCount(data.input_tokens) ?? 0;
  usage.cached_input_tokens = tokenCount(details?.cached_tokens) ?? 0;
  usage.input_image_tokens = tokenCount(details?.image_tokens) ?? 0;
  usage.output_tokens = tokenCount(data.output_tokens) ?? 0;
  // Without a breakdown, an image model's output is the image itself.
  usage.output_image_tokens = tokenCount(outputDetails?.image_tokens) ?? usage.output_tokens;
  usage.total_tokens = tokenCount(data.total_tokens) ?? usage.input_tokens + usage.output_tokens;
  return usage;
}
