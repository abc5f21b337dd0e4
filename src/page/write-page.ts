import { dirname } from 'node:path';
import { AtomicFile } from '../common/atomic-file.js';
import { messageOf, NightshiftError } from '../common/errors.js';
import { collectPageData, type PageOptions } from './page-data.js';
import { pageEnd, pageJob, pageStart } from './render.js';

/** The page a run writes in its output folder. */
export const REPORT_PAGE = 'report.html';

/** Jobs are written to the page in pieces of about this many characters. */
const PIECE_CHARS = 64 * 1024;

/**
 * Writes the HTML page of `folders` to `file` (image links relative to its folder), job by job as the folders' results
 * are read: memory stays flat whatever the number of jobs. A view like results.csv: written beside the target and
 * renamed, never flushed (it is rebuilt from the journal at will).
 */
export async function writeReportPage(folders: readonly string[], file: string, options: Omit<PageOptions, 'pageDir'> & { now: () => number }): Promise<void> {
  const page = new AtomicFile(file, { durable: false });
  try {
    await write(page, file, pageStart(folders));
    let piece = '';
    let first = true;
    const summary = await collectPageData(folders, { ...options, pageDir: dirname(file) }, async (job) => {
      piece += (first ? '' : ',') + pageJob(job);
      first = false;
      if (piece.length < PIECE_CHARS) return;
      await write(page, file, piece);
      piece = '';
    });
    await write(page, file, piece + pageEnd(summary, new Date(options.now()).toISOString()));
  } catch (error) {
    await page.discard();
    throw error;
  }
  try {
    await page.commit();
  } catch (error) {
    throw cannotWrite(file, error);
  }
}

async function write(page: AtomicFile, file: string, piece: string): Promise<void> {
  try {
    await page.write(piece);
  } catch (error) {
    throw cannotWrite(file, error);
  }
}

const cannotWrite = (file: string, error: unknown): NightshiftError =>
  new NightshiftError('E_OUTPUT', `Cannot write ${file}: ${messageOf(error)}`, { path: file }, { cause: error });
