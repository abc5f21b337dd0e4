import type { FileHandle } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { BatchObject } from './batch-object.js';
import type { LineSink } from './batch-output.js';

// A batch as the server runs it, and its input file, held open and read line by line.

/** A batch and what the server keeps of its run. */
export interface BatchRun {
  object: BatchObject;
  /** Times in milliseconds on the server's clock. */
  createdMs: number;
  inProgressAtMs: number;
  cancellingAtMs: number;
  finalizingAtMs: number;
  outputExpiresSeconds: number | null;
  /** The input file, open from creation to the end, so deleting it meanwhile does not break the batch. */
  input: FileHandle | undefined;
  /** The input's lines, read on as the batch answers them. */
  lines: AsyncIterator<string> | undefined;
  lineNumber: number;
  answered: number;
  /** Enqueued tokens, counted at validation. */
  tokens: number;
  /** The injected early end that applies to this batch, decided when it starts. */
  endsEarly: { status: 'expired' | 'cancelled'; afterLines: number } | undefined;
  output: LineSink | undefined;
  errors: LineSink | undefined;
}

export function requireInput(run: BatchRun): FileHandle {
  if (run.input === undefined) throw new Error(`batch ${run.object.id} has no open input file`);
  return run.input;
}

export async function closeInput(run: BatchRun): Promise<void> {
  await run.lines?.return?.();
  run.lines = undefined;
  const { input } = run;
  run.input = undefined;
  await input?.close();
}

/** The lines of the file from its start; the handle stays open for another pass. */
export function readLines(handle: FileHandle): AsyncIterable<string> {
  return createInterface({ input: handle.createReadStream({ start: 0, autoClose: false, encoding: 'utf8' }), crlfDelay: Infinity });
}

/** The next request of the input, read on from where the batch left off. */
export async function nextLine(run: BatchRun): Promise<{ customId: string; number: number; body: unknown } | undefined> {
  for (;;) {
    const next = await run.lines?.next();
    if (next === undefined || next.done === true) return undefined;
    run.lineNumber += 1;
    if (next.value.trim() === '') continue;
    // The line passed validation, so it is a JSON object with a string custom_id and an object body.
    const { custom_id: customId, body } = JSON.parse(next.value) as { custom_id: string; body: unknown };
    return { customId, number: run.lineNumber, body };
  }
}
