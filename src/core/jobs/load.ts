import type { Job, Problem } from '../types.js';
import { checkHeader } from './csv-fields.js';
import { parseFileDefaults, type CliDefaults, type FileDefaults } from './defaults.js';
import { cachedLoader, readLocalImage } from './images.js';
import { toJob } from './normalize.js';
import { toProblem } from './problems.js';
import { readRecords } from './read.js';
import { createUniquenessCheck } from './unique.js';

/** How to load job files. */
export interface LoadOptions {
  /**
   * Command-line defaults (`--model`, `--system`), used when neither the job nor its file's `defaults`
   * sets the field. `model` reaches image jobs only when it names an image model.
   */
  defaults?: CliDefaults;
}

/** The valid jobs of all files, in file order, and every problem found. Run the jobs only when there is no problem. */
export interface LoadResult {
  jobs: Job[];
  problems: Problem[];
}

/**
 * Reads, validates and normalizes job files (`.json`, `.jsonl`, `.csv`), record by record, and reports
 * every problem of every file at once, including ids used twice and image files written twice.
 */
export async function loadJobs(files: readonly string[], options: LoadOptions = {}): Promise<LoadResult> {
  const result: LoadResult = { jobs: [], problems: [] };
  const unique = createUniquenessCheck();
  const loadImage = cachedLoader(readLocalImage);
  const cli = options.defaults ?? {};

  for (const file of files) {
    let fileDefaults: FileDefaults = {};
    for await (const record of readRecords(file)) {
      switch (record.type) {
        case 'problem':
          result.problems.push(record.problem);
          break;
        case 'defaults': {
          const parsed = parseFileDefaults(record.value);
          fileDefaults = parsed.defaults;
          result.problems.push(...parsed.problems.map((detail) => toProblem({ source: record.source }, detail)));
          break;
        }
        case 'header':
          result.problems.push(...checkHeader(record.columns).map((detail) => toProblem({ source: record.source, csv: true }, detail)));
          break;
        case 'job':
        case 'row': {
          const normalized = await toJob(record, { cli, fileDefaults, loadImage });
          const id = 'job' in normalized ? normalized.job.id : normalized.id;
          const taken = id === undefined ? [] : unique.id(id, record.source);
          // A job with a taken id would also clash on its default file names: one problem is enough.
          if ('job' in normalized && taken.length === 0) taken.push(...unique.files(normalized.job));
          if ('problems' in normalized) result.problems.push(...normalized.problems);
          else if (taken.length === 0) result.jobs.push(normalized.job);
          result.problems.push(...taken.map((detail) => toProblem({ source: record.source, jobId: id, csv: record.type === 'row' }, detail)));
          break;
        }
      }
    }
  }
  return result;
}
