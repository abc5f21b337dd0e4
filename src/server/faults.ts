import { STATUS_CODES } from 'node:http';
import { ApiError } from './api-error.js';
import { checkArray, checkBoolean, checkCount, checkInteger, checkNumber, checkObject, checkOneOf, checkString } from './checks.js';

/**
 * The broken bodies a 200 answer can carry instead of the real one: `not-json` (the real answer cut in half),
 * `empty`, `html` (a proxy's error page), and the real answer with a part missing or wrong: `choices-null`,
 * `no-choices` (`choices: []`) and `no-message` (choices without `message`) for chat; `no-data` (no `data`),
 * `not-image` (every `b64_json` decodes to text) and `fewer-images` (one image short of `n`) for images.
 */
export const BROKEN_BODIES = ['not-json', 'empty', 'html', 'choices-null', 'no-choices', 'no-message', 'no-data', 'not-image', 'fewer-images'] as const;

/** One of {@link BROKEN_BODIES}. */
export type BrokenBody = (typeof BROKEN_BODIES)[number];

/**
 * A failure the offline server injects instead of answering, or into its answer. Rules are checked in order for
 * every API request; the first rule that matches and still has `times` left fires and uses up one of its times.
 * A rule with a `status` answers that error; a rule without one lets the request be answered and changes the
 * answer (`body`, `reply`, `servedTier`, `headers`) or how it is sent (`reset`, `trickleMs`).
 */
export interface FaultRule {
  /** HTTP status of the error to answer with, 400-599 (e.g. 429, 500, 503). Ignored when `drop` is set. */
  status?: number;
  /**
   * `error.type` in the body.
   * @default 'requests' for 429 (as real rate-limit answers), 'server_error' for 5xx, else 'invalid_request_error'
   */
  type?: string;
  /**
   * `error.code` in the body. Use `'insufficient_quota'` (with the same `type`) to fake an empty account.
   * @default 'rate_limit_exceeded' for 429, 'invalid_api_key' for 401, else null
   */
  code?: string;
  /**
   * `error.message` in the body.
   * @default 'Injected fault: <status> <reason phrase>.'
   */
  message?: string;
  /**
   * How many times the rule fires before it is spent.
   * @default Infinity
   */
  times?: number;
  /** Sends a `retry-after` header with this many seconds. */
  retryAfterSeconds?: number;
  /** Sends a `retry-after-ms` header with this many milliseconds (the SDK prefers it over `retry-after`). */
  retryAfterMs?: number;
  /** Fire only for requests matching every given field. */
  match?: {
    /** Exact request path, e.g. `'/v1/images/generations'`. */
    path?: string;
    /** Exact `model` of the request body. */
    model?: string;
    /** A substring of the request's key: the last user message's text, or the image prompt. */
    promptIncludes?: string;
    /**
     * Exact `service_tier` of a chat request. With `status: 429` and `code: 'resource_unavailable'`, fakes flex
     * processing out of capacity: `{status: 429, code: 'resource_unavailable', match: {serviceTier: 'flex'}}`.
     */
    serviceTier?: string;
  };
  /**
   * Waits this long (on top of `latencyMs`) before answering or dropping.
   * @default 0
   */
  delayMs?: number;
  /**
   * Destroys the connection instead of answering, so the client sees a connection error.
   * @default false
   */
  drop?: boolean;
  /** Answers 200 with this broken body instead of the real one (see {@link BROKEN_BODIES}). */
  body?: BrokenBody;
  /** Replaces the text of every choice of a chat answer, e.g. with something that echoes the key. */
  reply?: string;
  /** Reports this `service_tier` in a chat answer, as the API does when it serves a request at another tier than asked. */
  servedTier?: string;
  /** Headers added to the answer, over the server's own (`x-request-id` included). */
  headers?: Record<string, string>;
  /**
   * Sends the answer's headers and half its body, then resets the connection.
   * @default false
   */
  reset?: boolean;
  /** Sends the answer's body one byte every this many milliseconds (headers at once). */
  trickleMs?: number;
}

/** What fault rules can match on. */
export interface FaultTarget {
  path: string;
  model?: string;
  key: string;
  serviceTier?: string;
}

