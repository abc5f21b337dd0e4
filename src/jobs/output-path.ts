/*
 * Image jobs name their files with a pattern relative to the run's `images/` folder. These checks are
 * pure string rules, the same on every platform, so a job file valid on Linux is valid on Windows.
 */

/** The default output pattern of an image job making `n` images in `format`. */
export const defaultOutputPattern = (n: number, format = 'png'): string => (n > 1 ? `{id}-{index}.${format}` : `{id}.${format}`);

/**
 * The file name, relative to the images folder, of image `index` (1-based) of job `id`:
 * `{id}` and `{index}` replaced. Jobs from `loadJobs` have passed `checkOutput`.
 */
export const expandOutput = (pattern: string, id: string, index: number): string =>
  pattern.replace(/\{(id|index)\}/g, (_, name: string) => (name === 'id' ? id : String(index)));

/**
 * Why `pattern` cannot name the `n` image files of job `id` inside the images folder, or undefined when
 * it can: an unknown placeholder, no `{index}` when n > 1, or a file name that is empty, absolute, has a
 * drive letter, backslash, control character, `..`, `.` or empty folder name, or ends with `/`.
 */
export function checkOutput(pattern: string, id: string, n: number): string | undefined {
  const reason = checkPattern(pattern, n);
  if (reason !== undefined) return reason;
  for (let index = 1; index <= n; index += 1) {
    const path = expandOutput(pattern, id, index);
    const pathReason = checkPath(path);
    if (pathReason !== undefined) return `${JSON.stringify(path)} ${pathReason}`;
  }
  return undefined;
}

function checkPattern(pattern: string, n: number): string | undefined {
  const unknown = /\{(?!(?:id|index)\})[^}]*\}?/.exec(pattern);
  if (unknown !== null) return `unknown placeholder ${JSON.stringify(unknown[0])}: use {id} and {index}`;
  if (n > 1 && !pattern.includes('{index}')) return `must contain {index} when n is ${n}, or the images overwrite each other`;
  return undefined;
}

/**
 * Longest names, in UTF-8 bytes. File systems allow 255 bytes a name; the file name keeps room for the temporary
 * name it is first written under (`<name>.<pid>.<8 hex>.tmp`). The whole relative path keeps room for the output
 * folder's own path within the usual 4,096-byte limit.
 */
export const MAX_FOLDER_NAME_BYTES = 255;
export const MAX_FILE_NAME_BYTES = 200;
export const MAX_OUTPUT_PATH_BYTES = 1024;

function checkPath(path: string): string | undefined {
  if (path === '') return 'is empty';
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is rejected
  if (/[\u0000-\u001f]/.test(path)) return 'contains a control character';
  if (path.includes('\\')) return 'contains a backslash: separate folders with /';
  if (path.startsWith('/')) return 'is an absolute path: it must stay inside the images folder';
  if (/^[A-Za-z]:/.test(path)) return 'starts with a drive letter: it must stay inside the images folder';
  if (path.endsWith('/')) return 'ends with /: it must name a file';
  const segments = path.split('/');
  if (segments.includes('..')) return 'contains "..": it must stay inside the images folder';
  if (segments.some((segment) => segment === '' || segment === '.')) return 'contains an empty or "." folder name';
  // Too long a name is refused by the disk only after the image is paid for: checked before anything is sent.
  const bytes = (text: string): number => Buffer.byteLength(text, 'utf8');
  if (bytes(path) > MAX_OUTPUT_PATH_BYTES) return `is ${bytes(path)} bytes long: at most ${MAX_OUTPUT_PATH_BYTES}`;
  if (bytes(segments.at(-1)!) > MAX_FILE_NAME_BYTES) return `has a file name of ${bytes(segments.at(-1)!)} bytes: at most ${MAX_FILE_NAME_BYTES}`;
  const folder = segments.slice(0, -1).find((segment) => bytes(segment) > MAX_FOLDER_NAME_BYTES);
  if (folder !== undefined) return `has a folder name of ${bytes(folder)} bytes: at most ${MAX_FOLDER_NAME_BYTES}`;
  return undefined;
}
