/**
 * The header the offline server puts on every answer, so that nightshift journals the answer as the offline
 * server's whatever the address it was reached by (`--offline`, or `nightshift serve` through `OPENAI_BASE_URL`):
 * such an answer is never taken for a real, billed one.
 */
export const OFFLINE_ANSWER_HEADER = 'x-nightshift-offline';
