import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { NightshiftError } from '../common/errors.js';
import { readJournalRecords } from '../output/journal.js';
import { addToReport, createReport, isOfflineAnswer, type ReportKey } from '../cost/report.js';
import { resolveCommand, usageError, type Command, type CommandSpec } from './command.js';
import { EXIT } from './exit.js';
import type { CliIO } from './io.js';
import { formatTable, printJson, tableObjects, writeCsvFile } from './table.js';

const SPEC = {
  usage: 'report <folders..>',
  description: 'Summarize usage and cost from the journals of output folders; sends nothing',
  positional: { name: 'folders', description: 'Output folders of runs', missing: 'Expected at least one output folder' },
  flags: ['by', 'csv', 'quiet', 'json'],
} as const satisfies CommandSpec;

/** `journal.jsonl`, and the `journal-<stamp>.jsonl` files that `--fresh` set aside. */
const JOURNAL_NAME = /^journal(-[^/\\]+)?\.jsonl$/;

/**
 * `nightshift report`: usage and cost per group, rebuilt from the journals of output folders. Reads files only;
 * needs no key and sends nothing.
 */
export const reportCommand: Command = {
  ...SPEC,
  async run(argv: Record<string, unknown>, io: CliIO): Promise<number> {
    const { args: folders, flags } = resolveCommand(SPEC, argv);
    return reportOn(folders, flags, io);
  },
};

async function reportOn(
  folders: string[],
  { by, csv, quiet, json }: { by: ReportKey; csv: string | undefined; quiet: boolean; json: boolean },
  io: CliIO,
): Promise<number> {
  const report = createReport(by);
  // Answers of the offline server were never billed: they get a table of their own, outside the TOTAL and --csv.
  const offline = createReport(by);
  let offlineAnswers = 0;
  let skipped = 0;
  for (const folder of folders) {
    for (const path of await journalsIn(folder)) {
      const records = readJournalRecords(path, {
        onWarning: (warning) => {
          skipped++;
          io.stderr(`warning: ${warning}\n`);
        },
      });
      for await (const record of records) {
        if (isOfflineAnswer(record)) {
          offlineAnswers++;
          addToReport(offline, record);
        } else addToReport(report, record);
      }
    }
  }

  const table = report.table();
  const unpriced = report.unpricedModels();
  if (csv) await writeCsvFile(csv, table);
  if (json) {
    const offlineRows = offlineAnswers > 0 ? tableObjects(offline.table()) : [];
    printJson(io.stdout, { by, rows: tableObjects(table), offlineRows, skippedLines: skipped, unpricedModels: unpriced });
    return EXIT.ok;
  }
  if (!quiet) printTables(table, offlineAnswers > 0 ? offline.table() : undefined, { by, csv }, io);
  if (skipped > 0) {
    const lines = skipped === 1 ? '1 journal line is not a valid record (see above); it is' : `${skipped} journal lines are not valid records (see above); they are`;
    io.stderr(`warning: ${lines} left out of the report\n`);
  }
  if (unpriced.length > 0) {
    io.stderr(`warning: no price was known for ${unpriced.join(', ')} when they ran; their cost is left empty and the TOTAL is incomplete\n`);
  }
  return EXIT.ok;
}

/** The report's tables as text: the billed answers, and the offline server's apart. */
function printTables(table: (string | number)[][], offline: (string | number)[][] | undefined, { by, csv }: { by: ReportKey; csv: string | undefined }, io: CliIO): void {
  io.stdout(formatTable(table));
  if (by === 'tag') io.stdout('A job counts under each of its tags, so the tag rows can add up to more than the TOTAL.\n');
  if (offline) {
    io.stdout(`\nAnswered by the offline server (--offline): not billed, left out of the TOTAL above${csv ? ' and of the CSV' : ''}:\n`);
    io.stdout(formatTable(offline));
  }
}

/** The journal files of an output folder, oldest name first; an error when there are none. */
async function journalsIn(folder: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(folder);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw usageError(`${folder} is not a folder`);
    throw new NightshiftError('E_OUTPUT', `Cannot read ${folder}: ${(error as Error).message}`, {}, { cause: error });
  }
  const journals = names.filter((name) => JOURNAL_NAME.test(name)).sort();
  if (journals.length === 0) throw usageError(`${folder} holds no journal.jsonl: is it a nightshift output folder?`);
  return journals.map((name) => join(folder, name));
}
