import { constants, crc32, deflateSync } from 'node:zlib';

/** Raw pixels to encode: 8-bit RGB or RGBA, handed over one row at a time. */
export interface PngImage {
  width: number;
  height: number;
  channels: 3 | 4;
  /**
   * The pixels of row `y` (`width * channels` bytes). Returning the very same buffer as for the previous row
   * is the cheap way to say "same row again".
   */
  row(y: number): Uint8Array;
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const FILTER_SUB = 1;
const FILTER_UP = 2;
const COLOR_TYPE = { 3: 2, 4: 6 } as const;

/**
 * Encodes an image as a PNG file (one IDAT chunk).
 * Tuned for flat-coloured pictures: a row equal to the one above becomes an all-zero `Up` row, any other row is
 * `Sub`-filtered (zero inside runs of one colour), and run-length deflate squeezes the zeros at memory speed.
 */
export function encodePng(image: PngImage): Buffer {
  const { width, height, channels } = image;
  const stride = width * channels;
  // Zero-filled, so an `Up` row only needs its filter byte.
  const filtered = Buffer.alloc(height * (stride + 1));
  let previous: Uint8Array | undefined;
  for (let y = 0; y < height; y++) {
    const row = image.row(y);
    const offset = y * (stride + 1);
    if (previous !== undefined && (row === previous || Buffer.compare(row, previous) === 0)) {
      filtered[offset] = FILTER_UP;
    } else {
      filtered[offset] = FILTER_SUB;
      for (let i = 0; i < stride; i++) {
        // `& 255` is the modulo-256 difference the PNG spec asks for.
        filtered[offset + 1 + i] = (row[i]! - (i >= channels ? row[i - channels]! : 0)) & 255;
      }
    }
    previous = row;
  }

  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = COLOR_TYPE[channels];
  // Bytes 10-12 (compression, filter method, interlace) are all 0: the only standard values.

  return Buffer.concat([
    SIGNATURE,
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(filtered, { strategy: constants.Z_RLE })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

function chunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(data.length + 12);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}
