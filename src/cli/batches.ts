import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { systemClock } from '../common/clock.js';
import { NightshiftError } from '../common/errors.js';
import { createRedactor } from '../common/redact.js';
import { BatchApi, BatchApiError, type Batch } from '../batch/api.js';
import { isOpen, Ledger, type PartState } from '../batch/ledger.js';
import { ENDED, viewOf } from '../batch/run-batch.js';
import { JOURNAL_FILE, readJournalRecords } from '../output/journal.js';
import { batchTable } from './batch.js';
import { apiClient } from './client.js';
import { resolveCommand, type Command, type CommandSpec } from './command.js';
import { DEFAULT_TIMEOUT_SECONDS } from './flags.js';
import { EXIT } from './exit.js';
import type { CliIO } from './io.js';
import { formatTable } from './table.js';

const STATUS = {
  usage: 'status <folders..>',
  description: "Show an output folder's batches (id, model, status, counts, created, expires) and where its jobs stand",
  positional: { name: 'folders', description: 'Output folders of run --batch', missing: 'Expected the output folder of a run' },
  flags: [],
} as const satisfies CommandSpec;

const CANCEL = {
  usage: 'cancel <folders..>',
  description: "Cancel an output folder's running batches; what they finished is still collected by the next run --batch",
  positional: { name: 'folders', description: 'Output folders of run --batch', missing: 'Expected the output folder of a run' },
  flags: [],
} as const satisfies CommandSpec;

/** `nightshift status FOLDER`: the folder's batches as the API has them now (as the ledger has them without a key), and its jobs. */
export const statusCommand: Command = {
  ...STATUS,
  async run(argv, io) {
    const { args } = resolveCommand(STATUS, argv);
    for (const [index, folder] of args.entries()) {
      if (args.length > 1) io.stdout(`${index > 0 ? '\n' : ''}${folder}:\n`);
      await showStatus(folder, io);
    }
    return EXIT.ok;
  },
};

async function showStatus(folder: string, io: CliIO): Promise<void> {
  const ledger = await openLedger(folder);
  const api = io.env.OPENAI_API_KEY ? batchApi(io) : undefined;
  const views = [];
  for (const part of ledger.parts()) {
    if (part.stage === 'abandoned') continue;
    const batch = api && part.batchId && isOpen(part) ? await retrieve(api, part, io) : undefined;
    views.push(viewOf(part, batch));
  }
  if (views.length > 0) io.stdout(batchTable(views));
  else io.stdout(`${folder} has no batches.\n`);
  if (!api && ledger.parts().some(isOpen)) io.stdout('(statuses as last seen: set OPENAI_API_KEY to ask the API)\n');
  const jobs = await jobStates(folder, io);
  const inBatch = ledger.parts().filter((part) => part.stage === 'submitted' || part.stage === 'intended' || part.stage === 'uploaded').reduce((sum, part) => sum + part.requests, 0);
  const waiting = ledger.parts().filter((part) => part.stage === 'refused').reduce((sum, part) => sum + part.requests, 0);
  io.stdout(
    formatTable([
      ['jobs', 'count'],
      ['done', jobs.done],
      ['incomplete', jobs.incomplete],
      ['failed', jobs.failed],
      ['in a batch', inBatch],
      ['waiting to be submitted', waiting],
    ]),
  );
}

/** `nightshift cancel FOLDER`: asks the API to cancel every batch of the folder that has not ended. */
export const cancelCommand: Command = {
  ...CANCEL,
  async run(argv, io) {
    const { args } = resolveCommand(CANCEL, argv);
    const api = batchApi(io);
    let cancelled = 0;
    const parts = [];
    for (const folder of args) parts.push(...(await openLedger(folder)).parts());
    for (const part of parts) {
      if (part.stage !== 'submitted' || !part.batchId) continue;
      const batch = await retrieve(api, part, io);
      if (batch === undefined || ENDED.has(batch.status) || batch.status === 'cancelling') continue;
      try {
        await api.cancel(part.batchId);
      } catch (error) {
        throw apiError(error);
      }
      cancelled++;
      io.stdout(`cancelling ${part.batchId} (${part.model}, ${part.requests} requests)\n`);
    }
    io.stdout(
      cancelled === 0
        ? `No batch of ${args.join(', ')} is running.\n`
        : 'Run the same run --batch command again to collect what they finished; the rest stays pending.\n',
    );
    return EXIT.ok;
  },
};

async function openLedger(folder: string): Promise<Ledger> {
  const exists = await stat(join(folder, JOURNAL_FILE)).then(
    () => true,
    () => false,
  );
  if (!exists) throw new NightshiftError('E_USAGE', `${folder} is not the output folder of a run: it has no ${JOURNAL_FILE}.`, { folder });
  return Ledger.open(folder);
}

function batchApi(io: CliIO): BatchApi {
  const timeoutMs = DEFAULT_TIMEOUT_SECONDS * 1000;
  return new BatchApi({ client: apiClient(io.env, timeoutMs), clock: systemClock, maxAttempts: 5, timeoutMs, redact: createRedactor([io.env.OPENAI_API_KEY]) });
}

async function retrieve(api: BatchApi, part: PartState, io: CliIO): Promise<Batch | undefined> {
  try {
    return await api.retrieve(part.batchId!);
  } catch (error) {
    if (error instanceof BatchApiError && error.error.status === 404) {
      io.stderr(`warning: the API has no batch ${part.batchId} (another key or project submitted it, or an offline server that has stopped)\n`);
      return undefined;
    }
    throw apiError(error);
  }
}

function apiError(error: unknown): unknown {
  if (!(error instanceof BatchApiError)) return error;
  return new NightshiftError('E_CONFIG', `The Batch API failed while ${error.message}`);
}

/** The latest state of each job in the folder's journal. */
async function jobStates(folder: string, io: CliIO): Promise<{ done: number; incomplete: number; failed: number }> {
  const states = new Map<string, string>();
  for await (const record of readJournalRecords(join(folder, JOURNAL_FILE), { onWarning: (warning) => io.stderr(`warning: ${warning}\n`) })) {
    if (record.type === 'job') states.set(record.id, record.state);
  }
  const counts = { done: 0, incomplete: 0, failed: 0 };
  for (const state of states.values()) if (state === 'done' || state === 'incomplete' || state === 'failed') counts[state]++;
  return counts;
}
