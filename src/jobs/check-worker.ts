import { parentPort, workerData } from 'node:worker_threads';
import type { Problem } from '../common/types.js';
import { fingerprintBytes } from './fingerprint.js';
import { KEY_BYTES } from './digests.js';
import { cachedLoader, readLocalImage } from './images.js';
import { toJob } from './to-job.js';
import { RANGE_FIRST_LINE, NOT_A_JOB, INVALID_JOB, type CheckedBatch, type RangeMessage, type RangeTask } from './parallel-check.js';
import { readRecords } from './read.js';
import { JOB_KINDS } from './job-fields.js';

/*
 * A worker thread of `parallel-check.ts`: reads and normalizes the job records of one byte range of a `.jsonl` file
 * and posts, in line order and a batch at a time, what the thread that started it needs to finish the validation:
 * each record's claimed or content id, kind, model and request fingerprint, or its problems.
 */

/** Records a batch holds: a few hundred kilobytes of messages. */
const BATCH_RECORDS = 4096;

const task = workerData as RangeTask;
const port = parentPort!;
let newlines = 0;
let localImages = false;
const loadImage = cachedLoader(async (path: string) => {
  localImages = true;
  return readLocalImage(path);
});

class BatchBuilder {
  size = 0;
  kinds = new Uint8Array(BATCH_RECORDS);
  lines = new Int32Array(BATCH_RECORDS);
  fromContent = new Uint8Array(BATCH_RECORDS);
  keys = new Uint8Array(BATCH_RECORDS * KEY_BYTES);
  idText = '';
  idEnds = new Uint32Array(BATCH_RECORDS);
  hasId = new Uint8Array(BATCH_RECORDS);
  models = new Uint16Array(BATCH_RECORDS);
  modelNames: string[] = [];
  private readonly modelNumbers = new Map<string, number>();
  extras: CheckedBatch['extras'] = [];

  add(kind: number, line: number, id: string | undefined, model = ''): number {
    const at = this.size++;
    this.kinds[at] = kind;
    this.lines[at] = line - RANGE_FIRST_LINE;
    if (id !== undefined) {
      this.idText += id;
      this.hasId[at] = 1;
    }
    this.idEnds[at] = this.idText.length;
    let number = this.modelNumbers.get(model);
    if (number === undefined) {
      number = this.modelNames.push(model) - 1;
      this.modelNumbers.set(model, number);
    }
    this.models[at] = number;
    return at;
  }

  post(): void {
    const batch: CheckedBatch = {
      size: this.size,
      kinds: this.kinds,
      lines: this.lines,
      fromContent: this.fromContent,
      keys: this.keys,
      idText: this.idText,
      idEnds: this.idEnds,
      hasId: this.hasId,
      models: this.models,
      modelNames: this.modelNames,
      extras: this.extras,
    };
    const buffers = [this.kinds, this.lines, this.fromContent, this.keys, this.idEnds, this.hasId, this.models].map((array) => array.buffer);
    port.postMessage({ type: 'batch', batch } satisfies RangeMessage, buffers);
  }
}

let batch = new BatchBuilder();
const relative = (problems: readonly Problem[]): Problem[] =>
  problems.map((problem) => (problem.line === 0 ? problem : { ...problem, line: problem.line - RANGE_FIRST_LINE }));

const records = readRecords(task.path, {
  from: { byte: task.start, line: RANGE_FIRST_LINE, index: 1 },
  to: task.end,
  name: task.name,
  onBytes: (chunk) => {
    for (let at = chunk.indexOf(0x0a); at >= 0; at = chunk.indexOf(0x0a, at + 1)) newlines++;
  },
});
for await (const record of records) {
  if (record.type === 'problem') {
    const at = batch.add(NOT_A_JOB, record.problem.line || RANGE_FIRST_LINE, undefined);
    batch.extras.push({ at, problems: relative([record.problem]) });
  } else if (record.type === 'job') {
    let normalized = toJob(record, { cli: task.defaults, fileDefaults: {}, loadImage });
    if (normalized instanceof Promise) normalized = await normalized;
    if ('job' in normalized) {
      const { job } = normalized;
      const at = batch.add(JOB_KINDS.indexOf(job.kind), record.source.line, job.id, job.model);
      if (normalized.idFromContent) batch.fromContent[at] = 1;
      batch.keys.set(fingerprintBytes(job).subarray(0, KEY_BYTES), at * KEY_BYTES);
      if (job.output !== undefined) batch.extras.push({ at, output: job.output, n: typeof job.body['n'] === 'number' ? job.body['n'] : 1 });
    } else {
      const at = batch.add(INVALID_JOB, record.source.line, normalized.id);
      batch.extras.push({ at, problems: relative(normalized.problems) });
    }
  } else {
    // A `.jsonl` reader yields jobs and problems only; nothing is skipped in a validation.
    throw new Error(`unexpected ${record.type} record in ${task.name}`);
  }
  if (batch.size === BATCH_RECORDS) {
    batch.post();
    batch = new BatchBuilder();
  }
}
if (batch.size > 0) batch.post();
port.postMessage({ type: 'end', newlines, localImages } satisfies RangeMessage);
