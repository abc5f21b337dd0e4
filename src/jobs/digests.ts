import { fingerprintBytes } from './fingerprint.js';
import { IdTable } from '../common/id-table.js';
import type { Job } from '../common/types.js';

/** Bytes of a request fingerprint a digest keeps: 128 bits of sha256 tell requests apart as well as all 256. */
export const KEY_BYTES = 16;

/**
 * What a run must know of each job to plan it without reading the job again: its id (as an {@link IdTable}
 * hash, numbered by input position) and the fingerprint key of its request. About 40 bytes a job, so a million
 * jobs can be planned against the journal in memory, and the job files are read again only for the jobs to send.
 */
export class JobDigests {
  /** Jobs digested. */
  count = 0;
  private keys: Buffer;

  /** `ids`: the table the jobs' ids go to (validation's own, which also finds duplicates). */
  constructor(
    readonly ids: IdTable = new IdTable(),
    expected = 1024,
  ) {
    this.keys = Buffer.alloc(Math.max(1024, expected) * KEY_BYTES);
  }

  /** The digests of jobs already in memory. Their ids must be unique. */
  static of(jobs: readonly Job[]): JobDigests {
    const digests = new JobDigests(new IdTable(jobs.length), jobs.length);
    for (const job of jobs) {
      if (digests.ids.add(job.id) !== digests.count) throw new Error(`job id ${JSON.stringify(job.id)} is used twice`);
      digests.add(job);
    }
    return digests;
  }

  /** Digests as {@link keysOf} and `ids` give them back (a saved validation); `keys` is taken as it is, not copied. */
  static adopt(ids: IdTable, keys: Buffer): JobDigests {
    const digests = new JobDigests(ids, 0);
    digests.keys = keys.length >= KEY_BYTES ? keys : Buffer.alloc(KEY_BYTES);
    digests.count = ids.size;
    return digests;
  }

  /** The fingerprint keys of all jobs, in position order (a view). */
  keysOf(): Buffer {
    return this.keys.subarray(0, this.count * KEY_BYTES);
  }

  /** Digests the next job; its id must be in `ids` already, numbered `count`. */
  add(job: Pick<Job, 'endpoint' | 'body'>): void {
    this.addKey(fingerprintBytes(job));
  }

  /** {@link add}, given the job's fingerprint (its first {@link KEY_BYTES} bytes are kept), made elsewhere (a worker thread). */
  addKey(fingerprint: Uint8Array): void {
    if ((this.count + 1) * KEY_BYTES > this.keys.length) {
      const keys = Buffer.alloc(this.keys.length * 2);
      this.keys.copy(keys);
      this.keys = keys;
    }
    this.keys.set(fingerprint.subarray(0, KEY_BYTES), this.count * KEY_BYTES);
    this.count++;
  }

  /** The fingerprint key of the job at `position` (a view: copy it to keep it). */
  key(position: number): Buffer {
    return this.keys.subarray(position * KEY_BYTES, (position + 1) * KEY_BYTES);
  }
}
