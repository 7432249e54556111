/**
 * The uwsgi transport (nginx `uwsgi_pass`): one request per connection to a uWSGI server, in its
 * binary protocol (https://uwsgi-docs.readthedocs.io/en/latest/Protocol.html):
 *
 *   request  = header(modifier1 = 0 "WSGI", datasize u16 LE, modifier2 = 0) vars body
 *   vars     = *(keysize u16 LE, key, valsize u16 LE, value)   -- CGI/WSGI variables (RFC 3875 §4.1)
 *   response = an HTTP/1.x status line, header fields and the body, ended by closing the connection
 *
 * The body follows the vars as raw bytes and uWSGI reads exactly CONTENT_LENGTH of them, so the
 * length must be known before the first byte: a chunked request body is refused with 411 Length
 * Required (RFC 9110 §15.5.12) instead of being buffered (nginx buffers it to a temporary file;
 * we keep the proxy free of whole-body buffering). The response head is parsed strictly and
 * bounded; the body is streamed to the client with back-pressure both ways. Failures come back
 * as an Outcome, so the proxy handler's retries, balancing and passive health apply unchanged.
 */
import { connect, type Socket } from 'node:net';
import type { ResolvedUpstream } from '../../../config/resolved.js';
import { ErrorCodes, HttpError } from '../../../core/errors.js';
import { log } from '../../../core/log.js';
import type { RequestContext } from '../../context.js';
import { sendHead } from '../../http/respond.js';
import { DONE, type BodySink, type Outcome, type ResponseSink } from './attempt.js';
import { clientResponseHeaders } from './headers.js';

export type UwsgiAddress = { readonly kind: 'tcp'; readonly host: string; readonly port: number } | { readonly kind: 'unix'; readonly path: string };

/** "uwsgi://host:port" or "uwsgi+unix:/path" → where to connect; null for any other URL. */
export function parseUwsgiUrl(url: string): UwsgiAddress | null {
  if (url.startsWith('uwsgi+unix:')) return { kind: 'unix', path: url.slice('uwsgi+unix:'.length) };
  if (!url.startsWith('uwsgi://')) return null;
  const parsed = new URL(url);
  // IPv6 hosts come bracketed from URL; net.connect wants them bare.
  return { kind: 'tcp', host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(parsed.port) };
}

/** The largest response head accepted (status line + fields), as a bound on what we buffer. */
export const MAX_RESPONSE_HEAD = 64 * 1024;

/** A uwsgi packet: the 4-byte header and the vars. Throws a RangeError when a size passes 16 bits. */
export function encodeUwsgiRequest(vars: readonly (readonly [string, Buffer | string])[]): Buffer {
  const parts: Buffer[] = [Buffer.alloc(4)];
  let size = 0;
  for (const [key, value] of vars) {
    const k = Buffer.from(key, 'latin1');
    const v = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
    if (k.length > 0xffff || v.length > 0xffff) throw new RangeError(`uwsgi variable ${key} is longer than 65535 bytes`);
    const sizes = Buffer.alloc(2);
    sizes.writeUInt16LE(k.length);
    const valueSize = Buffer.alloc(2);
    valueSize.writeUInt16LE(v.length);
    parts.push(sizes, k, valueSize, v);
    size += 4 + k.length + v.length;
  }
  if (size > 0xffff) throw new RangeError(`uwsgi variables take ${size} bytes, more than 65535`);
  const header = parts[0] as Buffer;
  header.writeUInt8(0, 0); // modifier1 0: a WSGI/HTTP request
  header.writeUInt16LE(size, 1);
  header.writeUInt8(0, 3); // modifier2
  return Buffer.concat(parts, 4 + size);
}

/**
 * RFC 3875 §4.1.18: header fields become HTTP_* (upper case, "-" → "_"); fields of the same name
 * are joined into one value (Cookie with "; ", RFC 9113 §8.2.3, others with ", ", RFC 9110 §5.3).
 * Content-Type and Content-Length go as CONTENT_TYPE/CONTENT_LENGTH only (§4.1.2, §4.1.3).
 * A field name with "_" is dropped, as nginx does by default (`underscores_in_headers off`):
 * "X-Forwarded_For" would otherwise arrive as HTTP_X_FORWARDED_FOR, the variable the proxy's own
 * X-Forwarded-For fills.
 */