/** Checks rules given by a caller, naming the bad field as `faults[1].times`. */
export function validateFaultRules(rules: unknown, name = 'faults'): FaultRule[] {
  return checkArray(name, rules).map((value, index) => {
    const at = `${name}[${index}]`;
    const rule = checkObject(at, value) as Partial<Record<keyof FaultRule, unknown>>;
    const changesAnswer = ['drop', 'body', 'reply', 'servedTier', 'headers', 'reset', 'trickleMs'].some((field) => field in rule);
    // A rule that neither answers an error nor changes the answer would do nothing: a mistake.
    if (rule.status !== undefined || !changesAnswer) checkInteger(`${at}.status`, rule.status, 400, 599);
    for (const field of ['type', 'code', 'message', 'reply', 'servedTier'] as const) {
      if (rule[field] !== undefined) checkString(`${at}.${field}`, rule[field]);
    }
    if (rule.times !== undefined) checkCount(`${at}.times`, rule.times);
    for (const field of ['retryAfterSeconds', 'retryAfterMs', 'delayMs', 'trickleMs'] as const) {
      if (rule[field] !== undefined) checkNumber(`${at}.${field}`, rule[field]);
    }
    for (const field of ['drop', 'reset'] as const) {
      if (rule[field] !== undefined) checkBoolean(`${at}.${field}`, rule[field]);
    }
    if (rule.body !== undefined) checkOneOf(`${at}.body`, rule.body, BROKEN_BODIES);
    if (rule.headers !== undefined) {
      const headers = checkObject(`${at}.headers`, rule.headers);
      for (const [name, value] of Object.entries(headers)) checkString(`${at}.headers.${name}`, value);
    }
    if (rule.match !== undefined) {
      const match = checkObject(`${at}.match`, rule.match);
      for (const field of ['path', 'model', 'promptIncludes', 'serviceTier'] as const) {
        if (match[field] !== undefined) checkString(`${at}.match.${field}`, match[field]);
      }
    }
    return value as FaultRule;
  });
}

/** Holds the active rules and what is left of their `times`. */
export class FaultInjector {
  #rules: Array<{ rule: FaultRule; left: number }> = [];

  constructor(rules: FaultRule[]) {
    this.set(rules);
  }

  /** Replaces the rules; every rule starts with its full `times`. */
  set(rules: FaultRule[]): void {
    this.#rules = rules.map((rule) => ({ rule, left: rule.times ?? Number.POSITIVE_INFINITY }));
  }

  /** The rule to fire for this request, if any, with one of its times used up. */
  take(target: FaultTarget): FaultRule | undefined {
    for (const entry of this.#rules) {
      if (entry.left > 0 && matches(entry.rule, target)) {
        entry.left -= 1;
        return entry.rule;
      }
    }
    return undefined;
  }
}

function matches({ match }: FaultRule, target: FaultTarget): boolean {
  if (match === undefined) return true;
  return (
    (match.path === undefined || match.path === target.path) &&
    (match.model === undefined || match.model === target.model) &&
    (match.promptIncludes === undefined || target.key.includes(match.promptIncludes)) &&
    (match.serviceTier === undefined || match.serviceTier === target.serviceTier)
  );
}

/** The answer a rule with a `status` sends. */
export function faultError(rule: FaultRule & { status: number }): ApiError {
  const headers: Record<string, string> = {};
  if (rule.retryAfterSeconds !== undefined) headers['retry-after'] = String(rule.retryAfterSeconds);
  if (rule.retryAfterMs !== undefined) headers['retry-after-ms'] = String(rule.retryAfterMs);
  const message = rule.message ?? `Injected fault: ${rule.status} ${STATUS_CODES[rule.status] ?? 'Error'}.`;
  return new ApiError(rule.status, message, { type: rule.type, code: rule.code, headers });
}

/** A JSON answer as the server sends it: its body's text and content type. */
export interface AnswerText {
  contentType: string;
  text: string;
}

/** An answer sent as it is. */
export const json = (value: unknown): AnswerText => ({ contentType: 'application/json', text: JSON.stringify(value) });

const NOT_AN_IMAGE = Buffer.from('This is not an image.').toString('base64');

/** The real answer with a rule's `reply`, `servedTier` and `body` applied. */
export function faultAnswer(rule: FaultRule, answer: unknown): AnswerText {
  let changed = answer as Record<string, unknown>;
  const choices = (): Array<Record<string, unknown>> => (Array.isArray(changed.choices) ? (changed.choices as Array<Record<string, unknown>>) : []);
  const { reply, servedTier } = rule;
  if (reply !== undefined) changed = { ...changed, choices: choices().map((choice) => ({ ...choice, message: { ...(choice.message as object), content: reply } })) };
  if (servedTier !== undefined) changed = { ...changed, service_tier: servedTier };
  const data = Array.isArray(changed.data) ? (changed.data as unknown[]) : [];
  switch (rule.body) {
    case undefined:
      return json(changed);
    case 'not-json': {
      const text = JSON.stringify(changed);
      return { contentType: 'application/json', text: text.slice(0, Math.floor(text.length / 2)) };
    }
    case 'empty':
      return { contentType: 'application/json', text: '' };
    case 'html':
      return { contentType: 'text/html; charset=utf-8', text: '<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>' };
    case 'choices-null':
      return json({ ...changed, choices: null });
    case 'no-choices':
      return json({ ...changed, choices: [] });
    case 'no-message':
      return json({ ...changed, choices: choices().map(({ message: _message, ...rest }) => rest) });
    case 'no-data': {
      const { data: _data, ...rest } = changed;
      return json(rest);
    }
    case 'not-image':
      return json({ ...changed, data: data.map(() => ({ b64_json: NOT_AN_IMAGE })) });
    case 'fewer-images':
      return json({ ...changed, data: data.slice(0, -1) });
  }
}
