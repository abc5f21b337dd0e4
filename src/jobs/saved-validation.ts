import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, type FileHandle } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../common/atomic-file.js';
import { isFileSystemError } from '../common/fs-errors.js';
import { IdTable } from '../common/id-table.js';
import { JobDigests, KEY_BYTES } from './digests.js';
import type { JobKind } from '../common/types.js';
import type { CliDefaults } from './defaults.js';

/*
 * A validation saved beside a run's outputs, so that a resume over a million jobs does not validate and
 * fingerprint them all again. It is a cache: it names the exact bytes it was made from (sha256 of each file), the
 * code that made it and the command-line defaults it was made with, and is used only when all of them match.
 */

/** Layout of the saved file; a file of another layout is ignored. */
const FORMAT = 1;
const HASH_BYTES = 16;

let version: Promise<string> | undefined;

/**
 * What made the saved validation: the package version and a hash of nightshift's core code (validation, request
 * fingerprints, id hashes), so that a build that validates or hashes otherwise never reuses another's digests.
 */
function codeVersion(): Promise<string> {
  version ??= (async () => {
    // A package.json without a version (a copied build) must not stop validations from being saved: the code decides.
    const release = packageVersion();
    const hash = createHash('sha256').update(release);
    // Validation and fingerprints live in jobs/; the id hashes in common/.
    for (const folder of ['../jobs/', '../common/']) {
      const dir = fileURLToPath(new URL(folder, import.meta.url));
      const names = (await readdir(dir, { recursive: true })).filter((name) => /\.(js|ts)$/.test(name)).sort();
      for (const name of names) hash.update(folder).update(name).update(await readFile(join(dir, name)));
    }
    return `${release}+${hash.digest('hex').slice(0, 16)}`;
  })();
  return version;
}

/** nightshift's version, or '' for a build copied without its package.json: the code hash then decides alone. */
function packageVersion(): string {
  try {
    return (createRequire(import.meta.url)('../../package.json') as { version?: string }).version ?? '';
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND') return '';
    throw error;
  }
}

/** What a saved validation knows of one job file. */
export interface SavedFile {
  /** Absolute path. */
  path: string;
  /** Bytes validated: the file's size then. */
  bytes: number;
  /** sha256 (hex) of those bytes. */
  sha256: string;
  /** Line breaks in them: the next line's number, less one. */
  lines: number;
  /** Job records in them: the next record's number, less one. */
  records: number;
  /** They end with a line break, so lines added after them are new lines, not the end of the last one. */
  endsWithNewline: boolean;
}

/** What validating the job files found, all of it valid. */
export interface SavedValidation {
  defaults: CliDefaults;
  files: SavedFile[];
  count: number;
  kinds: [JobKind, number][];
  models: string[];
  digests: JobDigests;
}

interface Header extends Omit<SavedValidation, 'digests'> {
  format: number;
  version: string;
}

/** Tallies a job file's bytes as validation reads them: size, hash, line breaks, and its records. */
export class FileTally {
  records = 0;
  private lastByte = -1;

  constructor(
    readonly hash: Hash = createHash('sha256'),
    public bytes = 0,
    public lines = 0,
  ) {}

  see(chunk: Buffer): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    for (let at = chunk.indexOf(0x0a); at >= 0; at = chunk.indexOf(0x0a, at + 1)) this.lines++;
    if (chunk.length > 0) this.lastByte = chunk[chunk.length - 1]!;
  }

  /** The tally of a file, for saving; the hash is finished, so this is the last call. */
  saved(path: string, records = this.records): SavedFile {
    return { path: resolve(path), bytes: this.bytes, sha256: this.hash.digest('hex'), lines: this.lines, records, endsWithNewline: this.lastByte === 0x0a };
  }
}

/** The sha256 state after the first `bytes` of `file`, to finish or to go on with. */
export async function hashPrefix(file: string, bytes: number): Promise<Hash> {
  const hash = createHash('sha256');
  if (bytes === 0) return hash;
  for await (const chunk of createReadStream(file, { start: 0, end: bytes - 1, highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) hash.update(chunk);
  return hash;
}

/**
 * The validation saved at `path` for these files and defaults by this version of nightshift, or undefined when
 * there is none (or it is unreadable, or made otherwise). Whether the files still hold the same bytes is the
 * caller's to check.
 */
export async function loadValidation(path: string, files: readonly string[], defaults: CliDefaults): Promise<SavedValidation | undefined> {
  // Outside the try: failing to work out the code's version is a bug, not a missing cache.
  const version = await codeVersion();
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, 'r');
    const { size } = await handle.stat();
    const length = (await readExactly(handle, Buffer.alloc(4), 0)).readUInt32LE(0);
    const header = JSON.parse((await readExactly(handle, Buffer.alloc(length), 4)).toString('utf8')) as Header;
    if (header.format !== FORMAT || header.version !== version) return undefined;
    if (JSON.stringify(header.defaults) !== JSON.stringify(defaults)) return undefined;
    if (header.files.length !== files.length || header.files.some((file, i) => file.path !== resolve(files[i]!))) return undefined;
    const start = 4 + length;
    if (size !== start + header.count * (HASH_BYTES + KEY_BYTES)) return undefined;
    // Read straight into the arrays the id table and the digests keep: a million jobs' digests are not copied.
    const hashes = new Uint32Array(header.count * (HASH_BYTES / 4));
    await readExactly(handle, Buffer.from(hashes.buffer), start);
    const keys = await readExactly(handle, Buffer.alloc(header.count * KEY_BYTES), start + hashes.byteLength);
    const digests = JobDigests.adopt(IdTable.fromHashes(hashes, header.count), keys);
    const { format: _format, version: _version, ...rest } = header;
    return { ...rest, digests };
  } catch {
    // None saved (ENOENT), or one cut short, damaged or unreadable: it is only a cache, so the files are validated again.
    return undefined;
  } finally {
    // Everything needed was read: a handle that fails to close loses nothing.
    await handle?.close().catch(() => {});
  }
}

/** Fills `buffer` from `position` of the file; fails when the file ends first. */
async function readExactly(handle: FileHandle, buffer: Buffer, position: number): Promise<Buffer> {
  for (let done = 0; done < buffer.length; ) {
    const { bytesRead } = await handle.read(buffer, done, buffer.length - done, position + done);
    if (bytesRead === 0) throw new Error('the saved validation is cut short');
    done += bytesRead;
  }
  return buffer;
}

/**
 * Saves a validation for {@link loadValidation}; written whole or not at all. One that cannot be saved is only not
 * reused, which is no reason to stop a run.
 */
export async function saveValidation(path: string, saved: SavedValidation): Promise<void> {
  await writeValidation(path, saved).catch((error: unknown) => {
    // A disk that refuses the cache costs the next run a full validation, nothing more; any other error is a bug.
    if (!isFileSystemError(error)) throw error;
  });
}

async function writeValidation(path: string, saved: SavedValidation): Promise<void> {
  const { digests, ...rest } = saved;
  const header = Buffer.from(JSON.stringify({ format: FORMAT, version: await codeVersion(), ...rest } satisfies Header));
  const length = Buffer.alloc(4);
  length.writeUInt32LE(header.length);
  const hashes = digests.ids.hashes();
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, [length, header, Buffer.from(hashes.buffer, hashes.byteOffset, hashes.byteLength), digests.keysOf()]);
}
