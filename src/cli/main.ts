import yargs from 'yargs';
import { NightshiftError } from '../common/errors.js';
import { createRedactor } from '../common/redact.js';
import { declareCommand, usageError, type Command } from './command.js';
import { estimateCommand } from './estimate.js';
import { bugReport, EXIT, exitStatusOfError } from './exit.js';
import type { CliIO } from './io.js';
import { reportCommand } from './report.js';
import { cancelCommand, statusCommand } from './batches.js';
import { runCommand } from './run.js';
import { serveCommand } from './serve.js';
import { STDIN_ARG, STDIN_PLACEHOLDER } from './stdin.js';
import { describeUnknownNames } from './unknown-flags.js';
import { validateCommand } from './validate.js';

export { EXIT } from './exit.js';
export type { CliIO } from './io.js';

/** The commands, in `--help` order. */
const COMMANDS: readonly Command[] = [runCommand, validateCommand, estimateCommand, reportCommand, statusCommand, cancelCommand, serveCommand];

/**
 * Runs the CLI on `args` (without `node` and the script) and returns the exit status.
 * Expected failures are `NightshiftError`s, printed without a stack; anything else is a bug.
 */
export async function runMain(argv: string[], io: CliIO): Promise<number> {
  const args = argv.map((arg) => (arg === STDIN_ARG ? STDIN_PLACEHOLDER : arg));
  let command: Promise<number> | undefined;
  // Numbers are read by each flag's own rule (command.ts), never guessed by yargs: it took `0x10` for 16, and a job
  // file named `1e3` for a number.
  let parser = yargs(args)
    .parserConfiguration({
      'parse-numbers': false,
      'parse-positional-numbers': false,
      // Flags are read by the names they are typed with: a camelCase copy of each only doubled yargs's messages.
      'camel-case-expansion': false,
    })
    .scriptName('nightshift')
    .usage('$0 <command> [options]');
  for (const spec of COMMANDS) {
    parser = parser.command(
      spec.usage,
      spec.description,
      (y) => declareCommand(y, spec),
      (argv) => {
        command = spec.run(argv as Record<string, unknown>, io);
      },
    );
  }
  parser = parser
    .demandCommand(1, 'Name a command: run, validate, estimate, report, status, cancel or serve')
    .strict()
    .exitProcess(false)
    .help()
    .alias('h', 'help')
    .version()
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .fail((message: string | undefined, error: Error | undefined) => {
      // yargs's own refusals (a flag given no value, an unknown command) are usage errors; a command's error passes.
      if (error === undefined || error.name === 'YError') {
        throw usageError(describeUnknownNames(args, COMMANDS) ?? message ?? error?.message ?? 'Invalid command line');
      }
      throw error;
    });

  skipHelpCache(parser);

  let helpShown = false;
  try {
    await parser.parseAsync(args, {}, (error, _argv, output) => {
      if (output && !error) {
        helpShown = true;
        io.stdout(`${output}\n`);
      }
    });
    if (!command) return helpShown ? EXIT.ok : EXIT.invalid;
    return await command;
  } catch (error) {
    return reportError(error, io);
  }
}

/** The part of yargs's internals {@link skipHelpCache} reaches; absent in another yargs, which only costs the time. */
interface YargsInternals {
  getInternalMethods?: () => { getUsageInstance?: () => { cacheHelpMessage?: () => void } };
}

/**
 * yargs renders a command's whole `--help` text right after starting it (`cacheHelpMessage`), to print it should the
 * command fail later. `.fail` above never prints it, and rendering it cost every command about 100 ms of CPU at the
 * start (a run's first request waited for it).
 */
function skipHelpCache(parser: unknown): void {
  const usage = (parser as YargsInternals).getInternalMethods?.().getUsageInstance?.();
  if (usage?.cacheHelpMessage) usage.cacheHelpMessage = () => {};
}

/** Prints what ended a command (a `NightshiftError`'s message, or a bug's stack) and returns its exit status. */
function reportError(error: unknown, io: CliIO): number {
  const redact = createRedactor([io.env.OPENAI_API_KEY]);
  const status = exitStatusOfError(error);
  if (error instanceof NightshiftError) {
    io.stderr(`nightshift: ${redact(error.message)}\n`);
    if (error.code === 'E_USAGE') io.stderr('Run `nightshift --help` for usage.\n');
  }
  if (status === EXIT.bug) io.stderr(bugReport(error, redact));
  return status;
}
