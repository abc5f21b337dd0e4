/**
 * OpenAI's announced model shutdowns (its deprecations page, checked December 2026). After its shutdown date the
 * API answers a model with 404 `model_not_found`: a job file naming it is worth a word before anything is sent. The
 * table only warns; it never refuses, since an OpenAI-compatible server may still serve the name.
 */
interface Shutdown {
  /** The model names and their dated snapshots. */
  models: readonly string[];
  /** The shutdown day, `YYYY-MM-DD` (UTC). */
  date: string;
  /** What to use instead. */
  instead: string;
}

const SHUTDOWNS: readonly Shutdown[] = [
  { models: ['dall-e-2', 'dall-e-3'], date: '2026-05-12', instead: 'gpt-image-2' },
  { models: ['gpt-image-1', 'gpt-image-1-2025-04-23'], date: '2026-10-23', instead: 'gpt-image-2' },
  {
    models: ['gpt-image-1-mini', 'gpt-image-1.5', 'gpt-image-1.5-2025-12-16', 'chatgpt-image-latest'],
    date: '2026-12-01',
    instead: 'gpt-image-2',
  },
  { models: ['gpt-5', 'gpt-5-2025-08-07', 'gpt-5-pro', 'o3', 'o3-2025-04-16', 'o3-pro'], date: '2026-12-11', instead: 'a newer GPT model' },
  { models: ['gpt-5-mini', 'gpt-5-mini-2025-08-07', 'gpt-5-nano', 'gpt-5-nano-2025-08-07'], date: '2026-12-11', instead: 'gpt-5.4-mini or gpt-5.4-nano' },
  {
    models: ['gpt-4o', 'gpt-4o-mini', 'gpt-4.1', 'gpt-4.1-mini', 'gpt-4.1-2025-04-14', 'gpt-4.1-mini-2025-04-14'],
    date: '2027-01-14',
    instead: 'a GPT-5 model',
  },
];

const BY_MODEL = new Map(SHUTDOWNS.flatMap((shutdown) => shutdown.models.map((model) => [model, shutdown] as const)));

/** How long before its shutdown a model is worth a warning: time enough to move a nightly job. */
export const SHUTDOWN_NOTICE_DAYS = 30;

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * One line per model of `models` that OpenAI has shut down by `now`, or shuts down within
 * {@link SHUTDOWN_NOTICE_DAYS}: what happens to its requests and what to use instead. Fine-tunes (`ft:...`) follow
 * their own schedule and are left alone.
 */
export function shutdownNotices(models: Iterable<string>, now: number): string[] {
  const notices: string[] = [];
  for (const model of models) {
    const shutdown = BY_MODEL.get(model.trim().toLowerCase());
    if (!shutdown) continue;
    const at = Date.parse(`${shutdown.date}T00:00:00Z`);
    if (now >= at) {
      notices.push(`OpenAI shut ${model} down on ${shutdown.date}: the API answers its requests with 404 model_not_found (use ${shutdown.instead})`);
    } else if (at - now <= SHUTDOWN_NOTICE_DAYS * DAY_MS) {
      const days = Math.ceil((at - now) / DAY_MS);
      notices.push(`OpenAI shuts ${model} down on ${shutdown.date}, in ${days} day${days === 1 ? '' : 's'}: from then on its requests fail (use ${shutdown.instead})`);
    }
  }
  return notices;
}
