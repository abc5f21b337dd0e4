import { invalidRequest, type ApiError } from './api-error.js';

// Readers for request-body fields that fail the way the real API does: a 400 naming the field in `param`.

export const asRecord = (value: unknown): Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};

export const missing = (name: string): ApiError =>
  invalidRequest(`Missing required parameter: '${name}'.`, name, 'missing_required_parameter');

export function requireString(fields: Record<string, unknown>, name: string): string {
  const value = fields[name];
  if (value === undefined || value === null || value === '') throw missing(name);
  if (typeof value !== 'string') {
    throw invalidRequest(`Invalid type for '${name}': expected a string.`, name, 'invalid_type');
  }
  return value;
}

export function optionalInteger(
  fields: Record<string, unknown>,
  name: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  const value = fields[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw invalidRequest(`Invalid type for '${name}': expected an integer.`, name, 'invalid_type');
  }
  if (value < min || value > max) {
    const bounds = max === Number.MAX_SAFE_INTEGER ? `at least ${min}` : `between ${min} and ${max}`;
    throw invalidRequest(`Invalid '${name}': ${value}. Expected a value ${bounds}.`, name, 'invalid_value');
  }
  return value;
}

export function optionalEnum(fields: Record<string, unknown>, name: string, values: string[]): string | undefined {
  const value = fields[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || !values.includes(value)) {
    throw invalidRequest(
      `Invalid value: '${String(value)}'. Supported values are: ${values.map((v) => `'${v}'`).join(', ')}.`,
      name,
      'invalid_value',
    );
  }
  return value;
}
