import type { Batch } from './api.js';
import type { PartState } from './ledger.js';

/** Statuses after which a batch changes no more: its files are final. */
export const ENDED = new Set(['completed', 'failed', 'expired', 'cancelled']);

/** How one batch stands, for the progress display and `status`. */
export interface BatchView {
  part: string;
  batchId?: string;
  model: string;
  endpoint: string;
  requests: number;
  status: string;
  completed: number;
  failed: number;
  createdAt?: number;
  expiresAt?: number;
}

export type BatchEvent =
  | { type: 'batch-submitted'; batch: BatchView }
  | { type: 'batch-status'; batch: BatchView }
  | { type: 'batch-collected'; batch: BatchView; done: number; failed: number; again: number }
  | { type: 'batch-waiting'; part: string; model: string; reason: string };

/** A part and its batch as last seen, for display. */
export function viewOf(part: PartState, batch?: Batch): BatchView {
  const counts = batch?.request_counts;
  return {
    part: part.part,
    ...(batch?.id ?? part.batchId ? { batchId: batch?.id ?? part.batchId } : {}),
    model: part.model,
    endpoint: part.endpoint,
    requests: part.requests,
    status: batch?.status ?? (part.stage === 'collected' ? (part.status ?? 'collected') : part.stage),
    completed: counts?.completed ?? part.completed ?? 0,
    failed: counts?.failed ?? part.failed ?? 0,
    ...((batch?.created_at ?? part.batchCreatedAt) ? { createdAt: batch?.created_at ?? part.batchCreatedAt } : {}),
    ...((batch?.expires_at ?? part.expiresAt) ? { expiresAt: batch?.expires_at ?? part.expiresAt } : {}),
  };
}
