import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { brotliDecompress, createBrotliDecompress, createGunzip, createInflate, gunzip, inflate } from 'node:zlib';
import type { Dispatcher } from 'undici';
// undici's own files, not its index: the index also loads fetch, WebSocket, caches and mocks, 0.07 s of every start
// (BENCHMARKS.md, section 8). What the index does besides, and the agents need (a proxy's CONNECT), is done here:
// the request methods are installed on every dispatcher.
import api from 'undici/lib/api/index.js';
import DispatcherClass from 'undici/lib/dispatcher/dispatcher.js';
import Agent from 'undici/lib/dispatcher/agent.js';
import EnvHttpProxyAgent from 'undici/lib/dispatcher/env-http-proxy-agent.js';

Object.assign(DispatcherClass.prototype, api);
import type { CliIO } from './io.js';

// The SDK's `fetch`: undici's `request` on an Agent of nightshift's own. The stock `fetch` spends most of a fast
// run's CPU in web streams; here a JSON answer is read whole into one buffer, within the request's signal, and only
// other answers (a Batch API file's lines) are streamed. BENCHMARKS.md has the measurements behind the choice.

/** What the transport takes from the command line and the environment. */
export interface TransportOptions {
  /**
   * Requests in flight at most (`--concurrency`): the pool keeps up to twice as many connections to a host. A worker
   * sends its next request as soon as its answer is read, often before undici has put that answer's connection back
   * in the pool; a pool of exactly `connections` makes that request wait for it, which cost 2.5% of the throughput
   * at 200 ms of latency (BENCHMARKS.md, section 7).
   * @default unlimited
   */
  connections?: number;
}

/** The `fetch` the SDK is given, and the pool behind it. */
export interface Transport {
  fetch: typeof globalThis.fetch;
  dispatcher: Dispatcher;
}

/** Answers read whole: JSON, and any error answer (the SDK reads its body for the message). */
const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\b/i;

/** Statuses whose answer has no body, which `Response` refuses to be given one. */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

const ACCEPTED_ENCODINGS = 'gzip, deflate, br';

const decoders: Record<string, { whole: (bytes: Buffer) => Promise<Buffer>; stream: () => NodeJS.ReadWriteStream }> = {
  gzip: { whole: promisify(gunzip), stream: createGunzip },
  'x-gzip': { whole: promisify(gunzip), stream: createGunzip },
  deflate: { whole: promisify(inflate), stream: createInflate },
  br: { whole: promisify(brotliDecompress), stream: createBrotliDecompress },
};

/**
 * A transport for the API client: keep-alive connections (at most twice `connections` to a host), answers decompressed
 * (gzip, deflate, br), and the proxy the environment names (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`, lower case
 * first, as curl reads them). Every request is bounded by the signal it is given, its body included: the SDK's
 * timeout (and nightshift's own deadline) cover the answer until its last byte.
 */
export function createTransport(env: CliIO['env'], { connections }: TransportOptions = {}): Transport {
  const httpsProxy = env.https_proxy ?? env.HTTPS_PROXY ?? '';
  const httpProxy = env.http_proxy ?? env.HTTP_PROXY ?? '';
  const noProxy = env.no_proxy ?? env.NO_PROXY ?? '';
  // The deadline is the caller's signal, not undici's idle timers (300 s each by default, shorter than a flex request's).
  const pool = { ...(connections === undefined ? {} : { connections: 2 * connections }), headersTimeout: 0, bodyTimeout: 0 };
  const dispatcher: Dispatcher =
    httpsProxy === '' && httpProxy === ''
      ? new Agent(pool)
      : // Values are passed even when empty, so that undici never falls back to variables the CLI was not given.
        new EnvHttpProxyAgent({ ...pool, httpProxy, httpsProxy, noProxy });
  const fetch = (input: string | URL | Request, init?: RequestInit): Promise<Response> => send(dispatcher, input, init ?? {});
  return { fetch: fetch as typeof globalThis.fetch, dispatcher };
}

