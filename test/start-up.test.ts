import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { offlineServerPerTest, spawnCli, tempDir, waitFor, writeJobs } from './helpers.js';

const offline = offlineServerPerTest('sk-test-start-up-1234567890');
const REGISTER = pathToFileURL(join(import.meta.dirname, '../fixtures/import-log/register.mjs')).href;

/** Modules a run of chat jobs from a `.jsonl` file has no use for before its first request. */
const NOT_BEFORE_FIRST_REQUEST = [
  /\/dist\/server\//,
  // `status` and `cancel` read the ledger with three small modules of the batch room; the engine is the rest.
  /\/dist\/batch\/(?!api|ledger|view)/,
  /\/dist\/page\//,
  /\/dist\/jobs\/read-(csv|json)\.js$/,
  // Common chat jobs are checked without the field tables: zod is loaded for the first record that needs them.
  /\/dist\/jobs\/(schema|normalize|defaults|csv-fields)\.js$/,
  /\/dist\/cost\/price-overrides\.js$/,
  /\/node_modules\/(csv-parse|jsonc-parser|gpt-tokenizer|@pydantic\/genai-prices|zod)\//,
  // Loaded on first use: pricing the first answer, counting tokens for a rate limit.
  /^require (@pydantic\/genai-prices|gpt-tokenizer)/,
  // undici's index (fetch, WebSocket, caches, mocks): the transport loads only its agents and request methods.
  /\/node_modules\/undici\/index\.js$/,
  /^require \.\/lib\/web\//,
];

// Spawns the built CLI: slow.
describe('start-up (slow)', () => {
  it('loads neither the offline server, the batch engine, the page, the CSV and JSON readers, zod, the price table, the tokenizer nor the index of undici before the first request of a live run', async () => {
    // Answers take long enough that the modules loaded by the first request are all there is to see.
    const env = await offline.serve({ latencyMs: 10_000 });
    const dir = await tempDir();
    const file = await writeJobs(dir, [
      { id: 'a', model: 'gpt-4o-mini', prompt: 'Hello' },
      { id: 'b', model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], temperature: 0.2, max_completion_tokens: 50, tags: 'x;y' },
      { id: 'c', model: 'gpt-image-1.5', prompt: 'A cat', size: '1024x1024', quality: 'low' },
    ]);
    const log = join(dir, 'imports.log');
    const child = spawnCli(['run', file, '--out', join(dir, 'out'), '--quiet'], { cwd: dir, env: { ...env, IMPORT_LOG: log, NODE_OPTIONS: `--import=${REGISTER}` } });
    try {
      await waitFor(() => offline.server.stats.requests >= 1, 20_000, 'the first request');
      const loaded = (await readFile(log, 'utf8')).split('\n').filter(Boolean);
      // The log works: the CLI's own modules are in it.
      expect(loaded.some((url) => url.endsWith('/dist/cli/run.js'))).toBe(true);
      expect(loaded.filter((url) => NOT_BEFORE_FIRST_REQUEST.some((pattern) => pattern.test(url)))).toEqual([]);
    } finally {
      child.child.kill('SIGKILL');
      await child.exited;
    }
  });
});
