import { NightshiftError } from '../common/errors.js';
import { startOfflineServer } from '../server/server.js';
import { EXIT } from './exit.js';
import type { CliIO } from './io.js';

/** The flags of `nightshift serve`. */
export const SERVE_FLAGS = {
  port: { type: 'number', default: 0, description: 'Port on 127.0.0.1 (0 picks a free one)' },
  latency: { type: 'number', default: 0, description: 'Milliseconds added to every response' },
  'quota-after': { type: 'number', description: 'Answer insufficient_quota after this many requests' },
  rpm: { type: 'number', description: 'Requests per minute to enforce, with x-ratelimit headers' },
  tpm: { type: 'number', description: 'Tokens per minute to enforce, with x-ratelimit headers' },
} as const;

/** `nightshift serve`: the offline server in the foreground until Ctrl-C. */
export async function serveCommand(argv: Record<string, unknown>, io: CliIO): Promise<number> {
  const quotaAfter = argv['quota-after'];
  const rpm = argv.rpm;
  const tpm = argv.tpm;
  const server = await startOfflineServer({
    port: argv.port as number,
    latencyMs: argv.latency as number,
    ...(typeof quotaAfter === 'number' ? { quota: { afterRequests: quotaAfter } } : {}),
    ...(typeof rpm === 'number' || typeof tpm === 'number'
      ? { rateLimit: { ...(typeof rpm === 'number' ? { rpm } : {}), ...(typeof tpm === 'number' ? { tpm } : {}) } }
      : {}),
    recordRequests: false,
  }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EADDRINUSE') throw new NightshiftError('E_USAGE', `Port ${String(argv.port)} is in use; choose another --port, or 0 for a free one.`);
    throw error;
  });
  io.stdout(`offline OpenAI-compatible server listening; set OPENAI_BASE_URL=${server.url}\n`);
  await new Promise<void>((resolve) => {
    if (io.stopSignal?.aborted) return resolve();
    io.stopSignal?.addEventListener('abort', () => resolve(), { once: true });
  });
  await server.close();
  return EXIT.ok;
}
