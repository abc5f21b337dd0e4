import { asRecord } from './request-fields.js';

// The API's `Batch` object: its statuses, errors and usage, as `/v1/batches` answers them.

export type Status = 'validating' | 'failed' | 'in_progress' | 'finalizing' | 'completed' | 'expired' | 'cancelling' | 'cancelled';

export interface BatchError {
  code: string;
  message: string;
  param: string | null;
  line: number | null;
}

/** The API's `Batch` object. */
export interface BatchObject {
  id: string;
  object: 'batch';
  endpoint: string;
  model: string | null;
  errors: { object: 'list'; data: BatchError[] } | null;
  input_file_id: string;
  completion_window: '24h';
  status: Status;
  output_file_id: string | null;
  error_file_id: string | null;
  created_at: number;
  in_progress_at: number | null;
  expires_at: number;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  expired_at: number | null;
  cancelling_at: number | null;
  cancelled_at: number | null;
  request_counts: { total: number; completed: number; failed: number };
  usage: {
    input_tokens: number;
    input_tokens_details: { cached_tokens: number };
    output_tokens: number;
    output_tokens_details: { reasoning_tokens: number };
    total_tokens: number;
  };
  metadata: Record<string, string> | null;
}

export const TERMINAL: ReadonlySet<Status> = new Set(['failed', 'completed', 'expired', 'cancelled']);
/** Statuses whose tokens count as enqueued. */
export const ENQUEUED: ReadonlySet<Status> = new Set(['in_progress', 'finalizing', 'cancelling']);

export const seconds = (ms: number): number => Math.floor(ms / 1000);

/** A new batch, `validating`, with nothing counted yet; times in milliseconds on the server's clock. */
export function newBatchObject(
  id: string,
  endpoint: string,
  inputFileId: string,
  createdMs: number,
  expiresMs: number,
  metadata: Record<string, string> | null,
): BatchObject {
  return {
    id,
    object: 'batch',
    endpoint,
    model: null,
    errors: null,
    input_file_id: inputFileId,
    completion_window: '24h',
    status: 'validating',
    output_file_id: null,
    error_file_id: null,
    created_at: seconds(createdMs),
    in_progress_at: null,
    expires_at: seconds(expiresMs),
    finalizing_at: null,
    completed_at: null,
    failed_at: null,
    expired_at: null,
    cancelling_at: null,
    cancelled_at: null,
    request_counts: { total: 0, completed: 0, failed: 0 },
    usage: { input_tokens: 0, input_tokens_details: { cached_tokens: 0 }, output_tokens: 0, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 0 },
    metadata,
  };
}

/** Adds a line's `usage` (chat's or images') to the batch's. */
export function addUsage(total: BatchObject['usage'], body: unknown): void {
  const usage = asRecord(asRecord(body).usage);
  const number = (value: unknown): number => (typeof value === 'number' ? value : 0);
  const input = number(usage.prompt_tokens) + number(usage.input_tokens);
  const output = number(usage.completion_tokens) + number(usage.output_tokens);
  total.input_tokens += input;
  total.input_tokens_details.cached_tokens += number(asRecord(usage.prompt_tokens_details).cached_tokens);
  total.output_tokens += output;
  total.output_tokens_details.reasoning_tokens += number(asRecord(usage.completion_tokens_details).reasoning_tokens);
  total.total_tokens += input + output;
}
