import { APIConnectionError, APIConnectionTimeoutError } from 'openai';
import type OpenAI from 'openai';
import type { ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';
import type { ImageGenerateParamsNonStreaming } from 'openai/resources/images';
import type { ProducedFile } from '../output/journal.js';
import { saveImages, type BilledAnswer, type SaveContext } from '../output/images.js';
import { OFFLINE_ANSWER_HEADER } from '../common/offline-answer.js';
import { zeroUsage, type Job, type Usage } from '../common/types.js';
import { AnswerProblem, readChatAnswer, readImageAnswer } from '../output/answer.js';
import { badAnswer, parseAnswer } from './answer.js';

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
  try {
    if (job.endpoint === '/v1/chat/completions') {
      const { usage, ...answer } = readChatAnswer(data, redact);
      return { ...answer, files: [], usage: usage ?? zeroUsage(), usageReported: usage !== undefined, ...billed, offline };
    }
    const { items, usage } = readImageAnswer(data, typeof job.body.n === 'number' ? job.body.n : 1);
    const answer: BilledAnswer = { usage, ...billed };
    const files = await saveImages(job, items, answer, context);
    return { output: '', files, ...answer, usageReported: true, offline };
  } catch (error) {
    throw error instanceof AnswerProblem ? badAnswer(response, error) : error;
  }
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
