import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { systemClock } from '../common/clock.js';
import { NightshiftError } from '../common/errors.js';
import { createRedactor } from '../common/redact.js';
import { BatchApi, BatchApiError, type Batch } from '../batch/api.js';
import { isOpen, Ledger, type PartState } from '../batch/ledger.js';
import { ENDED, viewOf, type BatchView } from '../batch/view.js';
import { JOURNAL_FILE, readJournalRecords } from '../output/journal.js';
import { apiClient } from './client.js';
import { resolveCommand, type Command, type CommandSpec } from './command.js';
import { DEFAULT_TIMEOUT_SECONDS } from './flags.js';
import { EXIT } from './exit.js';
import type { CliIO } from './io.js';
import { formatTable, printJson } from './table.js';

const STATUS = {
  usage: 'status <folders..>',
  description: "Show an output folder's batches (id, model, status, counts, created, expires) and where its jobs stand",
  positional: { name: 'folders', description: 'Output folders of run --batch', missing: 'Expected the output folder of a run' },
  flags: ['quiet', 'json'],
} as const satisfies CommandSpec;

const CANCEL = {
  usage: 'cancel <folders..>',
  description: "Cancel an output folder's running batches; what they finished is still collected by the next run --batch",
  positional: { name: 'folders', description: 'Output folders of run --batch', missing: 'Expected the output folder of a run' },
  flags: ['quiet', 'json'],
} as const satisfies CommandSpec;

/** `nightshift status FOLDER`: the folder's batches as the API has them now (as the ledger has them without a key), and its jobs. */
export const statusCommand: Command = {
  ...STATUS,
  async run(argv, io) {
    const { args, flags } = resolveCommand(STATUS, argv);
    const folders = [];
    for (const folder of args) folders.push({ folder, ...(await folderStatus(folder, io)) });
    if (flags.json) {
      printJson(io.stdout, { folders });
      return EXIT.ok;
    }
    if (flags.quiet) return EXIT.ok;
    for (const [index, status] of folders.entries()) {
      if (folders.length > 1) io.stdout(`${index > 0 ? '\n' : ''}${status.folder}:\n`);
      printStatus(status, io);
    }
    return EXIT.ok;
  },
};

/** A folder's batches (as the API has them now when a key is set, else as last seen) and its jobs. */
interface FolderStatus {
  batches: BatchView[];
  /** The statuses are the ledger's, not the API's: no key was set. */
  lastSeen: boolean;
  jobs: { done: number; incomplete: number; failed: number; inBatch: number; waiting: number };
}

async function folderStatus(folder: string, io: CliIO): Promise<FolderStatus> {
  const ledger = await openLedger(folder);
  const api = io.env.OPENAI_API_KEY ? batchApi(io) : undefined;
  const batches: BatchView[] = [];
  for (const part of ledger.parts()) {
    if (part.stage === 'abandoned') continue;
    const batch = api && part.batchId && isOpen(part) ? await retrieve(api, part, io) : undefined;
    batches.push(viewOf(part, batch));
  }
  const requestsOf = (stages: readonly string[]): number => ledger.parts().filter((part) => stages.includes(part.stage)).reduce((sum, part) => sum + part.requests, 0);
  const states = await jobStates(folder, io);
  return {
    batches,
    lastSeen: !api && ledger.parts().some(isOpen),
    jobs: { ...states, inBatch: requestsOf(['intended', 'uploaded', 'submitted']), waiting: requestsOf(['refused']) },
  };
}

function printStatus({ folder, batches, lastSeen, jobs }: FolderStatus & { folder: string }, io: CliIO): void {
  io.stdout(batches.length > 0 ? batchTable(batches) : `${folder} has no batches.\n`);
  if (lastSeen) io.stdout('(statuses as last seen: set OPENAI_API_KEY to ask the API)\n');
  io.stdout(
    formatTable([
      ['jobs', 'count'],
      ['done', jobs.done],
      ['incomplete', jobs.incomplete],
      ['failed', jobs.failed],
      ['in a batch', jobs.inBatch],
      ['waiting to be submitted', jobs.waiting],
    ]),
  );
}

/** `nightshift cancel FOLDER`: asks the API to cancel every batch of the folder that has not ended. */
export const cancelCommand: Command = {
  ...CANCEL,
  async run(argv, io) {
    const { args, flags } = resolveCommand(CANCEL, argv);
    const say = (text: string): void => {
      if (!flags.quiet && !flags.json) io.stdout(text);
    };
    const cancelledIds: string[] = [];
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
      cancelledIds.push(part.batchId);
      say(`cancelling ${part.batchId} (${part.model}, ${part.requests} requests)\n`);
    }
    if (flags.json) printJson(io.stdout, { cancelled: cancelledIds });
    say(
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

/** The batches of a folder as a table: id, model, status, counts, created, expires. */
export function batchTable(batches: readonly BatchView[]): string {
  const time = (seconds: number | undefined): string => (seconds === undefined ? '' : new Date(seconds * 1000).toISOString().slice(0, 16).replace('T', ' '));
  return formatTable([
    ['batch', 'model', 'status', 'requests', 'completed', 'failed', 'created', 'expires'],
    ...batches.map((batch) => [batch.batchId ?? `(part ${batch.part})`, batch.model, batch.status, batch.requests, batch.completed, batch.failed, time(batch.createdAt), time(batch.expiresAt)]),
  ]);
}
