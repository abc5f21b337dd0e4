import { closest } from '../jobs/suggest.js';
import { flagName, type CommandSpec } from './command.js';
import { FLAGS, type FlagSpec } from './flags.js';

/** Flags yargs gives every command. */
const BUILT_IN = ['help', 'version'];

/**
 * What is wrong with a command line yargs refused, when it is a name it does not know: the command, or each flag the
 * command does not take, with the one most likely meant (`--concurency` → `--concurrency`). Flags are named as typed,
 * once each. Undefined when every name is known (the refusal is about something else).
 */
export function describeUnknownNames(args: readonly string[], commands: readonly CommandSpec[]): string | undefined {
  const names = commands.map((command) => command.usage.split(' ')[0]!);
  const words = args.filter((arg) => !arg.startsWith('-'));
  const spec = commands.find((command) => command.usage.split(' ')[0] === words[0]);
  if (spec === undefined) {
    if (words[0] === undefined) return undefined;
    const command = closest(words[0], names);
    return `Unknown command ${words[0]}${command === undefined ? `: the commands are ${names.join(', ')}` : ` (did you mean ${command}?)`}`;
  }
  const long = new Set([...BUILT_IN, ...spec.flags.map(flagName)]);
  const booleans = new Set(spec.flags.filter((key) => FLAGS[key].type === 'boolean').map(flagName));
  const short = new Set(spec.flags.flatMap((key) => {
    const flag: FlagSpec = FLAGS[key];
    return flag.short === undefined ? [] : [flag.short];
  }));
  const unknown = new Set<string>();
  for (const arg of args) {
    if (arg === '--') break;
    if (arg.startsWith('--')) {
      const name = arg.slice(2).split('=')[0]!;
      const negated = name.startsWith('no-') && booleans.has(name.slice(3));
      if (!long.has(name) && !negated) unknown.add(`--${name}`);
    } else if (/^-[^\d.-]/.test(arg)) {
      // A group of one-letter flags (`-cq`), or one with its value attached (`-c4`).
      for (const letter of arg.slice(1).split('=')[0]!.replace(/\d.*$/, '')) if (!short.has(letter) && letter !== 'h') unknown.add(`-${letter}`);
    }
  }
  if (unknown.size === 0) return undefined;
  return [...unknown]
    .map((flag) => {
      const meant = flag.startsWith('--') ? closest(flag.slice(2), long) : undefined;
      return `Unknown flag ${flag}${meant === undefined ? '' : ` (did you mean --${meant}?)`}`;
    })
    .join('; ');
}
