/**
 * The uwsgi transport (nginx `uwsgi_pass`): one request per connection to a uWSGI server, in its
 * binary protocol (https://uwsgi-docs.readthedocs.io/en/latest/Protocol.html):
 *
 *   request  = header(modifier1 = 0 "WSGI", datasize u16 LE, modifier2 = 0) vars body
 *   vars     = *(keysize u16 LE, key, valsize u16 LE, value)   -- CGI/WSGI variables (RFC 3875 §4.1)
 *   response = an HTTP/1.x status line, header fields and the body, ended by closing the connection
 *
 * The body follows the vars as raw bytes and uWSGI reads exactly CONTENT_LENGTH of them, so the
 * length must be known before the first byte: a chunked request body is read whole first (in
 * memory, then in a temporary file: buffered-body.ts, as nginx does), bounded by the route's
 * `maxBodySize`, and sent with its length. The response head is parsed strictly and bounded; the
 * body is streamed to the client with back-pressure both ways. Failures come back as an Outcome,
 * so the proxy handler's retries, balancing and passive health apply unchanged.
 *
 * Portico's own WSGI workers (python/portico_wsgi.py) frame each answer (Content-Length or
 * chunked), so their connections are kept and reused (the server's RawPool is `framed`); uWSGI
 * closes each one.
 */
import { ErrorCodes, HttpError } from '../../../core/errors.js';
import { bodyRefusal } from '../../http/limits.js';
import { bufferBody, type BufferedBody } from './buffered-body.js';
import type { RequestContext } from '../../context.js';
import type { Outcome } from './attempt.js';
import { RawExchange, type RawPool, type RequestBody, type SocketAddress } from './raw-exchange.js';
import type { ProxyRequest } from './request.js';
import type { UpstreamServer } from './upstream.js';

export { parseResponseHead } from './response-head.js';

export type UwsgiAddress = SocketAddress;

/** "uwsgi://host:port" or "uwsgi+unix:/path" → where to connect; null for any other URL. */
export function parseUwsgiUrl(url: string): UwsgiAddress | null {
  if (url.startsWith('uwsgi+unix:')) return { kind: 'unix', path: url.slice('uwsgi+unix:'.length) };
  if (!url.startsWith('uwsgi://')) return null;
  const parsed = new URL(url);
  // IPv6 hosts come bracketed from URL; net.connect wants them bare.
  return { kind: 'tcp', host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(parsed.port) };
}

/**
 * A uwsgi packet: the 4-byte header and the vars. Throws a RangeError when a size passes 16 bits.
 * Written into one buffer sized first (no Buffer per variable: this runs for every request to a
 * WSGI worker). Strings go as latin-1, one byte per character, as Buffer.from(s, 'latin1') would.
 */
export function encodeUwsgiRequest(vars: readonly (readonly [string, Buffer | string])[]): Buffer {
  let size = 0;
  for (const [key, value] of vars) {
    if (key.length > 0xffff || value.length > 0xffff) throw new RangeError(`uwsgi variable ${key} is longer than 65535 bytes`);
    size += 4 + key.length + value.length;
  }
  if (size > 0xffff) throw new RangeError(`uwsgi variables take ${size} bytes, more than 65535`);
  const packet = Buffer.allocUnsafe(4 + size);
  packet[0] = 0; // modifier1 0: a WSGI/HTTP request
  packet.writeUInt16LE(size, 1);
  packet[3] = 0; // modifier2
  let at = 4;
  for (const [key, value] of vars) {
    at = packet.writeUInt16LE(key.length, at);
    at += packet.write(key, at, 'latin1');
    at = packet.writeUInt16LE(value.length, at);
    at += typeof value === 'string' ? packet.write(value, at, 'latin1') : value.copy(packet, at);
  }
  return packet;
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

/**
 * One attempt over uwsgi on a connection of the server's pool (raw-exchange.ts). Resolves once
 * the response went to the client (or the client left).
 */
export async function forwardUwsgi(request: ProxyRequest, server: UpstreamServer, pool: RawPool, requestUri: string, headers: readonly string[]): Promise<Outcome> {
  const ctx = request.ctx;
  const req = ctx.req;
  let buffered: BufferedBody | null = null;
  if (req.headers['transfer-encoding'] !== undefined) {
    try {
      buffered = await bufferBody(req);
    } catch (error) {
      throw bodyRefusal(req) ?? new HttpError(400, ErrorCodes.ERR_REQUEST_PARSE, `the request body could not be read: ${(error as Error).message}`);
    }
  }
  let packet: Buffer;
  try {
    const vars = uwsgiVars(ctx, requestUri, headers, request.method);
    if (buffered) vars.push(['CONTENT_LENGTH', String(buffered.length)]);
    packet = encodeUwsgiRequest(vars);
  } catch (error) {
    buffered?.dispose();
    // Only a head near 64 KiB gets here (http.maxHeaderSize is 16 KiB by default).
    throw new HttpError(431, ErrorCodes.ERR_REQUEST_HEADER_TOO_LARGE, (error as Error).message);
  }
  const sized = req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0';
  const body: RequestBody = buffered ? (buffered.length > 0 ? buffered.open() : 'none') : sized ? 'raw' : 'none';
  try {
    return await new Promise<Outcome>((resolve) => new RawExchange(request, server, pool, packet, body, resolve).start());
  } finally {
    buffered?.dispose();
  }
}
