/** The formats the vision endpoint accepts, as recognised from a file's first bytes. */
export type ImageFormat = 'png' | 'jpeg' | 'gif' | 'webp';

export interface ImageInfo {
  format: ImageFormat;
  width: number;
  height: number;
}

/**
 * An image's format from its signature (its first bytes), or undefined when it is not a PNG, JPEG, GIF or WebP file.
 * The one sniffer: validation checks local images with it, and token counting reads their size after it.
 */
export function imageFormat(bytes: Uint8Array): ImageFormat | undefined {
  const startsWith = (signature: readonly number[], offset = 0): boolean => signature.every((byte, i) => bytes[offset + i] === byte);
  if (startsWith([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';
  if (startsWith([0xff, 0xd8, 0xff])) return 'jpeg';
  if (startsWith([0x47, 0x49, 0x46, 0x38]) && (bytes[4] === 0x37 || bytes[4] === 0x39) && bytes[5] === 0x61) return 'gif';
  if (startsWith([0x52, 0x49, 0x46, 0x46]) && startsWith([0x57, 0x45, 0x42, 0x50], 8)) return 'webp';
  return undefined;
}

/**
 * Reads an image's format and pixel size from its header, without decoding pixels.
 * Returns `undefined` when the bytes are not a PNG, JPEG, GIF or WebP file, or are cut short.
 */
export function readImageInfo(bytes: Uint8Array): ImageInfo | undefined {
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (imageFormat(data)) {
    case 'png':
      return data.length >= 24 && data.toString('latin1', 12, 16) === 'IHDR' ? sized('png', data.readUInt32BE(16), data.readUInt32BE(20)) : undefined;
    case 'gif':
      return data.length >= 10 ? sized('gif', data.readUInt16LE(6), data.readUInt16LE(8)) : undefined;
    case 'webp':
      return data.length >= 30 ? readWebp(data) : undefined;
    case 'jpeg':
      return readJpeg(data);
    case undefined:
      return undefined;
  }
}

function readWebp(data: Buffer): ImageInfo | undefined {
  switch (data.toString('latin1', 12, 16)) {
    case 'VP8 ':
      // Lossy: 14-bit sizes after the frame tag and start code; the top two bits are a scaling hint.
      return sized('webp', data.readUInt16LE(26) & 0x3fff, data.readUInt16LE(28) & 0x3fff);
    case 'VP8L': {
      // Lossless: after the 0x2f signature byte, two 14-bit (size - 1) fields packed little-endian.
      const bits = data.readUInt32LE(21);
      return sized('webp', (bits & 0x3fff) + 1, ((bits >>> 14) & 0x3fff) + 1);
    }
    case 'VP8X':
      // Extended: 24-bit (size - 1) fields.
      return sized('webp', data.readUIntLE(24, 3) + 1, data.readUIntLE(27, 3) + 1);
    default:
      return undefined;
  }
}

function readJpeg(data: Buffer): ImageInfo | undefined {
  let offset = 2;
  while (offset + 9 <= data.length) {
    if (data[offset] !== 0xff) return undefined;
    const marker = data[offset + 1] ?? 0;
    // Fill bytes may pad between segments.
    if (marker === 0xff) {
      offset += 1;
      continue;
    }
    // Start-of-frame markers C0-CF carry the size, except C4 (Huffman tables), C8 (reserved), CC (arithmetic).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return sized('jpeg', data.readUInt16BE(offset + 7), data.readUInt16BE(offset + 5));
    }
    offset += 2 + data.readUInt16BE(offset + 2);
  }
  return undefined;
}

const sized = (format: ImageFormat, width: number, height: number): ImageInfo | undefined =>
  width > 0 && height > 0 ? { format, width, height } : undefined;

/**
 * Whether `bytes` are a whole image: a header {@link readImageInfo} reads, and the end its format closes with (PNG's
 * IEND chunk, JPEG's end-of-image marker, GIF's trailer, the length a WebP file declares). A file cut short, or
 * overwritten with something else, is not.
 */
export function isWholeImage(bytes: Uint8Array): boolean {
  const info = readImageInfo(bytes);
  if (!info) return false;
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const endsWith = (tail: readonly number[]): boolean => tail.every((byte, i) => data[data.length - tail.length + i] === byte);
  switch (info.format) {
    case 'png':
      return endsWith([0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82]);
    case 'jpeg':
      return endsWith([0xff, 0xd9]);
    case 'gif':
      return endsWith([0x3b]);
    case 'webp':
      return data.readUInt32LE(4) + 8 === data.length;
  }
}
