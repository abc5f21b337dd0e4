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
  return undefined;
}
