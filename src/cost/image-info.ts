/** The formats the vision endpoint accepts, as recognised from a file's first bytes. */
export type ImageFormat = 'png' | 'jpeg' | 'gif' | 'webp';

export interface ImageInfo {
  format: ImageFormat;
  width: number;
  height: number;
}

/**
 * Reads an image's format and pixel size from its header, without decoding pixels.
 * Returns `undefined` when the bytes are not a PNG, JPEG, GIF or WebP file, or are cut short.
 */
export function readImageInfo(bytes: Uint8Array): ImageInfo | undefined {
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (data.length >= 24 && data.readUInt32BE(0) === 0x89504e47 && data.toString('latin1', 12, 16) === 'IHDR') {
    return sized('png', data.readUInt32BE(16), data.readUInt32BE(20));
  }
  if (data.length >= 10 && (data.toString('latin1', 0, 6) === 'GIF87a' || data.toString('latin1', 0, 6) === 'GIF89a')) {
    return sized('gif', data.readUInt16LE(6), data.readUInt16LE(8));
  }
  if (data.length >= 30 && data.toString('latin1', 0, 4) === 'RIFF' && data.toString('latin1', 8, 12) === 'WEBP') {
    return readWebp(data);
  }
  if (data.length >= 4 && data[0] === 0xff && data[1] === 0xd8) {
    return readJpeg(data);
  }
  return undefined;
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
