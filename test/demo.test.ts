import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { readCsv } from './helpers.js';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..');

describe('the README quick start', () => {
  it('npm run demo runs every example job offline and writes results, usage and images', async () => {
    const { stdout } = await run('npm', ['run', '--silent', 'demo'], { cwd: root, env: { PATH: process.env.PATH ?? '' } });
    expect(stdout).toContain('out/demo/results.csv');
    const rows = await readCsv(join(root, 'out/demo/results.csv'));
    expect(rows).toHaveLength(12);
    expect(new Set(rows.map((row) => row.kind))).toEqual(new Set(['chat', 'vision', 'image']));
    expect(rows.every((row) => row.status === 'ok')).toBe(true);
    const png = await readFile(join(root, 'out/demo/images/lighthouse.png'));
    expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
    const usage = await readCsv(join(root, 'out/demo/usage.csv'));
    expect(usage.at(-1)).toMatchObject({ model: 'TOTAL', jobs: '12', ok: '12' });
    // It ends by printing the path of its HTML page, which is there.
    expect(stdout.trimEnd().split('\n').at(-1)).toBe('report: out/demo/report.html');
    expect(await readFile(join(root, 'out/demo/report.html'), 'utf8')).toContain('lighthouse');
  });
});
