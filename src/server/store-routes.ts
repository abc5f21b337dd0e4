import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { notFound } from './api-error.js';
import type { Batches } from './batches.js';
import type { ApiFiles } from './files.js';
import { parseJson, readBody } from './http-request.js';

/** Paths of the file and batch store, which answer from disk and their own state rather than a route. */
export const STORE_PATH = /^\/v1\/(files|batches)(\/[^/]+(\/[^/]+)?)?$/;

/** A file or batch answer: JSON, or a file's bytes as a stream. */
export interface StoreAnswer {
  status: number;
  json?: unknown;
  stream?: Readable;
  bytes?: number;
  headers?: Readonly<Record<string, string>>;
}

/** Answers a request for `/v1/files` or `/v1/batches` (a {@link STORE_PATH}); `now` is the server's clock. */
export async function storeAnswer(request: IncomingMessage, path: string, files: ApiFiles, batches: Batches, now: () => number): Promise<StoreAnswer> {
  const method = request.method ?? 'GET';
  const query = new URL(request.url ?? '/', 'http://offline').searchParams;
  const [, resource, id, action] = path.split('/').slice(1); // ['v1', 'files' | 'batches', id?, action?]
  const ok = (json: unknown): StoreAnswer => ({ status: 200, json });
  const route = `${method} ${resource}${id === undefined ? '' : '/:id'}${action === undefined ? '' : `/${action}`}`;
  switch (route) {
    case 'POST files':
      return ok(await files.upload(request, request.headers['content-type'], Math.floor(now() / 1000)));
    case 'GET files':
      return ok(files.list(query));
    case 'GET files/:id':
      return ok(files.get(id ?? '').object);
    case 'GET files/:id/content': {
      const { stream, bytes } = files.content(id ?? '');
      return { status: 200, stream, bytes };
    }
    case 'DELETE files/:id':
      return ok(await files.delete(id ?? ''));
    case 'POST batches':
      return ok(await batches.create(parseJson(await readBody(request))));
    case 'GET batches':
      return ok(await batches.list(query));
    case 'GET batches/:id':
      return ok(await batches.retrieve(id ?? ''));
    case 'POST batches/:id/cancel':
      return ok(await batches.cancel(id ?? ''));
    default:
      request.resume();
      throw notFound(method, path);
  }
}
