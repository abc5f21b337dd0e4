import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { readCsv, tempDir } from './helpers.js';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..');

// Slow: packs the package and installs it with its dependencies (from npm's cache when it has them).
describe('the package npm pack makes', () => {
  it('installs into an empty folder, and its nightshift command runs the demo jobs it carries', { timeout: 240_000 }, async () => {
    const dir = await tempDir();
    const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? dir };
    // dist/ is built by the test setup; the prepare script would only build it again.
    const { stdout: packed } = await run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir], { cwd: root, env });
    const tarball = join(dir, packed.trim().split('\n').at(-1)!);
    const app = join(dir, 'app');
    await mkdir(app);
    await run('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: app, env });
    const jobs = join(app, 'node_modules', 'nightshift', 'jobs');
    const bin = join(app, 'node_modules', '.bin', 'nightshift');
    await run(bin, ['run', join(jobs, 'chat.jsonl'), join(jobs, 'vision.csv'), join(jobs, 'images.json'), '--offline', '--out', 'out', '-q'], { cwd: app, env });
    const rows = await readCsv(join(app, 'out', 'results.csv'));
    expect(rows).toHaveLength(12);
    expect(rows.every((row) => row['status'] === 'ok')).toBe(true);
  });
});
