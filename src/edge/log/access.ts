/**
 * The access log, written after each response (the last phase of the pipeline): nginx/Apache
 * `combined` lines, JSON lines, or a format of nginx `log_format` variables, through sonic-boom (pino's asynchronous destination: buffered
 * writes, no blocking on the hot path, flushed at exit).
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import sonicBoom from 'sonic-boom';
import { tlsInfo } from '../http/h2.js';
import type { ListenerInfo, RequestContext } from '../context.js';
import { requestEnd, upstreamAttempt, type UpstreamAttemptMessage } from '../observe.js';
import { compileTemplateWith, type Getter } from '../variables.js';

// sonic-boom is CommonJS: its class is a property of the default export.
const { SonicBoom } = sonicBoom;

export interface AccessLog {
  write(ctx: RequestContext): void;
  flush(): void;
  /** Opens its file again at the same path (after logrotate renamed it: SIGUSR1, nginx's reopen). */
  reopen(): void;
  /** A line for an answer the HTTP parser made before any request existed (400, 408, 414, 431). */
  writeUnparsed(answer: UnparsedAnswer): void;
  close(): void;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number): string => (n < 10 ? `0${n}` : String(n));

// `$time_local` changes once a second; format it once a second.
let clockSecond = -1;
let clockText = '';
function timeLocal(now: number): string {
  const second = Math.floor(now / 1000);
  if (second !== clockSecond) {
    const d = new Date(second * 1000);
    const offset = -d.getTimezoneOffset();
    const sign = offset >= 0 ? '+' : '-';
    const abs = Math.abs(offset);
    clockText = `${pad(d.getDate())}/${MONTHS[d.getMonth()]}/${d.getFullYear()}:${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${sign}${pad(Math.floor(abs / 60))}${pad(abs % 60)}`;
    clockSecond = second;
  }
  return clockText;
}

