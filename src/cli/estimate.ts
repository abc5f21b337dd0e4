import { estimateJob, OUTPUT_DEFAULTS, type EstimateNote, type EstimateOptions } from '../cost/estimate.js';
import { EstimateSummary } from '../cost/estimate-summary.js';
import type { CliDefaults } from '../jobs/defaults.js';
import { countPlan, jobsToSend, keptMessage, planFromJournal, requestOf } from '../run/plan.js';
import { configuredOrigin } from './client.js';
import { resolveCommand, type Command, type CommandSpec } from './command.js';
import { EXIT } from './exit.js';
import { defaultOutDir } from './flags.js';
import type { CliIO } from './io.js';
import { jobDefaults, loadOrExplain } from './load-jobs.js';
import { loadPrices } from './load-prices.js';
import { openJobFiles, type JobFormat } from './stdin.js';
import { formatTable, printJson, tableObjects, writeCsvFile } from './table.js';
import { count } from './words.js';

const SPEC = {
  usage: 'estimate <files..>',
  description: 'Estimate tokens and cost of job files, leaving out jobs already done in the output folder; sends nothing',
  positional: { name: 'files', description: 'Job files (.json, .jsonl, .csv)', missing: 'Expected at least one job file' },
  // `run`'s flags that shape the requests, and the estimate's own.
  flags: ['estimate-out', 'format', 'model', 'system', 'temperature', 'max-completion-tokens', 'service-tier', 'prices', 'csv', 'expected-output', 'quiet', 'json'],
} as const satisfies CommandSpec;

/** `nightshift estimate` flags after checking. */
export interface EstimateFlags {
  files: string[];
  /** The format of standard input (`-`), when not sniffed. */
  format?: JobFormat;
  /** The run's output folder whose finished jobs are left out. */
  outDir: string;
  defaults: CliDefaults;
  prices?: string;
  csv?: string;
  expectedOutputTokens?: number;
  quiet: boolean;
  json: boolean;
}

/** Checks `estimate`'s flags eagerly, naming the bad value, before any file is read. */
export function resolveEstimateFlags(argv: Record<string, unknown>): EstimateFlags {
  const { args: files, flags } = resolveCommand(SPEC, argv);
  return {
    files,
    ...(flags.format !== undefined ? { format: flags.format } : {}),
    outDir: flags.out ?? defaultOutDir(files),
    defaults: jobDefaults(flags),
    ...(flags.prices !== undefined ? { prices: flags.prices } : {}),
    ...(flags.csv !== undefined ? { csv: flags.csv } : {}),
    ...(flags['expected-output'] !== undefined ? { expectedOutputTokens: flags['expected-output'] } : {}),
    quiet: flags.quiet,
    json: flags.json,
  };
}

/** `nightshift estimate`: see {@link estimateJobs}. */
export const estimateCommand: Command = { ...SPEC, run: (argv, io) => estimateJobs(resolveEstimateFlags(argv), io) };

/**
 * `nightshift estimate`: what the job files would cost, sending nothing. It plans the run as `run` does (the same
 * planning, `run/plan.ts`), so it prices exactly what the same `run` would send: a job already done in the output
 * folder with its images intact is left out, one whose image was deleted is priced for the images to make again.
 */
async function estimateJobs(flags: EstimateFlags, io: CliIO): Promise<number> {
  const input = await openJobFiles(flags.files, flags.format, io);
  try {
    return await estimateInput(flags, input.files, input.names, io);
  } finally {
    await input.close();
  }
}

async function estimateInput(flags: EstimateFlags, files: string[], names: ReadonlyMap<string, string>, io: CliIO): Promise<number> {
  const { jobs } = await loadOrExplain(files, flags.defaults, io, { names, json: flags.json });
  const prices = await loadPrices(flags.prices);
  // What finishing the run would cost at the API: answers of the offline server are not done for it.
  const { plan, index } = await planFromJournal(jobs, flags.outDir, { origin: configuredOrigin(io.env) });
  for (const warning of index.warnings) io.stderr(`warning: ${warning}\n`);
  for (const { id, paths } of plan.kept) io.stderr(`warning: ${keptMessage(id, paths)}\n`);

  const options: EstimateOptions = flags.expectedOutputTokens === undefined ? {} : { expectedOutputTokens: flags.expectedOutputTokens };
  const summary = new EstimateSummary();
  for await (const toSend of jobsToSend(jobs, plan)) summary.add(estimateJob(requestOf(toSend), prices, options));
  // An answer cut off is not sent again with the same request either: finishing the run does not pay for it.
  let cutOff = 0;
  for (let position = 0; position < jobs.count; position++) {
    if (index.currentOf(jobs.digests.ids, position, jobs.digests.key(position))?.state === 'incomplete' && plan.reasons[position] === 0) cutOff++;
  }
  const counts = countPlan(plan);
  const done = counts.skipped + counts.moved - cutOff;

  const table = summary.table();
  const missing = summary.missing();
  if (flags.csv) await writeCsvFile(flags.csv, table);
  if (flags.json) {
    const notes = [...summary.notes()].map(([note, models]) => ({ note, models }));
    printJson(io.stdout, { rows: tableObjects(table), alreadyDone: done, incompleteLeftOut: cutOff, notes, unpricedModels: missing });
    return EXIT.ok;
  }
  if (!flags.quiet) {
    io.stdout(formatTable(table));
    if (done > 0) io.stdout(`${count(done, 'job')} already done in ${flags.outDir}, left out.\n`);
    if (cutOff > 0) io.stdout(`${count(cutOff, 'job')} answered but cut off (incomplete) in ${flags.outDir}, left out: a plain rerun does not resend them.\n`);
    for (const [note, models] of summary.notes()) io.stderr(`note: ${NOTES[note]} (${models.join(', ')})\n`);
  }
  if (missing.length > 0) {
    io.stderr(`warning: no price for ${missing.join(', ')}; their cost is left empty and the TOTAL is incomplete (add prices with --prices FILE)\n`);
  }
  return EXIT.ok;
}

/** What each assumption means for the figures, in the words of a note after the table. */
const NOTES: Readonly<Record<EstimateNote, string>> = {
  'default-output-bound': `jobs without max_completion_tokens: worst case assumes at most ${OUTPUT_DEFAULTS.worst.toLocaleString('en-US')} output tokens (${OUTPUT_DEFAULTS.worstReasoning.toLocaleString('en-US')} for reasoning models); set max_completion_tokens to make it a bound`,
  'image-size-assumed': 'images given by http(s) URL: counted as 1024x1024, their worst case at the largest size the model bills',
  'image-options-auto': 'image quality or size left to the model: expected at medium quality and 1024x1024, worst case at high quality and the dearest size',
  'encoding-assumed': 'unknown model: text counted with the o200k_base encoding',
  'vision-rule-assumed': "unknown model: images counted with GPT-4o's rule",
  'content-not-counted': 'audio and file inputs are not counted',
};
