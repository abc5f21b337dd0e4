import { hash } from 'node:crypto';

/** 32-bit words of an id's hash that the table keeps: 128 bits tell a million ids apart as surely as the ids themselves. */
const WORDS = 4;
const MALFORMED = Buffer.from([0xff]);
const SURROGATE = /[\ud800-\udfff]/;

/**
 * Numbers job ids 0, 1, 2, ... in the order they are first added, keeping a 128-bit hash of each id rather than
 * the id: about 24 bytes an id where a `Map` of short strings takes 80, so a million ids stay small. Two ids share
 * a number only if their sha256 hashes share their first 128 bits.
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

  /** The number of `id`, or -1 when it was never added. */
  indexOf(id: string): number {
    const bucket = this.find(this.hashOf(id));
    return bucket < 0 ? -1 : this.buckets[bucket]! - 1;
  }

  /** The number of `id`, added as the next number when new. */
  add(id: string): number {
    let bucket = this.find(this.hashOf(id));
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

  private hashOf(id: string): Uint32Array {
    // UTF-8 would turn every lone surrogate into U+FFFD, making "a\ud800" and "a\udc00" one id: ids with surrogates
    // are hashed as UTF-16 behind a byte that no UTF-8 text contains.
    const digest = !SURROGATE.test(id) ? hash('sha256', id, 'buffer') : hash('sha256', Buffer.concat([MALFORMED, Buffer.from(id, 'utf16le')]), 'buffer');
    for (let i = 0; i < WORDS; i++) this.word[i] = digest.readUInt32LE(i * 4);
    return this.word;
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
