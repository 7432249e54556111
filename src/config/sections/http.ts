/**
 * The process-wide sections: `log` (error and access logs) and `http` (protocol settings and
 * limits of every listener), plus `workers`, `gracefulTimeout` and `pidFile`. Defaults are
 * declared once, in the schema.
 */
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import type { ResolvedConfig } from '../resolved.js';
import { LOG_VARIABLES, templateProblem } from '../../core/template.js';
import { cidr, size, timerDuration } from './values.js';

const logLevel = z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

/** Logs. */
export const logSection = z.strictObject({
  /** Error log level. */
  level: logLevel.prefault('info'),
  /** Error log destination: "stderr", "stdout" or a file path. */
  error: z.string().min(1).prefault('stderr'),
  /** Error log lines: `auto` (text on a terminal, JSON elsewhere), `json`, or `text` (on stderr/stdout; a file always gets JSON). */
  format: z.enum(['auto', 'json', 'text']).prefault('auto'),
  /** Access log; `false` turns it off. */
  access: z
    .union([
      z.literal(false),
      z.strictObject({
        /**
         * `combined` (nginx/Apache), `json` (one object per line), or a line of your own with
         * nginx `log_format` variables: `"$remote_addr [$time_local] \"$request\" $status
         * $request_time $upstream_addr $upstream_status $upstream_response_time $cache_status"`.
         */
        format: z
          .string()
          .superRefine((text, ctx) => {
            if (text === 'combined' || text === 'json') return;
            if (!text.includes('$')) ctx.addIssue({ code: 'custom', message: `expected "combined", "json" or a format with $variables, got ${JSON.stringify(text)}` });
            const problem = templateProblem(text, LOG_VARIABLES);
            if (problem) ctx.addIssue({ code: 'custom', message: problem });
          })
          .prefault('combined'),
        /** "stdout", "stderr" or a file path. */
        path: z.string().min(1).prefault('stdout'),
      }),
    ])
    .prefault({}),
});

/** HTTP protocol settings for all listeners. */
export const httpSection = z.strictObject({
  /** `Server` response header value; `false` hides it. */
  serverHeader: z.union([z.string().min(1).regex(/^[\x20-\x7e]+$/, 'expected printable ASCII (no control characters)'), z.literal(false)]).prefault('Portico'),
  /** A Host that no server names: `default` (the listener's default server), or answer 404 or 421 (RFC 9110 §15.5.20). */
  unknownHost: z.union([z.literal('default'), z.literal(404), z.literal(421)]).prefault('default'),
  /** Idle keep-alive connections are closed after this (nginx `keepalive_timeout`). */
  keepAliveTimeout: timerDuration().prefault('75s'),
  /**
   * Time to receive a request head (nginx `client_header_timeout`); then 408 and close. A total
   * deadline from the head's first byte, not reset by each byte received, so a client trickling
   * its head (slowloris) is cut at this bound; a new connection that sends nothing is closed
   * after it too. At most `requestTimeout`. `0` = none. Unset: "60s", or `requestTimeout` when shorter.
   */
  headersTimeout: timerDuration().optional(),
  /** Time to receive the whole request, head and body; then 408 (or the connection is closed when the answer has started). `0` = none. */
  requestTimeout: timerDuration().prefault('300s'),
  /**
   * Longest pause between two reads of a request body (nginx `client_body_timeout`); then 408
   * and close, or the connection is cut when the answer has started. `0` = none.
   */
  bodyTimeout: timerDuration().prefault('60s'),
  /** Longest request target, the URI of the request line (nginx: a request line longer than one `large_client_header_buffers` buffer, 8k); longer → 414 (RFC 9112 §3, RFC 9110 §15.5.15). */
  maxUriLength: size().prefault('8kb'),
  /** Largest request header section, the header fields without the request line (nginx `large_client_header_buffers`); larger → 431 (RFC 6585 §5). */
  maxHeaderSize: size().prefault('16kb'),
  /** Most header fields in one request (Apache `LimitRequestFields`); more → 431 (RFC 6585 §5). */
  maxHeaders: z.number().int().min(1).max(10_000).prefault(100),
  /**
   * Largest request body (nginx `client_max_body_size`); `0` = no limit. A Content-Length above
   * it is answered 413 before any of the body is read; a chunked body is counted while it
   * streams, and at the limit the upstream request is aborted (it never receives more than the
   * limit), the client gets 413 and the connection closes. Servers and routes may set their own.
   */
  maxBodySize: size().prefault('1mb'),
  /**
   * Longest time a client may take nothing of a response (nginx `send_timeout`): when no byte of
   * the response could be written for this long, the connection is closed. `0` = none.
   */
  sendTimeout: timerDuration().prefault('60s'),
  /**
   * Request header names with underscores are dropped (nginx `underscores_in_headers off`): a
   * backend that builds a CGI/WSGI environ maps `_` and `-` alike, so `X_Real_IP` or
   * `Content_Length` would land on the same variable as the field this server checked.
   */
  underscoresInHeaders: z.boolean().prefault(false),
  /**
   * Request header names with characters other than letters, digits and `-` (and `_` as above)
   * are dropped, as are lookalikes of framing fields (`Transfer--Encoding`, `Content_Length`):
   * nginx `ignore_invalid_headers on`. `false` passes them on.
   */
  ignoreInvalidHeaders: z.boolean().prefault(true),
  /** Requests served on one connection before it is closed (nginx `keepalive_requests`): the last one is answered with `Connection: close`. */
  maxRequestsPerConnection: z.number().int().min(1).prefault(1000),
  /** Peers trusted to say who the client is: from them, the client address is taken from X-Forwarded-For (nginx `set_real_ip_from`, recursive). */
  trustedProxies: z.array(cidr).prefault([]),
  /**
   * Open client connections per node, all edge workers together; a connection over it is
   * answered 503 with `Retry-After: 1` and closed without its request being read. 0 = no cap.
   */
  maxConnections: z.number().int().min(0).prefault(0),
});


