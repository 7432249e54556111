/**
 * The error log: the one place that writes diagnostics. Built on pino (structured, asynchronous,
 * cheap when a level is off). `console` is not used anywhere else in the program.
 */
import { pino, type Logger, type Level } from 'pino';

export type LogLevel = Level | 'silent';
export type { Logger };

let root: Logger = createLogger({ level: 'info', destination: 'stderr' });

/** Builds a logger writing JSON lines to stderr, stdout or a file (appended, created if missing). */
export function createLogger(options: { level: LogLevel; destination: 'stderr' | 'stdout' | string }): Logger {
  const fd = options.destination === 'stderr' ? 2 : options.destination === 'stdout' ? 1 : undefined;
  const dest = pino.destination(fd !== undefined ? { fd, sync: false } : { dest: options.destination, mkdir: true, sync: false });
  return pino({ level: options.level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, dest);
}

/** The process-wide error log. */
export function log(): Logger {
  return root;
}

export function setLogger(logger: Logger): void {
  root = logger;
}

/** Writes a line for a person at the terminal (CLI banners, help). Not a diagnostic: no JSON. */
export function say(line: string): void {
  process.stdout.write(line.endsWith('\n') ? line : `${line}\n`);
}

/** Writes a line for a person to stderr (CLI errors). */
export function complain(line: string): void {
  process.stderr.write(line.endsWith('\n') ? line : `${line}\n`);
}
