import { createHash } from 'node:crypto';
import { mkdir, realpath } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import type OpenAI from 'openai';
import type { ChatCompletion, ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';
import type { ImageGenerateParamsNonStreaming, ImagesResponse } from 'openai/resources/images';
import { messageOf } from '../common/errors.js';
import { writeFileAtomic } from '../output/atomic.js';
import type { ProducedFile } from '../output/journal.js';
import { expandOutput } from '../jobs/output-path.js';
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

/** What became of an image the API generated (and billed) but nightshift could not store. */
export type ImageSaveFailure =
  /** The image's bytes could not be obtained: its URL failed every download, or the answer held no image. */
  | 'download'
  /** The image's name leads outside the images folder (a link): this job's output is refused, others are fine. */
  | 'refused'
  /** Writing to the output folder failed (disk full, permissions, something in the way): the folder is unusable. */
  | 'write';

/** What an image answer billed, kept when its images cannot be saved. */
export interface BilledAnswer {
  usage: Usage;
  requestId?: string;
  headers: Headers;
}

/**
 * Thrown when the API answered but its images could not be saved. It carries what the answer billed, so the
 * job is journaled with its real usage and cost rather than as a free failure.
 */
export class ImageSaveError extends Error {
  override name = 'ImageSaveError';
  readonly reason: ImageSaveFailure;
  readonly usage: Usage;
  readonly requestId: string | undefined;
  readonly headers: Headers;

  constructor(reason: ImageSaveFailure, answer: BilledAnswer, cause: unknown) {
    super(messageOf(cause), { cause });
    this.reason = reason;
    this.usage = answer.usage;
    this.requestId = answer.requestId;
    this.headers = answer.headers;
  }
}

/** Everything an attempt needs from the outside world. */
export interface ExecuteContext {
  client: OpenAI;
  /** The run's output folder; images go to its `images/` subfolder. */
  outDir: string;
  /** Per-request timeout in milliseconds. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** Used to download images returned as URLs. @default globalThis.fetch */
  fetch?: typeof fetch;
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
  const files = await saveImages(job, data, context, answer);
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

const DOWNLOAD_TRIES = 3;

/** Saves the images of an answer; any failure is an {@link ImageSaveError} carrying what the answer billed. */
async function saveImages(job: Job, data: ImagesResponse, context: ExecuteContext, answer: BilledAnswer): Promise<ProducedFile[]> {
  const failed = (reason: ImageSaveFailure) => (error: unknown): never => {
    throw new ImageSaveError(reason, answer, error);
  };
  // A refusal by `safeTarget` is about this job's name; a system error (with a `syscall`) is about the folder.
  const writeFailure = (error: unknown): never => failed(error instanceof Error && 'syscall' in error ? 'write' : 'refused')(error);
  const imagesDir = join(context.outDir, 'images');
  await mkdir(imagesDir, { recursive: true }).catch(failed('write'));
  const files: ProducedFile[] = [];
  const items = data.data ?? [];
  for (const [position, item] of items.entries()) {
    let bytes: Buffer;
    if (item.b64_json) bytes = Buffer.from(item.b64_json, 'base64');
    else if (item.url) bytes = await download(item.url, context).catch(failed('download'));
    else throw new ImageSaveError('download', answer, new Error(`image ${position + 1} of job ${job.id} has neither b64_json nor url`));
    const name = expandOutput(job.output ?? `{id}-{index}.png`, job.id, position + 1);
    const target = await safeTarget(imagesDir, name).catch(writeFailure);
    await writeFileAtomic(target, bytes).catch(failed('write'));
    files.push({
      path: relative(context.outDir, target).split(sep).join('/'),
      bytes: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
    });
  }
  return files;
}

/**
 * Resolves an image name under the images folder and makes sure that no symlink inside the folder
 * leads the write elsewhere: the real path of the target's folder must lie inside the real images folder.
 */
export async function safeTarget(imagesDir: string, name: string): Promise<string> {
  const root = await realpath(imagesDir);
  const target = resolve(root, name);
  if (!target.startsWith(root + sep)) throw new Error(`image output ${JSON.stringify(name)} would leave ${imagesDir}`);
  await mkdir(dirname(target), { recursive: true });
  const parent = await realpath(dirname(target));
  if (parent !== root && !parent.startsWith(root + sep)) {
    throw new Error(`image output ${JSON.stringify(name)} goes through a link that leaves ${imagesDir}`);
  }
  return join(parent, target.slice(target.lastIndexOf(sep) + 1));
}

async function download(url: string, context: ExecuteContext): Promise<Buffer> {
  const fetchImpl = context.fetch ?? fetch;
  let lastError: unknown;
  // The image is already paid for: retry the download alone rather than the whole generation.
  for (let attempt = 1; attempt <= DOWNLOAD_TRIES; attempt++) {
    try {
      const signals = [AbortSignal.timeout(context.timeoutMs), ...(context.signal ? [context.signal] : [])];
      const response = await fetchImpl(url, { signal: AbortSignal.any(signals) });
      if (!response.ok) throw new Error(`downloading ${url} failed: HTTP ${response.status}`);
      return Buffer.from(await response.arrayBuffer());
    } catch (error) {
      lastError = error;
      if (context.signal?.aborted) break;
    }
  }
  throw lastError;
}