async function send(dispatcher: Dispatcher, input: string | URL | Request, init: RequestInit): Promise<Response> {
  let url: string;
  let headers: Record<string, string>;
  let body: string | Uint8Array | Readable | null = null;
  const method = (init.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
  const signal = init.signal ?? (input instanceof Request ? input.signal : undefined);
  if (typeof input !== 'object' || input instanceof URL) {
    if (init.body === undefined || init.body === null || typeof init.body === 'string' || init.body instanceof Uint8Array) {
      url = String(input);
      headers = Object.fromEntries(new Headers(init.headers));
      body = init.body ?? null;
    } else {
      // A multipart upload or a stream: `Request` encodes it (and names its content type), and it is sent as it is read.
      ({ url, headers, body } = streamed(new Request(input, { ...init, duplex: 'half' } as RequestInit)));
    }
  } else {
    ({ url, headers, body } = streamed(new Request(input, init)));
  }
  headers['accept-encoding'] ??= ACCEPTED_ENCODINGS;
  const { origin, pathname, search } = new URL(url);
  const answer = await dispatcher.request({ origin, path: pathname + search, method: method as Dispatcher.HttpMethod, headers, body, signal: signal ?? undefined });
  const responseHeaders = new Headers();
  for (const [name, value] of Object.entries(answer.headers)) {
    if (Array.isArray(value)) for (const item of value) responseHeaders.append(name, item);
    else if (value !== undefined) responseHeaders.append(name, value);
  }
  const status = answer.statusCode;
  if (NULL_BODY.has(status)) {
    await answer.body.dump();
    return new Response(null, { status, headers: responseHeaders });
  }
  const decoder = decoders[(responseHeaders.get('content-encoding') ?? '').trim().toLowerCase()];
  if (decoder !== undefined) {
    responseHeaders.delete('content-encoding');
    responseHeaders.delete('content-length');
  }
  if (status >= 400 || JSON_TYPE.test(responseHeaders.get('content-type') ?? '')) {
    const bytes = Buffer.from(await answer.body.arrayBuffer());
    return wholeResponse(decoder === undefined ? bytes : await decoder.whole(bytes), { status, headers: responseHeaders });
  }
  let stream: Readable = answer.body;
  if (decoder !== undefined) {
    const decoded = decoder.stream();
    // A failure on either side ends the other; the reader of the answer sees it as the stream's error.
    pipeline(answer.body, decoded).catch(() => undefined);
    stream = decoded as unknown as Readable;
  }
  return new Response(Readable.toWeb(stream) as ReadableStream<Uint8Array>, { status, headers: responseHeaders });
}

/** A request whose body is encoded by `Request`: its URL, its headers, and its body as a Node stream. */
function streamed(prepared: Request): { url: string; headers: Record<string, string>; body: Readable | null } {
  const body = prepared.body === null ? null : Readable.fromWeb(prepared.body as import('node:stream/web').ReadableStream<Uint8Array>);
  return { url: prepared.url, headers: Object.fromEntries(prepared.headers), body };
}

/**
 * An answer read whole, handed over without the web stream a `Response` builds around its body (3.5% of a fast run's
 * CPU, BENCHMARKS.md section 8): the SDK and nightshift read such an answer once, as text or JSON. Its `body` stream
 * is made only when asked for.
 */
function wholeResponse(bytes: Buffer, init: ResponseInit): Response {
  const response = new Response(null, init);
  let used = false;
  let stream: ReadableStream<Uint8Array> | null | undefined;
  /** The body, once, as `Response` gives it: a second read is refused. */
  const take = (): Buffer => {
    if (used) throw new TypeError('Body is unusable: Body has already been read');
    used = true;
    return bytes;
  };
  const text = (): Promise<string> => Promise.resolve().then(() => take().toString('utf8'));
  const arrayBuffer = (): Promise<ArrayBuffer> =>
    Promise.resolve().then(() => {
      const whole = take();
      return whole.buffer.slice(whole.byteOffset, whole.byteOffset + whole.byteLength) as ArrayBuffer;
    });
  Object.defineProperties(response, {
    body: { get: () => (stream ??= new Response(bytes).body) },
    bodyUsed: { get: () => used },
    text: { value: text },
    json: { value: async (): Promise<unknown> => JSON.parse(await text()) },
    arrayBuffer: { value: arrayBuffer },
    blob: { value: async (): Promise<Blob> => new Blob([await arrayBuffer()], { type: response.headers.get('content-type') ?? '' }) },
    clone: {
      value: (): Response => {
        if (used) throw new TypeError('Response.clone: Body has already been consumed.');
        return wholeResponse(bytes, { status: response.status, statusText: response.statusText, headers: response.headers });
      },
    },
  });
  return response;
}