function headerVars(headers: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < headers.length; i += 2) {
    const name = (headers[i] as string).toLowerCase();
    if (name === 'content-type' || name === 'content-length' || name.includes('_')) continue;
    const key = `HTTP_${name.toUpperCase().replace(/-/g, '_')}`;
    const value = headers[i + 1] as string;
    const prior = out.get(key);
    out.set(key, prior === undefined ? value : `${prior}${name === 'cookie' ? '; ' : ', '}${value}`);
  }
  return out;
}

/** The CGI/WSGI variables of a request (nginx's uwsgi_params), with the forwarded header list. */
export function uwsgiVars(ctx: RequestContext, requestUri: string, headers: readonly string[], method = ctx.req.method ?? 'GET'): [string, Buffer | string][] {
  const req = ctx.req;
  const question = requestUri.indexOf('?');
  const peer = ctx.clientAddress.startsWith('::ffff:') && ctx.clientAddress.includes('.') ? ctx.clientAddress.slice(7) : ctx.clientAddress;
  const vars: [string, Buffer | string][] = [
    ['REQUEST_METHOD', method],
    ['REQUEST_URI', requestUri],
    // The decoded, normalised path (nginx `$document_uri`), as UTF-8 bytes: WSGI servers hand
    // PATH_INFO to the app as bytes (PEP 3333 "latin-1 strings"), frameworks decode UTF-8.
    ['PATH_INFO', Buffer.from(ctx.uri, 'utf8')],
    ['QUERY_STRING', question === -1 ? '' : requestUri.slice(question + 1)],
    ['SERVER_PROTOCOL', `HTTP/${req.httpVersion}`],
    ['SERVER_NAME', ctx.host || ctx.server?.primaryName || 'localhost'],
    ['SERVER_PORT', String(ctx.listener.port)],
    ['REMOTE_ADDR', peer],
    ['REMOTE_PORT', String(req.socket.remotePort ?? '')],
  ];
  if (ctx.listener.scheme === 'https') vars.push(['HTTPS', 'on']);
  const type = req.headers['content-type'];
  if (type !== undefined) vars.push(['CONTENT_TYPE', type]);
  const length = req.headers['content-length'];
  if (length !== undefined) vars.push(['CONTENT_LENGTH', length]);
  for (const [key, value] of headerVars(headers)) vars.push([key, value]);
  return vars;
}

export interface ParsedHead {
  readonly status: number;
  /** Lower-case names; repeated fields as arrays. */
  readonly headers: Record<string, string | string[]>;
  /** Content-Length, or null when the body ends with the connection. */
  readonly length: number | null;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// RFC 9112 §4: HTTP-version SP 3DIGIT SP [reason-phrase]; uWSGI always writes a reason.
const STATUS_LINE = /^HTTP\/1\.[01] ([1-5]\d\d)(?: [\t\x20-\x7e\x80-\xff]*)?$/;

/**
 * The response head (without its final CRLF CRLF), strictly (RFC 9112 §4, §5): a status line,
 * then `name: value` fields with token names, no obs-fold (§5.2), no CR, LF or NUL in values. A
 * Transfer-Encoding is refused: the body of a uwsgi response ends with the connection, and a
 * framing we would have to undo is a sign of a confused server. Returns an error string on a
 * violation.
 */
export function parseResponseHead(text: string): ParsedHead | string {
  const lines = text.split('\r\n');
  const match = STATUS_LINE.exec(lines[0] ?? '');
  if (!match) return 'bad status line';
  const status = Number(match[1]);
  // Interim answers (100, 101) have no place here: the edge answered Expect itself, and a
  // uwsgi connection is never upgraded.
  if (status < 200) return `interim status ${status}`;
  const headers: Record<string, string | string[]> = {};
  let length: number | null = null;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    const colon = line.indexOf(':');
    if (colon <= 0) return 'bad header line';
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return 'bad header name';
    const value = line.slice(colon + 1).replace(/^[\t ]+|[\t ]+$/g, '');
    if (/[\r\n\0]/.test(value)) return 'bad header value';
    const lower = name.toLowerCase();
    if (lower === 'transfer-encoding') return 'transfer-encoding in a uwsgi response';
    if (lower === 'content-length') {
      // RFC 9112 §6.3: differing lengths make the message invalid.
      if (!/^\d{1,15}$/.test(value) || (length !== null && length !== Number(value))) return 'bad content-length';
      length = Number(value);
      if (headers[lower] !== undefined) continue;
    }
    const prior = headers[lower];
    headers[lower] = prior === undefined ? value : Array.isArray(prior) ? [...prior, value] : [prior, value];
  }
  return { status, headers, length };
}

