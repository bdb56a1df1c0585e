/**
 * How the CLI speaks: human tables (cli-table3) by default, JSON with --json, colours only on a
 * terminal and never with NO_COLOR (https://no-color.org) or TERM=dumb.
 */
import Table from 'cli-table3';
import pc from 'picocolors';

export function colourEnabled(stream: NodeJS.WriteStream = process.stdout, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0') return true;
  return Boolean(stream.isTTY) && env.TERM !== 'dumb';
}

export const colours = pc.createColors(colourEnabled());
export const errColours = pc.createColors(colourEnabled(process.stderr));

const STATE_COLOUR: Record<string, (s: string) => string> = {
  running: colours.green,
  ready: colours.cyan,
  sleeping: colours.blue,
  waiting: colours.yellow,
  stopped: colours.magenta,
  zombie: colours.red,
  terminated: colours.dim,
};

export const state = (s: string): string => (STATE_COLOUR[s] ?? ((x: string) => x))(s);

/** A borderless table, like ps: a bold header, then rows. */
export function table(head: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const t = new Table({
    head: head.map((h) => colours.bold(h)),
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 2, compact: true },
    chars: { top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '', left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '' },
  });
  for (const r of rows) t.push(r.map(String));
  return t.toString().replace(/[ \t]+$/gm, '');
}

/** Key/value lines, aligned. */
export function fields(pairs: readonly (readonly [string, unknown])[]): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${colours.bold(k.padEnd(width))}  ${typeof v === 'string' ? v : JSON.stringify(v)}`).join('\n');
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function print(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** "3s", "5m", "2h", "4d": how long ago an epoch-ms instant was. */
export function ago(at: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - at) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

export const clock = (at: number): string => new Date(at).toISOString().slice(11, 23);

/** One line of at most `max` characters (JSON for non-strings). */
export function short(v: unknown, max = 80): string {
  const s = (typeof v === 'string' ? v : JSON.stringify(v) ?? '').replace(/\s+/g, ' ');
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}
