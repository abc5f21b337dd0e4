import { readFile, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { describeFileSystemError, isFileSystemError } from '../common/fs-errors.js';
import { imageFormat } from '../common/image-info.js';

/** Largest local image nightshift inlines, in bytes (the API's per-image limit). */
export const MAX_IMAGE_BYTES = 20 * 1024 * 1024;

/** Image types the API accepts, as their MIME types. */
export type ImageMime = 'image/png' | 'image/jpeg' | 'image/gif' | 'image/webp';

/** The outcome of turning one `images` entry into a URL to send. */
export type ImageResult = { url: string } | { error: string };

/** Reads a local image and returns it as a `data:` URL, or says why it cannot. */
export type ImageLoader = (path: string) => Promise<ImageResult>;

/** The MIME type of an image from its first bytes, or undefined when it is not PNG, JPEG, GIF or WEBP. */
export function sniffImageMime(bytes: Uint8Array): ImageMime | undefined {
  const format = imageFormat(bytes);
  return format && `image/${format}`;
}

/**
 * Resolves one `images` entry of a job read from `jobFile`: URLs are kept, anything else is a local path
 * (relative to the job file's folder) handed to `load`.
 */
export async function resolveImage(entry: string, jobFile: string, load: ImageLoader): Promise<ImageResult> {
  if (/^https?:\/\//i.test(entry)) {
    return URL.canParse(entry) ? { url: entry } : { error: `${JSON.stringify(entry)} is not a valid URL` };
  }
  if (/^data:/i.test(entry)) {
    return /^data:image\/[\w.+-]+;base64,[A-Za-z0-9+/]/.test(entry)
      ? { url: entry }
      : { error: 'a data URL must look like data:image/png;base64,...' };
  }
  // Two or more letters before ":" is a URL scheme; one is a Windows drive letter.
  const scheme = /^([a-z][a-z0-9+.-]+):/i.exec(entry);
  if (scheme !== null) {
    return { error: `${JSON.stringify(entry)}: ${scheme[1]}: URLs are not supported; use http(s), data: or a local file` };
  }
  return load(isAbsolute(entry) ? entry : join(dirname(jobFile), entry));
}

/** Reads a local image file into a `data:` URL, checking that it is a regular file, small enough, and an image. */
export async function readLocalImage(path: string): Promise<ImageResult> {
  const name = JSON.stringify(path);
  try {
    // stat before reading: opening a FIFO or device would block or never end.
    const info = await stat(path);
    if (!info.isFile()) return { error: `${name} is not a regular file` };
    if (info.size > MAX_IMAGE_BYTES) {
      return { error: `${name} is ${megabytes(info.size)} MB, over the ${megabytes(MAX_IMAGE_BYTES)} MB limit for images` };
    }
    const bytes = await readFile(path);
    const mime = sniffImageMime(bytes);
    if (mime === undefined) return { error: `${name} is not a PNG, JPEG, GIF or WEBP image` };
    return { url: `data:${mime};base64,${bytes.toString('base64')}` };
  } catch (error) {
    if (!isFileSystemError(error)) throw error;
    return { error: `cannot read ${name}: ${describeFileSystemError(error)}` };
  }
}

/** Wraps a loader so each file is read once per run, however many jobs use it. */
export function cachedLoader(load: ImageLoader): ImageLoader {
  const cache = new Map<string, Promise<ImageResult>>();
  return (path) => {
    let result = cache.get(path);
    if (result === undefined) {
      result = load(path);
      cache.set(path, result);
    }
    return result;
  };
}

const megabytes = (bytes: number): string => (bytes / (1024 * 1024)).toFixed(1).replace(/\.0$/, '');
