import { basename, extname } from 'node:path';
import type { Job } from '../common/types.js';
import { fingerprint } from './fingerprint.js';

/** Hex digits of the request fingerprint an id-less job is named by: 48 bits keep a million jobs apart. */
export const CONTENT_ID_DIGITS = 12;

/**
 * The id of a job that has none: its file's name and a short hash of its request (`prompts-3f9a1c0b7d2e`). It
 * follows the job wherever it moves in its file, so inserting, removing or reordering jobs changes no other job's id.
 * Identical id-less jobs of a file share it; {@link numberedId} tells them apart.
 */
export function contentId(file: string, job: Pick<Job, 'endpoint' | 'body'>): string {
  return `${fileStem(file)}-${fingerprint(job).slice(0, CONTENT_ID_DIGITS)}`;
}

/** A stand-in of the length of a content id, to check the image file names an id-less job makes before its request exists. */
export const contentIdShape = (file: string): string => `${fileStem(file)}-${'0'.repeat(CONTENT_ID_DIGITS)}`;

/**
 * The id of the `occurrence`-th (from 1) id-less job with content id `id`: the first keeps it, the next are `id-2`,
 * `id-3`... in file order. Identical jobs are interchangeable, so their order cannot make one pay for another's answer.
 */
export const numberedId = (id: string, occurrence: number): string => (occurrence === 1 ? id : `${id}-${occurrence}`);

/**
 * The id an id-less job takes, given its content id: the first {@link numberedId} that `taken` does not refuse. A
 * run's later passes read the jobs again and give each the number validation gave it. `next` keeps, for the content
 * ids met more than once in a pass, the number to try first (every lower one is taken by then): 30,000 identical jobs
 * cost 30,000 checks, not half a billion.
 */
export function freeId(id: string, taken: (candidate: string) => boolean, next?: Map<string, number>): string {
  let occurrence = next?.get(id) ?? 1;
  while (taken(numberedId(id, occurrence))) occurrence++;
  // Only content ids met twice are kept: a million distinct jobs add nothing.
  if (occurrence > 1) next?.set(id, occurrence + 1);
  return numberedId(id, occurrence);
}

/**
 * Whether `id` is shaped like the ids nightshift 0.1.0 gave id-less jobs, by position (`<file name>-<record number>`,
 * `prompts-3`): a record under such an id can be taken over by the job that now sends the same request.
 */
export function isPositionalId(id: string, file: string): boolean {
  const stem = `${fileStem(file)}-`;
  return id.startsWith(stem) && /^[1-9]\d*$/.test(id.slice(stem.length));
}

// Standard input, named `<stdin>`, gives ids such as `stdin-3f9a1c0b7d2e`.
const fileStem = (file: string): string => basename(file, extname(file)).replace(/^<(.+)>$/, '$1');
