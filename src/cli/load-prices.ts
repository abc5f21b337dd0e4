import { readFile, stat } from 'node:fs/promises';
import { NightshiftError } from '../common/errors.js';
import { offsetDeeperThan, TOO_DEEP } from '../common/json-depth.js';
import { createPriceBook, type PriceBook } from '../cost/prices.js';

/** The price book, with the `--prices` file's overrides when one is given. */
export async function loadPrices(path: string | undefined): Promise<PriceBook> {
  if (!path) return createPriceBook();
  let text: string;
  let json: unknown;
  try {
    // Only a regular file: a pipe waits for a writer forever, and a device such as /dev/zero never ends.
    if (!(await stat(path)).isFile()) throw new Error('it is not a regular file');
    text = await readFile(path, 'utf8');
    json = JSON.parse(text);
  } catch (error) {
    throw new NightshiftError('E_USAGE', `Cannot read the prices file ${path}: ${(error as Error).message}`);
  }
  // Checking the prices walks them recursively: a file nested thousands deep would overflow the stack.
  const deep = offsetDeeperThan(text);
  if (deep !== undefined) {
    const line = text.slice(0, deep).split('\n').length;
    throw new NightshiftError('E_USAGE', `The prices file ${path}:${line} is invalid: ${TOO_DEEP}`, { file: path, line });
  }
  // Only a run given a prices file loads what checks one (zod with it).
  const { parsePriceOverrides } = await import('../cost/price-overrides.js');
  const { overrides, problems } = parsePriceOverrides(json);
  if (problems.length > 0 || !overrides) {
    throw new NightshiftError('E_USAGE', `The prices file ${path} is invalid:\n  ${problems.join('\n  ')}`);
  }
  return createPriceBook({ overrides });
}
