/**
 * The Fetch gateway: an IncomingMessage becomes a `Request` (body as a ReadableStream, `signal`
 * aborted when the client leaves or the request times out), the handler's `Response` is written
 * back with back-pressure, so a streamed body (server-sent events, a large download) flows chunk
 * by chunk and a slow client slows the producer instead of filling memory.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { log } from '../../core/log.js';
import { AppError } from '../errors.js';
import type { AppContext, FetchHandler } from './types.js';
import { failRequest, type GatewayOptions } from './node.js';

/** The request's absolute URL. RFC 9112 §3.3: the origin comes from Host (the app server speaks plain HTTP). */
function requestUrl(req: IncomingMessage): string {
  const target = req.url ?? '/';
  if (/^https?:\/\//i.test(target)) return target; // absolute-form (RFC 9112 §3.2.2)
  const host = req.headers.host && /^[\w.:[\]-]+$/.test(req.headers.host) ? req.headers.host : 'localhost';
  return `http://${host}${target.startsWith('/') ? target : `/${target}`}`;
}

function requestHeaders(req: IncomingMessage): Headers {
  const headers = new Headers();
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.startsWith(':')) continue; // HTTP/2 pseudo-headers are not fields (RFC 9113 §8.3)
    try {
      headers.append(name, raw[i + 1] as string);
    } catch {
      // A value undici refuses (Node's parser is more lenient) is dropped rather than failing the request.
    }
  }
  return headers;
}

/** Builds the Fetch `Request` for `req`; its body streams from the socket. */
export function toRequest(req: IncomingMessage, signal: AbortSignal): Request {
  const method = req.method ?? 'GET';
  const hasBody = method !== 'GET' && method !== 'HEAD';
  const init: RequestInit & { duplex?: 'half' } = { method, headers: requestHeaders(req), signal };
  if (hasBody) {
    init.body = Readable.toWeb(req) as unknown as ReadableStream<Uint8Array>;
    init.duplex = 'half'; // required by undici for a streamed request body
  }
  return new Request(requestUrl(req), init);
}

/** Waits until `res` can take more data, or is closed (the client left). */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** Writes a Fetch `Response` to `res`, streaming its body with back-pressure. */
export async function writeResponse(response: Response, req: IncomingMessage, res: ServerResponse): Promise<void> {
  res.statusCode = response.status;
  if (response.statusText) res.statusMessage = response.statusText;
  for (const [name, value] of response.headers) {
    if (name === 'set-cookie') continue; // several Set-Cookie fields must not be joined (RFC 6265 §3)
    res.setHeader(name, value);
  }
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) res.setHeader('set-cookie', cookies);
  const body = response.body;
  // RFC 9110 §9.3.2 / §15.3.5 / §15.4.5: no content for HEAD, 204 and 304.
  if (!body || req.method === 'HEAD' || response.status === 204 || response.status === 304) {
    if (body) void body.cancel().catch(() => undefined);
    res.end();
    return;
  }
  // Event streams are read as they come: send the head now, so the client sees the stream open.
  if (response.headers.get('content-type')?.startsWith('text/event-stream')) res.flushHeaders();
  const reader = body.getReader();
  try {
    for (;;) {
      if (res.destroyed) {
        await reader.cancel();
        return;
      }
      const { done, value } = await reader.read();
      if (done) break;
      if (!res.write(value)) await drained(res);
    }
    res.end();
  } catch (error) {
    // Headers are gone: the only honest signal left is a truncated message (no terminating chunk).
    log().error({ err: error, url: req.url }, 'app response body failed mid-stream');
    res.destroy(error as Error);
    void reader.cancel().catch(() => undefined);
  }
}

/** Serves one request with a Fetch handler. Never throws: failures become a 500 (or a cut stream). */
export async function serveFetch(handler: FetchHandler, req: IncomingMessage, res: ServerResponse, options: GatewayOptions): Promise<void> {
  const controller = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) controller.abort(new DOMException('the client closed the connection', 'AbortError'));
  });
  const timer =
    options.timeoutMs > 0
      ? setTimeout(() => {
          controller.abort(new DOMException(`the request took longer than ${options.timeoutMs} ms`, 'TimeoutError'));
          if (!res.headersSent) {
            // RFC 9110 §15.6.4: 503 says "try again later", which is the truth for an overloaded app.
            res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' }).end('Service Unavailable: the request timed out\n');
          }
        }, options.timeoutMs)
      : undefined;
  res.on('close', () => clearTimeout(timer));
  let request: Request;
  try {
    request = toRequest(req, controller.signal);
  } catch (error) {
    res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' }).end('Bad Request\n');
    log().warn({ err: error, url: req.url }, 'request could not be turned into a Fetch Request');
    return;
  }
  const socket = req.socket;
  const context: AppContext = {
    clientAddress: socket.remoteAddress ?? '',
    remoteAddress: socket.remoteAddress ?? '',
    remotePort: socket.remotePort,
    signal: controller.signal,
    waitUntil: (promise) => options.waitUntil(promise),
  };
  let response: unknown;
  try {
    // A synchronous throw and a rejection end up in the same catch.
    response = await handler(request, context);
  } catch (error) {
    if (res.headersSent || res.destroyed) return;
    failRequest(error, req, res, options);
    return;
  }
  if (res.headersSent || res.destroyed) {
    // Timed out or the client left while the app worked: drop the late answer.
    if (response instanceof Response) void response.body?.cancel().catch(() => undefined);
    return;
  }
  if (!(response instanceof Response)) {
    const kind = response === null ? 'null' : typeof response === 'object' ? (response.constructor?.name ?? 'object') : typeof response;
    failRequest(new AppError('ERR_APP_RESPONSE', `the fetch handler returned ${kind}, not a Response`), req, res, options);
    return;
  }
  await writeResponse(response, req, res);
}
