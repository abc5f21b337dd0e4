import { IdTable } from '../common/id-table.js';
import type { Job, SourceLocation } from '../common/types.js';
import { expandOutput } from './output-path.js';
import type { ProblemDetail } from './problems.js';

/** Reports ids and image files that an earlier record already took; see `createUniquenessCheck`. */
export interface UniquenessCheck {
  /** Takes `id` for the record at `source`, or reports where it was taken first. */
  id(id: string, source: SourceLocation): ProblemDetail[];
  /** Whether an earlier record took `id`. */
  taken(id: string): boolean;
  /** Takes the image files `job` will write, or reports the first one another job writes. */
  files(job: Pick<Job, 'id' | 'source' | 'output' | 'body'>): ProblemDetail[];
}

const where = (source: SourceLocation): string => `${source.file}:${source.line}`;

/** Lines per file in the packed place of an id: a file index times this, plus the line. */
const LINES = 2 ** 32;

/**
 * Remembers the ids and image files seen so far across all files; the ids go to `ids`, numbered in order. Ids count for invalid records too,
 * so a duplicate is reported in the same run as the other problems, not after they are fixed. Image file
 * names are compared ignoring case: on macOS and Windows `Cat.png` and `cat.png` are the same file.
 */
export function createUniquenessCheck(ids = new IdTable()): UniquenessCheck {
  // Ids are kept as hashes, each with its place as one number (file index and line): a million ids must fit in memory.
  let places = new Float64Array(1024);
  const fileNames: string[] = [];
  const fileNumbers = new Map<string, number>();
  const files = new Map<string, { id: string; source: SourceLocation }>();
  return {
    taken: (id) => ids.indexOf(id) >= 0,
    id(id, source) {
      const known = ids.size;
      const index = ids.add(id);
      if (index < known) {
        const first = places[index]!;
        const place = { file: fileNames[Math.floor(first / LINES)]!, line: first % LINES };
        return [{ field: 'id', message: `duplicate id ${JSON.stringify(id)}: also at ${where(place)}` }];
      }
      let fileNumber = fileNumbers.get(source.file);
      if (fileNumber === undefined) {
        fileNumber = fileNames.push(source.file) - 1;
        fileNumbers.set(source.file, fileNumber);
      }
      if (index >= places.length) {
        const grown = new Float64Array(Math.max(places.length * 2, index + 1));
        grown.set(places);
        places = grown;
      }
      places[index] = fileNumber * LINES + source.line;
      return [];
    },
    files(job) {
      const { output } = job;
      if (output === undefined) return [];
      const n = typeof job.body['n'] === 'number' ? job.body['n'] : 1;
      const names = Array.from({ length: n }, (_, i) => expandOutput(output, job.id, i + 1));
      for (const name of names) {
        const owner = files.get(name.toLowerCase());
        if (owner !== undefined) {
          const message = `image file ${JSON.stringify(name)} is also written by job ${JSON.stringify(owner.id)} at ${where(owner.source)}`;
          return [{ field: 'output', message }];
        }
      }
      for (const name of names) files.set(name.toLowerCase(), { id: job.id, source: job.source });
      return [];
    },
  };
}
