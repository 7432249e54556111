/**
 * The Fetch gateway: an IncomingMessage becomes a `Request` (lazy-request.ts: built only as far
 * as the app reads it; the body a ReadableStream; `signal` aborted when the client leaves or the
 * request times out), and the handler's `Response` is written back. A string or bytes body
 * (fast-response.ts) goes out in one `end()` with a Content-Length; any other body is streamed
 * with back-pressure, so a streamed body (server-sent events, a large download) flows chunk by
 * chunk and a slow client slows the producer instead of filling memory.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CLIENT_ADDRESS_FIELD } from '../../core/edge-client.js';
import { log } from '../../core/log.js';
import { AppError } from '../errors.js';
import { DeadlineQueue } from '../../core/deadline-queue.js';
import { defaultType, isFast, PorticoResponse } from './fast-response.js';
import { LazyRequest } from './lazy-request.js';
import { failRequest, type GatewayOptions } from './node.js';
import type { AppContext, FetchHandler } from './types.js';

/** What a Fetch handler gets beside the Request; its members are read from the socket on demand. */
class FetchContext implements AppContext {
  readonly #request: LazyRequest;
  readonly #options: GatewayOptions;

  constructor(request: LazyRequest, options: GatewayOptions) {
    this.#request = request;
    this.#options = options;
  }

  get clientAddress(): string {
    const incoming = this.#request._incoming;
    if (this.#options.behindEdge) {
      const fromEdge = incoming.headers[CLIENT_ADDRESS_FIELD];
      if (typeof fromEdge === 'string') return fromEdge;
    }
    return incoming.socket.remoteAddress ?? '';
  }

  get remoteAddress(): string {
    return this.clientAddress;
  }

  get remotePort(): number | undefined {
    return this.#request._incoming.socket.remotePort;
  }

  get signal(): AbortSignal {
    return this.#request.signal;
  }

  waitUntil(promise: Promise<unknown>): void {
    this.#options.waitUntil(promise);
  }
}

/** The request of a response, kept on it so that the listeners below are shared functions. */
const STATE = Symbol('portico.fetch');
type TrackedResponse = ServerResponse & { [STATE]?: LazyRequest };

