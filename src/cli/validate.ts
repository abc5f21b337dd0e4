import { EXIT, type CliIO } from './io.js';
import { loadOrExplain } from './shared.js';

/** `nightshift validate`: checks job files as `run` would, and sends nothing. */
export async function validateCommand(files: string[], argv: Record<string, unknown>, io: CliIO): Promise<number> {
  const defaults = {
    ...(typeof argv.model === 'string' ? { model: argv.model } : {}),
    ...(typeof argv.system === 'string' ? { system: argv.system } : {}),
  };
  const jobs = await loadOrExplain(files, defaults, io);
  const byKind = new Map<string, number>();
  for (const job of jobs) byKind.set(job.kind, (byKind.get(job.kind) ?? 0) + 1);
  io.stdout(`${jobs.length} valid jobs (${[...byKind].map(([kind, n]) => `${n} ${kind}`).join(', ')})\n`);
  return EXIT.ok;
}
