/**
 * HTTP/1.1 to a plain-HTTP upstream (TCP or unix socket) on kept-alive raw sockets, for requests
 * without a body: most of what a reverse proxy forwards. Requests with a body, upgrades, the
 * cache's exchanges, `https://` upstreams and groups with `keepAlive.connections` (undici's pool
 * queues requests at that cap) go through undici (http-attempt.ts) as before.
 *
 * Why not undici for these: per request, undici's dispatcher builds a Request object (validating
 * and joining the fields again), runs its wasm parser with a callback per field and queues the
 * request through its pool's resume loop. For the 5-byte keep-alive proxy scenario on this
 * 2-core VM (`wrk -t1 -c64`, proxy on CPU 0, nginx origin on CPU 1, CPU time of the proxy's
 * process per request from /proc, three interleaved pairs), Portico used 37–46 µs per request
 * through undici and 31–34 µs with a raw keep-alive exchange (docs/performance.md, issue #19).
 *
 * What the exchange costs per request is kept small on purpose: a pooled socket keeps one set
 * of listeners for its whole life (they hand events to the exchange it carries now, or drop the
 * socket when it is idle), its timer is the socket's own (the body's idle timeout while it
 * carries an exchange, the pool's idle timeout while it waits, re-armed only when the two
 * differ), and the response-head deadline is an entry in the group's deadline queue.
 *
 * The response is read as oneshot.ts reads it (response-head.ts, strict and bounded): interim
 * answers passed on, Content-Length, chunked or close-delimited bodies streamed with
 * back-pressure. A connection goes back to the pool only when its answer ended where its framing
 * said and did not announce a close (RFC 9112 §9.3). A pooled connection the server closed while
 * the request was on its way (nothing of an answer came back) is tried once more on a new
 * connection for an idempotent method (RFC 9112 §9.3.1; nginx retries a failed cached
 * connection the same way, without counting it as an attempt).
 */
import { connect, type Socket } from 'node:net';
import type { ResolvedUpstream } from '../../../config/resolved.js';
import type { Deadline } from '../../../core/deadline-queue.js';
import { log } from '../../../core/log.js';
import { sendHead, sendInterim } from '../../http/respond.js';
import { DONE, failed, type BodySink, type Outcome } from './attempt.js';
import { clientResponseHeaders } from './headers.js';
import type { HeadWait } from './index.js';
import { MAX_RESPONSE_HEAD, type SocketAddress } from './oneshot.js';
import { ChunkedDecoder, parseHttpResponseHead } from './response-head.js';
import type { ProxyRequest } from './request.js';
import type { UpstreamServer } from './upstream.js';

/** Idle connections kept per server and edge worker, at most (nginx's `keepalive` bounds the same). */
const MAX_IDLE = 128;

const EXCHANGE = Symbol('portico.exchange');
const POOL = Symbol('portico.pool');
type PooledSocket = Socket & { [EXCHANGE]: KeepAliveExchange | null; [POOL]: KeepAlivePool };

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

/** One server's idle keep-alive connections (its UpstreamServer owns the pool). */
export class KeepAlivePool {
  readonly #address: SocketAddress;
  readonly #group: ResolvedUpstream;
  readonly #idle: PooledSocket[] = [];
  #closed = false;

  constructor(address: SocketAddress, group: ResolvedUpstream) {
    this.#address = address;
    this.#group = group;
  }

