import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = fileURLToPath(new URL('..', import.meta.url));

/**
 * Builds dist/ once per test run: the signal and crash tests spawn the real CLI (`node dist/cli/index.js`),
 * and a stale build would test yesterday's code. Type errors do not stop the build (tsc still emits, and the
 * typecheck step reports them); only a build that leaves no CLI behind fails the run.
 */
export default async function buildCli(): Promise<void> {
  const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
  try {
    await promisify(execFile)(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root });
  } catch (error) {
    const { stdout = '' } = error as { stdout?: string };
    console.warn(`global setup: tsc reported errors while building dist/ (tests use what it emitted):\n${stdout}`);
  }
  await access(new URL('../dist/cli/index.js', import.meta.url));
}
