import { STATUS_CODES } from 'node:http';
import { ApiError } from './api-error.js';
import { checkArray, checkBoolean, checkCount, checkInteger, checkNumber, checkObject, checkString } from './checks.js';

/**
 * A failure the offline server injects instead of answering. Rules are checked in order for every API request;
 * the first rule that matches and still has `times` left fires and uses up one of its times.
 */
export interface FaultRule {
  /** HTTP status to answer with, 400-599 (e.g. 429, 500, 503). Ignored when `drop` is set. */
  status: number;
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
}

/** What fault rules can match on. */
export interface FaultTarget {
  path: string;
  model?: string;
  key: string;
}

/** Checks rules given by a caller, naming the bad field as `faults[1].times`. */
export function validateFaultRules(rules: unknown, name = 'faults'): FaultRule[] {
  return checkArray(name, rules).map((value, index) => {
    const at = `${name}[${index}]`;
    const rule = checkObject(at, value) as Partial<Record<keyof FaultRule, unknown>>;
    checkInteger(`${at}.status`, rule.status, 400, 599);
    for (const field of ['type', 'code', 'message'] as const) {
      if (rule[field] !== undefined) checkString(`${at}.${field}`, rule[field]);
    }
    if (rule.times !== undefined) checkCount(`${at}.times`, rule.times);
    for (const field of ['retryAfterSeconds', 'retryAfterMs', 'delayMs'] as const) {
      if (rule[field] !== undefined) checkNumber(`${at}.${field}`, rule[field]);
    }
    if (rule.drop !== undefined) checkBoolean(`${at}.drop`, rule.drop);
    if (rule.match !== undefined) {
      const match = checkObject(`${at}.match`, rule.match);
      for (const field of ['path', 'model', 'promptIncludes'] as const) {
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
    (match.promptIncludes === undefined || target.key.includes(match.promptIncludes))
  );
}

/** The answer a (non-dropping) rule sends. */
export function faultError(rule: FaultRule): ApiError {
  const headers: Record<string, string> = {};
  if (rule.retryAfterSeconds !== undefined) headers['retry-after'] = String(rule.retryAfterSeconds);
  if (rule.retryAfterMs !== undefined) headers['retry-after-ms'] = String(rule.retryAfterMs);
  const message = rule.message ?? `Injected fault: ${rule.status} ${STATUS_CODES[rule.status] ?? 'Error'}.`;
  return new ApiError(rule.status, message, { type: rule.type, code: rule.code, headers });
}
