import yargs from 'yargs';
import { NightshiftError } from '../common/errors.js';
import { createRedactor } from '../common/redact.js';
import { ESTIMATE_FLAGS, estimateCommand } from './estimate.js';
import { bugReport, EXIT, exitStatusOfError } from './exit.js';
import type { CliIO } from './io.js';
import { RUN_FLAGS, resolveRunFlags, usage } from './options.js';
import { REPORT_FLAGS, reportCommand } from './report.js';
import { runCommand } from './run.js';
import { SERVE_FLAGS, serveCommand } from './serve.js';
import { validateCommand } from './validate.js';

export { EXIT } from './exit.js';
export type { CliIO } from './io.js';

/**
 * Runs the CLI on `args` (without `node` and the script) and returns the exit status.
 * Expected failures are `NightshiftError`s, printed without a stack; anything else is a bug.
 */
export async function runMain(args: string[], io: CliIO): Promise<number> {
  let command: Promise<number> | undefined;
  const parser = yargs(args)
    .scriptName('nightshift')
    .usage('$0 <command> [options]')
    .command(
      'run <files..>',
      'Run job files against the OpenAI API (or --offline) and write results.csv, usage.csv and images/',
      (y) => y.positional('files', { type: 'string', array: true, description: 'Job files (.json, .jsonl, .csv)' }).options(RUN_FLAGS),
      (argv) => {
        command = runCommand(resolveRunFlags(argv as Record<string, unknown>), io);
      },
    )
    .command(
      'validate <files..>',
      'Check job files and report every problem; sends nothing',
      (y) =>
        y
          .positional('files', { type: 'string', array: true })
          .options({ model: RUN_FLAGS.model, system: RUN_FLAGS.system }),
      (argv) => {
        command = validateCommand(argv.files as string[], argv as Record<string, unknown>, io);
      },
    )
    .command(
      'estimate <files..>',
      'Estimate tokens and cost of job files, leaving out jobs already done in the output folder; sends nothing',
      (y) => y.positional('files', { type: 'string', array: true, description: 'Job files (.json, .jsonl, .csv)' }).options(ESTIMATE_FLAGS),
      (argv) => {
        command = estimateCommand(argv as Record<string, unknown>, io);
      },
    )
    .command(
      'report <folders..>',
      'Summarize usage and cost from the journals of output folders; sends nothing',
      (y) => y.positional('folders', { type: 'string', array: true, description: 'Output folders of runs' }).options(REPORT_FLAGS),
      (argv) => {
        command = reportCommand(argv as Record<string, unknown>, io);
      },
    )
    .command(
      'serve',
      'Start the offline OpenAI-compatible server and print its base URL',
      (y) => y.options(SERVE_FLAGS),
      (argv) => {
        command = serveCommand(argv as Record<string, unknown>, io);
      },
    )
    .demandCommand(1, 'Name a command: run, validate, estimate, report or serve')
    .strict()
    .exitProcess(false)
    .help()
    .version()
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .fail((message, error) => {
      throw error ?? usage(message);
    });

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

