/**
 * Protocol limits and slow clients (nginx `large_client_header_buffers`, `client_header_timeout`,
 * `client_body_timeout`, `client_max_body_size`, `keepalive_requests`). Two layers:
 *
 *   - node:http enforces what it must while parsing: the head's total size (as a backstop, set
 *     here to the URI limit plus the header limit), the head deadline (`headersTimeout`: a total
 *     deadline from the head's first byte, also for a connection that sends nothing, so a
 *     slowloris client trickling its head is cut at that bound), the whole-request deadline and
 *     the keep-alive idle timeout. Its errors reach `onClientError` in edge/server.ts.
 *   - The exact limits are checked here on the parsed request, once per request, before routing:
 *     URI length (414), header count and header section size (431), requests per connection; and,
 *     once the route is known, the body: a Content-Length over the route's limit is answered 413
 *     before any of the body is read, a chunked body is counted as it streams (413 at the limit),
 *     and a body that pauses longer than `bodyTimeout` is answered 408.
 *
 * Why not node's own knobs for the last ones: `maxHeadersCount` silently drops the extra headers
 * (the request is served without them), and `maxRequestsPerSocket` answers pipelined requests past
 * the limit with a 503 of its own after the `Connection: close` response. Neither is an answer
 * an edge may give.
 *
 * A refused body (too large, too slow) must stop the request to the upstream before one more byte
 * goes there, yet leave the client socket able to carry the 413/408: `refuseBody` errors the
 * request stream (its consumer, the proxy's upstream request, aborts, so the upstream sees a cut
 * request, never a complete truncated one) without the socket teardown node ties to that, and the
 * proxy answers with `bodyRefusal(req)` instead of a 502.
 */
import type { IncomingMessage, Server, ServerOptions, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { ResolvedConfig } from '../../config/resolved.js';
import { ErrorCodes, HttpError, type ErrorCode } from '../../core/errors.js';
import type { RequestContext } from '../context.js';
import { closeAfterResponse } from './respond.js';

type HttpSettings = ResolvedConfig['http'];

/** A request refused before routing: answered with `status` and the connection closed. */
export interface HeadRefusal {
  readonly status: 414 | 417 | 431;
  readonly reason: string;
}

/**
 * An `Expect` other than `100-continue`: RFC 9110 §10.1.1 allows a 417. node:http answers it on
 * its own, without the Server header policy or an access-log line, unless told otherwise; this is
 * the refusal edge/server.ts answers instead. The connection closes: a body may follow the head.
 */
export function expectationRefusal(req: IncomingMessage): HeadRefusal {
  return { status: 417, reason: `unsupported expectation ${JSON.stringify(String(req.headers.expect ?? '').slice(0, 64))}` };
}

/** The method, two spaces and "HTTP/1.1" around the target: what the request line adds to the URI. */
const REQUEST_LINE_EXTRA = 64;

/**
 * Options for node:http's parser. Its head-size limit covers the request line and the header
 * fields together; set to both limits added, the exact checks (`headRefusal`) see every request
 * within them and can tell a long URI (414) from large headers (431). Only a head over the sum
 * is refused by the parser itself (`overflowStatus` tells which part overflowed).
 */
export function parserOptions(http: HttpSettings): ServerOptions {
  const deadlines = [http.headersTimeout, http.requestTimeout].filter((ms) => ms > 0);
  return {
    keepAliveTimeout: http.keepAliveTimeout,
    headersTimeout: http.headersTimeout,
    requestTimeout: http.requestTimeout,
    maxHeaderSize: http.maxUriLength + http.maxHeaderSize + REQUEST_LINE_EXTRA,
    // node checks the head and request deadlines on a sweep of the connections mid-request, every
    // 30 s by default: a 60 s deadline then holds a slow client up to 90 s. A sweep every tenth of
    // the shortest deadline (at most 1 s) keeps them within 10 %; it visits only connections with
    // a request under way, in C++, so it costs microseconds even with thousands of them.
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(Math.min(...deadlines, 10_000) / 10))),
  };
}

/**
 * A reload's limits on a listener that stays open: node:http reads the deadlines at each sweep,
 * the keep-alive timeout after each answer and the head size limit for each new connection, so
 * they apply from here on (the sweep interval stays the one the listener started with).
 */
export function applyParserLimits(server: Server, http: HttpSettings): void {
  const options = parserOptions(http);
  // Lowered first, so node never sees a head deadline above the request deadline.
  server.headersTimeout = 0;
  server.requestTimeout = options.requestTimeout ?? 0;
  server.headersTimeout = options.headersTimeout ?? 0;
  server.keepAliveTimeout = options.keepAliveTimeout ?? 0;
  (server as Server & { maxHeaderSize?: number }).maxHeaderSize = options.maxHeaderSize;
}

