import { createHash } from 'node:crypto';
import type { Job } from './types.js';

/**
 * Identifies the exact request a job sends: endpoint plus body with keys in a canonical order.
 * Local images are inlined in the body as data URLs, so their bytes are covered too. Two jobs with the
 * same fingerprint would be billed for the same thing; a job whose fingerprint changed must be sent again.
 */
export function fingerprint(job: Pick<Job, 'endpoint' | 'body'>): string {
  const hash = createHash('sha256');
  hash.update(job.endpoint);
  hash.update('\n');
  hash.update(canonicalJson(job.body));
  return hash.digest('hex');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
