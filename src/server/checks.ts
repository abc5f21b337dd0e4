import { NightshiftError } from '../common/errors.js';

// Option checks shared by the server options and fault rules. They throw `E_USAGE` because the values
// usually come from `nightshift serve` flags, and name the option the way the caller wrote it.

const show = (value: unknown): string =>
  typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value);

const fail = (name: string, expected: string, value: unknown): never => {
  throw new NightshiftError('E_USAGE', `Expected \`${name}\` to be ${expected}, got \`${show(value)}\``, {
    option: name,
    value,
  });
};

export function checkNumber(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    return fail(name, 'a finite number >= 0', value);
  }
  return value;
}

export function checkInteger(name: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
    return fail(name, `an integer ${range}`, value);
  }
  return value;
}

/** Like {@link checkInteger}, but `Infinity` is allowed too ("no limit"). */
export function checkCount(name: string, value: unknown): number {
  if (value === Number.POSITIVE_INFINITY) return value;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    return fail(name, 'an integer >= 0 or Infinity', value);
  }
  return value;
}

export function checkString(name: string, value: unknown): string {
  if (typeof value !== 'string' || value === '') return fail(name, 'a non-empty string', value);
  return value;
}

export function checkBoolean(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') return fail(name, 'a boolean', value);
  return value;
}

export function checkObject(name: string, value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail(name, 'an object', value);
  return value as Record<string, unknown>;
}

export function checkArray(name: string, value: unknown): unknown[] {
  if (!Array.isArray(value)) return fail(name, 'an array', value);
  return value;
}

export function checkOneOf<T extends string>(name: string, value: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) return fail(name, `one of ${allowed.map((item) => `'${item}'`).join(', ')}`, value);
  return value as T;
}

export function checkFunction<T>(name: string, value: T): T {
  if (typeof value !== 'function') return fail(name, 'a function', value);
  return value;
}
