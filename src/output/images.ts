import { createHash } from 'node:crypto';
import { mkdir, realpath } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { writeFileAtomic } from '../common/atomic-file.js';
import { messageOf, NightshiftError } from '../common/errors.js';
import { imageFormat } from '../common/image-info.js';
import type { Job, Usage } from '../common/types.js';
import { expandOutput } from '../jobs/output-path.js';
import type { ProducedFile } from './journal.js';

/** One image of an answer: its bytes (decoded from `b64_json`), or a URL to download them from. */
export type ImageItem = { bytes: Buffer } | { url: string };

/** Where and how to save an answer's images. */
export interface SaveContext {
  /** The run's output folder; images go to its `images/` subfolder. */
  outDir: string;
  /** Per-request timeout in milliseconds, for downloads too. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** Used to download images returned as URLs. @default globalThis.fetch */
  fetch?: typeof fetch;
  /**
   * The numbers (from 1) the answer's images take in the job's file names, when only some of a job's images are made
   * again. @default 1, 2, ... in answer order
   */
  imageNumbers?: readonly number[];
}

/** What became of an image the API generated (and billed) but nightshift could not store. */
export type ImageSaveFailure =
  /** The image's bytes could not be obtained: its URL failed every download, or what it served is not an image. */
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
export class ImageSaveError extends NightshiftError {
  override name = 'ImageSaveError';
  readonly reason: ImageSaveFailure;
  readonly usage: Usage;
  readonly requestId: string | undefined;
  readonly headers: Headers;

  constructor(reason: ImageSaveFailure, answer: BilledAnswer, cause: unknown) {
    super('E_IMAGE_UNSAVED', messageOf(cause), { reason }, { cause });
    this.reason = reason;
    this.usage = answer.usage;
    this.requestId = answer.requestId;
    this.headers = answer.headers;
  }
}

const DOWNLOAD_TRIES = 3;

/**
 * Saves the images of an answer; any failure is an {@link ImageSaveError} carrying what the answer billed. Every
 * image is obtained and checked before the first is written, so a failed answer leaves nothing in `images/`.
 */
export async function saveImages(job: Pick<Job, 'id' | 'output'>, items: readonly ImageItem[], answer: BilledAnswer, context: SaveContext): Promise<ProducedFile[]> {
  const failed = (reason: ImageSaveFailure) => (error: unknown): never => {
    throw new ImageSaveError(reason, answer, error);
  };
  // A refusal by `safeTarget` is about this job's name; a system error (with a `syscall`) is about the folder.
  const writeFailure = (error: unknown): never => failed(error instanceof Error && 'syscall' in error ? 'write' : 'refused')(error);
  const images: Buffer[] = [];
  for (const item of items) {
    if ('bytes' in item) {
      images.push(item.bytes);
      continue;
    }
    const bytes = await download(item.url, context).catch(failed('download'));
    if (imageFormat(bytes) === undefined) failed('download')(new Error(`${item.url} served something that is not a PNG, JPEG, GIF or WebP file`));
    images.push(bytes);
  }
  const imagesDir = join(context.outDir, 'images');
  await mkdir(imagesDir, { recursive: true }).catch(failed('write'));
  const files: ProducedFile[] = [];
  for (const [position, bytes] of images.entries()) {
    const name = expandOutput(job.output ?? `{id}-{index}.png`, job.id, context.imageNumbers?.[position] ?? position + 1);
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
  // Made by the first image written or moved there, not before: a run without images leaves no empty folder.
  await mkdir(imagesDir, { recursive: true });
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

async function download(url: string, context: SaveContext): Promise<Buffer> {
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
