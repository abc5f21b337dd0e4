/** How the CLI writes a count of things and a number of seconds. */

/** `1 job`, `2 jobs`; `many` for a plural that is not `<one>s` (`retry`, `retries`). */
export function count(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** Seconds as given, never rounded to a whole number: `0.5 s`, `30 s`. */
export function formatSeconds(seconds: number): string {
  return `${Number(seconds.toFixed(3))} s`;
}
