/**
 * An HTTP/2 request as the pipeline reads requests: node:http2's compatibility request has the
 * pseudo-header fields (`:method`, `:path`, `:authority`, `:scheme`) in its `rawHeaders` and may
 * carry no `Host`. Once normalised here, its `rawHeaders` hold regular fields only, with `Host`
 * from `:authority` and the cookie crumbs joined, so every phase after (virtual host, proxy
 * headers, cache keys, header limits) treats both protocols alike.
 */
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { FramingRefusal } from './framing.js';

/**
 * Rewrites `req.rawHeaders` (and `req.headers.host`) of an HTTP/2 request; returns a refusal
 * when the head is malformed in a way nghttp2 does not check.
 */
export function normaliseH2Request(req: IncomingMessage): FramingRefusal | null {
  const raw = req.rawHeaders;
  const out: string[] = [];
  let authority: string | undefined;
  let host: string | undefined;
  let cookie: string | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    if (name.charCodeAt(0) === 58 /* : */) {
      if (name === ':authority') authority = value;
      continue;
    }
    if (name === 'cookie') {
      // RFC 9113 §8.2.3: a client may split Cookie into crumbs; joined with "; " before an
      // HTTP/1.1 hop, which allows one Cookie field only (RFC 6265 §5.4).
      cookie = cookie === null ? value : `${cookie}; ${value}`;
      continue;
    }
    if (name === 'host') {
      if (host !== undefined) return { status: 400, reason: 'more than one Host header' };
      host = value;
      continue;
    }
    out.push(name, value);
  }
  // RFC 9113 §8.3.1: a Host that names another authority than `:authority` makes the request malformed.
  if (host !== undefined && authority !== undefined && host.toLowerCase() !== authority.toLowerCase()) return { status: 400, reason: 'Host differs from :authority' };
  const effective = authority ?? host;
  if (effective !== undefined) {
    out.unshift('Host', effective);
    req.headers.host = effective;
  }
  if (cookie !== null) {
    out.push('Cookie', cookie);
    req.headers.cookie = cookie;
  }
  // A body without Content-Length is framed by DATA frames (RFC 9113 §8.1); to every reader of
  // the head (the proxy's "has a body" test, an HTTP/1.1 hop) it is a chunked body (RFC 9112 §7.1).
  if (!(req as H2Request).stream.endAfterHeaders && req.headers['content-length'] === undefined) req.headers['transfer-encoding'] = 'chunked';
  Object.defineProperty(req, 'rawHeaders', { value: out, configurable: true });
  return null;
}

/** What node:http2's compatibility request adds to IncomingMessage's shape. */
type H2Request = IncomingMessage & { readonly stream: { readonly endAfterHeaders: boolean } };

/** Whether a request came over HTTP/2 (node:http2's compatibility request). */
export function isH2(req: IncomingMessage): boolean {
  return req.httpVersionMajor === 2;
}

const TLS_INFO = Symbol('portico.tls');
type TlsInfo = { readonly version: string | null; readonly cipher: string | null };

/**
 * The connection's TLS version and cipher, kept on an HTTP/2 request for the access log: when the
 * log line is written the stream has closed and the compatibility request can no longer reach
 * its session's socket.
 */
export function rememberTls(req: IncomingMessage): void {
  (req as IncomingMessage & { [TLS_INFO]?: TlsInfo })[TLS_INFO] = readTls(req);
}

/** nginx `$ssl_protocol` and `$ssl_cipher` of the request's connection. */
export function tlsInfo(req: IncomingMessage): TlsInfo {
  return (req as IncomingMessage & { [TLS_INFO]?: TlsInfo })[TLS_INFO] ?? readTls(req);
}

function readTls(req: IncomingMessage): TlsInfo {
  const socket = req.socket as Partial<TLSSocket>;
  return { version: socket.getProtocol?.() ?? null, cipher: socket.getCipher?.()?.name ?? null };
}
