import { hash } from 'node:crypto';
import type { Job } from '../common/types.js';

/**
 * Identifies the exact request a job sends: endpoint plus body with keys in a canonical order.
 * Local images are inlined in the body as data URLs, so their bytes are covered too. Two jobs with the
 * same fingerprint would be billed for the same thing; a job whose fingerprint changed must be sent again.
 */
export function fingerprint(job: Pick<Job, 'endpoint' | 'body'>): string {
  return hash('sha256', requestText(job));
}

/** {@link fingerprint} as its 32 bytes rather than hex. */
export function fingerprintBytes(job: Pick<Job, 'endpoint' | 'body'>): Buffer {
  return hash('sha256', requestText(job), 'buffer');
}

const requestText = (job: Pick<Job, 'endpoint' | 'body'>): string => `${job.endpoint}\n${canonicalJson(job.body)}`;

/** JSON with object keys sorted (by UTF-16 code units) and undefined properties left out. Runs once or twice per job, so it builds one string and no arrays. */
function canonicalJson(value: unknown): string {
  if (typeof value !== 'object' || value === null) return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) {
    let out = '[';
    for (let index = 0; index < value.length; index++) out += (index > 0 ? ',' : '') + canonicalJson(value[index]);
    return `${out}]`;
  }
  const record = value as Record<string, unknown>;
  let out = '{';
  for (const key of Object.keys(record).sort()) {
    const item = record[key];
    if (item === undefined) continue;
    out += `${out.length > 1 ? ',' : ''}${JSON.stringify(key)}:${canonicalJson(item)}`;
  }
  return `${out}}`;
}
