import { readJournalRecords } from '../output/journal.js';
import { addUsd, currentCost, journalFiles, MONEY_LABELS, outputFoldersUnder, repriced } from '../cost/money.js';
import type { PriceBook } from '../cost/prices.js';
import { addToReport, createReport, isOfflineAnswer, type ReportKey } from '../cost/report.js';
import { formatUsd } from '../output/usage-table.js';
import { resolveCommand, usageError, type Command, type CommandSpec } from './command.js';
import { EXIT } from './exit.js';
import type { CliIO } from './io.js';
import { loadPrices } from './load-prices.js';
import { formatTable, printJson, tableObjects, writeCsvFile } from './table.js';

const SPEC = {
  usage: 'report <folders..>',
  description: 'Summarize usage and cost from the journals of output folders; sends nothing',
  positional: { name: 'folders', description: 'Output folders of runs, or folders that hold them', missing: 'Expected at least one output folder' },
  flags: ['by', 'csv', 'prices', 'html', 'quiet', 'json'],
} as const satisfies CommandSpec;

/**
 * `nightshift report`: usage and cost per group, rebuilt from the journals of output folders. Reads files only;
 * needs no key and sends nothing.
 */
export const reportCommand: Command = {
  ...SPEC,
  async run(argv: Record<string, unknown>, io: CliIO): Promise<number> {
    const { args, flags } = resolveCommand(SPEC, argv);
    const folders = await outputFolders(args);
    // Prices given: every request is priced again with them, rather than at the prices it was journaled with.
    const prices = flags.prices === undefined ? undefined : await loadPrices(flags.prices);
    return reportOn(folders, { ...flags, prices }, io);
  },
};

interface ReportFlags {
  by: ReportKey;
  csv: string | undefined;
  prices: PriceBook | undefined;
  /** Where to write the HTML page. */
  html: string | undefined;
  quiet: boolean;
  json: boolean;
}

async function reportOn(folders: string[], { by, csv, prices, html, quiet, json }: ReportFlags, io: CliIO): Promise<number> {
  const report = createReport(by);
  // Answers of the offline server were never billed: they get a table of their own, outside the TOTAL and --csv.
  const offline = createReport(by);
  let offlineAnswers = 0;
  let skipped = 0;
  for (const folder of folders) {
    for (const path of await journalFiles(folder)) {
      const records = readJournalRecords(path, {
        onWarning: (warning) => {
          skipped++;
          io.stderr(`warning: ${warning}\n`);
        },
      });
      for await (const read of records) {
        const record = prices && read.type === 'job' ? repriced(read, prices) : read;
        if (isOfflineAnswer(record)) {
          offlineAnswers++;
          addToReport(offline, record);
        } else addToReport(report, record);
      }
    }
  }

  const table = report.table();
  if (!quiet && !json) printTables(table, offlineAnswers > 0 ? offline.table() : undefined, { by, csv }, io);
  if (skipped > 0) {
    const lines = skipped === 1 ? '1 journal line is not a valid record (see above); it is' : `${skipped} journal lines are not valid records (see above); they are`;
    io.stderr(`warning: ${lines} left out of the report\n`);
  }
  const unpriced = report.unpricedModels();
  if (unpriced.length > 0) {
    io.stderr(`warning: no price was known for ${unpriced.join(', ')} when they ran; their cost is left empty and the TOTAL is incomplete\n`);
  }
  if (csv) await writeCsvFile(csv, table);
  // The other money figure of a folder: what its current results cost, as its usage.csv says (see cost/money.ts).
  const current = { usd: 0, offlineUsd: 0 };
  for (const folder of folders) {
    const { usd, offlineUsd } = await currentCost(folder, prices);
    current.usd = addUsd(current.usd, usd);
    current.offlineUsd = addUsd(current.offlineUsd, offlineUsd);
  }
  if (html) {
    const { writeReportPage } = await import('../page/write-page.js');
    await writeReportPage(folders, html, { ...(prices ? { prices } : {}), now: io.now ?? Date.now });
  }
  if (json) {
    const offlineRows = offlineAnswers > 0 ? tableObjects(offline.table()) : [];
    const money = { paidUsd: report.total.costUsd, currentUsd: current.usd };
    printJson(io.stdout, { by, rows: tableObjects(table), offlineRows, money, skippedLines: skipped, unpricedModels: unpriced, ...(html ? { html } : {}) });
    return EXIT.ok;
  }
  if (quiet) return EXIT.ok;
  io.stdout(`\n${MONEY_LABELS.paidUsd} $${formatUsd(report.total.costUsd)} (the TOTAL above); ${MONEY_LABELS.currentUsd} $${formatUsd(current.usd)} (usage.csv)\n`);
  if (offlineAnswers > 0) {
    io.stdout(`offline server, not billed: ${MONEY_LABELS.paidUsd} $${formatUsd(offline.total.costUsd)}; ${MONEY_LABELS.currentUsd} $${formatUsd(current.offlineUsd)}\n`);
  }
  if (html) io.stdout(`report: ${html}\n`);
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

/** The output folders named, a folder that holds output folders standing for every one below it; an error when one holds none. */
async function outputFolders(named: readonly string[]): Promise<string[]> {
  const folders: string[] = [];
  for (const folder of named) {
    const found = await outputFoldersUnder(folder);
    if (found.length === 0) throw usageError(`${folder} holds no journal.jsonl, nor does any folder below it: is it a nightshift output folder?`);
    folders.push(...found);
  }
  return folders;
}
