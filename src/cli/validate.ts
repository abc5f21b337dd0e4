import { EXIT } from './exit.js';
import type { CliIO } from './io.js';
import { loadOrExplain } from './load-jobs.js';

/** `nightshift validate`: checks job files as `run` would, and sends nothing. */
export async function validateCommand(files: string[], argv: Record<string, unknown>, io: CliIO): Promise<number> {
  const defaults = {
    ...(typeof argv.model === 'string' ? { model: argv.model } : {}),
    ...(typeof argv.system === 'string' ? { system: argv.system } : {}),
  };
  const { count, kinds } = await loadOrExplain(files, defaults, io);
  io.stdout(`${count} valid jobs (${[...kinds].map(([kind, n]) => `${n} ${kind}`).join(', ')})\n`);
  return EXIT.ok;
}