/** What node:http must not do on its own (see the file comment); call on each new server. */
export function disableNodeLimits(server: { maxHeadersCount: number | null; maxRequestsPerSocket: number | null }): void {
  server.maxHeadersCount = 0; // 0 = keep them all; headRefusal counts (the head size bounds them)
  server.maxRequestsPerSocket = 0; // counted by admitOnConnection
}

/**
 * 414 or 431 for a request whose head is within node's limit but over ours. Headers are counted
 * as received (`rawHeaders`), each as "name: value\r\n".
 */
export function headRefusal(req: IncomingMessage, http: HttpSettings): HeadRefusal | null {
  const url = req.url;
  // RFC 9112 §3: a request-target longer than any URI the server wishes to parse → 414 (RFC 9110 §15.5.15).
  if (url !== undefined && url.length > http.maxUriLength) return { status: 414, reason: `request target of ${url.length} bytes (limit ${http.maxUriLength})` };
  const raw = req.rawHeaders;
  // RFC 6585 §5: 431 for too many header fields as well as for too large ones.
  if (raw.length > http.maxHeaders * 2) return { status: 431, reason: `more than ${http.maxHeaders} header fields` };
  let size = 0;
  for (let i = 0; i < raw.length; i++) size += (raw[i] as string).length + 2;
  if (size > http.maxHeaderSize) return { status: 431, reason: `header section of ${size} bytes (limit ${http.maxHeaderSize})` };
  return null;
}

/**
 * The status for a head node:http's parser refused as too large (HPE_HEADER_OVERFLOW): 414 when
 * the overflow is in the request line, else 431. The parser reports only the bytes it was given
 * last (`rawPacket`): when they start with a method and hold no line end within the URI limit,
 * the request line itself was too long. A request line trickled in small pieces cannot be told
 * apart this way and gets 431 (its head deadline applies to it anyway).
 */
export function overflowStatus(error: Error, http: HttpSettings): 414 | 431 {
  const raw = (error as Error & { rawPacket?: unknown }).rawPacket;
  if (!Buffer.isBuffer(raw)) return 431;
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+ [^\r\n ]/.test(raw.toString('latin1', 0, 64))) return 431;
  const lineEnd = raw.indexOf(10);
  return lineEnd === -1 || lineEnd > http.maxUriLength ? 414 : 431;
}

const REQUESTS = Symbol('portico.requests');
const CLOSING = Symbol('portico.closing');
type CountedSocket = Socket & { [REQUESTS]?: number; [CLOSING]?: true };

/**
 * How long a connection closed with request bytes still arriving keeps reading (and discarding)
 * them after its answer (nginx `lingering_close`, `lingering_timeout` 5 s).
 */
const LINGER_MS = 5_000;

/**
 * Closes a connection whose request body was not read whole, without losing the answer: closing
 * a TCP socket with unread input sends a reset, and a reset can make the client's stack discard
 * the answer before the client reads it (RFC 9112 §9.6, the "TCP reset problem"). So the answer
 * is followed by a half-close (FIN), and what the client still sends is read and dropped until it
 * closes its side or LINGER_MS pass, as nginx's lingering close. Installed as the socket's
 * `destroySoon`, which node:http calls once a `Connection: close` answer is written; no request
 * after the refused one is served meanwhile (admitOnConnection).
 */
function lingerOnClose(socket: Socket): void {
  const closing = socket as CountedSocket & { destroySoon(): void };
  if (closing[CLOSING]) return;
  closing[CLOSING] = true;
  closing.destroySoon = function lingeringClose(this: Socket): void {
    if (this.writable) this.end();
    if (this.destroyed) return;
    const timer = setTimeout(() => this.destroy(), LINGER_MS);
    const done = () => {
      clearTimeout(timer);
      this.destroy();
    };
    this.once('end', done);
    this.once('close', done);
    // Keep reading (node's parser stops when a refused body's push says so): input is dropped.
    this.resume();
  };
}

/**
 * Counts requests on the connection (nginx `keepalive_requests`): the last one allowed is answered
 * with `Connection: close`; requests pipelined behind it are not served (false): the connection
 * closes after that answer and the client sends them again on a new one (RFC 9112 §9.3.2, §9.6).
 */
