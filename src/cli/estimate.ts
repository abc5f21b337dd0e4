import { join } from 'node:path';
import { estimateJob, OUTPUT_DEFAULTS, type EstimateNote, type EstimateOptions } from '../cost/estimate.js';
import { EstimateSummary } from '../cost/estimate-summary.js';
import { fingerprint } from '../jobs/fingerprint.js';
import { JOURNAL_FILE } from '../output/journal.js';
import { fingerprintKey, indexJournal } from '../output/journal-index.js';
import { EXIT } from './exit.js';
import type { CliIO } from './io.js';
import { loadOrExplain } from './load-jobs.js';
import { loadPrices } from './load-prices.js';
import { defaultOutDir, RUN_FLAGS, usage } from './options.js';
import { formatTable, writeCsvFile } from './table.js';

/** The flags of `nightshift estimate`: `run`'s that shape the requests, and the estimate's own. */
export const ESTIMATE_FLAGS = {
  out: {
    type: 'string',
    description: "A run's output folder: jobs already done there are left out. Default: run's, out/<first job file name>",
  },
  model: RUN_FLAGS.model,
  system: RUN_FLAGS.system,
  prices: RUN_FLAGS.prices,
  csv: { type: 'string', description: 'Also write the table to this CSV file' },
  'expected-output': {
    type: 'number',
    description: `Expected output tokens per chat or vision job, capped by its max_completion_tokens (default ${OUTPUT_DEFAULTS.expected}; ${OUTPUT_DEFAULTS.expectedReasoning} for reasoning models)`,
  },
} as const;

/** `nightshift estimate` flags after checking. */
export interface EstimateFlags {
  files: string[];
  outDir: string;
  model?: string;
  system?: string;
  prices?: string;
  csv?: string;
  expectedOutputTokens?: number;
}

/** Checks `estimate`'s flags eagerly, naming the bad value, before any file is read. */
export function resolveEstimateFlags(argv: Record<string, unknown>): EstimateFlags {
  const files = (argv.files as unknown[] | undefined)?.map(String) ?? [];
  if (files.length === 0) throw usage('Expected at least one job file');
  const flags: EstimateFlags = { files, outDir: typeof argv.out === 'string' && argv.out ? argv.out : defaultOutDir(files) };
  if (typeof argv.model === 'string') flags.model = argv.model;
  if (typeof argv.system === 'string') flags.system = argv.system;
  if (typeof argv.prices === 'string') flags.prices = argv.prices;
  if (typeof argv.csv === 'string') flags.csv = argv.csv;
  const expected = argv['expected-output'];
  if (expected !== undefined) {
    if (typeof expected !== 'number' || !Number.isInteger(expected) || expected < 0) {
      throw usage(`Expected \`--expected-output\` to be a whole number >= 0, got \`${String(expected)}\``);
    }
    flags.expectedOutputTokens = expected;
  }
  return flags;
}

/**
 * `nightshift estimate`: what the job files would cost, sending nothing. Jobs already done in the output folder (same
 * request, finished ok) are left out, so the estimate of a half-finished run is what finishing it would cost.
 */
export async function estimateCommand(argv: Record<string, unknown>, io: CliIO): Promise<number> {
  const flags = resolveEstimateFlags(argv);
  const defaults = { ...(flags.model ? { model: flags.model } : {}), ...(flags.system ? { system: flags.system } : {}) };
  const { jobs } = await loadOrExplain(flags.files, defaults, io);
  const prices = await loadPrices(flags.prices);
  const journal = await indexJournal(join(flags.outDir, JOURNAL_FILE));
  for (const warning of journal.warnings) io.stderr(`warning: ${warning}\n`);

  const options: EstimateOptions = flags.expectedOutputTokens === undefined ? {} : { expectedOutputTokens: flags.expectedOutputTokens };
  const summary = new EstimateSummary();
  let done = 0;
  for await (const job of jobs.open()) {
    if (journal.current(job.id, fingerprintKey(fingerprint(job)))?.state === 'done') done++;
    else summary.add(estimateJob(job, prices, options));
  }

  const table = summary.table();
  io.stdout(formatTable(table));
  if (done > 0) io.stdout(`${done} job${done === 1 ? '' : 's'} already done in ${flags.outDir}, left out.\n`);
  for (const [note, models] of summary.notes()) io.stderr(`note: ${NOTES[note]} (${models.join(', ')})\n`);
  const missing = summary.missing();
  if (missing.length > 0) {
    io.stderr(`warning: no price for ${missing.join(', ')}; their cost is left empty and the TOTAL is incomplete (add prices with --prices FILE)\n`);
  }
  if (flags.csv) await writeCsvFile(flags.csv, table);
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
