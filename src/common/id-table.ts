/** 32-bit words of an id's hash that the table keeps: 128 bits tell a million ids apart as surely as the ids themselves. */
const WORDS = 4;

/**
 * Numbers job ids 0, 1, 2, ... in the order they are first added, keeping a 128-bit hash of each id rather than
 * the id: about 24 bytes an id where a `Map` of short strings takes 80, so a million ids stay small. Two ids share
 * a number only if their hashes share all 128 bits.
 *
 * The hash is MurmurHash3 (x86, 128-bit) of the id's UTF-16 code units: exact for any string (lone surrogates
 * included), and some thirty times cheaper than a call into `node:crypto`, which matters a million times over.
 * It is not built to resist ids crafted to collide; the worst such ids could do is be reported as duplicates.
 */
export class IdTable {
  /** Ids added. */
  size = 0;
  /** Open addressing: each bucket holds an id's number plus one, or 0 when empty. */
  private buckets: Uint32Array;
  private keys: Uint32Array;
  private readonly word = new Uint32Array(WORDS);

  /** `expected`: how many ids the table will likely hold; it is sized for them, and grows past them if need be. */
  constructor(expected = 512) {
    const ids = Math.max(512, expected);
    this.buckets = new Uint32Array(2 ** Math.ceil(Math.log2(ids * 2 + 1)));
    this.keys = new Uint32Array(ids * WORDS);
  }

  /**
   * A table holding the ids whose hashes `hashes` lists (four words each, as {@link hashes} gives them), numbered in
   * that order. The table takes `hashes` as its own (no copy), and grows past it if ids are added.
   */
  static fromHashes(hashes: Uint32Array, count: number): IdTable {
    const table = new IdTable(0);
    table.keys = hashes.length >= WORDS ? hashes : new Uint32Array(WORDS);
    table.size = count;
    table.rehash(2 ** Math.ceil(Math.log2(Math.max(512, count) * 2 + 1)));
    return table;
  }

  /** The hashes of the ids added, four 32-bit words each, in number order (a view). */
  hashes(): Uint32Array {
    return this.keys.subarray(0, this.size * WORDS);
  }

  /** The number of `id`, or -1 when it was never added. */
  indexOf(id: string): number {
    hashId(id, this.word);
    return this.numberOf(this.word);
  }

  /** The number in this table of the id that `other` numbers `index`, or -1 when this table does not have it. */
  indexOfIn(other: IdTable, index: number): number {
    for (let i = 0; i < WORDS; i++) this.word[i] = other.keys[index * WORDS + i]!;
    return this.numberOf(this.word);
  }

  /** The number of `id`, added as the next number when new. */
  add(id: string): number {
    hashId(id, this.word);
    let bucket = this.find(this.word);
    if (bucket >= 0) return this.buckets[bucket]! - 1;
    if ((this.size + 1) * 2 > this.buckets.length) {
      this.rehash(this.buckets.length * 2);
      bucket = this.find(this.word);
    }
    const index = this.size++;
    if (index * WORDS >= this.keys.length) {
      const keys = new Uint32Array(this.keys.length * 2);
      keys.set(this.keys);
      this.keys = keys;
    }
    this.keys.set(this.word, index * WORDS);
    this.buckets[-bucket - 1] = index + 1;
    return index;
  }

  private numberOf(key: Uint32Array): number {
    const bucket = this.find(key);
    return bucket < 0 ? -1 : this.buckets[bucket]! - 1;
  }

  /** The bucket holding `key` (>= 0), or -(the empty bucket where it would go) - 1. */
  private find(key: Uint32Array): number {
    const mask = this.buckets.length - 1;
    for (let bucket = key[0]! & mask; ; bucket = (bucket + 1) & mask) {
      const entry = this.buckets[bucket]!;
      if (entry === 0) return -bucket - 1;
      const at = (entry - 1) * WORDS;
      if (this.keys[at] === key[0] && this.keys[at + 1] === key[1] && this.keys[at + 2] === key[2] && this.keys[at + 3] === key[3]) return bucket;
    }
  }

