import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { shutdownNotices } from '../src/jobs/model-lifecycle.js';
import { cli, writeJobs } from './helpers.js';

const day = (date: string): number => Date.parse(`${date}T12:00:00Z`);

describe('models OpenAI has shut down', () => {
  it('are named before anything is sent, with the date and what to use instead, and not refused', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nightshift-lifecycle-'));
    const file = await writeJobs(dir, [
      { id: 'logo', model: 'gpt-image-1.5', prompt: 'A logo' },
      { id: 'old', model: 'dall-e-3', prompt: 'A cat' },
      { id: 'fine', model: 'gpt-image-2', prompt: 'A dog' },
    ]);
    const { code, stderr } = await cli(['validate', file], { now: () => day('2026-12-06') });
    expect(code).toBe(0);
    const warnings = stderr.split('\n').filter((line) => line.startsWith('warning:'));
    expect(warnings).toHaveLength(2);
    expect(warnings.find((line) => line.includes('gpt-image-1.5'))).toMatch(/2026-12-01.*404 model_not_found.*gpt-image-2/);
    expect(warnings.find((line) => line.includes('dall-e-3'))).toMatch(/2026-05-12/);
  });

  it('warn within 30 days of the shutdown, counting the days left, and not before', () => {
    expect(shutdownNotices(['gpt-5-mini'], day('2026-12-06'))).toEqual([expect.stringMatching(/2026-12-11, in 5 days/)]);
    expect(shutdownNotices(['gpt-5-mini'], day('2026-10-01'))).toEqual([]);
    expect(shutdownNotices(['gpt-5-mini'], day('2026-12-11'))).toEqual([expect.stringMatching(/shut gpt-5-mini down/)]);
  });

  it('leave models without an announced shutdown, and fine-tunes, alone', () => {
    expect(shutdownNotices(['gpt-image-2', 'gpt-5.4-mini', 'ft:gpt-4.1-mini:acme::x1', 'my-local-model'], day('2027-06-01'))).toEqual([]);
  });

  it('the demo and the default image model use none of them', async () => {
    const root = join(import.meta.dirname, '..');
    const files = ['chat.jsonl', 'vision.csv', 'images.json'].map((name) => join(root, 'jobs', name));
    const { code, stderr } = await cli(['validate', ...files], { now: () => day('2026-12-06') });
    expect(code).toBe(0);
    expect(stderr).not.toContain('warning:');
    const image = await writeJobs(await mkdtemp(join(tmpdir(), 'nightshift-lifecycle-')), [{ id: 'x', kind: 'image', prompt: 'A dog' }]);
    expect((await cli(['validate', image], { now: () => day('2026-12-06') })).stderr).not.toContain('warning:');
  });
});