/**
 * The head deadline lies within the whole-request deadline (node:http refuses to start otherwise).
 * Unset, it is 60 s (nginx `client_header_timeout`), or the request deadline when that is shorter.
 */
function resolveDeadlines(http: ParsedHttp, problems: string[]): { headersTimeout: number; requestTimeout: number } {
  const requestTimeout = http.requestTimeout;
  const given = http.headersTimeout;
  const headersTimeout = given ?? (requestTimeout > 0 ? Math.min(60_000, requestTimeout) : 60_000);
  if (given !== undefined && requestTimeout > 0 && given > requestTimeout) {
    problems.push(`http.headersTimeout: expected at most http.requestTimeout (${requestTimeout} ms), got ${given} ms`);
  }
  return { headersTimeout, requestTimeout };
}

/** The default pid file of a config file: one per config path, in the temporary folder (`portico reload` finds it again from the same path). */
export function defaultPidFile(source: string): string {
  return join(tmpdir(), `portico-${createHash('sha256').update(source).digest('hex').slice(0, 12)}.pid`);
}

const outputPath = (path: string, baseDir: string): string =>
  path === 'stdout' || path === 'stderr' || isAbsolute(path) ? path : resolvePath(baseDir, path);


export type ParsedLog = z.output<typeof logSection>;
export type ParsedHttp = z.output<typeof httpSection>;

export function resolveLog(log: ParsedLog, baseDir: string): ResolvedConfig['log'] {
  const access = log.access;
  return {
    level: log.level,
    error: outputPath(log.error, baseDir),
    format: log.format,
    access: access === false ? null : { format: access.format, path: outputPath(access.path, baseDir) },
  };
}

export function resolveHttp(http: ParsedHttp, problems: string[]): ResolvedConfig['http'] {
  const { headersTimeout, requestTimeout } = resolveDeadlines(http, problems);
  return {
    serverHeader: http.serverHeader === false ? null : http.serverHeader,
    unknownHost: http.unknownHost,
    keepAliveTimeout: http.keepAliveTimeout,
    headersTimeout,
    requestTimeout,
    bodyTimeout: http.bodyTimeout,
    maxUriLength: http.maxUriLength,
    maxHeaderSize: http.maxHeaderSize,
    maxHeaders: http.maxHeaders,
    maxBodySize: http.maxBodySize,
    sendTimeout: http.sendTimeout,
    underscoresInHeaders: http.underscoresInHeaders,
    ignoreInvalidHeaders: http.ignoreInvalidHeaders,
    maxRequestsPerConnection: http.maxRequestsPerConnection,
    trustedProxies: http.trustedProxies,
    maxConnections: http.maxConnections,
  };
}
