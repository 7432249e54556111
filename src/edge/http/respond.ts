/**
 * Writing responses. Every handler answers through `sendHead`, which is the response-filter phase:
 * the route's header operations, the `Server` header and compression (middleware/encode.ts) are
 * applied here, once, to the flat header list that `res.writeHead` takes (no per-header
 * `setHeader` calls on the hot path). Handlers write the body to the Writable `sendHead` returns.
 */
import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import type { RequestContext } from '../context.js';
import type { RouteEncoder } from '../middleware/encode.js';
import { statusBody } from './status.js';

/**
 * Response filters, then the status line and headers. `headers` is flat: [name, value, …]; it may
 * be modified. Returns where the body goes: `ctx.res`, or, when the route compresses this
 * response (middleware/encode.ts), an encoder piped into it. Handlers write the body there.
 */
export function sendHead(ctx: RequestContext, status: number, headers: string[]): Writable {
  // Server first, then the route's filter: a route's `headers.set.Server` replaces it and
  // `headers.remove: ["Server"]` removes it (added after, it was sent twice / could not go).
  const serverHeader = ctx.generation.serverHeader;
  if (serverHeader !== null) headers.push('Server', serverHeader);
  const route = ctx.route;
  const filter = route?.headers;
  if (filter) filter(headers);
  // Compression decides last, on the final head (a route may set Cache-Control: no-transform).
  const encode = route?.encode;
  const coding = encode ? encode.apply(ctx, status, headers) : null;
  ctx.status = status;
  ctx.res.writeHead(status, headers);
  return coding === null ? ctx.res : (encode as RouteEncoder).pipeTo(ctx, coding, headers);
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

/** A redirect; the small body names the target, as nginx's does. */
export function sendRedirect(ctx: RequestContext, status: number, location: string): void {
  sendBody(ctx, status, ['Location', location, 'Content-Type', 'text/plain; charset=utf-8'], `${status} Redirect to ${location}\n`);
}

/**
 * A ServerResponse on a socket node:http has let go of (an `Upgrade` request): every response
 * helper then works unchanged, and the socket closes after the answer.
 */
export function responseOnSocket(req: IncomingMessage, socket: Socket): ServerResponse {
  // A reset from the client must not become an uncaught 'error' event.
  socket.on('error', () => socket.destroy());
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket);
  res.once('finish', () => {
    res.detachSocket(socket);
    socket.end();
  });
  return res;
}
