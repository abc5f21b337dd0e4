import type OpenAI from 'openai';
import type { ChatCompletion, ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';
import type { ImageGenerateParamsNonStreaming, ImagesResponse } from 'openai/resources/images';
import type { ProducedFile } from '../output/journal.js';
import { saveImages, type BilledAnswer, type SaveContext } from '../output/images.js';
import { zeroUsage, type Job, type Usage } from '../common/types.js';

/** What one successful attempt produced. */
export interface AttemptResult {
  output: string;
  files: ProducedFile[];
  finishReason?: string;
  usage: Usage;
  /** False when the answer carried no `usage` (some OpenAI-compatible servers omit it): its cost is unknown, not zero. */
  usageReported: boolean;
  requestId?: string;
  headers?: Headers;
}

/** Everything an attempt needs from the outside world. */
export interface ExecuteContext extends SaveContext {
  client: OpenAI;
}

/** Sends one job once. Throws the SDK's errors unchanged so the retry layer can classify them. */
export async function executeJob(job: Job, context: ExecuteContext): Promise<AttemptResult> {
  const requestOptions = { timeout: context.timeoutMs, ...(context.signal ? { signal: context.signal } : {}) };
  if (job.endpoint === '/v1/chat/completions') {
    const { data, response, request_id } = await context.client.chat.completions
      .create(job.body as unknown as ChatCompletionCreateParamsNonStreaming, requestOptions)
      .withResponse();
    return { ...chatResult(data), ...(request_id ? { requestId: request_id } : {}), headers: response.headers };
  }
  const { data, response, request_id } = await context.client.images
    .generate(job.body as unknown as ImageGenerateParamsNonStreaming, requestOptions)
    .withResponse();
  const answer: BilledAnswer = { usage: imageUsage(data, data.data?.length ?? 0), ...(request_id ? { requestId: request_id } : {}), headers: response.headers };
  const files = await saveImages(job, data.data ?? [], answer, context);
  return { output: '', files, ...answer, usageReported: true };
}

function chatResult(data: ChatCompletion): Pick<AttemptResult, 'output' | 'files' | 'finishReason' | 'usage' | 'usageReported'> {
  const texts = data.choices.map((choice) => choice.message.content ?? choice.message.refusal ?? '');
  // Several choices (n > 1) are kept apart as a JSON array so they can be split again without guessing.
  const output = texts.length === 1 ? (texts[0] ?? '') : JSON.stringify(texts);
  const finishReason = data.choices.map((choice) => choice.finish_reason).join(';');
  const usage = zeroUsage();
  if (data.usage) {
    usage.input_tokens = data.usage.prompt_tokens;
    usage.cached_input_tokens = data.usage.prompt_tokens_details?.cached_tokens ?? 0;
    usage.output_tokens = data.usage.completion_tokens;
    usage.reasoning_tokens = data.usage.completion_tokens_details?.reasoning_tokens ?? 0;
    usage.total_tokens = data.usage.total_tokens;
  }
  return { output, files: [], finishReason, usage, usageReported: data.usage !== undefined && data.usage !== null };
}

function imageUsage(data: ImagesResponse, images: number): Usage {
  const usage = zeroUsage();
  usage.images = images;
  if (!data.usage) return usage;
  const details = data.usage.input_tokens_details as { image_tokens?: number; cached_tokens?: number } | undefined;
  const outputDetails = data.usage.output_tokens_details as { image_tokens?: number } | undefined;
  usage.input_tokens = data.usage.input_tokens;
  usage.cached_input_tokens = details?.cached_tokens ?? 0;
  usage.input_image_tokens = details?.image_tokens ?? 0;
  usage.output_tokens = data.usage.output_tokens;
  // Without a breakdown, an image model's output is the image itself.
  usage.output_image_tokens = outputDetails?.image_tokens ?? data.usage.output_tokens;
  usage.total_tokens = data.usage.total_tokens;
  return usage;
}
