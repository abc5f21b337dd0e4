/** Roughly what a value takes in memory: two bytes a character of its strings, plus a little for each value. */
export function approximateBytes(value: unknown): number {
  if (typeof value === 'string') return 16 + 2 * value.length;
  if (typeof value !== 'object' || value === null) return 16;
  let bytes = 32;
  if (Array.isArray(value)) for (const item of value) bytes += 8 + approximateBytes(item);
  else for (const key in value) bytes += 16 + approximateBytes((value as Record<string, unknown>)[key]);
  return bytes;
}
