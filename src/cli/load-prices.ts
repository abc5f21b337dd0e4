import { readFile } from 'node:fs/promises';
import { NightshiftError } from '../common/errors.js';
import { createPriceBook, parsePriceOverrides, type PriceBook } from '../cost/prices.js';

/** The price book, with the `--prices` file's overrides when one is given. */
export async function loadPrices(path: string | undefined): Promise<PriceBook> {
  if (!path) return createPriceBook();
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new NightshiftError('E_USAGE', `Cannot read the prices file ${path}: ${(error as Error).message}`);
  }
  const { overrides, problems } = parsePriceOverrides(json);
  if (problems.length > 0 || !overrides) {
    throw new NightshiftError('E_USAGE', `The prices file ${path} is invalid:\n  ${problems.join('\n  ')}`);
  }
  return createPriceBook({ overrides });
}
