/**
 * The proxy's raw-socket transport: HTTP/1.1 to a plain-HTTP server (TCP or unix socket), and
 * the uwsgi protocol (uwsgi.ts encodes its request), one exchange per attempt on a connection of
 * the server's pool. undici (http-attempt.ts) keeps `https://` servers, groups with
 * `keepAlive.connections` (its pool queues requests at that cap) and requests with a body to a
 * server that keeps its connections.
 *
 * Why not undici for these. Per request, undici's dispatcher builds a Request object (validating
 * and joining the fields again), runs its wasm parser with a callback per field and queues the
 * request through its pool's resume loop; per connection it sets up a parser and makes an Error
 * with a stack for every socket closed. For the 5-byte keep-alive proxy scenario (`wrk -t1 -c64`,
 * proxy on CPU 0, nginx origin on CPU 1, the proxy's CPU time per request from /proc, three
 * interleaved pairs) Portico used 37–46 µs per request through undici and 31–34 µs on a raw
 * exchange. In front of gunicorn's sync workers, which close every connection (a minimal front,
 * wrk -c32, front and app on one CPU): 100 µs of front CPU per request on a raw net.Socket,
 * 243 µs with http.request (agent: false), 480 µs with an undici Pool (docs/performance.md, #19).
 *
 * What an exchange costs is kept small on purpose: a socket keeps one set of listeners for its
 * whole life (they hand events to the exchange it carries now, or drop it while it is idle), its
 * timer is the socket's own (the connect timeout, then the body's idle timeout; the pool's idle
 * timeout while it waits, re-armed only when the two differ), and the response-head deadline is
 * an entry in the group's deadline queue.
 *
 * The request goes out as one write (the head, or the uwsgi packet) and its body after it: as
 * received for a Content-Length, chunked again for a chunked one (HTTP), or a stream of its own
 * (a body the uwsgi transport buffered); never half-closed. The response head is parsed strictly
 * and bounded (response-head.ts); interim answers pass on to the client; the body is streamed
 * with back-pressure both ways, framed by Content-Length, chunked or the end of the connection.
 * A connection goes back to the pool only when its answer ended where its framing said, did not
 * announce a close (RFC 9112 §9.3) and the request's body went out whole. A pooled connection
 * the server closed while a request without a body was on its way (no byte of an answer came
 * back) is tried once more on a new connection for an idempotent method (RFC 9112 §9.3.1; nginx
 * retries a failed cached connection the same way, without counting it as an attempt). Failures
 * come back as an Outcome, so the proxy's retries, balancing and passive health apply unchanged.
 */
