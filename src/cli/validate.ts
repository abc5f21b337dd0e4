import { resolveCommand, type Command, type CommandSpec } from './command.js';
import { EXIT } from './exit.js';
import type { CliIO } from './io.js';
import { jobDefaults, loadOrExplain } from './load-jobs.js';
import { openJobFiles } from './stdin.js';
import { printJson } from './table.js';
import { count } from './words.js';

const SPEC = {
  usage: 'validate <files..>',
  description: 'Check job files and report every problem; sends nothing',
  // No description: `--help` has always shown the bare name here.
  positional: { name: 'files', missing: 'Expected at least one job file' },
  flags: ['format', 'model', 'system', 'temperature', 'max-completion-tokens', 'quiet', 'json'],
} as const satisfies CommandSpec;

/** `nightshift validate`: checks job files as `run` would, and sends nothing. */
export const validateCommand: Command = {
  ...SPEC,
  async run(argv: Record<string, unknown>, io: CliIO): Promise<number> {
    const { args, flags } = resolveCommand(SPEC, argv);
    const input = await openJobFiles(args, flags.format, io);
    const { count: valid, kinds } = await loadOrExplain(input.files, jobDefaults(flags), io, { names: input.names, json: flags.json }).finally(() =>
      input.close(),
    );
    if (flags.json) printJson(io.stdout, { valid, kinds: Object.fromEntries(kinds), problems: [] });
    else if (!flags.quiet) io.stdout(`${count(valid, 'valid job')} (${[...kinds].map(([kind, n]) => `${n} ${kind}`).join(', ')})\n`);
    return EXIT.ok;
  },
};
