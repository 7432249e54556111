/**
 * Writing responses. Every handler answers through `sendHead`, which is the response-filter phase:
 * the route's header operations, the `Server` header and compression (middleware/encode.ts) are
 * applied here, once, to the flat header list that `res.writeHead` takes (no per-header
 * `setHeader` calls on the hot path). Handlers write the body to the Writable `sendHead` returns.
 */
import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { log } from '../../core/log.js';
import type { RequestContext } from '../context.js';
import { compressBuffer, type ContentCoding, type RouteEncoder } from '../middleware/encode.js';
import { CONNECTION_SPECIFIC } from './h2-response.js';
import { statusBody } from './status.js';

/**
 * Response filters, then the status line and headers. `headers` is flat: [name, value, …]; it may
 * be modified. Returns where the body goes: `ctx.res`, or, when the route compresses this
 * response (middleware/encode.ts), an encoder piped into it. Handlers write the body there.
 */
export function sendHead(ctx: RequestContext, status: number, headers: string[]): Writable {
  const coding = filterHead(ctx, status, headers);
  ctx.status = status;
  // HTTP/2: http/h2-response.ts writes the list, without the connection-specific fields (RFC 9113 §8.2.2).
  ctx.res.writeHead(status, headers);
  return coding === null ? ctx.res : (ctx.route?.encode as RouteEncoder).pipeTo(ctx, coding, headers);
}

type InterimResponse = Writable & {
  headersSent: boolean;
  writeEarlyHints?(hints: Record<string, string | string[]>): void;
  writeProcessing?(): void;
};

/**
 * An upstream's interim (1xx) response, passed on before the final one: RFC 9110 §15.2 has a
 * proxy forward every 1xx it did not ask for itself (100 Continue to the client's Expect is
 * node:http's own, 101 is the tunnel's). node:http's public API writes 103 (`writeEarlyHints`,
 * HTTP/1.1 and HTTP/2) and 102 (`writeProcessing`); other codes (104, unregistered ones) have no
 * way out through it and are not passed on. Never cached: the cache stores final responses only.
 * `headers` is flat and already filtered (hop-by-hop and hidden fields removed).
 */
export function sendInterim(ctx: RequestContext, status: number, headers: readonly string[]): void {
  const res = ctx.res as InterimResponse;
  // A response that has begun (a background revalidation's client was answered long ago) takes none.
  if (res.headersSent || res.writableEnded) return;
  try {
    if (status === 103 && res.writeEarlyHints) {
      const hints: Record<string, string | string[]> = {};
      for (let i = 0; i < headers.length; i += 2) {
        const name = headers[i] as string;
        if (ctx.req.httpVersionMajor === 2 && CONNECTION_SPECIFIC.has(name)) continue;
        const value = headers[i + 1] as string;
        // node checks each Link value on its own (RFC 8288 §3 link-value): a field listing several
        // ("<a>; rel=preload, <b>; rel=preload") is split where the next "<" begins one.
        const values = name === 'link' ? value.split(/\s*,\s*(?=<)/) : [value];
        const prior = hints[name];
        hints[name] = prior === undefined ? (values.length === 1 ? value : values) : [...(Array.isArray(prior) ? prior : [prior]), ...values];
      }
      // node sends a 103 only with a Link field (the point of early hints, RFC 8297 §2).
      if (hints.link !== undefined) res.writeEarlyHints(hints);
    } else if (status === 102 && res.writeProcessing) {
      res.writeProcessing();
    }
  } catch (error) {
    // A Link value node refuses to write (not RFC 8288 syntax): the hint is dropped, the response goes on.
    log().debug({ err: error, status }, 'interim response not passed on');
  }
}

/** The response filters on the flat head; returns the coding to compress the body with, or null. */
function filterHead(ctx: RequestContext, status: number, headers: string[]): ContentCoding | null {
  // Server first, then the route's filter: a route's `headers.set.Server` replaces it and
  // `headers.remove: ["Server"]` removes it (added after, it was sent twice / could not go).
  const serverHeader = ctx.generation.serverHeader;
  // A forward proxy's relayed response keeps the destination's Server (RFC 9110 §10.2.4).
  if (serverHeader !== null && ctx.forward?.relayed !== true) headers.push('Server', serverHeader);
  // RFC 6797 §7.2: HSTS only over a secure transport (a browser ignores it on plain HTTP anyway).
  if (ctx.listener.scheme === 'https') {
    const hsts = ctx.server?.config.tls?.hsts;
    if (hsts) headers.push('Strict-Transport-Security', hsts);
  }
  const route = ctx.route;
  const filter = route?.headers;
  if (filter) filter(headers);
  // Compression decides last, on the final head (a route may set Cache-Control: no-transform).
  const encode = route?.encode;
  return encode ? encode.apply(ctx, status, headers) : null;
}

/**
 * A complete in-memory body (with its Content-Length in `headers`) whose compressed forms the
 * caller keeps in `stored` (static's hot file cache): the filters decide as for any response,
 * but a body compressed before is sent from memory, with its own Content-Length, and a new one
 * is compressed once (concurrent requests share it) and kept. `onStored` runs after a body is
 * added (the cache accounts for its bytes). Why: compressing the same bytes again on every hit
 * is the whole cost of compression on the static hot path (docs/performance.md).
 */