  /** An open idle connection for `exchange`, or a new one (connecting; its 'connect' goes to the exchange). */
  acquire(exchange: KeepAliveExchange): { socket: PooledSocket; reused: boolean } {
    for (let socket = this.#idle.pop(); socket; socket = this.#idle.pop()) {
      if (socket.destroyed || socket.readyState !== 'open') continue;
      socket[EXCHANGE] = exchange;
      const idle = this.#group.idleTimeout;
      if (idle !== this.#group.keepAlive.idleTimeout) socket.setTimeout(idle);
      return { socket, reused: true };
    }
    return { socket: this.open(exchange), reused: false };
  }

  /** A new connection for `exchange`; its timer is the connect timeout until it connects. */
  open(exchange: KeepAliveExchange): PooledSocket {
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

  /** A connection whose answer ended cleanly waits here for the next request. */
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

/**
 * One attempt on one server over a pooled connection. A class whose methods are on the
 * prototype, as HttpAttempt: a request allocates this object and its client-close listener.
 */
export class KeepAliveExchange implements HeadWait {
  readonly #request: ProxyRequest;
  readonly #server: UpstreamServer;
  readonly #pool: KeepAlivePool;
  readonly #head: string;
  #socket: PooledSocket;
  #reused: boolean;
  #connected: boolean;
  /** Any byte of an answer came back on this connection. */
  #answered = false;
  #responded = false;
  #settled = false;
  #paused = false;
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

  constructor(request: ProxyRequest, server: UpstreamServer, pool: KeepAlivePool, head: string) {
    this.#request = request;
    this.#server = server;
    this.#pool = pool;
    this.#head = head;
    this.#out = request.ctx.res;
    const { socket, reused } = pool.acquire(this);
    this.#socket = socket;
    this.#reused = reused;
    this.#connected = reused;
  }

  /** The client went away: the connection is not reused (its answer may still be coming). */
  readonly #onClientClose = (): void => {
    if (this.#settled) return;
    this.#drop();
    this.#settle(DONE);
  };

  start(): void {
    const res = this.#request.ctx.res;
    res.on('close', this.#onClientClose);
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
    this.#socket.write(this.#head, 'latin1');
  }

  onData(chunk: Buffer): void {
    if (this.#settled) return;
    this.#answered = true;
    if (this.#headBytes !== null || !this.#responded) return this.#readHead(chunk);
    this.#body(chunk);
  }

  #readHead(chunk: Buffer): void {
    let head = this.#headBytes === null ? chunk : Buffer.concat([this.#headBytes, chunk]);
    // Interim answers come before the final one, each a head of its own (RFC 9110 §15.2).
    for (;;) {
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) {
        if (head.length > MAX_RESPONSE_HEAD) return this.#fail(502, 'error', 'ERR_UPSTREAM_HEAD_TOO_LARGE');
        this.#headBytes = head;
        return;
      }
      if (end > MAX_RESPONSE_HEAD) return this.#fail(502, 'error', 'ERR_UPSTREAM_HEAD_TOO_LARGE');
      const parsed = parseHttpResponseHead(head.toString('latin1', 0, end));
      const rest = head.subarray(end + 4);
      const request = this.#request;
      const proxy = request.proxy;
      if (typeof parsed === 'string') {
        log().warn({ upstream: proxy.group.name, server: this.#server.name, problem: parsed }, 'invalid http response head');
        return this.#fail(502, 'error', 'ERR_UPSTREAM_BAD_RESPONSE');
      }
      if (parsed.status < 200) {
        // 102 and 103 go on to the client; a 101 was not asked for; a 100 the edge answered itself.
        if (parsed.status === 101) return this.#fail(502, 'error', 'ERR_UPSTREAM_BAD_RESPONSE');
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
      // A server that closes every connection is better served one connection per request (oneshot.ts).
      if (parsed.close) this.#server.closesConnections = true;
      const statuses = proxy.group.config.retry.statuses;
      if (statuses.length > 0 && statuses.includes(parsed.status) && request.mayRetryAfter(false)) {
        this.#drop();
        return this.#settle(failed(parsed.status === 504 ? 504 : 502, 'status', false, `HTTP_${parsed.status}`));
      }
      this.#responded = true;
      // RFC 9110 §6.4.1: no body for HEAD, 204 and 304, whatever the fields say.
      const bodyless = request.method === 'HEAD' || parsed.status === 204 || parsed.status === 304;
      this.#reusable = !parsed.close && (bodyless || parsed.length !== null || parsed.chunked);
      this.#out = sendHead(request.ctx, parsed.status, clientResponseHeaders(parsed.headers, proxy.hide));
      if (bodyless) {
        // Bytes after a bodyless answer: a confused server, whose connection is not reused.
        if (rest.length > 0) this.#reusable = false;
        return this.#complete();
      }
      this.#remaining = parsed.length;
      if (parsed.chunked) this.#chunked = new ChunkedDecoder();
      if (rest.length > 0 || this.#remaining === 0) this.#body(rest);
      return;
    }
  }

  /** The body's pieces for the chunked decoder (made for chunked answers only). */
  #emitBound: ((part: Buffer) => void) | null = null;

  #emit(part: Buffer): void {
    if (part.length === 0) return;
    this.#request.ctx.bodyBytes += part.length;
    if (!this.#out.write(part) && !this.#paused) {
      this.#paused = true;
      this.#socket.pause();
      this.#out.once('drain', () => {
        this.#paused = false;
        if (!this.#settled) this.#socket.resume();
      });
    }
  }

  #body(chunk: Buffer): void {
    const chunked = this.#chunked;
    if (chunked !== null) {
      const problem = chunked.push(chunk, (this.#emitBound ??= (part) => this.#emit(part)));
      if (problem) {
        log().warn({ upstream: this.#request.proxy.group.name, server: this.#server.name, problem }, 'invalid chunked response body');
        return this.#cut('ERR_UPSTREAM_BAD_CHUNKED');
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
    if (!this.#responded) return this.#beforeAnswer('ERR_UPSTREAM_NO_RESPONSE');
    // A Content-Length not reached, or a chunked body without its last chunk: the client must see that.
    if ((this.#remaining !== null && this.#remaining > 0) || (this.#chunked !== null && !this.#chunked.done)) return this.#cut('ERR_UPSTREAM_TRUNCATED_BODY');
    // A body that ends with the connection (RFC 9112 §6.3 (8)).
    this.#reusable = false;
    this.#complete();
  }

  onError(error: NodeJS.ErrnoException): void {
    if (this.#settled) return;
    const code = error.code ?? 'ERR_UPSTREAM_SOCKET';
    if (this.#responded) return this.#cut(code);
    this.#beforeAnswer(code);
  }

  /** The socket's timer: the connect timeout, or the longest pause between reads of the body. */
  onTimeout(): void {
    if (this.#settled) return;
    if (!this.#connected) return this.#fail(504, 'timeout', 'ERR_UPSTREAM_CONNECT_TIMEOUT');
    // Waiting for the head is the head deadline's; a body paused for a slow client is not the server's pause.
    if (!this.#responded || this.#paused) return;
    this.#cut('ERR_UPSTREAM_IDLE_TIMEOUT');
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
   * closed meanwhile is tried once more, new, for an idempotent method; otherwise the attempt fails.
   */
  #beforeAnswer(code: string): void {
    if (this.#reused && !this.#answered && this.#request.idempotent) {
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
    this.#settle(failed(status, reason, !this.#connected, code));
  }

  /** After the head went out, the only honest signal of a failure is a cut connection. */
  #cut(code: string): void {
    log().warn({ upstream: this.#request.proxy.group.name, server: this.#server.name, code }, 'upstream failed mid-response');
    this.#drop();
    this.#request.ctx.res.destroy();
    this.#settle(DONE);
  }

  /** Thrown while reading the answer: 502 when nothing went to the client yet, else a cut. */
  onThrow(error: unknown): void {
    log().error({ err: error, upstream: this.#request.proxy.group.name, server: this.#server.name }, 'upstream answer could not be relayed');
    if (this.#settled) return;
    if (this.#request.ctx.res.headersSent) this.#cut('ERR_UPSTREAM_BAD_RESPONSE');
    else {
      this.#responded = false;
      this.#fail(502, 'error', 'ERR_UPSTREAM_BAD_RESPONSE');
    }
  }

  #complete(): void {
    this.#out.end();
    const socket = this.#socket;
    if (this.#reusable) {
      // Paused for a slow client on the last piece: the connection itself is done and may read again.
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
    this.#request.proxy.headDeadlines?.remove(this);
    clearTimeout(this.#totalTimer);
    this.#request.ctx.res.off('close', this.#onClientClose);
    this.#request.finish(this.#server, outcome);
  }
}

function expireTotal(exchange: KeepAliveExchange): void {
  exchange.expireTotal();
}