export function admitOnConnection(req: IncomingMessage, res: ServerResponse, http: HttpSettings): boolean {
  const socket = req.socket as CountedSocket;
  // Closing after a refused body: bytes parsed from the rest of it are never a request to serve.
  if (socket[CLOSING]) return false;
  const count = (socket[REQUESTS] ?? 0) + 1;
  socket[REQUESTS] = count;
  if (count >= http.maxRequestsPerConnection) closeAfterResponse(res);
  return count <= http.maxRequestsPerConnection;
}

const BODY = Symbol('portico.body');
const EXPECTS_CONTINUE = Symbol('portico.expectsContinue');

interface BodyWatch {
  readonly res: ServerResponse;
  /** Bytes allowed (0 = no limit): `http.maxBodySize` until the route is known, then the route's. */
  limit: number;
  /** Chunked body bytes received so far. */
  received: number;
  refusal: HttpError | null;
  timed: boolean;
}

type WatchedRequest = IncomingMessage & { [BODY]?: BodyWatch; [EXPECTS_CONTINUE]?: true };
type Push = (chunk: unknown, encoding?: BufferEncoding) => boolean;

/** node:http hands a request with `Expect: 100-continue` over without answering it: `limitBody` sends the 100 once the body is allowed. */
export function expectsContinue(req: IncomingMessage): void {
  (req as WatchedRequest)[EXPECTS_CONTINUE] = true;
}

/**
 * Starts watching a request's body, before any of it is read: the body timeout (nginx
 * `client_body_timeout`: the longest pause between two reads) and, for a chunked body, the byte
 * count against `http.maxBodySize` (the route's own limit replaces it in `limitBody`). A request
 * without a body costs one header lookup.
 */
export function watchBody(req: IncomingMessage, res: ServerResponse, http: HttpSettings): void {
  if (req.httpVersionMajor === 2) return watchH2Body(req, res, http);
  const chunked = req.headers['transfer-encoding'] !== undefined;
  const length = req.headers['content-length'];
  if (!chunked && (length === undefined || length === '0')) return;
  const watch: BodyWatch = { res, limit: http.maxBodySize, received: 0, refusal: null, timed: false };
  (req as WatchedRequest)[BODY] = watch;
  countChunks(req as WatchedRequest, watch, chunked);
  if (http.bodyTimeout > 0) {
    // The socket's idle timer is re-armed by every read, which is exactly "between two reads".
    // node emits the request's 'timeout' while it is incomplete (and, with a listener, leaves the
    // socket to us); node's own keep-alive timer replaces this one once the answer is done.
    const socket = req.socket;
    watch.timed = true;
    socket.setTimeout(http.bodyTimeout);
    req.once('timeout', () => refuseBody(req as WatchedRequest, watch, 408, ErrorCodes.ERR_LIMIT_BODY_TIMEOUT, `no request body data for ${http.bodyTimeout} ms`));
    req.once('end', () => {
      if (watch.timed && !res.writableFinished) socket.setTimeout(0);
      watch.timed = false;
    });
  }
}

/**
 * An HTTP/2 request body: DATA frames on one stream of a shared connection, so nothing here may
 * touch the socket. Every body is counted (a Content-Length is optional in HTTP/2, RFC 9113
 * §8.1.1); the body timeout is the stream's own idle timer.
 */
function watchH2Body(req: IncomingMessage, res: ServerResponse, http: HttpSettings): void {
  const stream = (req as IncomingMessage & { stream: { endAfterHeaders: boolean } }).stream;
  if (stream.endAfterHeaders) return;
  const watch: BodyWatch = { res, limit: http.maxBodySize, received: 0, refusal: null, timed: false };
  (req as WatchedRequest)[BODY] = watch;
  countChunks(req as WatchedRequest, watch, true);
  if (http.bodyTimeout > 0) {
    watch.timed = true;
    req.setTimeout(http.bodyTimeout);
    req.once('timeout', () => refuseBody(req as WatchedRequest, watch, 408, ErrorCodes.ERR_LIMIT_BODY_TIMEOUT, `no request body data for ${http.bodyTimeout} ms`));
    req.once('end', () => {
      if (watch.timed) req.setTimeout(0);
      watch.timed = false;
    });
  }
}

/**
 * Sits where node's parser hands the body over (`push`, before any reader sees it). A chunked body
 * is counted: at the limit the chunk is dropped and the body refused, so whoever reads the body
 * (the upstream request) never receives more than the limit. Once a body is refused, the rest of
 * it is dropped here as it arrives (a declared length is bounded by the parser, so only chunked
 * bodies are counted).
 */
