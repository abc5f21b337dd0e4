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
  /**
   * Jobs kept in memory whose key is made when first asked for, by position: a run on a folder with nothing to compare
   * them with makes each as its job is sent ({@link sends}), not all before the first request.
   */
  private deferred: (Pick<Job, 'endpoint' | 'body'> | undefined)[] | undefined;

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
      digests.defer(job);
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
    this.settle();
    return this.keys.subarray(0, this.count * KEY_BYTES);
  }

  /** Digests the next job; its id must be in `ids` already, numbered `count`. */
  add(job: Pick<Job, 'endpoint' | 'body'>): void {
    this.addKey(keyOf(job));
  }

  /** {@link add}, its key made when first asked for: `job` must stay as it is, and is held until then (or {@link settle}). */
  defer(job: Pick<Job, 'endpoint' | 'body'>): void {
    this.deferred ??= [];
    this.deferred[this.count] = job;
    this.addKey(NO_KEY);
  }

  /** Makes every deferred key now, and lets go of their jobs. */
  settle(): void {
    if (this.deferred === undefined) return;
    for (const [position, job] of this.deferred.entries()) if (job !== undefined) this.keys.set(keyOf(job), position * KEY_BYTES);
    this.deferred = undefined;
  }

  /**
   * Whether `job`, whose request fingerprint is `fp` (hex), sends the request digested at `position`. The job digested
   * there, deferred and handed back as it is, takes its key from `fp` rather than hashing its request again.
   */
  sends(position: number, job: Pick<Job, 'endpoint' | 'body'>, fp: string): boolean {
    const key = Buffer.from(fp.slice(0, KEY_BYTES * 2), 'hex');
    if (this.deferred?.[position] !== job || job === undefined) return key.equals(this.key(position));
    this.keys.set(key, position * KEY_BYTES);
    this.deferred[position] = undefined;
    return true;
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
    const job = this.deferred?.[position];
    if (job !== undefined) {
      this.keys.set(keyOf(job), position * KEY_BYTES);
      this.deferred![position] = undefined;
    }
    return this.keys.subarray(position * KEY_BYTES, (position + 1) * KEY_BYTES);
  }
}

const keyOf = (job: Pick<Job, 'endpoint' | 'body'>): Buffer => fingerprintBytes(job).subarray(0, KEY_BYTES);
const NO_KEY = new Uint8Array(KEY_BYTES);
