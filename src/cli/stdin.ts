import { createWriteStream } from 'node:fs';
import { mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { NightshiftError } from '../common/errors.js';
import type { CliIO } from './io.js';

/** The job file argument that stands for standard input. */
export const STDIN_ARG = '-';
/**
 * What `-` becomes before yargs parses argv, and turns back into in `resolveCommand`: yargs drops a lone `-` from a
 * command's positional arguments. No argument of a real process can hold a NUL character, so none is taken for it.
 */
export const STDIN_PLACEHOLDER = '\u0000stdin';

/** How standard input is named in problems, results and the journal; its jobs' default ids are `stdin-<n>`. */
export const STDIN_NAME = '<stdin>';

/** The job file formats, named as their extensions. */
export const JOB_FORMATS = ['json', 'jsonl', 'csv'] as const;
/** One of {@link JOB_FORMATS}. */
export type JobFormat = (typeof JOB_FORMATS)[number];

/** The job files of a command, standard input saved to a file so that a run can read it as often as it needs. */
export interface JobFiles {
  /** Paths to read, in the order given. */
  files: string[];
  /** How to name the files that are not shown by their path. */
  names: ReadonlyMap<string, string>;
  /** Removes the saved standard input, once the command is done with it. */
  close(): Promise<void>;
}

// Not command.ts's `usageError`: flags.ts takes its names from here, and command.ts imports flags.ts.
const usageError = (message: string): NightshiftError => new NightshiftError('E_USAGE', message);

/** What the sniffer reads of standard input at most before it decides: a first line longer than this is a JSON document. */
const SNIFF_BYTES = 1024 * 1024;

/**
 * The job files `args` name, `-` read from standard input into a temporary file as it arrives (memory stays flat
 * however much is piped in), in the format `format` says or that its first bytes show.
 */
export async function openJobFiles(args: readonly string[], format: JobFormat | undefined, io: Pick<CliIO, 'stdin'>): Promise<JobFiles> {
  const dashes = args.filter((arg) => arg === STDIN_ARG).length;
  if (dashes === 0) {
    if (format !== undefined) throw usageError('--format is for standard input (-): a job file\'s format is told by its extension (.json, .jsonl, .csv)');
    return { files: [...args], names: new Map(), close: async () => {} };
  }
  if (dashes > 1) throw usageError('Standard input (-) can be read once: give - once');
  if (io.stdin === undefined) throw usageError('Standard input (-) cannot be read here');
  const dir = await mkdtemp(join(tmpdir(), 'nightshift-stdin-'));
  const close = () => rm(dir, { recursive: true, force: true });
  try {
    const raw = join(dir, 'stdin');
    let head = '';
    async function* sniffing(chunks: AsyncIterable<Buffer | string>): AsyncGenerator<Buffer | string> {
      for await (const chunk of chunks) {
        if (head.length < SNIFF_BYTES) head += chunk.toString();
        yield chunk;
      }
    }
    await pipeline(io.stdin, sniffing, createWriteStream(raw));
    const path = join(dir, `stdin.${format ?? sniffFormat(head)}`);
    await rename(raw, path);
    return { files: args.map((arg) => (arg === STDIN_ARG ? path : arg)), names: new Map([[path, STDIN_NAME]]), close };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * The format of job text from its first bytes: `[` starts a JSON document; a first line that is a whole JSON value
 * starts JSONL; any other `{` starts a JSON document written over several lines; anything else is CSV (a header of
 * quoted names, `"id","prompt"`, included).
 */
export function sniffFormat(head: string): JobFormat {
  const text = head.replace(/^\uFEFF/, '').trimStart();
  if (text.startsWith('[')) return 'json';
  if (!text.startsWith('{') && !text.startsWith('"')) return text === '' ? 'jsonl' : 'csv';
  const end = text.indexOf('\n');
  const firstLine = end === -1 ? text : text.slice(0, end);
  try {
    JSON.parse(firstLine);
    return 'jsonl';
  } catch (error) {
    // Not a whole value on its own line: an object that goes on below, or a CSV row of quoted cells.
    if (!(error instanceof SyntaxError)) throw error;
    return text.startsWith('{') ? 'json' : 'csv';
  }
}