export function sendStoredBody(ctx: RequestContext, status: number, headers: string[], body: Buffer, stored: Map<ContentCoding, Buffer | Promise<Buffer>>, onStored: () => void): void | Promise<void> {
  const coding = filterHead(ctx, status, headers);
  const method = ctx.req.method;
  if (coding === null || method === 'HEAD') {
    ctx.bodyBytes = method === 'HEAD' ? 0 : body.length;
    ctx.status = status;
    ctx.res.writeHead(status, headers);
    ctx.res.end(body);
    return;
  }
  let encoded = stored.get(coding);
  if (encoded === undefined) {
    const settings = (ctx.route?.encode as RouteEncoder).settings;
    const pending = compressBuffer(coding, settings, body).then(
      (bytes) => {
        stored.set(coding, bytes);
        onStored();
        return bytes;
      },
      (error: unknown) => {
        stored.delete(coding);
        throw error;
      },
    );
    stored.set(coding, pending);
    encoded = pending;
  }
  if (encoded instanceof Promise) return encoded.then((bytes) => sendEncoded(ctx, status, headers, bytes));
  sendEncoded(ctx, status, headers, encoded);
}

function sendEncoded(ctx: RequestContext, status: number, headers: string[], bytes: Buffer): void {
  headers.push('Content-Length', String(bytes.length));
  ctx.bodyBytes = bytes.length;
  ctx.status = status;
  ctx.res.writeHead(status, headers);
  ctx.res.end(bytes);
}

/** A complete response with an in-memory body (ignored for HEAD by node:http, Content-Length kept). */
export function sendBody(ctx: RequestContext, status: number, headers: string[], body: Buffer | string | null): void {
  const length = body === null ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  // RFC 9110 §8.6: no Content-Length on 1xx/204, and 304 has none of its own.
  if (status !== 204 && status !== 304) headers.push('Content-Length', String(length));
  ctx.bodyBytes = status === 304 || status === 204 || ctx.req.method === 'HEAD' ? 0 : length;
  const out = sendHead(ctx, status, headers);
  if (body === null || status === 204 || status === 304) out.end();
  else out.end(body);
}

/** A short error/status page: "404 Not Found". */
export function sendStatus(ctx: RequestContext, status: number, extra?: Readonly<Record<string, string>>): void {
  const headers = ['Content-Type', 'text/plain; charset=utf-8'];
  if (extra) for (const name in extra) headers.push(name, extra[name] as string);
  sendBody(ctx, status, headers, statusBody(status));
}

// What a URI reference cannot hold raw (RFC 3986 §2): controls, space, DEL and non-ASCII.
const NOT_IN_URI = /[^\x21-\x7e]/;
const NOT_IN_URI_RUNS = /[^\x21-\x7e]+/g;

/**
 * A redirect; the small body names the target, as nginx's does. A Location built from the decoded
 * URI (`$uri`, captures) may hold a "%0A" that was decoded, or non-ASCII: each such run is
 * percent-encoded again (UTF-8), so it stays data and never splits the header. Escapes already in
 * the target are left as they are.
 */
export function sendRedirect(ctx: RequestContext, status: number, location: string): void {
  const safe = NOT_IN_URI.test(location) ? location.replace(NOT_IN_URI_RUNS, encodeRun) : location;
  sendBody(ctx, status, ['Location', safe, 'Content-Type', 'text/plain; charset=utf-8'], `${status} Redirect to ${safe}\n`);
}

function encodeRun(run: string): string {
  // A lone surrogate (from a template, never from a decoded path) becomes U+FFFD: encodeURIComponent
  // throws on it. (String.prototype.toWellFormed: Node 20+, ES2024, above the configured lib.)
  return encodeURIComponent((run as string & { toWellFormed(): string }).toWellFormed());
}

/**
 * This response is the connection's last: HTTP/1.1 says so with `Connection: close` and closes
 * once it is written (RFC 9112 §9.6), so a keep-alive client opens its next request elsewhere
 * instead of racing our close. Through the public header API (node:http reads the field and
 * closes after the response), not its internal `shouldKeepAlive`. HTTP/2 has no Connection field
 * (RFC 9113 §8.2.2): its sessions end with GOAWAY, sent by the listener, so this does nothing there.
 * Too late once the head is sent.
 */
export function closeAfterResponse(res: ServerResponse): void {
  if (res.headersSent || (res as { stream?: unknown }).stream !== undefined) return;
  res.setHeader('Connection', 'close');
}

/**
 * A ServerResponse on a socket node:http has let go of (an `Upgrade` request): every response
 * helper then works unchanged, and the socket closes after the answer.
 */
export function responseOnSocket(req: IncomingMessage, socket: Socket): ServerResponse {
  // A reset from the client must not become an uncaught 'error' event.
  socket.on('error', () => socket.destroy());
  const res = new ServerResponse(req);
  closeAfterResponse(res);
  res.assignSocket(socket);
  res.once('finish', () => {
    res.detachSocket(socket);
    socket.end();
  });
  return res;
}

/**
 * Resolves true once this response is the one its connection writes (at once on HTTP/2, and for
 * the first request of an HTTP/1.1 connection; a pipelined one waits until the responses before
 * it are sent), false when the client left before that.
 */
export function responseTurn(ctx: RequestContext): true | Promise<boolean> {
  const res = ctx.res;
  if (res.socket !== null) return true;
  return new Promise((resolve) => {
    const onSocket = (): void => {
      res.off('close', onClose);
      resolve(true);
    };
    const onClose = (): void => {
      res.off('socket', onSocket);
      resolve(false);
    };
    res.once('socket', onSocket);
    res.once('close', onClose);
  });
}
