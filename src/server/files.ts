import { createReadStream, type ReadStream } from 'node:fs';
import { mkdtemp, open, rename, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ApiError, invalidRequest } from './api-error.js';
import { multipartBoundary, readMultipart } from './multipart.js';
import { missing } from './request-fields.js';
import { listPage, type ListPage } from './list-page.js';

/** Purposes a client may upload with; `batch_output` is the server's own, for the files a batch writes. */
const UPLOAD_PURPOSES = ['assistants', 'batch', 'fine-tune', 'vision', 'user_data', 'evals'];

/** The API's cap on one upload. */
const MAX_UPLOAD_BYTES = 512 * 1024 * 1024;

/** Files with purpose `batch` (and what batches write) expire after 30 days unless told otherwise. */
const BATCH_FILE_SECONDS = 30 * 24 * 3600;

/** The API's `File` object. */
export interface FileObject {
  id: string;
  object: 'file';
  bytes: number;
  created_at: number;
  expires_at: number | null;
  filename: string;
  purpose: string;
  status: 'processed';
  status_details: null;
}

/** A file being written by the server. */
export interface FileWriter {
  write(text: string): Promise<void>;
  /** Closes the file and lists it. */
  finish(details: { filename: string; purpose: string; nowSeconds: number; expiresAt: number | null }): Promise<FileObject>;
  /** Closes and removes the file, never listed. */
  discard(): Promise<void>;
}

/**
 * The files of `/v1/files`: each kept on disk in a folder the server owns (removed on close), never in memory,
 * so uploads and batch outputs of hundreds of megabytes cost no heap.
 */
export class ApiFiles {
  readonly #dir: string;
  readonly #files = new Map<string, { object: FileObject; path: string }>();
  #created = 0;
  #registered = 0;

  private constructor(dir: string) {
    this.#dir = dir;
  }

  /** Makes the store's folder inside `parent`. */
  static async open(parent: string): Promise<ApiFiles> {
    return new ApiFiles(await mkdtemp(join(parent, 'nightshift-server-files-')));
  }

  /** `POST /v1/files`: a multipart upload with `purpose` and `file`, streamed to disk. */
  async upload(body: AsyncIterable<Buffer>, contentType: string | undefined, nowSeconds: number): Promise<FileObject> {
    const boundary = multipartBoundary(contentType);
    if (boundary === undefined) throw invalidRequest('Expected a multipart/form-data body with `purpose` and `file`.', null);
    const { path, write, close } = await this.#newFile();
    try {
      const form = await readMultipart(body, boundary, { write }, MAX_UPLOAD_BYTES);
      await close();
      const purpose = form.fields.get('purpose');
      if (purpose === undefined) throw missing('purpose');
      if (!UPLOAD_PURPOSES.includes(purpose)) {
        throw invalidRequest(`Invalid value for 'purpose': '${purpose}'. Supported values are: ${UPLOAD_PURPOSES.map((p) => `'${p}'`).join(', ')}.`, 'purpose', 'invalid_value');
      }
      if (form.file === undefined || form.file.field !== 'file') throw missing('file');
      if (purpose === 'batch' && !form.file.filename.endsWith('.jsonl')) {
        throw invalidRequest('Invalid file format for Batch API. Must be .jsonl', 'file', 'invalid_file_format');
      }
      const expiresAt = purpose === 'batch' ? nowSeconds + BATCH_FILE_SECONDS : null;
      return this.#register(path, { bytes: form.file.bytes, filename: form.file.filename, purpose, nowSeconds, expiresAt });
    } catch (error) {
      await close();
      await unlink(path);
      throw error;
    }
  }

  /**
   * A file the server writes itself (a batch's output or errors), a piece at a time; it is listed once `finish`
   * is called.
   */
  async start(): Promise<FileWriter> {
    const file = await this.#newFile();
    return {
      write: (text) => file.write(Buffer.from(text, 'utf8')),
      finish: async (details) => {
        await file.close();
        return this.#register(file.path, { ...details, bytes: file.written() });
      },
      discard: async () => {
        await file.close();
        await unlink(file.path);
      },
    };
  }

  /** The file, or the API's 404. */
  get(id: string): { object: FileObject; path: string } {
    const file = this.#files.get(id);
    if (file === undefined) throw new ApiError(404, `No such File object: ${id}`, { param: 'id' });
    return file;
  }

  /** `GET /v1/files/{id}/content`: the bytes, streamed from disk. */
  content(id: string): { stream: ReadStream; bytes: number } {
    const { object, path } = this.get(id);
    return { stream: createReadStream(path), bytes: object.bytes };
  }

  /** `GET /v1/files`: newest first unless `order=asc`, paged with `after` and `limit`. */
  list(query: URLSearchParams): ListPage<FileObject> {
    const purpose = query.get('purpose');
    const newestFirst = [...this.#files.values()].map((file) => file.object).reverse();
    const matching = purpose === null ? newestFirst : newestFirst.filter((file) => file.purpose === purpose);
    return listPage(query.get('order') === 'asc' ? matching.reverse() : matching, query, { default: 10_000, max: 10_000 });
  }

  /** `DELETE /v1/files/{id}`. A batch reading the file keeps its open handle, as a deleted file stays readable while open. */
  async delete(id: string): Promise<{ id: string; object: 'file'; deleted: true }> {
    const { path } = this.get(id);
    this.#files.delete(id);
    await unlink(path);
    return { id, object: 'file', deleted: true };
  }

  /** Removes every file and the folder. */
  async close(): Promise<void> {
    this.#files.clear();
    await rm(this.#dir, { recursive: true, force: true });
  }

  async #newFile() {
    this.#created += 1;
    const path = join(this.#dir, `upload-${this.#created}`);
    const handle = await open(path, 'wx');
    let written = 0;
    let closed = false;
    return {
      path,
      write: async (chunk: Buffer) => {
        written += chunk.length;
        await handle.write(chunk);
      },
      close: async () => {
        if (closed) return;
        closed = true;
        await handle.close();
      },
      written: () => written,
    };
  }

  async #register(
    tempPath: string,
    details: { bytes: number; filename: string; purpose: string; nowSeconds: number; expiresAt: number | null },
  ): Promise<FileObject> {
    this.#registered += 1;
    const id = `file-${this.#registered.toString(16).padStart(12, '0')}`;
    const path = join(this.#dir, id);
    await rename(tempPath, path);
    const object: FileObject = {
      id,
      object: 'file',
      bytes: details.bytes,
      created_at: details.nowSeconds,
      expires_at: details.expiresAt,
      filename: details.filename,
      purpose: details.purpose,
      status: 'processed',
      status_details: null,
    };
    this.#files.set(id, { object, path });
    return object;
  }
}
