/**
 * The value types every section uses (durations, sizes, templates, listen addresses, IP blocks,
 * header operations), each as a schema that refuses bad input with the expected form and what it
 * got, plus the helpers that resolve them.
 */
import { z } from 'zod';
import { parseIpBlock } from '../../core/ip-list.js';
import { templateProblem } from '../../core/template.js';
import { parseDuration, parseSize } from '../../core/units.js';
import type { ResolvedHeaderOps } from '../resolved.js';

export const show = (value: unknown): string => {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'an object';
  return String(value);
};

/** A duration: milliseconds as a number, or a string like "250ms", "30s", "5m", "1h30m", "7d". */
export const duration = () =>
  z
    .custom<string | number>((value) => (typeof value === 'string' || typeof value === 'number') && parseDuration(value) !== undefined, {
      error: (issue) => `expected a duration like "1h", got ${show(issue.input)}`,
    })
    .transform((value) => parseDuration(value) as number);

/** Node timers hold at most 2^31-1 ms (~24.8 days); a longer socket timeout is cut short with a warning. */
const TIMER_MAX_MS = 2 ** 31 - 1;

/** A duration used as a Node timer: as `duration()`, but refused above ~24 days instead of truncated. */
export const timerDuration = () =>
  z
    .custom<string | number>(
      (value) => {
        if (typeof value !== 'string' && typeof value !== 'number') return false;
        const ms = parseDuration(value);
        return ms !== undefined && ms <= TIMER_MAX_MS;
      },
      {
        error: (issue) => {
          const input = issue.input;
          const ms = typeof input === 'string' || typeof input === 'number' ? parseDuration(input) : undefined;
          return ms === undefined ? `expected a duration like "1h", got ${show(input)}` : `expected a duration of at most "24d" (a Node timer limit), got ${show(input)}`;
        },
      },
    )
    .transform((value) => parseDuration(value) as number);

/** A size: bytes as a number, or a string like "512", "64kb", "10mb", "1g" (binary units). */
export const size = () =>
  z
    .custom<string | number>((value) => (typeof value === 'string' || typeof value === 'number') && parseSize(value) !== undefined, {
      error: (issue) => `expected a size like "10mb", got ${show(issue.input)}`,
    })
    .transform((value) => parseSize(value) as number);

export const regexSource = () =>
  z.string().superRefine((source, ctx) => {
    try {
      new RegExp(source);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: `expected a valid regular expression, got ${show(source)} (${(error as Error).message})` });
    }
  });

/** A string with variables ("$host", "$uri", "$1"…), checked for unknown variable names. */
export const template = () =>
  z.string().superRefine((text, ctx) => {
    const problem = templateProblem(text);
    if (problem) ctx.addIssue({ code: 'custom', message: `expected a template with known variables, got ${show(text)}: ${problem}` });
  });

export const redirectStatus = z.union([z.literal(301), z.literal(302), z.literal(303), z.literal(307), z.literal(308)], {
  error: (issue) => `expected a redirect status 301, 302, 303, 307 or 308, got ${show(issue.input)}`,
});

// A fixed response is final: 1xx are interim (RFC 9110 §15.2) and would break the framing.
export const httpStatus = z.number().int().min(200).max(599);

/** One listen address: ":8080", "8080", "127.0.0.1:8080", "[::1]:8080", "localhost:8080" or "unix:/path/to.sock". */
export const listenAddress = z.string().superRefine((text, ctx) => {
  if (!parseListen(text)) ctx.addIssue({ code: 'custom', message: `expected a listen address like ":8080", "127.0.0.1:8080", "[::1]:8080" or "unix:/path", got ${show(text)}` });
});

export type ListenAddress = { readonly kind: 'tcp'; readonly host: string; readonly port: number } | { readonly kind: 'unix'; readonly path: string };

/** Parses a listen address; an empty host means all interfaces (as nginx `listen 8080`). */
export function parseListen(text: string): ListenAddress | undefined {
  if (text.startsWith('unix:')) return text.length > 5 ? { kind: 'unix', path: text.slice(5) } : undefined;
  // Three separate forms. (One regex with an optional host and an optional ":" let the host take
  // digits of a bare port: "8080" matched as host "808", port 0, and was refused; and any host
  // text such as "a b" was accepted.)
  const match = /^(\d{1,5})$/.exec(text) ?? /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(text) ?? /^([A-Za-z0-9_.-]*):(\d{1,5})$/.exec(text);
  if (!match) return undefined;
  const [host, portText] = match.length === 2 ? ['', match[1] as string] : [match[1] as string, match[2] as string];
  const port = Number(portText);
  if (port > 65535) return undefined;
  return { kind: 'tcp', host, port };
}

/** Response header operations, applied in this order: remove, set (replace), add (append). */
export const headerOps = z.strictObject({
  /** Headers set on every response of this server/route, replacing any the handler set. */
  set: z.record(z.string(), z.string()).optional(),
  /** Headers appended to every response (a second value when the handler already set one). */
  add: z.record(z.string(), z.string()).optional(),
  /** Header names removed from every response (e.g. "X-Powered-By"). */
  remove: z.array(z.string()).optional(),
});

/** A header field name (RFC 9110 §5.1: a token), kept lower case. */
export const fieldName = z
  .string()
  .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'expected a header field name (a token: letters, digits and !#$%&\'*+.^_`|~-)')
  .transform((name) => name.toLowerCase());

/** "10.0.0.0/8", "192.168.1.7", "fd00::/8": an address or a CIDR block. */
export const cidr: z.ZodType<string> = z.string().superRefine((text, ctx) => {
  if (!parseIpBlock(text)) ctx.addIssue({ code: 'custom', message: `expected an IP address or CIDR block like "10.0.0.0/8" or "::1", got ${show(text)}` });
});

/** A name of letters, digits, "_", "." or "-" (upstreams, apps, zones). */
export const entryName = z.string().regex(/^[A-Za-z0-9_.-]+$/, 'expected a name of letters, digits, "_", "." or "-"');

export type ParsedHeaderOps = z.output<typeof headerOps>;

export const listenKey = (address: ListenAddress): string => (address.kind === 'unix' ? `unix:${address.path}` : `${address.host}:${address.port}`);

export function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * Route header ops merged over the server's: a route's `set` of a name replaces the server's `set`
 * and `add` of it, and a route's `remove` of a name drops the server's `set`/`add` of it. (Ops run
 * remove → set → add, so without this a route could not remove a header its server sets, and a
 * route `set` still got the server's `add` appended as a second value.)
 */
export function mergeHeaders(server: ParsedHeaderOps | undefined, route: ParsedHeaderOps | undefined): ResolvedHeaderOps {
  const routeRemoves = new Set((route?.remove ?? []).map((n) => n.toLowerCase()));
  const routeSets = new Set(Object.keys(route?.set ?? {}).map((n) => n.toLowerCase()));
  const overridden = (name: string): boolean => routeRemoves.has(name.toLowerCase()) || routeSets.has(name.toLowerCase());
  const set = new Map<string, [string, string]>();
  for (const [name, value] of Object.entries(server?.set ?? {})) if (!overridden(name)) set.set(name.toLowerCase(), [name, value]);
  for (const [name, value] of Object.entries(route?.set ?? {})) set.set(name.toLowerCase(), [name, value]);
  return {
    remove: [...new Set([...(server?.remove ?? []), ...(route?.remove ?? [])].map((n) => n.toLowerCase()))],
    set: [...set.values()],
    add: [...Object.entries(server?.add ?? {}).filter(([name]) => !overridden(name)), ...Object.entries(route?.add ?? {})],
  };
}

