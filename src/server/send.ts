import type { ServerResponse } from 'node:http';
import { gzipSync } from 'node:zlib';
import type { ApiError } from './api-error.js';
import type { AnswerText, FaultRule } from './faults.js';

// How the server writes its answers: JSON at once, or an endpoint's answer the way a fault rule says.

/**
 * Sends an answer: at once, or cut by a reset, or a byte at a time, as the fault that fired says; compressed with
 * `gzip` (whose bytes are then what is cut or trickled). `sleep` is the server's, whose timers `close()` clears.
 */
export async function sendAnswer(
  response: ServerResponse,
  status: number,
  answer: AnswerText,
  headers: Record<string, string>,
  fault: FaultRule | undefined,
  sleep: (ms: number) => Promise<void>,
  { gzip = false }: { gzip?: boolean } = {},
): Promise<void> {
  const text = Buffer.from(answer.text, 'utf8');
  const bytes = gzip ? gzipSync(text) : text;
  response.writeHead(status, { ...headers, 'content-type': answer.contentType, 'content-length': bytes.length, ...(gzip ? { 'content-encoding': 'gzip' } : {}) });
  if (fault?.reset === true) {
    response.flushHeaders();
    response.write(bytes.subarray(0, Math.floor(bytes.length / 2)), () => response.socket?.resetAndDestroy());
    return;
  }
  if (fault?.trickleMs === undefined) {
    response.end(bytes);
    return;
  }
  response.flushHeaders();
  for (let at = 0; at < bytes.length; at++) {
    await sleep(fault.trickleMs);
    // The client gave up (its timeout): nothing more to send.
    if (response.destroyed) return;
    response.write(bytes.subarray(at, at + 1));
  }
  response.end();
}

/** Sends `body` as JSON. */
export function sendJson(response: ServerResponse, status: number, body: unknown, headers: Readonly<Record<string, string>>) {
  const text = JSON.stringify(body);
  response
    .writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
    .end(text);
}

/** Sends an {@link ApiError} as the real API does. */
export function sendError(response: ServerResponse, error: ApiError): void {
  sendJson(response, error.status, error.body(), error.headers);
}
