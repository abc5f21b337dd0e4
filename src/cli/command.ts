import type { Argv, Options } from 'yargs';
import { NightshiftError } from '../common/errors.js';
import { FLAGS, type FlagKey, type FlagName, type FlagSpec, type NumberRange } from './flags.js';
import type { CliIO } from './io.js';
import { STDIN_ARG, STDIN_PLACEHOLDER } from './stdin.js';

/** The positional arguments of a command: one or more paths. */
export interface Positional {
  /** The name yargs gives them, as in the command's `usage`. */
  name: string;
  /** Shown under `Positionals` in `--help`; none shows the bare name. */
  description?: string;
  /** The refusal when none is given. */
  missing: string;
}

/** What a command takes, as data: `main.ts` declares it to yargs and {@link resolveCommand} checks argv against it. */
export interface CommandSpec {
  /** The yargs command: its name and positional arguments (`run <files..>`). */
  usage: string;
  /** One line for `--help`. */
  description: string;
  positional?: Positional;
  /** The keys in {@link FLAGS} of the flags it takes, in `--help` order. */
  flags: readonly FlagKey[];
}

/** A command: what it takes, and what it does with argv once yargs has parsed it. Resolves to the exit status. */
export interface Command extends CommandSpec {
  run(argv: Record<string, unknown>, io: CliIO): Promise<number>;
}

/** The value a flag resolves to: its type, `undefined` when it has no default and is not given. */
type FlagValue<F> = F extends { type: 'boolean' }
  ? boolean
  : F extends { type: 'number'; range: 'server' }
    ? unknown
    : F extends { type: 'number'; default: number }
      ? number
      : F extends { type: 'number' }
        ? number | undefined
        : F extends { choices: readonly (infer C)[]; default: string }
          ? C
          : F extends { choices: readonly (infer C)[] }
            ? C | undefined
          : F extends { default: string }
            ? string
            : string | undefined;

/** The checked values of the flags `K`, keyed as they are spelled (`max-attempts`, `out`). */
export type FlagValues<K extends FlagKey> = { [P in K as FlagName<P>]: FlagValue<(typeof FLAGS)[P]> };

/** A command line that is wrong: `E_USAGE`, exit 2, with a pointer to `--help`. */
export const usageError = (message: string): NightshiftError => new NightshiftError('E_USAGE', message);

/**
 * Checks argv against a command's spec, eagerly and before any file is read: every flag, then the positional
 * arguments. A bad value is refused with a message that names the flag and the value as given.
 */
export function resolveCommand<S extends CommandSpec>(
  spec: S,
  argv: Record<string, unknown>,
): { args: string[]; flags: FlagValues<S['flags'][number]> } {
  const flags: Record<string, unknown> = {};
  for (const key of spec.flags) {
    const name = flagName(key);
    flags[name] = resolveFlag(name, FLAGS[key], argv[name]);
  }
  const given = spec.positional ? ((argv[spec.positional.name] as unknown[] | undefined)?.map(String) ?? []) : [];
  const args = given.map((arg) => (arg === STDIN_PLACEHOLDER ? STDIN_ARG : arg));
  if (spec.positional && args.length === 0) throw usageError(spec.positional.missing);
  return { args, flags: flags as FlagValues<S['flags'][number]> };
}

function resolveFlag(name: string, flag: FlagSpec, raw: unknown): unknown {
  // A flag on by default (`--html`) stays on unless turned off (`--no-html`).
  if (flag.type === 'boolean') return raw === undefined ? flag.default : raw === true;
  if (raw === undefined) return flag.default;
  // A flag that takes a value and got none (`--budget $5` after the shell made `$5` empty) would otherwise run with
  // its default, with no cap at all for `--budget`: refused. yargs refuses the flag given last with nothing after it.
  if (raw === '') throw usageError(`Expected \`--${name}\` to have a value, got none`);
  if (flag.type === 'string') {
    if (flag.choices) {
      if (!flag.choices.includes(raw as string)) throw usageError(`Expected \`--${name}\` to be one of ${flag.choices.join(', ')}, got \`${String(raw)}\``);
      return raw;
    }
    // Given twice, a text flag arrives as an array; it has always counted as not given.
    return typeof raw === 'string' ? raw : flag.default;
  }
  // Plain decimal only: Number() also reads `0x10` as 16 and `1e3` as 1000, which nobody means by a budget.
  const decimal = typeof raw === 'string' && DECIMAL.test(raw.trim());
  // The server checks its own options and names what it refuses.
  if (flag.range === 'server') return decimal ? Number(raw) : raw;
  const value = typeof raw === 'string' ? (decimal ? Number(raw) : Number.NaN) : raw;
  if (!inRange(value, flag.range)) throw usageError(`Expected \`--${name}\` to be ${describeRange(flag.range)}, got \`${String(raw)}\``);
  return value;
}

const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)$/;

function inRange(value: unknown, { whole, min, max }: NumberRange): value is number {
  if (typeof value !== 'number' || !(whole ? Number.isInteger(value) : Number.isFinite(value))) return false;
  return value >= min && (max === undefined || value <= max);
}

function describeRange({ whole, min, max }: NumberRange): string {
  const kind = whole ? 'a whole number' : 'a number';
  return max === undefined ? `${kind} >= ${min}` : `${kind} from ${min} to ${max}`;
}

/** Declares a command's positional arguments and flags to yargs, for parsing and `--help`. */
export function declareCommand(y: Argv, spec: CommandSpec): Argv {
  const { positional } = spec;
  const withArgs = positional
    ? y.positional(positional.name, { type: 'string', array: true, ...(positional.description ? { description: positional.description } : {}) })
    : y;
  return withArgs.options(Object.fromEntries(spec.flags.map((key) => [flagName(key), yargsOption(FLAGS[key])])));
}

export function flagName(key: FlagKey): string {
  const flag: FlagSpec = FLAGS[key];
  return flag.name ?? key;
}

/** How yargs is told about one flag: what it parses and what `--help` shows. */
function yargsOption(flag: FlagSpec): Options {
  return {
    // A number flag is handed over as written, so that a refusal shows what was typed (`got \`$5\``), not NaN.
    ...(flag.type === 'number' ? {} : { type: flag.type }),
    // A flag that takes a value and is given none is refused by name.
    ...(flag.type === 'boolean' ? {} : { requiresArg: true }),
    description: flag.description,
    ...(flag.short !== undefined ? { alias: flag.short } : {}),
    ...(flag.default !== undefined ? { default: flag.default } : {}),
    ...(flag.type === 'string' && flag.choices ? { choices: flag.choices } : {}),
  };
}
