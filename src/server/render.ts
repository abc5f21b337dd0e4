import { fnv1a, randomStream } from './hash.js';
import { encodePng } from './png.js';

/** What to draw: the picture depends only on these fields, so equal requests give byte-identical files. */
export interface Artwork {
  prompt: string;
  /** Position in the request's `n` images, so the images of one request differ. */
  index: number;
  width: number;
  height: number;
  /** Leave every other tile fully transparent (RGBA output), as `background: 'transparent'` asks. */
  transparent: boolean;
}

const GRID = 8;

/**
 * Draws an 8x8 mosaic whose colours blend between two hues picked from the prompt's hash, and encodes it as PNG.
 * Flat tiles keep encoding to a few milliseconds even at 1536x1024: rows repeat within a tile band,
 * which the encoder stores as empty `Up` rows.
 */
export function renderPng(artwork: Artwork): Buffer {
  const { width, height, transparent } = artwork;
  const channels = transparent ? 4 : 3;
  const colors = tileColors(artwork);
  const bands: Uint8Array[] = [];
  for (let ty = 0; ty < GRID; ty++) {
    const row = new Uint8Array(width * channels);
    for (let x = 0; x < width; x++) {
      const tx = Math.floor((x * GRID) / width);
      const color = colors[ty * GRID + tx] ?? [0, 0, 0];
      row.set(color, x * channels);
      if (transparent) row[x * channels + 3] = (tx + ty) % 2 === 0 ? 255 : 0;
    }
    bands.push(row);
  }
  return encodePng({
    width,
    height,
    channels,
    row: (y) => bands[Math.floor((y * GRID) / height)] ?? new Uint8Array(width * channels),
  });
}

function tileColors({ prompt, index }: Artwork): Array<[number, number, number]> {
  const next = randomStream(fnv1a(`${index}\u0000${prompt}`));
  const from = [next() & 255, next() & 255, next() & 255] as const;
  const to = [next() & 255, next() & 255, next() & 255] as const;
  const colors: Array<[number, number, number]> = [];
  for (let ty = 0; ty < GRID; ty++) {
    for (let tx = 0; tx < GRID; tx++) {
      const t = (tx + ty) / (2 * (GRID - 1));
      // A little per-tile jitter so the mosaic reads as a picture rather than a plain gradient.
      const jitter = (next() % 33) - 16;
      colors.push([mix(from[0], to[0], t, jitter), mix(from[1], to[1], t, jitter), mix(from[2], to[2], t, jitter)]);
    }
  }
  return colors;
}

const mix = (a: number, b: number, t: number, jitter: number): number =>
  Math.max(0, Math.min(255, Math.round(a + (b - a) * t + jitter)));
