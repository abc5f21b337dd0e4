import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { JobDigests } from '../src/jobs/digests.js';
import { validateJobFiles } from '../src/jobs/load.js';
import { jobsInMemory } from '../src/jobs/source.js';
import { jobsToSend, planFromJournal, sends } from '../src/run/plan.js';
import { tempDir, writeJobs } from './helpers.js';

/** Requests hashed so far: how much work a plan does. */
const hashed = vi.hoisted(() => ({ count: 0 }));
vi.mock('../src/jobs/fingerprint.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../src/jobs/fingerprint.js')>();
  return {
    ...real,
    fingerprint: (job: Parameters<typeof real.fingerprint>[0]) => (hashed.count++, real.fingerprint(job)),
    fingerprintBytes: (job: Parameters<typeof real.fingerprintBytes>[0]) => (hashed.count++, real.fingerprintBytes(job)),
  };
});

describe('the fingerprints of a fresh run', () => {
  it('are not made before the first request: each job is hashed once, as it is sent, into the same digests', async () => {
    const dir = await tempDir();
    const jobs = Array.from({ length: 40 }, (_, i) => ({ id: `j${i}`, model: 'gpt-4o-mini', prompt: `Question ${i}`, temperature: 0.5 }));
    const file = await writeJobs(dir, jobs);
    hashed.count = 0;
    const valid = await validateJobFiles([file], { digests: true, keep: { maxBytes: 1e8 } });
    const source = jobsInMemory(valid.jobs!, valid.digests);
    const out = join(dir, 'out');
    await mkdir(out);
    const { plan } = await planFromJournal(source, out, { origin: 'https://api.openai.com' });
    expect(jobs.every((_, position) => sends(plan, position))).toBe(true);
    // Validating and planning against a folder without a journal hashed no request.
    expect(hashed.count).toBe(0);

    const sent = [];
    for await (const each of jobsToSend(source, plan)) sent.push(each);
    expect(sent.map((each) => each.job.id)).toEqual(jobs.map((job) => job.id));
    expect(hashed.count).toBe(jobs.length);
    // The digests are those an eager validation makes, and each job sends what was planned.
    const eager = new JobDigests();
    for (const job of valid.jobs!) eager.add(job);
    expect(valid.digests!.keysOf().equals(eager.keysOf())).toBe(true);
    for (const [position, each] of sent.entries()) expect(Buffer.from(each.fp.slice(0, 32), 'hex').equals(eager.key(position))).toBe(true);
  });

  it('still catches a job whose request changed since it was planned', async () => {
    const dir = await tempDir();
    const file = await writeJobs(dir, [{ id: 'a', model: 'gpt-4o-mini', prompt: 'Hi' }, { id: 'b', model: 'gpt-4o-mini', prompt: 'Yo' }]);
    const valid = await validateJobFiles([file], { digests: true, keep: { maxBytes: 1e8 } });
    const out = join(dir, 'out');
    await mkdir(out);
    const source = jobsInMemory(valid.jobs!, valid.digests);
    const { plan } = await planFromJournal(source, out, { origin: 'https://api.openai.com' });
    const edited = valid.jobs!.map((job) => (job.id === 'b' ? { ...job, body: { ...job.body, temperature: 1 } } : job));
    const changed = { ...source, pick: jobsInMemory(edited, new JobDigests()).pick };
    const send = async () => {
      for await (const each of jobsToSend(changed, plan)) expect(each.job.id).toBe('a');
    };
    await expect(send()).rejects.toMatchObject({ code: 'E_VALIDATION' });
  });
});