  private rehash(capacity: number): void {
    this.buckets = new Uint32Array(capacity);
    const mask = capacity - 1;
    for (let index = 0; index < this.size; index++) {
      let bucket = this.keys[index * WORDS]! & mask;
      while (this.buckets[bucket] !== 0) bucket = (bucket + 1) & mask;
      this.buckets[bucket] = index + 1;
    }
  }
}

const C1 = 0x239b961b;
const C2 = 0xab0e9789;
const C3 = 0x38b34ae5;
const C4 = 0xa1e38b93;

const rotl = (x: number, r: number): number => (x << r) | (x >>> (32 - r));

/** MurmurHash3's mixing of one 32-bit word of input: multiply, rotate, multiply. */
const mix = (k: number, first: number, rotation: number, second: number): number => Math.imul(rotl(Math.imul(k, first), rotation), second);

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** Two UTF-16 code units of `text` from `at` as one little-endian 32-bit word (0 past the end). */
const pair = (text: string, at: number, end: number): number =>
  (at < end ? text.charCodeAt(at) : 0) | (at + 1 < end ? text.charCodeAt(at + 1) << 16 : 0);

/**
 * MurmurHash3 x86_128 (seed 0) of `text` as UTF-16LE bytes, into `out` (four 32-bit words). The same value as the
 * reference implementation over `Buffer.from(text, 'utf16le')`.
 */
export function hashId(text: string, out: Uint32Array): void {
  const units = text.length;
  const blocks = units >>> 3;
  let h1 = 0;
  let h2 = 0;
  let h3 = 0;
  let h4 = 0;
  for (let block = 0; block < blocks; block++) {
    const at = block << 3;
    const k1 = text.charCodeAt(at) | (text.charCodeAt(at + 1) << 16);
    const k2 = text.charCodeAt(at + 2) | (text.charCodeAt(at + 3) << 16);
    const k3 = text.charCodeAt(at + 4) | (text.charCodeAt(at + 5) << 16);
    const k4 = text.charCodeAt(at + 6) | (text.charCodeAt(at + 7) << 16);
    h1 = (Math.imul(rotl(h1 ^ mix(k1, C1, 15, C2), 19) + h2, 5) + 0x561ccd1b) | 0;
    h2 = (Math.imul(rotl(h2 ^ mix(k2, C2, 16, C3), 17) + h3, 5) + 0x0bcaa747) | 0;
    h3 = (Math.imul(rotl(h3 ^ mix(k3, C3, 17, C4), 15) + h4, 5) + 0x96cd1c35) | 0;
    h4 = (Math.imul(rotl(h4 ^ mix(k4, C4, 18, C1), 13) + h1, 5) + 0x32ac3b17) | 0;
  }
  // The tail: up to seven code units (14 bytes), zero-padded, each word mixed only if it holds any of them.
  const tail = blocks << 3;
  const left = units - tail;
  if (left > 6) h4 ^= mix(pair(text, tail + 6, units), C4, 18, C1);
  if (left > 4) h3 ^= mix(pair(text, tail + 4, units), C3, 17, C4);
  if (left > 2) h2 ^= mix(pair(text, tail + 2, units), C2, 16, C3);
  if (left > 0) h1 ^= mix(pair(text, tail, units), C1, 15, C2);
  const bytes = units * 2;
  h1 ^= bytes;
  h2 ^= bytes;
  h3 ^= bytes;
  h4 ^= bytes;
  h1 = (h1 + h2 + h3 + h4) | 0;
  h2 = (h2 + h1) | 0;
  h3 = (h3 + h1) | 0;
  h4 = (h4 + h1) | 0;
  h1 = fmix(h1);
  h2 = fmix(h2);
  h3 = fmix(h3);
  h4 = fmix(h4);
  h1 = (h1 + h2 + h3 + h4) | 0;
  h2 = (h2 + h1) | 0;
  h3 = (h3 + h1) | 0;
  h4 = (h4 + h1) | 0;
  out[0] = h1;
  out[1] = h2;
  out[2] = h3;
  out[3] = h4;
}