// nginx escapes '"', '\' and non-printable bytes as \xHH in logged strings, with upper-case hex
// digits (ngx_http_log_escape), so lines are byte-for-byte what nginx log parsers expect.
// eslint-disable-next-line no-control-regex -- matching control bytes is the point
const UNSAFE = /["\\\x00-\x1f\x7f-\xff]/g;
const quote = (text: string | undefined): string => (text ? text.replace(UNSAFE, (c) => `\\x${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`) : '-');

function remoteUser(ctx: RequestContext): string {
  if (ctx.forward?.user) return quote(ctx.forward.user);
  const auth = ctx.req.headers.authorization;
  if (!auth || !auth.startsWith('Basic ')) return '-';
  const decoded = Buffer.from(auth.slice(6), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return quote(colon === -1 ? decoded : decoded.slice(0, colon));
}

function combinedLine(ctx: RequestContext): string {
  const req = ctx.req;
  const request = `${req.method} ${req.url} HTTP/${req.httpVersion}`;
  const line = `${ctx.clientAddress} - ${remoteUser(ctx)} [${timeLocal(Date.now())}] "${quote(request)}" ${ctx.status} ${ctx.bodyBytes} "${quote(req.headers.referer)}" "${quote(req.headers['user-agent'])}"`;
  return ctx.forward ? `${line}${forwardFields(ctx)}\n` : `${line}\n`;
}

/**
 * The forward proxy's fields after a combined line (as nginx `log_format`s append
 * `$upstream_addr $request_time`): the address connected to, bytes client → destination (up) and
 * destination → client (down, also the line's byte count), and the duration.
 */
function forwardFields(ctx: RequestContext): string {
  const forward = ctx.forward as NonNullable<RequestContext['forward']>;
  const cache = ctx.cacheStatus === '' ? '' : ` cache=${cacheVerdict(ctx.cacheStatus)}`;
  return ` dest=${forward.destination || '-'} up=${forward.bytesUp} down=${ctx.bodyBytes} ms=${Math.round(performance.now() - ctx.startedAt)}${cache}`;
}

/**
 * One word for a response's `Cache-Status` (RFC 9211), in the spirit of nginx's
 * `$upstream_cache_status`: `hit`, `stale` (a stale copy served), `collapsed` (a waiter served by
 * another request's fetch), `revalidated` (a 304 freshened it), `expired` (stale, fetched again),
 * or the `fwd` reason (`miss`, `vary-miss`, `bypass`, `method`, `request`).
 */
export function cacheVerdict(status: string): string {
  if (status.includes('; hit')) return status.includes('detail=stale') ? 'stale' : 'hit';
  if (status.includes('; collapsed')) return 'collapsed';
  if (status.includes('fwd=stale')) return status.includes('fwd-status=304') ? 'revalidated' : status.includes('detail=stale') ? 'stale' : 'expired';
  return /fwd=([a-z-]+)/.exec(status)?.[1] ?? '-';
}

function tlsFields(req: RequestContext['req']): { tls_version: string | null; tls_cipher: string | null } {
  const info = tlsInfo(req);
  return { tls_version: info.version, tls_cipher: info.cipher };
}

function jsonLine(ctx: RequestContext): string {
  const req = ctx.req;
  return `${JSON.stringify({
    time: new Date().toISOString(),
    remote_addr: ctx.clientAddress,
    method: req.method,
    uri: req.url,
    protocol: `HTTP/${req.httpVersion}`,
    host: ctx.host,
    status: ctx.status,
    body_bytes_sent: ctx.bodyBytes,
    duration_ms: Math.round((performance.now() - ctx.startedAt) * 1000) / 1000,
    route: ctx.route?.id ?? null,
    referer: req.headers.referer ?? null,
    user_agent: req.headers['user-agent'] ?? null,
    ...(ctx.listener.scheme === 'https' ? tlsFields(req) : {}),
    ...(ctx.cacheStatus !== '' ? { cache: cacheVerdict(ctx.cacheStatus) } : {}),
    ...(ctx.forward ? { destination: ctx.forward.destination || null, bytes_up: ctx.forward.bytesUp, bytes_down: ctx.bodyBytes, user: ctx.forward.user } : {}),
  })}\n`;
}

/**
 * The access log is the first observer of `portico:request:end` (edge/observe.ts). One
 * subscriber serves every access log of the process: it writes each request to the log of the
 * generation that served it, where that request's route (or server, or forward proxy) has
 * logging on. It is subscribed while at least one access log is open, so a config without one
 * leaves the channel without subscribers and the request path without a close listener.
 */
function logRequest(message: unknown): void {
  const ctx = message as RequestContext;
  const accessLog = ctx.generation.accessLog;
  if (accessLog === null) return;
  const enabled = ctx.forward ? (ctx.generation.forward?.config.accessLog ?? true) : ctx.route ? ctx.route.accessLog : (ctx.server?.config.accessLog ?? true);
  if (enabled) accessLog.write(ctx);
}

/** The upstream attempts of a request, as nginx writes them: one entry per attempt, ", "-separated. */
function recordAttempt(message: unknown): void {
  const attempt = message as UpstreamAttemptMessage;
  const ctx = attempt.ctx;
  const join = (list: string, item: string) => (list === '' ? item : `${list}, ${item}`);
  // A failed attempt's status as nginx's: 504 for a timeout, the upstream's own for a refused status, else 502.
  const status = attempt.ok ? String(ctx.res.statusCode) : attempt.code.startsWith('HTTP_') ? attempt.code.slice(5) : attempt.code === 'timeout' ? '504' : '502';
  ctx.upstreamAddr = join(ctx.upstreamAddr, attempt.server.replace(/^[a-z+]+:\/\//, ''));
  ctx.upstreamStatus = join(ctx.upstreamStatus, status);
  ctx.upstreamTime = join(ctx.upstreamTime, (attempt.durationMs / 1000).toFixed(3));
}

/** Variables only a log format knows (core/template.ts LOG_VARIABLES), read once the request is over. */
function logVariable(name: string): Getter | undefined {
  switch (name) {
    case 'status': return (ctx) => String(ctx.status);
    case 'body_bytes_sent': return (ctx) => String(ctx.bodyBytes);
    case 'request': return (ctx) => `${ctx.req.method} ${ctx.req.url} HTTP/${ctx.req.httpVersion}`;
    case 'server_protocol': return (ctx) => `HTTP/${ctx.req.httpVersion}`;
    // nginx: seconds with millisecond resolution.
    case 'request_time': return (ctx) => ((performance.now() - ctx.startedAt) / 1000).toFixed(3);
    case 'time_local': return () => timeLocal(Date.now());
    case 'time_iso8601': return () => new Date().toISOString();
    case 'msec': return () => (Date.now() / 1000).toFixed(3);
    case 'remote_user': return (ctx) => remoteUser(ctx);
    case 'upstream_addr': return (ctx) => ctx.upstreamAddr;
    case 'upstream_status': return (ctx) => ctx.upstreamStatus;
    case 'upstream_response_time': return (ctx) => ctx.upstreamTime;
    case 'cache_status': return (ctx) => (ctx.cacheStatus === '' ? '' : cacheVerdict(ctx.cacheStatus));
    case 'ssl_protocol': return (ctx) => (ctx.listener.scheme === 'https' ? (tlsInfo(ctx.req).version ?? '') : '');
    case 'ssl_cipher': return (ctx) => (ctx.listener.scheme === 'https' ? (tlsInfo(ctx.req).cipher ?? '') : '');
  }
  return undefined;
}

/** A format of the user's own: its variables escaped as nginx escapes them, "-" for an empty one (ngx_http_log_variable). */
function customLine(format: string): (ctx: RequestContext) => string {
  const line = compileTemplateWith(format, logVariable, (get) => (ctx) => {
    const value = get(ctx);
    return value === '' ? '-' : value === '-' ? value : quote(value);
  });
  return (ctx) => `${line(ctx)}\n`;
}

/** What is known of an answer the parser made: no request line, no headers, no route. */
export interface UnparsedAnswer {
  readonly clientAddress: string;
  readonly status: number;
  readonly bodyBytes: number;
  readonly listener: ListenerInfo;
}

/**
 * The answer as a request context with nothing parsed, for the formats' getters (they read only
 * these fields): the request line is "-" as nginx logs a request it could not read.
 */
function unparsedContext(answer: UnparsedAnswer): RequestContext {
  return {
    req: { method: '-', url: '-', httpVersion: '1.1', headers: {} },
    status: answer.status,
    bodyBytes: answer.bodyBytes,
    clientAddress: answer.clientAddress,
    listener: answer.listener,
    startedAt: performance.now(),
    cacheStatus: '',
    upstreamAddr: '',
    upstreamStatus: '',
    upstreamTime: '',
    forward: null,
    route: null,
    server: null,
    host: '',
    uri: '-',
    query: '',
  } as unknown as RequestContext;
}

function unparsedLine(format: string, line: (ctx: RequestContext) => string, answer: UnparsedAnswer): string {
  if (format === 'combined') return `${answer.clientAddress} - - [${timeLocal(Date.now())}] "-" ${answer.status} ${answer.bodyBytes} "-" "-"\n`;
  if (format === 'json') return `${JSON.stringify({ time: new Date().toISOString(), remote_addr: answer.clientAddress, method: null, uri: null, status: answer.status, body_bytes_sent: answer.bodyBytes, unparsed: true })}\n`;
  return line(unparsedContext(answer));
}

let openLogs = 0;
/** Open logs whose format uses an `$upstream_` variable: while any is, attempts are recorded on the request. */
let upstreamLogs = 0;

export function createAccessLog(config: { format: string; path: string }): AccessLog {
  if (openLogs++ === 0) subscribe(requestEnd.name, logRequest);
  const wantsUpstream = config.format.includes('$upstream_') || config.format.includes('${upstream_');
  if (wantsUpstream && upstreamLogs++ === 0) subscribe(upstreamAttempt.name, recordAttempt);
  let open = true;
  const fd = config.path === 'stdout' ? 1 : config.path === 'stderr' ? 2 : undefined;
  const dest = new SonicBoom(fd !== undefined ? { fd, sync: false, minLength: 0 } : { dest: config.path, mkdir: true, append: true, sync: false, minLength: 0 });
  const format = config.format === 'json' ? jsonLine : config.format === 'combined' ? combinedLine : customLine(config.format);
  return {
    write(ctx) {
      dest.write(format(ctx));
    },
    flush() {
      try {
        dest.flushSync();
      } catch {
        // Nothing buffered, or the destination is gone: nothing to save.
      }
    },
    reopen() {
      if (open && fd === undefined) dest.reopen();
    },
    writeUnparsed(answer) {
      if (open) dest.write(unparsedLine(config.format, format, answer));
    },
    close() {
      if (!open) return;
      open = false;
      if (--openLogs === 0) unsubscribe(requestEnd.name, logRequest);
      if (wantsUpstream && --upstreamLogs === 0) unsubscribe(upstreamAttempt.name, recordAttempt);
      this.flush();
      if (fd === undefined) dest.end();
    },
  };
}
