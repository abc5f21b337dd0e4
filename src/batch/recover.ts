import { PART_METADATA, type Batch, type BatchApi } from './api.js';
import type { Ledger } from './ledger.js';
import { removePartFiles, uploadName } from './local-parts.js';

/**
 * Parts recorded but without a batch on record (a process stopped between the intent and the batch's creation):
 * the account's batch list says whether the batch exists. Found, it is adopted; not found, the part is abandoned
 * (its uploaded file deleted) and its jobs are planned again, so no job runs in two batches.
 */
export async function recoverParts(ledger: Ledger, api: BatchApi, outDir: string, now: () => string): Promise<void> {
  const lost = ledger.parts().filter((part) => part.stage === 'intended' || part.stage === 'uploaded');
  if (lost.length === 0) return;
  const since = Math.min(...lost.map((part) => Date.parse(part.createdAt))) / 1000 - 600;
  const byPart = new Map<string, Batch>();
  for await (const batch of api.listSince(Math.floor(since))) {
    const part = batch.metadata?.[PART_METADATA];
    if (typeof part === 'string' && !byPart.has(part)) byPart.set(part, batch);
  }
  for (const part of lost) {
    const batch = byPart.get(part.part);
    if (batch) {
      if (part.stage === 'intended' && batch.input_file_id) await ledger.append({ type: 'uploaded', part: part.part, fileId: batch.input_file_id, at: now() });
      await ledger.append({ type: 'submitted', part: part.part, batchId: batch.id, at: now() });
      continue;
    }
    // An upload the process did not live to record is found by its name.
    const uploads = part.fileId ? [part.fileId] : await api.filesNamed(uploadName(part.part));
    for (const id of uploads) await api.deleteFile(id);
    await ledger.append({ type: 'abandoned', part: part.part, reason: 'no batch was created for it before the process stopped', at: now() });
    await removePartFiles(outDir, part);
  }
}
