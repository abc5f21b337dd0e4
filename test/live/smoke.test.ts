import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, readCsv, tempDir, writeJobs } from '../helpers.js';

// Against the real API: a handful of cheap requests (well under one cent). Never part of CI.
const env = {
  OPENAI_API_KEY: process.env.OPENAI_API_KEY,
  OPENAI_BASE_URL: process.env.OPENAI_BASE_URL,
  OPENAI_ORG_ID: process.env.OPENAI_ORG_ID,
  OPENAI_PROJECT_ID: process.env.OPENAI_PROJECT_ID,
};

describe.skipIf(!env.OPENAI_API_KEY)('live API', () => {
  it('runs a chat, a vision and an image job and prices them', async () => {
    const dir = await tempDir();
    const file = await writeJobs(dir, [
      { id: 'chat', model: 'gpt-4.1-nano', prompt: 'Say OK.', max_completion_tokens: 5 },
      {
        id: 'vision',
        model: 'gpt-4.1-nano',
        prompt: 'One word: what color dominates?',
        images: [join(process.cwd(), 'fixtures/images/red-dot.png')],
        detail: 'low',
        max_completion_tokens: 5,
      },
      { id: 'image', model: 'gpt-image-2', prompt: 'A small red circle', size: '1024x1024', quality: 'low' },
    ]);
    const out = join(dir, 'out');
    const { code, stderr } = await cli(['run', file, '--out', out, '--budget', '0.05'], { env });
    expect(stderr).not.toContain(env.OPENAI_API_KEY!);
    expect(code).toBe(0);
    const rows = await readCsv(join(out, 'results.csv'));
    for (const row of rows) {
      expect(row.status).toBe('ok');
      expect(row.request_id).not.toBe('');
      expect(Number(row.cost_usd)).toBeGreaterThan(0);
    }
  });

  it('fails a request with a bad key without retrying it', async () => {
    const dir = await tempDir();
    const file = await writeJobs(dir, [{ id: 'chat', model: 'gpt-4.1-nano', prompt: 'Say OK.' }]);
    const { code } = await cli(['run', file, '--out', join(dir, 'out')], { env: { ...env, OPENAI_API_KEY: 'sk-invalid-key-for-test' } });
    expect(code).toBe(1);
    const [row] = await readCsv(join(dir, 'out', 'results.csv'));
    expect(row).toMatchObject({ status: 'failed', attempts: '1' });
  });
});
