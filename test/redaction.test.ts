import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FaultRule } from '../src/server/server.js';
import { cli, journalLines, offlineServerPerTest, tempDir, writeJobs } from './helpers.js';

/** A key with no `sk-` prefix: only its literal value can find it. */
const KEY = '3f9a1c7e5b2d4086a1e9c3b7d5f20e48';
const offline = offlineServerPerTest(KEY);

/** Everything the run left in its output folder (journal, CSVs), as text. */
async function outputText(out: string): Promise<string> {
  const names = await readdir(out);
  const texts = await Promise.all(names.filter((name) => /\.(jsonl|csv)$/.test(name)).map((name) => readFile(join(out, name), 'utf8')));
  return texts.join('\n');
}

/** The pieces of the key (12 characters and longer) found in `text`: a cut key must not leak its start either. */
function keyPieces(text: string): string[] {
  const found: string[] = [];
  for (let start = 0; start + 12 <= KEY.length; start++) {
    if (text.includes(KEY.slice(start, start + 12))) found.push(KEY.slice(start, start + 12));
  }
  return found;
}

/** A rule for the job whose prompt holds `tag`. */
const forJob = (tag: string, rule: Omit<FaultRule, 'match'>): FaultRule => ({ ...rule, match: { promptIncludes: tag } });

describe('a key echoed back by the server', () => {
  it('appears in no output file and nowhere on stdout or stderr', async () => {
    // 470 characters before the key: a 500-character cut of the error line falls inside it.
    const long = `${'x'.repeat(470)} key=${KEY} and more text after it`;
    const env = await offline.serve({
      faults: [
        forJob('long-error', { status: 400, message: long }),
        forJob('retried', { status: 503, message: long, headers: { 'x-request-id': KEY }, retryAfterMs: 1, times: 1 }),
        forJob('request-id', { headers: { 'x-request-id': `req_${KEY}` } }),
        forJob('reply', { reply: `Your key is ${KEY}.` }),
        forJob('bad-answer', { body: 'html', headers: { 'x-request-id': KEY, 'retry-after-ms': '1' } }),
        forJob('error-id', { status: 404, headers: { 'x-request-id': KEY } }),
      ],
    });
    const dir = await tempDir();
    const tags = ['long-error', 'retried', 'request-id', 'reply', 'bad-answer', 'error-id'];
    const file = await writeJobs(dir, tags.map((tag) => ({ id: tag, model: 'gpt-4o-mini', prompt: `job ${tag}` })));
    const out = join(dir, 'out');

    const { code, stdout, stderr } = await cli(['run', file, '--out', out, '--max-attempts', '2', '--concurrency', '1'], { env });

    expect(code).toBe(1);
    const states = Object.fromEntries((await journalLines(out)).filter((line) => line.type === 'job').map((line) => [line.id, line.state]));
    expect(states).toEqual({ 'long-error': 'failed', retried: 'done', 'request-id': 'done', reply: 'done', 'bad-answer': 'failed', 'error-id': 'failed' });
    expect(keyPieces(await outputText(out))).toEqual([]);
    expect(keyPieces(stdout + stderr)).toEqual([]);
  });

  it('in a refused key\'s long error appears nowhere in the stop message', async () => {
    const env = await offline.serve({ faults: [{ status: 401, message: `${'y'.repeat(480)} ${KEY}` }] });
    const dir = await tempDir();
    const file = await writeJobs(dir, [{ id: 'one', model: 'gpt-4o-mini', prompt: 'hello' }]);
    const out = join(dir, 'out');

    const { code, stdout, stderr } = await cli(['run', file, '--out', out], { env });

    expect(code).toBe(5);
    expect(keyPieces(await outputText(out))).toEqual([]);
    expect(keyPieces(stdout + stderr)).toEqual([]);
  });
});
