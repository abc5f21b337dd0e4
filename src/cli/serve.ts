import type { OfflineServerOptions } from '../server/options.js';
import { NightshiftError } from '../common/errors.js';
import { resolveCommand, type Command, type CommandSpec } from './command.js';
import { EXIT } from './exit.js';
import type { CliIO } from './io.js';
import { printJson } from './table.js';

const SPEC = {
  usage: 'serve',
  description: 'Start the offline OpenAI-compatible server and print its base URL',
  flags: ['port', 'latency', 'quota-after', 'serve-rpm', 'serve-tpm', 'quiet', 'json'],
} as const satisfies CommandSpec;

/** `nightshift serve`: the offline server in the foreground until Ctrl-C. */
export const serveCommand: Command = {
  ...SPEC,
  async run(argv: Record<string, unknown>, io: CliIO): Promise<number> {
    const { flags } = resolveCommand(SPEC, argv);
    const { port, latency, rpm, tpm } = flags;
    const quotaAfter = flags['quota-after'];
    // Loaded here: the server's modules are no part of any other command's start-up.
    const { startOfflineServer } = await import('../server/server.js');
    // The values go to the server as given: it checks every option and refuses a bad one by its own name.
    const server = await startOfflineServer({
      port: port as number,
      latencyMs: latency as number,
      ...(typeof quotaAfter === 'number' ? { quota: { afterRequests: quotaAfter } } : {}),
      ...(typeof rpm === 'number' || typeof tpm === 'number'
        ? { rateLimit: { ...(typeof rpm === 'number' ? { rpm } : {}), ...(typeof tpm === 'number' ? { tpm } : {}) } }
        : {}),
      recordRequests: false,
    } satisfies OfflineServerOptions).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') throw new NightshiftError('E_USAGE', `Port ${String(port)} is in use; choose another --port, or 0 for a free one.`);
      throw error;
    });
    if (flags.json) printJson(io.stdout, { url: server.url });
    else if (!flags.quiet) io.stdout(`offline OpenAI-compatible server listening; set OPENAI_BASE_URL=${server.url}\n`);
    await new Promise<void>((resolve) => {
      if (io.stopSignal?.aborted) return resolve();
      io.stopSignal?.addEventListener('abort', () => resolve(), { once: true });
    });
    await server.close();
    return EXIT.ok;
  },
};
