import type { IncomingMessage } from 'node:http';
import { ApiError } from './api-error.js';

/** How reading a request fails when its client disconnects: `aborted` mid-body, or the stream closed early. */
export const isClientGone = (error: unknown): boolean =>
  ['ECONNRESET', 'ERR_STREAM_PREMATURE_CLOSE'].includes((error as NodeJS.ErrnoException | undefined)?.code ?? '');

/** The request's body, read whole. */
export async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** The body as JSON, or the real API's 400 for a body that is not JSON. */
export function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    throw new ApiError(
      400,
      'We could not parse the JSON body of your request. ' +
        'The OpenAI API expects a JSON payload, but what was sent was not valid JSON.',
    );
  }
}
