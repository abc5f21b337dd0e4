import OpenAI from 'openai';
import { NightshiftError } from '../common/errors.js';
import { apiOrigin } from '../output/journal.js';
import type { CliIO } from './io.js';
import { createTransport } from './transport.js';

/**
 * The API client for a run, from the environment and following the SDK's variable names; the offline server's when
 * `offlineUrl` is given. The SDK's own retries are off: the runner has the one retry layer. Its requests go through
 * nightshift's transport (`transport.ts`), with at most `connections` connections open to the API.
 */
export function apiClient(
  env: CliIO['env'],
  timeoutMs: number,
  offlineUrl?: string,
  { keyless = false, connections }: { keyless?: boolean; connections?: number } = {},
): OpenAI {
  // The run's own offline server is on this machine: no proxy stands between them.
  const { fetch } = createTransport(offlineUrl ? {} : env, connections === undefined ? {} : { connections });
  const common = { maxRetries: 0, timeout: timeoutMs, fetch };
  if (offlineUrl) return new OpenAI({ ...common, apiKey: 'offline', baseURL: offlineUrl, organization: null, project: null });
  const apiKey = env.OPENAI_API_KEY;
  if (!apiKey && !keyless) throw missingKey();
  return new OpenAI({
    ...common,
    // Never sent: a keyless client is for a run that turns out to have nothing to send, and is stopped before otherwise.
    apiKey: apiKey || 'unset',
    // Passed explicitly so the SDK never falls back to variables the CLI was not given.
    baseURL: env.OPENAI_BASE_URL || 'https://api.openai.com/v1',
    organization: env.OPENAI_ORG_ID || null,
    project: env.OPENAI_PROJECT_ID || null,
  });
}

/** The refusal of a run that has requests to send and no key to send them with. */
export const missingKey = (): NightshiftError =>
  new NightshiftError(
    'E_CONFIG',
    'OPENAI_API_KEY is not set. Put it in the environment or in a .env file (see .env.example), or use --offline to try nightshift without a key.',
  );

/** OpenAI's API, where a run goes without `OPENAI_BASE_URL`. */
const DEFAULT_BASE_URL = 'https://api.openai.com/v1';

/**
 * The origin a run in this environment would journal its answers with, for commands that send nothing (`estimate`).
 * A `OPENAI_BASE_URL` that is not a URL counts as OpenAI's: the run itself refuses it.
 */
export function configuredOrigin(env: CliIO['env']): string {
  const base = env.OPENAI_BASE_URL || DEFAULT_BASE_URL;
  return URL.canParse(base) ? apiOrigin(base) : apiOrigin(DEFAULT_BASE_URL);
}
