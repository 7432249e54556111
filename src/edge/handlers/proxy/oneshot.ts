/**
 * One request per connection on a raw socket (nginx's upstream default without `keepalive`):
 * the uwsgi transport (uwsgi.ts), and HTTP/1.1 to servers that close every connection anyway,
 * such as gunicorn's sync workers.
 *
 * Why not undici for those: its per-connection costs (a parser instance per socket, an Error with
 * a stack for every socket closed) are paid for every request when the server closes each
 * connection. A Flask app behind gunicorn (2 sync workers, unix socket, front and app on one CPU;
 * a minimal front measured with wrk -c32): 100 µs of front CPU per request with a raw net.Socket,
 * 243 µs with http.request (agent: false), 480 µs with an undici Pool.
 *
 * The request goes out as one write (the head) and the body after it: as received for a
 * Content-Length, chunked again for a chunked one (HTTP), never half-closed. The response head is
 * parsed strictly and bounded (response-head.ts); its body is streamed to the client with
 * back-pressure both ways, framed by Content-Length, chunked or the end of the connection.
 * Failures come back as an Outcome, so the proxy's retries, balancing and passive health apply
 * unchanged.
 */
import { connect, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { ResolvedUpstream } from '../../../config/resolved.js';
import { log } from '../../../core/log.js';
import type { RequestContext } from '../../context.js';
import { sendHead, sendInterim } from '../../http/respond.js';
import { DONE, failed, type BodySink, type Outcome, type ResponseSink } from './attempt.js';
import { clientResponseHeaders } from './headers.js';
import { ChunkedDecoder, parseHttpResponseHead, parseResponseHead, type ParsedHead, type ParsedHttpHead } from './response-head.js';

export type SocketAddress = { readonly kind: 'tcp'; readonly host: string; readonly port: number } | { readonly kind: 'unix'; readonly path: string };

/** The largest response head accepted (status line + fields), as a bound on what we buffer. */
export const MAX_RESPONSE_HEAD = 64 * 1024;

export interface OneShotAttempt {
  readonly ctx: RequestContext;
  readonly address: SocketAddress;
  /** uwsgi: no interim answers, no chunked framing, error codes ERR_UWSGI_*. */
  readonly protocol: 'uwsgi' | 'http';
  /** What goes first: the uwsgi packet, or the HTTP request head. */
  readonly head: Buffer | string;
  /** The client's body after it: none, as received (Content-Length), chunked again, or a stream of its own (a body buffered by the edge). */
  readonly body: 'none' | 'raw' | 'chunked' | Readable;
  /**
   * Keep-alive (Portico's own WSGI workers, which frame every answer): the connection is taken
   * from here when one is idle, and goes back once its response ended where its framing said.
   * Absent: one connection per request (uWSGI ends each answer by closing).
   */
  readonly keepAlive?: IdleConnections;
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
  /** HTTP: told whether the server's final answer closes the connection (it keeps connections when it does not). */
  readonly onFinalHead?: (head: ParsedHttpHead) => void;
}

/** Idle connections kept per server, at most: more than the concurrency an edge worker sends one app worker. */
const MAX_IDLE = 64;
const IDLE_POOL = Symbol('portico.idlePool');
type PooledSocket = Socket & { [IDLE_POOL]?: IdleConnections | null };

/** An idle connection closed, errored, or sent bytes nobody asked for: it cannot carry a request. */
function dropIdle(this: PooledSocket): void {
  this[IDLE_POOL]?.drop(this);
}

/**
 * The idle keep-alive connections to one server (its UpstreamServer owns it). Module-level
 * listeners (no closure per request) watch an idle connection until it is taken again.
 */
export class IdleConnections {
  readonly #sockets: PooledSocket[] = [];
  #closed = false;

  /** An open idle connection, or null. */
  take(): Socket | null {
    for (let socket = this.#sockets.pop(); socket; socket = this.#sockets.pop()) {
      socket[IDLE_POOL] = null;
      socket.off('error', dropIdle);
      socket.off('close', dropIdle);
      socket.off('end', dropIdle);
      socket.off('data', dropIdle);
      if (!socket.destroyed && socket.readyState === 'open') return socket;
    }
    return null;
  }

  /** A connection whose last response ended cleanly waits here for the next request. */
  put(socket: PooledSocket): void {
    if (this.#closed || this.#sockets.length >= MAX_IDLE || socket.destroyed) {
      socket.destroy();
      return;
    }
    socket[IDLE_POOL] = this;
    socket.on('error', dropIdle);
    socket.on('close', dropIdle);
    socket.on('end', dropIdle);
    socket.on('data', dropIdle);
    this.#sockets.push(socket);
  }

  drop(socket: PooledSocket): void {
    const at = this.#sockets.indexOf(socket);
    if (at !== -1) this.#sockets.splice(at, 1);
    socket[IDLE_POOL] = null;
    socket.destroy();
  }

  /** The server left the group: its idle connections close, and none is kept from now on. */
  close(): void {
    this.#closed = true;
    for (const socket of this.#sockets.splice(0)) socket.destroy();
  }
}

const CRLF = Buffer.from('\r\n');
const LAST_CHUNK = Buffer.from('0\r\n\r\n');

/**
 * The client's decoded body, chunked again onto `socket` (RFC 9112 §7.1), with back-pressure:
 * the client's body pauses while the socket's buffer is full.
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
  // Detached when the attempt settles, as `unpipe` detaches a sized body.
  return () => {
    req.off('data', onData);
    req.off('end', onEnd);
  };
}

/** One attempt on one connection. Resolves once the response went to the client (or the client left). */
export function forwardOneShot(attempt: OneShotAttempt): Promise<Outcome> {
  const { ctx, group, protocol } = attempt;
  const req = ctx.req;
  const sink = attempt.sink;
  const res: BodySink = sink ?? ctx.res;
  const method = attempt.method;
  const tag = protocol === 'uwsgi' ? 'UWSGI' : 'UPSTREAM';
  const keepAlive = attempt.keepAlive;
  // Framed answers (Content-Length or chunked, RFC 9112 §6.3): HTTP, and uwsgi with keep-alive.
  const http = protocol === 'http' || keepAlive !== undefined;
  const body = attempt.body;

  return new Promise<Outcome>((resolve) => {
    const address = attempt.address;
    const reused = keepAlive?.take() ?? null;
    const socket: Socket = reused ?? (address.kind === 'unix' ? connect({ path: address.path }) : connect({ host: address.host, port: address.port }));
    let connected = false;
    /** The answer ended where its framing said, and said nothing of closing: the connection may carry another request. */
    let reusable = false;
    /** The answer went out whole (not a client that left mid-answer: unread bytes would stay on the connection). */
    let finished = false;
    let bodySent = body === 'none';
    let responded = false;
    let settled = false;
    let head: Buffer | null = Buffer.alloc(0);
    let remaining: number | null = null;
    let chunked: ChunkedDecoder | null = null;
    let detachChunked: (() => void) | null = null;
    const timers: NodeJS.Timeout[] = [];
    const settle = (outcome: Outcome): void => {
      if (settled) return;
      settled = true;
      for (const timer of timers) clearTimeout(timer);
      res.off('close', onClientClose);
      if (typeof body === 'object') {
        body.unpipe(socket);
        body.destroy();
      } else {
        req.unpipe(socket);
      }
      detachChunked?.();
      if (keepAlive && reusable && finished && bodySent) {
        socket.off('error', onError);
        socket.off('connect', onConnect);
        socket.off('data', onData);
        socket.off('end', onEnd);
        socket.off('close', onEnd);
        socket.off('timeout', onIdleTimeout);
        socket.setTimeout(0);
        if (socket.isPaused()) socket.resume();
        keepAlive.put(socket);
      } else {
        socket.destroy();
      }
      resolve(outcome);
    };
    /** After the head went out, the only honest signal of a failure is a cut connection. */
    const cut = (code: string): void => {
      log().warn({ upstream: group.name, server: attempt.name, code }, 'upstream failed mid-response');
      res.destroy();
      settle(DONE);
    };
    const fail = (status: 502 | 504, reason: 'error' | 'timeout', code: string): void => {
      if (responded) cut(code);
      else settle(failed(status, reason, !connected, code));
    };
    // The client left (or the response finished and its socket closed): stop the upstream side.
    const onClientClose = (): void => settle(DONE);
    res.on('close', onClientClose);

    if (group.connectTimeout > 0) {
      timers.push(setTimeout(() => !connected && fail(504, 'timeout', `ERR_${tag}_CONNECT_TIMEOUT`), group.connectTimeout));
    }
    if (group.timeout > 0) timers.push(setTimeout(() => fail(504, 'timeout', 'ERR_PROXY_TOTAL_TIMEOUT'), group.timeout));

    const onError = (error: NodeJS.ErrnoException): void => fail(502, 'error', error.code ?? `ERR_${tag}_SOCKET`);
    const onConnect = (): void => {
      connected = true;
      if (group.headerTimeout > 0) {
        timers.push(setTimeout(() => !responded && fail(504, 'timeout', 'ERR_PROXY_HEADER_TIMEOUT'), group.headerTimeout));
      }
      socket.write(attempt.head);
      // `end: false`: no half-close; the server reads the framing it was told.
      if (body === 'raw') req.pipe(socket, { end: false });
      else if (body === 'chunked') detachChunked = pipeChunked(req, socket);
      else if (typeof body === 'object') body.pipe(socket, { end: false });
      if (keepAlive && !bodySent) {
        const source = typeof body === 'object' ? body : req;
        if (source.readableEnded) bodySent = true;
        else source.once('end', () => (bodySent = true));
      }
    };
    socket.on('error', onError);
    // While the client is slow to take the body, the upstream socket is paused on purpose: the
    // idle timer (a silent upstream) is off until it flows again.
    const idle = group.idleTimeout;
    const resume = (): void => {
      if (idle > 0) socket.setTimeout(idle);
      socket.resume();
    };
    // Where the body goes: the client, or the route's compressor (sendHead says which).
    let out: BodySink = res;
    let paused = false;
    const emit = (part: Buffer): void => {
      if (part.length === 0) return;
      ctx.bodyBytes += part.length;
      if (!out.write(part) && !paused) {
        paused = true;
        socket.setTimeout(0);
        socket.pause();
        out.once('drain', () => {
          paused = false;
          resume();
        });
      }
    };
    const complete = (): void => {
      finished = true;
      out.end();
      settle(DONE);
    };
    const onIdleTimeout = (): void => cut(`ERR_${tag}_IDLE_TIMEOUT`);
    const writeBody = (chunk: Buffer): void => {
      if (chunked) {
        const problem = chunked.push(chunk, emit);
        if (problem) {
          log().warn({ upstream: group.name, server: attempt.name, problem }, 'invalid chunked response body');
          return cut(`ERR_${tag}_BAD_CHUNKED`);
        }
        if (chunked.done) complete();
        return;
      }
      let part = chunk;
      if (remaining !== null) {
        if (part.length > remaining) {
          // Bytes past the answer's length: a confused server, whose connection is not reused.
          part = part.subarray(0, remaining);
          reusable = false;
        }
        remaining -= part.length;
      }
      emit(part);
      if (remaining === 0) complete();
    };
    /** A final head: answer the client (or the cache), or move on for a status in `retry.on`. */
    const onFinalHead = (parsed: ParsedHead, rest: Buffer): void => {
      if (group.retry.statuses.includes(parsed.status) && attempt.canRetry()) {
        return settle(failed(parsed.status === 504 ? 504 : 502, 'status', false, `HTTP_${parsed.status}`));
      }
      responded = true;
      // RFC 9110 §6.4.1: no body for HEAD, 204 and 304, whatever the fields say.
      const bodyless = method === 'HEAD' || parsed.status === 204 || parsed.status === 304;
      const headers = clientResponseHeaders(parsed.headers, attempt.hide);
      if (sink) sink.head(parsed.status, headers);
      else out = sendHead(ctx, parsed.status, headers);
      // Keep-alive: the answer must end where its framing says and not announce a close.
      reusable = keepAlive !== undefined && !(parsed as ParsedHttpHead).close && (bodyless || parsed.length !== null || (parsed as ParsedHttpHead).chunked);
      if (bodyless) return complete();
      remaining = parsed.length;
      if ((parsed as ParsedHttpHead).chunked) chunked = new ChunkedDecoder();
      // The longest pause between reads of the body (the head timer is done).
      if (idle > 0) {
        socket.on('timeout', onIdleTimeout);
        socket.setTimeout(idle);
      }
      writeBody(rest);
    };
    const onData = (chunk: Buffer): void => {
      if (settled) return;
      if (head === null) return writeBody(chunk);
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      // Interim answers (HTTP) come before the final one, each a head of its own.
      while (head !== null) {
        const end = head.indexOf('\r\n\r\n');
        if (end === -1) {
          if (head.length > MAX_RESPONSE_HEAD) fail(502, 'error', `ERR_${tag}_HEAD_TOO_LARGE`);
          return;
        }
        if (end > MAX_RESPONSE_HEAD) return fail(502, 'error', `ERR_${tag}_HEAD_TOO_LARGE`);
        const text = head.toString('latin1', 0, end);
        const parsed = http ? parseHttpResponseHead(text) : parseResponseHead(text);
        const rest = head.subarray(end + 4);
        if (typeof parsed === 'string') {
          log().warn({ upstream: group.name, server: attempt.name, problem: parsed }, `invalid ${protocol} response head`);
          return fail(502, 'error', `ERR_${tag}_BAD_RESPONSE`);
        }
        if (parsed.status < 200) {
          // 102 and 103 go on to the client (RFC 9110 §15.2), never to the cache; a 101 was not
          // asked for (no Upgrade goes this way); a 100 the edge already answered itself.
          if (parsed.status === 101) return fail(502, 'error', `ERR_${tag}_BAD_RESPONSE`);
          if (parsed.status !== 100) sendInterim(ctx, parsed.status, clientResponseHeaders(parsed.headers, attempt.hide));
          head = rest;
          continue;
        }
        head = null;
        attempt.onFinalHead?.(parsed as ParsedHttpHead);
        onFinalHead(parsed, rest);
      }
    };
    socket.on('data', onData);
    const onEnd = (): void => {
      if (settled) return;
      if (!responded) return fail(502, 'error', head !== null && head.length > 0 ? `ERR_${tag}_TRUNCATED_HEAD` : `ERR_${tag}_NO_RESPONSE`);
      // A Content-Length not reached, or a chunked body without its last chunk: the response is
      // incomplete, and the client must see that.
      if ((remaining !== null && remaining > 0) || (chunked !== null && !chunked.done)) return cut(`ERR_${tag}_TRUNCATED_BODY`);
      complete();
    };
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    // The client's body stopped short (it left mid-upload): the upstream request cannot complete.
    req.once('aborted', () => settle(DONE));
    if (reused) onConnect();
    else socket.on('connect', onConnect);
  });
}

/**
 * The HTTP/1.1 request head for `forwardOneShot`: the request line and the forwarded fields
 * (proxy/headers.ts made them; their values passed node's parser or the config's checks), plus
 * Transfer-Encoding when the client's body was chunked. No `Connection: close`: a server that
 * keeps connections says so by not closing its answer, and the proxy then pools it again.
 */
export function httpRequestHead(method: string, path: string, headers: readonly string[], chunked: boolean): string {
  let head = `${method} ${path} HTTP/1.1\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i] as string}: ${headers[i + 1] as string}\r\n`;
  if (chunked) head += 'transfer-encoding: chunked\r\n';
  return `${head}\r\n`;
}
