/** The three kinds of work nightshift runs. */
export type JobKind = 'chat' | 'vision' | 'image';

/** The OpenAI endpoints a job can target (paths as in the Batch API's `url`). */
export type Endpoint = '/v1/chat/completions' | '/v1/images/generations';

/** Where a job came from, for error messages and the `source` column. */
export interface SourceLocation {
  /** The job file's path as the user gave it. */
  file: string;
  /** 1-based line of the record's first character (CSV: of the row). */
  line: number;
  /** CSV only: the column (header name) a problem is in. */
  column?: string;
}

/**
 * A validated job: everything needed to send it and to account for it.
 * `body` is the exact request body sent to `endpoint`; local images are already inlined as `data:` URLs.
 */
export interface Job {
  id: string;
  kind: JobKind;
  model: string;
  tags: string[];
  source: SourceLocation;
  endpoint: Endpoint;
  body: Record<string, unknown>;
  /** Image jobs: file name pattern under the run's `images/` folder; may contain `{id}` and `{index}`. */
  output?: string;
}

/** One problem found in a job file. Validation returns all of them at once. */
export interface Problem {
  file: string;
  /** 1-based; 0 when the problem concerns the whole file (unreadable, not UTF-8, ...). */
  line: number;
  /** CSV column (header name), when known. */
  column?: string;
  /** The job field concerned, as a dotted path (`messages.0.content`), when known. */
  field?: string;
  /** The job's id, when known. */
  jobId?: string;
  message: string;
}

/**
 * Token usage of one job, normalized across endpoints.
 * Counts are totals: `cached_input_tokens` is part of `input_tokens`, `reasoning_tokens` part of `output_tokens`,
 * and for image models `input_image_tokens`/`output_image_tokens` are the image parts of input and output.
 */
export interface Usage {
  input_tokens: number;
  cached_input_tokens: number;
  output_tokens: number;
  reasoning_tokens: number;
  total_tokens: number;
  input_image_tokens: number;
  cached_input_image_tokens: number;
  output_image_tokens: number;
  /** Images generated. */
  images: number;
}

/** `a` and `b` added up, field by field. */
export function sumUsage(a: Usage, b: Usage): Usage {
  const sum = { ...a };
  for (const key of Object.keys(sum) as (keyof Usage)[]) sum[key] += b[key];
  return sum;
}

export const zeroUsage = (): Usage => ({
  input_tokens: 0,
  cached_input_tokens: 0,
  output_tokens: 0,
  reasoning_tokens: 0,
  total_tokens: 0,
  input_image_tokens: 0,
  cached_input_image_tokens: 0,
  output_image_tokens: 0,
  images: 0,
});