function countChunks(req: WatchedRequest, watch: BodyWatch, counted: boolean): void {
  const push = req.push as Push;
  (req as { push: Push }).push = function countedPush(this: WatchedRequest, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (watch.refusal) return true;
    if (counted && chunk !== null && watch.limit > 0) {
      watch.received += (chunk as Buffer).length;
      if (watch.received > watch.limit) {
        refuseBody(this, watch, 413, ErrorCodes.ERR_LIMIT_BODY_SIZE, `chunked request body over ${watch.limit} bytes`);
        return true;
      }
    }
    return push.call(this, chunk, encoding);
  };
}

/**
 * The body check of the route phase (nginx checks `client_max_body_size` once the location is
 * found): a declared length over the route's limit is refused before any of the body is read;
 * a chunked body is counted against the route's limit from here on. Then a client waiting for
 * `100 Continue` gets it (RFC 9110 §10.1.1: a server that refuses answers with the final status
 * instead, and the client does not send the body at all).
 */
export function limitBody(ctx: RequestContext, limit: number): void {
  const req = ctx.req as WatchedRequest;
  const watch = req[BODY];
  if (watch) {
    if (watch.refusal) throw watch.refusal;
    watch.limit = limit;
    const length = req.headers['content-length'];
    // RFC 9110 §15.5.14; the connection closes: the body that follows is not passed on.
    if (limit > 0 && length !== undefined && Number(length) > limit) {
      // HTTP/2: only the stream ends, reset once answered (listen/kinds.ts resetUnreadStream).
      if (req.httpVersionMajor !== 2) lingerOnClose(req.socket);
      throw new HttpError(413, ErrorCodes.ERR_LIMIT_BODY_SIZE, `request body of ${length} bytes (limit ${limit})`, { headers: { Connection: 'close' } });
    }
    if (limit > 0 && watch.received > limit) throw refuseBody(req, watch, 413, ErrorCodes.ERR_LIMIT_BODY_SIZE, `chunked request body over ${limit} bytes`);
  }
  if (req[EXPECTS_CONTINUE] && !ctx.res.headersSent) {
    req[EXPECTS_CONTINUE] = undefined;
    ctx.res.writeContinue();
  }
}

/** Why this request's body was refused (413 too large, 408 too slow), or null. The answer to give instead of the consumer's own error. */
export function bodyRefusal(req: IncomingMessage): HttpError | null {
  return (req as WatchedRequest)[BODY]?.refusal ?? null;
}

/**
 * Refuses a body mid-stream. Before the answer has started, the request stream is errored so its
 * consumer aborts (the proxy then answers `bodyRefusal`); node would destroy the client socket
 * along with an unfinished request, so the socket is detached for that one call and the
 * connection stays able to carry the answer, marked to close after it. Once the answer is under
 * way, the connection is closed when it ends (or at once when it has ended): it cannot carry
 * another request, since the rest of the body is unread.
 */
function refuseBody(req: WatchedRequest, watch: BodyWatch, status: 408 | 413, code: ErrorCode, message: string): HttpError {
  if (watch.refusal) return watch.refusal;
  const refusal = new HttpError(status, code, message, { headers: { Connection: 'close' } });
  watch.refusal = refusal;
  if (req.httpVersionMajor === 2) return refuseH2Body(req, watch, refusal);
  const socket = req.socket;
  if (watch.timed) {
    watch.timed = false;
    socket.setTimeout(0);
  }
  const res = watch.res;
  lingerOnClose(socket);
  if (res.writableEnded) {
    socket.destroySoon();
  } else if (res.headersSent) {
    res.once('finish', () => socket.destroySoon());
  } else {
    closeAfterResponse(res);
  }
  if (!req.destroyed) {
    // Whoever reads the body gets the error (undici aborts the upstream request); without a
    // reader, nobody must: an 'error' without a listener would end the process.
    req.on('error', ignore);
    const attached = req as { socket: Socket | null };
    attached.socket = null;
    try {
      req.destroy(refusal);
    } finally {
      attached.socket = socket;
    }
  }
  return refusal;
}

/**
 * The HTTP/2 side of refuseBody: the connection is shared, so only the stream ends. The body's
 * reader gets the error (the request object only: node:http2's compatibility request leaves its
 * stream open on destroy), the answer goes out, then RST_STREAM(NO_ERROR) tells the client to stop
 * sending the rest (RFC 9113 §8.1; listen/kinds.ts resetUnreadStream, for every HTTP/2 answer).
 */
function refuseH2Body(req: WatchedRequest, watch: BodyWatch, refusal: HttpError): HttpError {
  if (watch.timed) {
    watch.timed = false;
    req.setTimeout(0);
  }
  if (!req.destroyed) {
    req.on('error', ignore);
    req.destroy(refusal);
  }
  return refusal;
}

function ignore(): void {}
