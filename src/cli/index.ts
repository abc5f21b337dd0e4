#!/usr/bin/env node
import { setFlagsFromString } from 'node:v8';
import dotenv from 'dotenv';
import { createRedactor } from '../common/redact.js';
import { bugReport, EXIT } from './exit.js';
import { runMain } from './main.js';
import { formatSeconds } from './words.js';

// A .env file in the working directory fills variables the environment does not set.
dotenv.config({ quiet: true });

// The only place that touches the process: signals, streams and the exit status.
const stop = new AbortController();
const abort = new AbortController();
let graceMs = 30_000;
let runStarted = false;
let signals = 0;

function onSignal(signal: NodeJS.Signals): void {
  signals++;
  // Before a run sends anything (validation, estimate, report, serve) there is nothing to wait for.
  if (!runStarted) {
    process.stderr.write(`\n${signal}: stopped.\n`);
    process.exit(EXIT.interrupted);
  }
  if (signals === 1) {
    process.stderr.write(`\n${signal}: finishing requests in flight (up to ${formatSeconds(graceMs / 1000)}); press Ctrl-C again to abandon them.\n`);
    stop.abort();
    setTimeout(() => abort.abort(), graceMs).unref();
  } else {
    abort.abort();
  }
}
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
process.on('unhandledRejection', (reason) => {
  process.stderr.write(bugReport(reason, createRedactor([process.env.OPENAI_API_KEY])));
  process.exit(EXIT.bug);
});

const code = await runMain(process.argv.slice(2), {
  env: process.env,
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  isTTY: Boolean(process.stderr.isTTY),
  // Node updates it when the terminal is resized.
  columns: () => process.stderr.columns,
  // Touched only when a job file is `-`: opening process.stdin for nothing can hold a pipe or a terminal.
  stdin: { [Symbol.asyncIterator]: () => process.stdin[Symbol.asyncIterator]() },
  stopSignal: stop.signal,
  abortSignal: abort.signal,
  onRunStart: (ms) => {
    graceMs = ms;
    runStarted = true;
  },
  // A long run allocates fast, and V8 then lets the old generation grow to up to four times what is live before
  // collecting it: a 1,000,000-job run peaked at 377 MB with about 40 MB live. A fixed growth factor of 2 (not a
  // limit: the heap still grows as far as the work needs) saves about 80 MB for a few percent of CPU, a good trade
  // for job files too large to keep in memory and a needless one for the others.
  onLargeJobs: () => setFlagsFromString('--heap-growing-percent=100'),
});
process.exitCode = code;
// Let stdout drain, then leave even if a stray socket would keep the loop alive.
setImmediate(() => process.exit(code));