export interface UwsgiAttempt {
  readonly ctx: RequestContext;
  readonly address: UwsgiAddress;
  /** The request URI sent (path and query), as the HTTP transport would put in its request line. */
  readonly requestUri: string;
  /** The forwarded request head, flat, from upstreamRequestHeaders (forwarding fields included). */
  readonly headers: readonly string[];
  readonly hide: ReadonlySet<string>;
  readonly group: ResolvedUpstream;
  /** Whether a failing status in `retry.on` may still move to another server. */
  readonly canRetry: () => boolean;
  /** Server name for logs. */
  readonly name: string;
  /** The method sent (the cache sends a HEAD as GET). */
  readonly method: string;
  /** Where the response goes instead of the client (the cache), or null. */
  readonly sink: ResponseSink | null;
}

const failed = (status: 502 | 504, reason: 'error' | 'timeout' | 'status', beforeSend: boolean, code: string): Outcome => ({ kind: 'failed', status, reason, beforeSend, code });

/** One attempt over uwsgi. Resolves `done` once the response went to the client (or the client left). */
export function forwardUwsgi(attempt: UwsgiAttempt): Promise<Outcome> {
  const { ctx, group } = attempt;
  const req = ctx.req;
  const sink = attempt.sink;
  const res: BodySink = sink ?? ctx.res;
  if (req.headers['transfer-encoding'] !== undefined) {
    throw new HttpError(411, ErrorCodes.ERR_REQUEST_PARSE, 'a uwsgi upstream needs the request body length (Content-Length), the body is chunked');
  }
  let packet: Buffer;
  try {
    packet = encodeUwsgiRequest(uwsgiVars(ctx, attempt.requestUri, attempt.headers, attempt.method));
  } catch (error) {
    // Only a head near 64 KiB gets here (http.maxHeaderSize is 16 KiB by default).
    throw new HttpError(431, ErrorCodes.ERR_REQUEST_HEADER_TOO_LARGE, (error as Error).message);
  }
  const hasBody = req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0';
  const method = attempt.method;

  return new Promise<Outcome>((resolve) => {
    const address = attempt.address;
    const socket: Socket = address.kind === 'unix' ? connect({ path: address.path }) : connect({ host: address.host, port: address.port });
    let connected = false;
    let responded = false;
    let settled = false;
    let head: Buffer | null = Buffer.alloc(0);
    let remaining: number | null = null;
    const timers: NodeJS.Timeout[] = [];
    const settle = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      for (const timer of timers) clearTimeout(timer);
      res.off('close', onClientClose);
      req.unpipe(socket);
      socket.destroy();
      resolve(outcome);
    };
    /** After the head went out, the only honest signal of a failure is a cut connection. */
    const cut = (code: string) => {
      log().warn({ upstream: group.name, server: attempt.name, code }, 'upstream failed mid-response');
      res.destroy();
      settle(DONE);
    };
    const fail = (status: 502 | 504, reason: 'error' | 'timeout', code: string) => {
      if (responded) cut(code);
      else settle(failed(status, reason, !connected, code));
    };
    const onClientClose = () => {
      // The client left (or the response finished and its socket closed): stop the upstream side.
      settle(DONE);
    };
    res.on('close', onClientClose);

    if (group.connectTimeout > 0) {
      timers.push(setTimeout(() => !connected && fail(504, 'timeout', 'ERR_UWSGI_CONNECT_TIMEOUT'), group.connectTimeout));
    }
    if (group.timeout > 0) timers.push(setTimeout(() => fail(504, 'timeout', 'ERR_PROXY_TOTAL_TIMEOUT'), group.timeout));

    socket.on('error', (error: NodeJS.ErrnoException) => fail(502, 'error', error.code ?? 'ERR_UWSGI_SOCKET'));
    socket.on('connect', () => {
      connected = true;
      if (group.headerTimeout > 0) {
        timers.push(setTimeout(() => !responded && fail(504, 'timeout', 'ERR_PROXY_HEADER_TIMEOUT'), group.headerTimeout));
      }
      socket.write(packet);
      // The body follows the vars; `end: false`: no half-close, uWSGI reads CONTENT_LENGTH bytes.
      if (hasBody) req.pipe(socket, { end: false });
    });
    // While the client is slow to take the body, the upstream socket is paused on purpose: the
    // idle timer (a silent upstream) is off until it flows again.
    const idle = group.idleTimeout;
    const resume = () => {
      if (idle > 0) socket.setTimeout(idle);
      socket.resume();
    };
    // Where the body goes: the client, or the route's compressor (sendHead says which).
    let out: BodySink = res;
    const writeBody = (chunk: Buffer) => {
      let part = chunk;
      if (remaining !== null) {
        if (part.length > remaining) part = part.subarray(0, remaining);
        remaining -= part.length;
      }
      if (part.length > 0) {
        ctx.bodyBytes += part.length;
        if (!out.write(part)) {
          socket.setTimeout(0);
          socket.pause();
          out.once('drain', resume);
        }
      }
      if (remaining === 0) {
        out.end();
        settle(DONE);
      }
    };
    socket.on('data', (chunk: Buffer) => {
      if (settled) return;
      if (head === null) return writeBody(chunk);
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) {
        if (head.length > MAX_RESPONSE_HEAD) fail(502, 'error', 'ERR_UWSGI_HEAD_TOO_LARGE');
        return;
      }
      if (end > MAX_RESPONSE_HEAD) return fail(502, 'error', 'ERR_UWSGI_HEAD_TOO_LARGE');
      const parsed = parseResponseHead(head.subarray(0, end).toString('latin1'));
      const rest = head.subarray(end + 4);
      head = null;
      if (typeof parsed === 'string') {
        log().warn({ upstream: group.name, server: attempt.name, problem: parsed }, 'invalid uwsgi response head');
        return fail(502, 'error', 'ERR_UWSGI_BAD_RESPONSE');
      }
      if (group.retry.statuses.includes(parsed.status) && attempt.canRetry()) {
        return settle(failed(parsed.status === 504 ? 504 : 502, 'status', false, `HTTP_${parsed.status}`));
      }
      responded = true;
      // RFC 9110 §6.4.1: no body for HEAD, 204 and 304, whatever the fields say.
      const bodyless = method === 'HEAD' || parsed.status === 204 || parsed.status === 304;
      const headers = clientResponseHeaders(parsed.headers, attempt.hide);
      if (sink) sink.head(parsed.status, headers);
      else out = sendHead(ctx, parsed.status, headers);
      if (bodyless) {
        out.end();
        return settle(DONE);
      }
      remaining = parsed.length;
      // The longest pause between reads of the body (the head timer is done).
      if (idle > 0) {
        socket.on('timeout', () => cut('ERR_UWSGI_IDLE_TIMEOUT'));
        socket.setTimeout(idle);
      }
      writeBody(rest);
    });
    const onEnd = () => {
      if (settled) return;
      if (!responded) return fail(502, 'error', head !== null && head.length > 0 ? 'ERR_UWSGI_TRUNCATED_HEAD' : 'ERR_UWSGI_NO_RESPONSE');
      // A Content-Length not reached: the response is incomplete, and the client must see that.
      if (remaining !== null && remaining > 0) return cut('ERR_UWSGI_TRUNCATED_BODY');
      out.end();
      settle(DONE);
    };
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    // The client's body stopped short (it left mid-upload): the upstream request cannot complete.
    req.once('aborted', () => settle(DONE));
  });
}
