/**
 * The error log: the one place that writes diagnostics. Built on pino (structured, asynchronous,
 * cheap when a level is off). `console` is not used anywhere else in the program.
 */
import { createRequire } from 'node:module';
import type * as PinoModule from 'pino';
import type { Logger, Level } from 'pino';

export type LogLevel = Level | 'silent';
export type { Logger };

type Pino = typeof PinoModule;
let pinoModule: Pino | null = null;

/**
 * pino, loaded on first use: about 8 MiB of RSS (measured on Node 20), which a process that never
 * logs does not pay, such as an app worker serving without errors (each of `portico app`'s
 * workers is its own process). Synchronous (pino is CommonJS), so `log()` stays synchronous.
 */
function loadPino(): Pino {
  return (pinoModule ??= createRequire(import.meta.url)('pino') as Pino);
}

/** How error log lines are written: JSON, or text for a person; `auto` is text on a terminal (TTY), JSON elsewhere. */
export type LogFormat = 'auto' | 'json' | 'text';

/**
 * The stream that turns pino's JSON into text lines (pino-pretty, loaded only when used): time,
 * level word, message, then the fields, and an error's stack as a stack.
 */
function textStream(fd: 1 | 2): NodeJS.WritableStream {
  const pretty = createRequire(import.meta.url)('pino-pretty') as (options: Record<string, unknown>) => NodeJS.WritableStream;
  const tty = (fd === 2 ? process.stderr : process.stdout).isTTY === true;
  return pretty({ destination: fd, sync: false, colorize: tty, translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l', ignore: 'hostname', singleLine: false });
}

/** Whether a destination gets text: `text`, or `auto` on a terminal; a file always gets JSON (log shippers read it). */
function isText(format: LogFormat, destination: string): boolean {
  if (destination !== 'stderr' && destination !== 'stdout') return false;
  if (format === 'text') return true;
  return format === 'auto' && (destination === 'stderr' ? process.stderr : process.stdout).isTTY === true;
}

/** The default error log (stderr, level info), created by the first `log()` unless `setLogger` came first. */
let root: Logger | null = null;

/** Builds a logger writing JSON lines to stderr, stdout or a file (appended, created if missing). */
export function createLogger(options: { level: LogLevel; destination: 'stderr' | 'stdout' | string; format?: LogFormat }): Logger {
  const { pino } = loadPino();
  const fd = options.destination === 'stderr' ? 2 : options.destination === 'stdout' ? 1 : undefined;
  const dest = fd !== undefined && isText(options.format ?? 'auto', options.destination) ? textStream(fd) : pino.destination(fd !== undefined ? { fd, sync: false } : { dest: options.destination, mkdir: true, sync: false });
  return pino({ level: options.level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, dest);
}

/** The destination and settings `useErrorLog` set the root logger up with (a file's stream can be reopened). */
let configured: { level: LogLevel; destination: string; format: LogFormat; stream: { reopen?(): void; flushSync?(): void; end(): void } } | null = null;

/**
 * Sets the process's error log from the config (level and destination), and reopens its file:
 * a reload after logrotate moved the file writes to a new one at the same path, as the access
 * log does (each generation opens its own). The same file keeps its stream (SonicBoom's reopen);
 * another destination gets a new logger, the old stream flushed and closed.
 */
export function useErrorLog(options: { level: LogLevel; destination: 'stderr' | 'stdout' | string; format?: LogFormat }): void {
  const isFile = options.destination !== 'stderr' && options.destination !== 'stdout';
  const format = options.format ?? 'auto';
  if (configured && root && configured.destination === options.destination && configured.format === format) {
    root.level = options.level;
    configured.level = options.level;
    if (isFile) configured.stream.reopen?.();
    return;
  }
  const previous = configured;
  const { pino } = loadPino();
  const fd = options.destination === 'stderr' ? 2 : options.destination === 'stdout' ? 1 : undefined;
  const stream = fd !== undefined && isText(format, options.destination) ? (textStream(fd) as unknown as { end(): void }) : pino.destination(fd !== undefined ? { fd, sync: false } : { dest: options.destination, mkdir: true, sync: false });
  root?.flush();
  root = pino({ level: options.level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, stream as never);
  configured = { level: options.level, destination: options.destination, format, stream };
  if (previous && previous.destination !== 'stderr' && previous.destination !== 'stdout') {
    try {
      previous.stream.flushSync?.();
    } catch {
      // Nothing buffered.
    }
    previous.stream.end();
  }
}

/** Opens the error log's file again at its path (SIGUSR1 after logrotate moved it); nothing for stderr/stdout. */
export function reopenErrorLog(): void {
  if (configured && configured.destination !== 'stderr' && configured.destination !== 'stdout') configured.stream.reopen?.();
}

/** The process-wide error log. */
export function log(): Logger {
  return (root ??= createLogger({ level: 'info', destination: 'stderr' }));
}

export function setLogger(logger: Logger): void {
  root = logger;
  configured = null;
}

/** Writes out what the error log buffered, if anything was ever logged (it does not create the log to flush it). */
export function flushLog(): void {
  root?.flush();
}

/** Writes a line for a person at the terminal (CLI banners, help). Not a diagnostic: no JSON. */
export function say(line: string): void {
  process.stdout.write(line.endsWith('\n') ? line : `${line}\n`);
}

/** Writes a line for a person to stderr (CLI errors). */
export function complain(line: string): void {
  process.stderr.write(line.endsWith('\n') ? line : `${line}\n`);
}
