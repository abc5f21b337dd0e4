import { createRedactor } from '../src/common/redact.js';
import { APIConnectionError, APIConnectionTimeoutError, APIError } from 'openai';
import { describe, expect, it } from 'vitest';
import { backoffDelay, classifyError, parseRetryAfter } from '../src/run/retry.js';

const NOW = Date.parse('2026-11-28T00:00:00Z');

function apiError(status: number, body: { type?: string; code?: string; message?: string } = {}, headers: Record<string, string> = {}) {
  return APIError.generate(status, { error: { message: 'boom', ...body } }, undefined, new Headers(headers));
}

describe('classifyError', () => {
  it.each([400, 403, 404, 422])('never retries a %i', (status) => {
    expect(classifyError(apiError(status), NOW).verdict).toBe('fail');
  });

  it.each([408, 409, 429, 500, 502, 503])('retries a %i', (status) => {
    expect(classifyError(apiError(status, { type: 'whatever' }), NOW).verdict).toBe('retry');
  });

  it('stops the run at a 401: the key is refused, so every request would be', () => {
    expect(classifyError(apiError(401, { type: 'invalid_request_error', code: 'invalid_api_key' }), NOW)).toMatchObject({ verdict: 'stop-run', status: 401 });
  });

  it('stops the run when the account is out of credit, by error type or code', () => {
    expect(classifyError(apiError(429, { type: 'insufficient_quota' }), NOW).verdict).toBe('stop-run');
    expect(classifyError(apiError(429, { type: 'requests', code: 'insufficient_quota' }), NOW).verdict).toBe('stop-run');
  });

  it('does not read the message: a rate-limit message on a quota error still stops the run', () => {
    const error = apiError(429, { type: 'insufficient_quota', message: 'Rate limit reached, retry in 1s' });
    expect(classifyError(error, NOW).verdict).toBe('stop-run');
    const other = apiError(429, { type: 'rate_limit_exceeded', message: 'You exceeded your current quota' });
    expect(classifyError(other, NOW).verdict).toBe('retry');
  });

  it('retries connection errors and timeouts', () => {
    expect(classifyError(new APIConnectionError({ message: 'socket hang up' }), NOW).verdict).toBe('retry');
    expect(classifyError(new APIConnectionTimeoutError(), NOW).verdict).toBe('retry');
  });

  it('obeys x-should-retry for statuses that may be retried', () => {
    expect(classifyError(apiError(500, {}, { 'x-should-retry': 'false' }), NOW).verdict).toBe('fail');
    expect(classifyError(apiError(418, {}, { 'x-should-retry': 'true' }), NOW).verdict).toBe('retry');
    expect(classifyError(apiError(400, {}, { 'x-should-retry': 'true' }), NOW).verdict).toBe('fail');
  });

  it('carries status, type, code and request id', () => {
    const error = classifyError(apiError(429, { type: 'rate_limit_exceeded', code: 'rpm' }, { 'x-request-id': 'req_1', 'retry-after-ms': '1500' }), NOW);
    expect(error).toMatchObject({ status: 429, type: 'rate_limit_exceeded', code: 'rpm', requestId: 'req_1', retryAfterMs: 1500 });
  });
});

describe('classifyError with a redactor', () => {
  const key = '0123456789abcdef0123456789abcdef';
  const redact = (text: string) => text.split(key).join('[redacted]');

  it('redacts a long message before cutting it, so a key at the cut cannot escape', () => {
    const error = apiError(400, { message: `${'x'.repeat(480)} ${key}` }, { 'x-request-id': key });
    const { message, requestId } = classifyError(error, NOW, redact);
    expect(message).not.toContain(key.slice(0, 8));
    expect(requestId).not.toContain(key.slice(0, 8));
  });

  it('redacts the error type too, and keeps it on one line', () => {
    const { message } = classifyError(apiError(400, { type: `t_${key}\nsecond line`, message: 'm' }), NOW, redact);
    expect(message).not.toContain(key.slice(0, 8));
    expect(message).not.toContain('\n');
  });
});

describe('createRedactor', () => {
  it('redacts a key given with spaces around it, which goes out (and comes back) trimmed', () => {
    const key = '0123456789abcdef0123456789abcdef';
    expect(createRedactor([` ${key} `])(`echo: ${key}`)).toBe('echo: [redacted]');
  });
});

describe('parseRetryAfter', () => {
  it('prefers retry-after-ms over retry-after', () => {
    expect(parseRetryAfter(new Headers({ 'retry-after-ms': '250', 'retry-after': '3' }), NOW)).toBe(250);
  });
  it('reads retry-after as seconds or as an HTTP date', () => {
    expect(parseRetryAfter(new Headers({ 'retry-after': '2' }), NOW)).toBe(2000);
    expect(parseRetryAfter(new Headers({ 'retry-after': new Date(NOW + 5000).toUTCString() }), NOW)).toBe(5000);
  });
  it('ignores nonsense and absurdly long waits', () => {
    expect(parseRetryAfter(new Headers({ 'retry-after': 'soon' }), NOW)).toBeUndefined();
    expect(parseRetryAfter(new Headers({ 'retry-after': '86400' }), NOW)).toBeUndefined();
    expect(parseRetryAfter(new Headers({ 'retry-after-ms': '-5' }), NOW)).toBeUndefined();
  });
});

describe('backoffDelay', () => {
  it('doubles per attempt, stays within half to full of the nominal delay, and is capped', () => {
    expect(backoffDelay(1, { random: () => 0 })).toBe(250);
    expect(backoffDelay(1, { random: () => 0.999999 })).toBe(500);
    expect(backoffDelay(3, { random: () => 0 })).toBe(1000);
    expect(backoffDelay(30, { random: () => 0.999999, maxMs: 8000 })).toBe(8000);
  });
});