import { connect, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { ResolvedUpstream } from '../../../config/resolved.js';
import type { Deadline } from '../../../core/deadline-queue.js';
import { log } from '../../../core/log.js';
import type { RequestContext } from '../../context.js';
import { sendHead, sendInterim } from '../../http/respond.js';
import { DONE, failed, type BodySink, type Outcome, type ResponseSink } from './attempt.js';
import { clientResponseHeaders } from './headers.js';
import type { HeadWait } from './index.js';
import type { ProxyRequest } from './request.js';
import { ChunkedDecoder, parseHead } from './response-head.js';
import type { UpstreamServer } from './upstream.js';

export type SocketAddress = { readonly kind: 'tcp'; readonly host: string; readonly port: number } | { readonly kind: 'unix'; readonly path: string };

/** The largest response head accepted (status line + fields), as a bound on what we buffer. */
export const MAX_RESPONSE_HEAD = 64 * 1024;

/** Idle connections kept per server and edge worker, at most (nginx's `keepalive` bounds the same). */
const MAX_IDLE = 128;

/** What follows the request head: nothing, the client's body as received or chunked again, or a stream of its own. */
export type RequestBody = 'none' | 'raw' | 'chunked' | Readable;

const EXCHANGE = Symbol('portico.exchange');
const POOL = Symbol('portico.pool');
type PooledSocket = Socket & { [EXCHANGE]: RawExchange | null; [POOL]: RawPool };

function onSocketData(this: PooledSocket, chunk: Buffer): void {
  const exchange = this[EXCHANGE];
  // Bytes nobody asked for on an idle connection: it cannot carry a request any more.
  if (exchange === null) {
    this.destroy();
    return;
  }
  try {
    exchange.onData(chunk);
  } catch (error) {
    // A field node refuses to write (a control character the head parser let through), or a bug:
    // never an exception out of a socket listener.
    exchange.onThrow(error);
  }
}

function onSocketEnd(this: PooledSocket): void {
  this[EXCHANGE]?.onEnd();
}

function onSocketClose(this: PooledSocket): void {
  this[POOL].forget(this);
  this[EXCHANGE]?.onEnd();
}

function onSocketError(this: PooledSocket, error: NodeJS.ErrnoException): void {
  this[EXCHANGE]?.onError(error);
}

function onSocketTimeout(this: PooledSocket): void {
  const exchange = this[EXCHANGE];
  // An idle connection past the pool's idle timeout is closed (undici's keepAliveTimeout).
  if (exchange === null) this.destroy();
  else exchange.onTimeout();
}

function onSocketConnect(this: PooledSocket): void {
  this[EXCHANGE]?.onConnect();
}

/**
 * One server's connections (its UpstreamServer owns the pool). `protocol` says what its
 * exchanges speak; `framed` whether its answers say where they end (HTTP, and the uwsgi of
 * Portico's own WSGI workers), without which no connection is kept (uWSGI ends each answer by
 * closing).
 */
export class RawPool {
  readonly protocol: 'http' | 'uwsgi';
  readonly framed: boolean;
  readonly #address: SocketAddress;
  readonly #group: ResolvedUpstream;
  readonly #idle: PooledSocket[] = [];
  #closed = false;

  constructor(address: SocketAddress, group: ResolvedUpstream, protocol: 'http' | 'uwsgi', framed: boolean) {
    this.#address = address;
    this.#group = group;
    this.protocol = protocol;
    this.framed = framed;
  }

  /** An open idle connection for `exchange` (unless `fresh`), or a new one (connecting; its 'connect' goes to the exchange). */
  acquire(exchange: RawExchange, fresh: boolean): { socket: PooledSocket; reused: boolean } {
    if (!fresh) {
      for (let socket = this.#idle.pop(); socket; socket = this.#idle.pop()) {
        if (socket.destroyed || socket.readyState !== 'open') continue;
        socket[EXCHANGE] = exchange;
        const idle = this.#group.idleTimeout;
        if (idle !== this.#group.keepAlive.idleTimeout) socket.setTimeout(idle);
        return { socket, reused: true };
      }
    }
    return { socket: this.open(exchange), reused: false };
  }

  /** A new connection for `exchange`; its timer is the connect timeout until it connects. */
  open(exchange: RawExchange): PooledSocket {
    const address = this.#address;
    const socket = (address.kind === 'unix' ? connect({ path: address.path }) : connect({ host: address.host, port: address.port, noDelay: true })) as PooledSocket;
    socket[EXCHANGE] = exchange;
    socket[POOL] = this;
    socket.on('data', onSocketData);
    socket.on('end', onSocketEnd);
    socket.on('close', onSocketClose);
    socket.on('error', onSocketError);
    socket.on('timeout', onSocketTimeout);
    socket.once('connect', onSocketConnect);
    if (this.#group.connectTimeout > 0) socket.setTimeout(this.#group.connectTimeout);
    return socket;
  }

  /** A connection whose exchange ended cleanly waits here for the next request. */
  release(socket: PooledSocket): void {
    socket[EXCHANGE] = null;
    if (this.#closed || this.#idle.length >= MAX_IDLE || socket.destroyed) {
      socket.destroy();
      return;
    }
    const idle = this.#group.keepAlive.idleTimeout;
    if (idle !== this.#group.idleTimeout) socket.setTimeout(idle);
    this.#idle.push(socket);
  }

  /** A connection closed: it is no longer idle here. */
  forget(socket: PooledSocket): void {
    const at = this.#idle.indexOf(socket);
    if (at !== -1) this.#idle.splice(at, 1);
  }

  /** The server left the group (or the group closed): idle connections close, none is kept from now on. */
  close(): void {
    this.#closed = true;
    for (const socket of this.#idle.splice(0)) socket.destroy();
  }
}

const CRLF = Buffer.from('\r\n');
const LAST_CHUNK = Buffer.from('0\r\n\r\n');

/**
 * The client's decoded body, chunked again onto `socket` (RFC 9112 §7.1), with back-pressure:
 * the client's body pauses while the socket's buffer is full. Returns what detaches it.
 */
function pipeChunked(req: RequestContext['req'], socket: Socket): () => void {
  const resume = (): void => {
    req.resume();
  };
  const onData = (chunk: Buffer): void => {
    if (chunk.length === 0) return;
    socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
    socket.write(chunk);
    if (!socket.write(CRLF)) {
      req.pause();
      socket.once('drain', resume);
    }
  };
  const onEnd = (): void => {
    socket.write(LAST_CHUNK);
  };
  req.on('data', onData);
  req.once('end', onEnd);
  return () => {
    req.off('data', onData);
    req.off('end', onEnd);
  };
}

/**
 * One attempt on one server over a connection of its pool. A class whose methods are on the
 * prototype, as HttpAttempt: a request without a body allocates this object and its
 * consumer-close listener.
 */
export class RawExchange implements HeadWait {
  readonly #request: ProxyRequest;
  readonly #server: UpstreamServer;
  readonly #pool: RawPool;
  readonly #head: string | Buffer;
  readonly #body: RequestBody;
  /** Where the answer goes: the cache's sink, or null for the client. */
  readonly #sink: ResponseSink | null;
  /** Told the outcome instead of the request (uwsgi.ts, which disposes of a buffered body then). */
  readonly #onSettle: ((outcome: Outcome) => void) | null;
  /** ERR_UPSTREAM_* or ERR_UWSGI_* codes. */
  readonly #tag: string;
  #socket: PooledSocket;
  #reused: boolean;
  #connected: boolean;
  /**
   * Sent once already on a pooled connection that then closed cleanly: the server may have read
   * it (and died of it) rather than closed an idle connection, so a connect failure of the resend
   * does not make it a request that reached no server.
   */
  #maybeRead = false;
  /** Any byte of an answer came back on this connection. */
  #answered = false;
  #responded = false;
  #settled = false;
  #paused = false;
  /** The request's body went out whole (a connection with part of one left on it is never reused). */
  #bodySent: boolean;
  #detachChunked: (() => void) | null = null;
  /** The response head read so far, null once the final head is parsed. */
  #headBytes: Buffer | null = null;
  #remaining: number | null = null;
  #chunked: ChunkedDecoder | null = null;
  #reusable = false;
  #out: BodySink;
  #totalTimer: NodeJS.Timeout | undefined = undefined;
  _deadline = 0;
  _prev: Deadline | null = null;
  _next: Deadline | null = null;
  _queued = false;

  constructor(request: ProxyRequest, server: UpstreamServer, pool: RawPool, head: string | Buffer, body: RequestBody, onSettle: ((outcome: Outcome) => void) | null = null) {
    this.#request = request;
    this.#server = server;
    this.#pool = pool;
    this.#head = head;
    this.#body = body;
    this.#sink = request.exchange?.sink ?? null;
    this.#onSettle = onSettle;
    this.#tag = pool.protocol === 'uwsgi' ? 'UWSGI' : 'UPSTREAM';
    this.#bodySent = body === 'none';
    this.#out = this.#sink ?? request.ctx.res;
    // A body cannot be sent again if a pooled connection turns out to be closed: it takes a new one.
    const { socket, reused } = pool.acquire(this, body !== 'none');
    this.#socket = socket;
    this.#reused = reused;
    this.#connected = reused;
  }

  /** The consumer of the answer (the client, or the cache's sink). */
  get #consumer(): BodySink {
    return this.#sink ?? this.#request.ctx.res;
  }

  /**
   * The consumer of the answer went away, or the client's body stopped short (it left
   * mid-upload): the exchange ends, and its connection is not reused (an answer may still be coming).
   */
  readonly #onGone = (): void => {
    if (this.#settled) return;
    this.#drop();
    this.#settle(DONE);
  };

  start(): void {
    this.#consumer.on('close', this.#onGone);
    if (this.#body !== 'none') this.#request.ctx.req.once('aborted', this.#onGone);
    const group = this.#request.proxy.group.config;
    if (group.timeout > 0) this.#totalTimer = setTimeout(expireTotal, group.timeout, this);
    if (this.#connected) this.#send();
  }

  onConnect(): void {
    this.#connected = true;
    this.#socket.setTimeout(this.#request.proxy.group.config.idleTimeout);
    if (!this.#settled) this.#send();
  }

  #send(): void {
    this.#request.proxy.headDeadlines?.add(this);
    const socket = this.#socket;
    if (typeof this.#head === 'string') socket.write(this.#head, 'latin1');
    else socket.write(this.#head);
    const body = this.#body;
    if (body === 'none') return;
    // `end: false`: no half-close; the server reads the framing it was told.
    const req = this.#request.ctx.req;
    if (body === 'raw') req.pipe(socket, { end: false });
    else if (body === 'chunked') this.#detachChunked = pipeChunked(req, socket);
    else body.pipe(socket, { end: false });
    const source = typeof body === 'object' ? body : req;
    if (source.readableEnded) this.#bodySent = true;
    else source.once('end', () => (this.#bodySent = true));
  }

  onData(chunk: Buffer): void {
    if (this.#settled) return;
    this.#answered = true;
    if (this.#headBytes !== null || !this.#responded) return this.#readHead(chunk);
    this.#readBody(chunk);
  }

  #readHead(chunk: Buffer): void {
    let head = this.#headBytes === null ? chunk : Buffer.concat([this.#headBytes, chunk]);
    const framed = this.#pool.framed;
    const tag = this.#tag;
    // Interim answers come before the final one, each a head of its own (RFC 9110 §15.2).
    for (;;) {
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) {
        if (head.length > MAX_RESPONSE_HEAD) return this.#fail(502, 'error', `ERR_${tag}_HEAD_TOO_LARGE`);
        this.#headBytes = head;
        return;
      }
      if (end > MAX_RESPONSE_HEAD) return this.#fail(502, 'error', `ERR_${tag}_HEAD_TOO_LARGE`);
      const text = head.toString('latin1', 0, end);
      // A uwsgi server's own answer has no interim heads and no chunked framing, and closes.
      const parsed = parseHead(text, framed);
      const rest = head.subarray(end + 4);
      const request = this.#request;
      const proxy = request.proxy;
      if (typeof parsed === 'string') {
        log().warn({ upstream: proxy.group.name, server: this.#server.name, problem: parsed }, `invalid ${this.#pool.protocol} response head`);
        return this.#fail(502, 'error', `ERR_${tag}_BAD_RESPONSE`);
      }
      if (parsed.status < 200) {
        // 102 and 103 go on to the client (never to the cache); a 101 was not asked for (no
        // Upgrade goes this way); a 100 the edge answered itself.
        if (parsed.status === 101) return this.#fail(502, 'error', `ERR_${tag}_BAD_RESPONSE`);
        if (parsed.status !== 100) sendInterim(request.ctx, parsed.status, clientResponseHeaders(parsed.headers, proxy.hide));
        head = rest;
        if (head.length === 0) {
          this.#headBytes = null;
          return;
        }
        continue;
      }
      this.#headBytes = null;
      proxy.headDeadlines?.remove(this);
      // Closing servers are better served with a body too on a connection of their own than through undici.
      const close = parsed.close;
      if (this.#pool.protocol === 'http') this.#server.closesConnections = close;
      const statuses = proxy.group.config.retry.statuses;
      if (statuses.length > 0 && statuses.includes(parsed.status) && request.mayRetryAfter(false)) {
        this.#drop();
        return this.#settle(failed(parsed.status === 504 ? 504 : 502, 'status', false, `HTTP_${parsed.status}`));
      }
      this.#responded = true;
      // RFC 9110 §6.4.1: no body for HEAD, 204 and 304, whatever the fields say.
      const bodyless = request.method === 'HEAD' || parsed.status === 204 || parsed.status === 304;
      this.#reusable = !close && (bodyless || parsed.length !== null || parsed.chunked);
      const headers = clientResponseHeaders(parsed.headers, proxy.hide);
      const sink = this.#sink;
      if (sink !== null) sink.head(parsed.status, headers);
      else this.#out = sendHead(request.ctx, parsed.status, headers);
      if (bodyless) {
        // Bytes after a bodyless answer: a confused server, whose connection is not reused.
        if (rest.length > 0) this.#reusable = false;
        return this.#complete();
      }
      this.#remaining = parsed.length;
      if (parsed.chunked) this.#chunked = new ChunkedDecoder();
      if (rest.length > 0 || this.#remaining === 0) this.#readBody(rest);
      return;
    }
  }

  /** The body's pieces for the chunked decoder (made for chunked answers only). */
  #emitBound: ((part: Buffer) => void) | null = null;

  #emit(part: Buffer): void {
    if (part.length === 0) return;
    this.#request.ctx.bodyBytes += part.length;
    if (!this.#out.write(part) && !this.#paused) {
      // While the consumer is slow to take the body the socket is paused on purpose, and its idle
      // timer (a silent server) does not count the pause (onTimeout).
      this.#paused = true;
      this.#socket.pause();
      this.#out.once('drain', () => {
        this.#paused = false;
        if (!this.#settled) this.#socket.resume();
      });
    }
  }

  #readBody(chunk: Buffer): void {
    const chunked = this.#chunked;
    if (chunked !== null) {
      const problem = chunked.push(chunk, (this.#emitBound ??= (part) => this.#emit(part)));
      if (problem) {
        log().warn({ upstream: this.#request.proxy.group.name, server: this.#server.name, problem }, 'invalid chunked response body');
        return this.#cut(`ERR_${this.#tag}_BAD_CHUNKED`);
      }
      if (chunked.done) this.#complete();
      return;
    }
    let part = chunk;
    const remaining = this.#remaining;
    if (remaining !== null) {
      if (part.length > remaining) {
        // Bytes past the answer's length: a confused server, whose connection is not reused.
        part = part.subarray(0, remaining);
        this.#reusable = false;
      }
      this.#remaining = remaining - part.length;
    }
    this.#emit(part);
    if (this.#remaining === 0) this.#complete();
  }

  onEnd(): void {
    if (this.#settled) return;
    if (!this.#responded) return this.#beforeAnswer(this.#headBytes !== null && this.#headBytes.length > 0 ? `ERR_${this.#tag}_TRUNCATED_HEAD` : `ERR_${this.#tag}_NO_RESPONSE`);
    // A Content-Length not reached, or a chunked body without its last chunk: the client must see that.
    if ((this.#remaining !== null && this.#remaining > 0) || (this.#chunked !== null && !this.#chunked.done)) return this.#cut(`ERR_${this.#tag}_TRUNCATED_BODY`);
    // A body that ends with the connection (RFC 9112 §6.3 (8)).
    this.#reusable = false;
    this.#complete();
  }

  onError(error: NodeJS.ErrnoException): void {
    if (this.#settled) return;
    const code = error.code ?? `ERR_${this.#tag}_SOCKET`;
    if (this.#responded) return this.#cut(code);
    this.#beforeAnswer(code);
  }

  /** The socket's timer: the connect timeout, or the longest pause between reads of the body. */
  onTimeout(): void {
    if (this.#settled) return;
    if (!this.#connected) return this.#fail(504, 'timeout', `ERR_${this.#tag}_CONNECT_TIMEOUT`);
    // Waiting for the head is the head deadline's; a body paused for a slow consumer is not the server's pause.
    if (!this.#responded || this.#paused) return;
    this.#cut(`ERR_${this.#tag}_IDLE_TIMEOUT`);
  }

  /** The response-head deadline passed (core/deadline-queue.ts). */
  expireHead(): void {
    if (!this.#settled && !this.#responded) this.#fail(504, 'timeout', 'ERR_PROXY_HEADER_TIMEOUT');
  }

  expireTotal(): void {
    if (!this.#settled) this.#fail(504, 'timeout', 'ERR_PROXY_TOTAL_TIMEOUT');
  }

  /**
   * The connection failed or closed before a byte of an answer. A pooled connection the server
   * closed meanwhile is tried once more, new, for an idempotent method without a body;
   * otherwise the attempt fails.
   */
  #beforeAnswer(code: string): void {
    if (this.#reused && !this.#answered && this.#body === 'none' && this.#request.idempotent) {
      this.#maybeRead = !this.#unread(code);
      this.#request.proxy.headDeadlines?.remove(this);
      this.#drop();
      this.#reused = false;
      this.#connected = false;
      this.#socket = this.#pool.open(this);
      return;
    }
    this.#fail(502, 'error', code);
  }

  #fail(status: 502 | 504, reason: 'error' | 'timeout', code: string): void {
    if (this.#responded) return this.#cut(code);
    this.#drop();
    this.#settle(failed(status, reason, !this.#maybeRead && (!this.#connected || this.#unread(code)), code));
  }

  /**
   * A request without a body that the server never read: its one write failed (EPIPE), or the
   * server closed the connection with the request still unread, which the kernel signals with a
   * reset (RFC 1122 §4.2.2.13; Linux resets a unix socket closed with data in its queue, and the
   * connections still in a closed listener's backlog, the same way). A server that read the
   * request and then died closes cleanly instead (ERR_*_NO_RESPONSE). Such a request reached no
   * app, so an idempotent one may go to another server even where one that reached a server must
   * not (a WSGI group: a sync worker's queued requests are not taken down with the one that
   * killed it). Not a non-idempotent one: a server may reset on purpose after it applied a
   * request, and nginx never resends those once written either.
   */
  #unread(code: string): boolean {
    return this.#body === 'none' && !this.#answered && this.#request.idempotent && (code === 'EPIPE' || code === 'ECONNRESET');
  }

  /** After the head went out, the only honest signal of a failure is a cut connection. */
  #cut(code: string): void {
    log().warn({ upstream: this.#request.proxy.group.name, server: this.#server.name, code }, 'upstream failed mid-response');
    this.#drop();
    this.#consumer.destroy();
    this.#settle(DONE);
  }

  /** Thrown while reading the answer: 502 when nothing went to the consumer yet, else a cut. */
  onThrow(error: unknown): void {
    log().error({ err: error, upstream: this.#request.proxy.group.name, server: this.#server.name }, 'upstream answer could not be relayed');
    if (this.#settled) return;
    if (this.#sink === null ? this.#request.ctx.res.headersSent : this.#responded) this.#cut(`ERR_${this.#tag}_BAD_RESPONSE`);
    else {
      this.#responded = false;
      this.#fail(502, 'error', `ERR_${this.#tag}_BAD_RESPONSE`);
    }
  }

  #complete(): void {
    this.#out.end();
    const socket = this.#socket;
    if (this.#reusable && this.#bodySent) {
      // Paused for a slow consumer on the last piece: the connection itself is done and may read again.
      if (this.#paused) socket.resume();
      this.#pool.release(socket);
    } else this.#drop();
    this.#settle(DONE);
  }

  /** This exchange lets go of its connection for good. */
  #drop(): void {
    const socket = this.#socket;
    if (socket[EXCHANGE] === this) socket[EXCHANGE] = null;
    socket.destroy();
  }

  #settle(outcome: Outcome): void {
    if (this.#settled) return;
    this.#settled = true;
    const request = this.#request;
    request.proxy.headDeadlines?.remove(this);
    clearTimeout(this.#totalTimer);
    this.#consumer.off('close', this.#onGone);
    const body = this.#body;
    if (body !== 'none') {
      const req = request.ctx.req;
      req.off('aborted', this.#onGone);
      if (typeof body === 'object') {
        body.unpipe(this.#socket);
        body.destroy();
      } else req.unpipe(this.#socket);
      this.#detachChunked?.();
    }
    if (this.#onSettle !== null) this.#onSettle(outcome);
    else request.finish(this.#server, outcome);
  }
}

function expireTotal(exchange: RawExchange): void {
  exchange.expireTotal();
}

/**
 * The HTTP/1.1 request head for a RawExchange: the request line and the forwarded fields
 * (proxy/headers.ts made them; their values passed node's parser or the config's checks), plus
 * Transfer-Encoding when the client's body was chunked. No `Connection: close`: a server that
 * keeps connections says so by not closing its answer, and the pool keeps the connection then.
 */
export function httpRequestHead(method: string, path: string, headers: readonly string[], chunked: boolean): string {
  let head = `${method} ${path} HTTP/1.1\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i] as string}: ${headers[i + 1] as string}\r\n`;
  if (chunked) head += 'transfer-encoding: chunked\r\n';
  return `${head}\r\n`;
}
