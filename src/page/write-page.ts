import { dirname } from 'node:path';
import { writeFileAtomic } from '../common/atomic-file.js';
import { messageOf, NightshiftError } from '../common/errors.js';
import { collectPageData, type PageOptions } from './page-data.js';
import { renderPage } from './render.js';

/** The page a run writes in its output folder. */
export const REPORT_PAGE = 'report.html';

/**
 * The most jobs a run writes the page for. The page is built in memory, about 3 KB a job while it is gathered
 * (100,000 jobs took a batch run's collection from 220 MB to 535 MB): a run of more keeps its memory flat and leaves
 * the page to `report --html`.
 */
export const PAGE_MAX_JOBS = 20_000;

/**
 * Writes the HTML page of `folders` to `file` (image links relative to its folder). A view like results.csv: written
 * beside the target and renamed, never flushed (it is rebuilt from the journal at will).
 */
export async function writeReportPage(folders: readonly string[], file: string, options: Omit<PageOptions, 'pageDir'> & { now: () => number }): Promise<void> {
  const data = await collectPageData(folders, { ...options, pageDir: dirname(file) });
  const html = renderPage(data, new Date(options.now()).toISOString());
  try {
    await writeFileAtomic(file, html, { durable: false });
  } catch (error) {
    throw new NightshiftError('E_OUTPUT', `Cannot write ${file}: ${messageOf(error)}`, { path: file }, { cause: error });
  }
}