function onTimeout(request: LazyRequest, timeoutMs: number): void {
  const res = request._response as ServerResponse;
  request._abort(new DOMException(`the request took longer than ${timeoutMs} ms`, 'TimeoutError'));
  if (!res.headersSent) {
    // RFC 9110 §15.6.4: 503 says "try again later", which is the truth for an overloaded app.
    res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' }).end('Service Unavailable: the request timed out\n');
  }
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

/** RFC 9110 §9.3.2 / §15.3.5 / §15.4.5: no content for HEAD, 204 and 304. */
function hasNoContent(req: IncomingMessage, status: number): boolean {
  return req.method === 'HEAD' || status === 204 || status === 304;
}

const HAS_TYPE = 1;
const HAS_LENGTH = 2;
const HAS_FRAMING = 4;

/** Appends one header to `flat`; returns which of the names the gateway cares about it is. */
function pushHeader(flat: (string | number)[], name: string, value: string): number {
  flat.push(name, value);
  const n = name.length;
  if (n === 12 && name.toLowerCase() === 'content-type') return HAS_TYPE;
  if (n === 14 && name.toLowerCase() === 'content-length') return HAS_LENGTH;
  if (n === 17 && name.toLowerCase() === 'transfer-encoding') return HAS_FRAMING;
  return 0;
}

/**
 * Writes a Response still on the fast path: the app's headers as given (node:http validates
 * them), Content-Length from the body, one `end()`. Throws what writeHead throws on a bad header.
 * It reads the PorticoResponse's fields directly: no intermediate object per request.
 */
function writeFast(response: PorticoResponse, req: IncomingMessage, res: ServerResponse): void {
  const flat: (string | number)[] = [];
  let seen = 0;
  // Live headers (the app read `response.headers`), else the init's headers as given.
  const given = response._headers ?? response._init?.headers;
  if (given instanceof Headers) {
    // Iteration gives each Set-Cookie on its own (they must not be joined, RFC 6265 §3).
    for (const [name, value] of given) seen |= pushHeader(flat, name, value);
  } else if (Array.isArray(given)) {
    for (const pair of given as [string, string][]) seen |= pushHeader(flat, pair[0], pair[1]);
  } else if (given) {
    const record = given as Record<string, string>;
    for (const name in record) seen |= pushHeader(flat, name, record[name] as string);
  }
  const hasType = (seen & HAS_TYPE) !== 0;
  const hasLength = (seen & HAS_LENGTH) !== 0;
  const hasFraming = (seen & HAS_FRAMING) !== 0;
  if (!hasType) {
    const type = defaultType(response);
    if (type) flat.push('content-type', type);
  }
  const status = response._status;
  let body = response._body;
  if (body instanceof ArrayBuffer) body = new Uint8Array(body);
  // RFC 9110 §8.6: no Content-Length on 204; a 304's would describe the selected representation.
  if (!hasLength && !hasFraming && status !== 204 && status !== 304) {
    flat.push('content-length', body === null ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength);
  }
  const statusText = response._init?.statusText;
  if (statusText) res.writeHead(status, statusText, flat);
  else res.writeHead(status, flat);
  if (body === null || hasNoContent(req, status)) res.end();
  else res.end(body);
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
  if (!body || hasNoContent(req, response.status)) {
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

/** What the handler returned, written (or a 500 when it is no Response or cannot be written). */
function answer(response: unknown, req: IncomingMessage, res: ServerResponse, options: GatewayOptions): void | Promise<void> {
  if (res.headersSent || res.destroyed) {
    // Timed out or the client left while the app worked: drop the late answer.
    if (response instanceof PorticoResponse && !isFast(response)) void (response as unknown as Response).body?.cancel().catch(() => undefined);
    return;
  }
  if (isFast(response)) {
    try {
      writeFast(response, req, res);
    } catch (error) {
      // A header node:http refuses (a CR/LF in a value, a bad name): nothing was sent yet.
      if (res.headersSent) res.destroy();
      else failRequest(error, req, res, options);
    }
    return;
  }
  if (!(response instanceof PorticoResponse)) {
    const kind = response === null ? 'null' : typeof response === 'object' ? (response.constructor?.name ?? 'object') : typeof response;
    failRequest(new AppError('ERR_APP_RESPONSE', `the fetch handler returned ${kind}, not a Response`), req, res, options);
    return;
  }
  return writeResponse(response as unknown as Response, req, res).catch((error: unknown) => {
    if (res.headersSent) res.destroy();
    else failRequest(error, req, res, options);
  });
}

/**
 * The request listener of a Fetch handler. Its per-request work is kept small (the app server's
 * hot path): one deadline queue for `timeoutMs` (core/deadline-queue.ts) instead of a timer per request,
 * and one shared 'close' listener per response that also runs `onResponseClose`.
 */
export function fetchListener(handler: FetchHandler, options: GatewayOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const timeoutMs = options.timeoutMs;
  const deadlines = timeoutMs > 0 ? new DeadlineQueue<LazyRequest>(timeoutMs, (request) => onTimeout(request, timeoutMs)) : null;
  const onResponseClose = options.onResponseClose;
  function onClose(this: TrackedResponse): void {
    const request = this[STATE];
    if (request) {
      deadlines?.remove(request);
      if (!this.writableFinished) request._abort(new DOMException('the client closed the connection', 'AbortError'));
    }
    onResponseClose?.(this);
  }
  return (req, res) => void serveFetch(handler, req, res, options, deadlines, onClose);
}

/** Serves one request with a Fetch handler. Never throws: failures become a 500 (or a cut stream). */
function serveFetch(handler: FetchHandler, req: IncomingMessage, res: ServerResponse, options: GatewayOptions, deadlines: DeadlineQueue<LazyRequest> | null, onClose: (this: TrackedResponse) => void): void | Promise<void> {
  // `on`, not `once`: 'close' is emitted once, and `once` allocates a wrapper per call.
  res.on('close', onClose);
  let request: LazyRequest;
  try {
    // Behind the edge (a unix socket only it reaches) its X-Forwarded-Proto is the truth: it
    // replaces any the client sent (edge/handlers/proxy/headers.ts SET_BY_PROXY).
    request = new LazyRequest(req, options.behindEdge === true && req.headers['x-forwarded-proto'] === 'https');
  } catch (error) {
    res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' }).end('Bad Request\n');
    log().warn({ err: error, url: req.url }, 'request could not be turned into a Fetch Request');
    return;
  }
  request._response = res;
  (res as TrackedResponse)[STATE] = request;
  let response: unknown;
  try {
    response = handler(request as unknown as Request, new FetchContext(request, options));
  } catch (error) {
    // A synchronous throw is the same failure as a rejection.
    if (res.headersSent || res.destroyed) return;
    failRequest(error, req, res, options);
    return;
  }
  // The deadline starts when the handler returns: its synchronous part cannot be interrupted
  // anyway (a timer's 503 waits for the event loop, as it did when the deadline was armed before
  // the call), and a Response answered synchronously on the fast path is written in this same
  // turn, so it needs none: no clock read for the commonest answer.
  if (response instanceof Promise || (response !== null && typeof (response as PromiseLike<unknown> | undefined)?.then === 'function')) {
    deadlines?.add(request);
    return Promise.resolve(response).then(
      (settled) => answer(settled, req, res, options),
      (error: unknown) => {
        if (res.headersSent || res.destroyed) return;
        failRequest(error, req, res, options);
      },
    );
  }
  if (deadlines && !isFast(response)) deadlines.add(request);
  return answer(response, req, res, options);
}
