/**
 * Route action `proxy` (nginx `proxy_pass` + `proxy_next_upstream`): pick a server of the group,
 * forward the request through its keep-alive pool (undici), stream the response back with
 * back-pressure both ways, and on a failure move idempotent requests to the next server, bounded
 * by `retry.tries` and `retry.timeout`. Non-idempotent requests are retried only when the failure
 * happened before anything was sent (connect errors). Errors never show the upstream's address
 * or stack to the client: it gets 502 (error) or 504 (timeout).
 */
import type { Duplex, Writable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { ResolvedHandler } from '../../../config/resolved.js';
import { DeadlineQueue, type Deadline } from '../../../core/deadline-queue.js';
import { ErrorCodes, HttpError } from '../../../core/errors.js';
import { log } from '../../../core/log.js';
import type { RequestContext } from '../../context.js';
import { bodyRefusal } from '../../http/limits.js';
import { sendHead } from '../../http/respond.js';
import { upstreamAttempt, type UpstreamAttemptMessage } from '../../observe.js';
import { compileTemplate, type Template } from '../../variables.js';
import type { Handler } from '../types.js';
import { CONDITIONAL_FIELDS, DONE, RANGE_FIELDS, type BodySink, type Exchange, type Outcome } from './attempt.js';

import { clientResponseHeaders, clientResponseHeadersRaw, responseDropSet, upstreamRequestHeaders, type ForwardingOptions } from './headers.js';
import { MEMBER_WAIT_MS, type UpstreamGroup, type UpstreamServer } from './upstream.js';
import { CLIENT_GONE, ClientGone, classifyFailure, errorCode } from './errors.js';
import { forwardUwsgi, type UwsgiAddress } from './uwsgi.js';

type ProxyConfig = Extract<ResolvedHandler, { type: 'proxy' }>;

/** RFC 9110 §9.2.2. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

class TotalTimeout extends Error {
  readonly code = 'ERR_PROXY_TOTAL_TIMEOUT';
}
/**
 * Our own response-head timer: undici's parser timeouts run on a coarse clock (a 300 ms
 * headersTimeout fired after about 1,000 ms here), and a configured timeout should hold.
 */
class HeaderTimeout extends Error {
  readonly code = 'ERR_PROXY_HEADER_TIMEOUT';
}
class RetryOnStatus extends Error {
  readonly code = 'ERR_PROXY_RETRY_STATUS';
}

/** Bytes a client may send after an Upgrade request before the upstream's 101 (kept for the upstream). */
const EARLY_DATA_LIMIT = 64 * 1024;

/** A decoded path, percent-encoded for a request line ("%", "?", "#" and non-ASCII included). */
function encodePath(path: string): string {
  return encodeURI(path).replace(/\?/g, '%3F').replace(/#/g, '%23');
}

function requestHasBody(ctx: RequestContext): boolean {
  const headers = ctx.req.headers;
  return headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && headers['content-length'] !== '0');
}

export class ProxyHandler {
  readonly #config: ProxyConfig;
  readonly #group: UpstreamGroup;
  readonly #forwarding: ForwardingOptions;
  /** The same without the client's range fields, or without them and its validators, for exchanges of the cache. */
  readonly #withoutRange: ForwardingOptions;
  readonly #withoutConditionals: ForwardingOptions;
  readonly #hide: ReadonlySet<string>;
  readonly #drop: ReadonlySet<string>;
  readonly #headDeadlines: DeadlineQueue<HttpAttempt> | null;
  readonly #path: Template | null;
  readonly #prefix: string | null;
  readonly #hostTemplate: Template | null;

  constructor(config: ProxyConfig, group: UpstreamGroup, routePrefix: string | null) {
    this.#config = config;
    this.#group = group;
    this.#hide = new Set(config.hideHeaders);
    this.#drop = responseDropSet(this.#hide);
    this.#headDeadlines = group.config.headerTimeout > 0 ? new DeadlineQueue<HttpAttempt>(group.config.headerTimeout, expireHead) : null;
    this.#path = config.path === null ? null : compileTemplate(config.path);
    this.#prefix = routePrefix;
    this.#hostTemplate = config.host === 'client' || config.host === 'upstream' ? null : compileTemplate(config.host);
    this.#forwarding = {
      host: null,
      xForwarded: config.xForwarded,
      forwarded: config.forwarded,
      via: config.via ? '1.1 portico' : null,
      // `set` replaces: its names are removed first (the client's values and the proxy's own).
      remove: new Set([...config.requestHeaders.remove, ...config.requestHeaders.set.map(([name]) => name)].map((name) => name.toLowerCase())),
      set: config.requestHeaders.set,
      add: config.requestHeaders.add,
    };
    this.#withoutRange = { ...this.#forwarding, remove: new Set([...this.#forwarding.remove, ...RANGE_FIELDS]) };
    this.#withoutConditionals = { ...this.#forwarding, remove: new Set([...this.#forwarding.remove, ...CONDITIONAL_FIELDS]) };
  }

  /** The upstream group (the cache reads its name for logs). */
  get group(): UpstreamGroup {
    return this.#group;
  }

  handler(): Handler {
    return this.handle.bind(this);
  }

  /**
   * The path sent upstream (nginx `proxy_pass` rules): with a URI part in the target, the route's
   * prefix is replaced by it; without one, the request URI goes as received, or, after a rewrite,
   * the rewritten URI percent-encoded again.
   */
  #upstreamPath(ctx: RequestContext): string {
    const query = ctx.query !== '' ? `?${ctx.query}` : '';
    if (this.#path) {
      const prefix = this.#prefix;
      // The target's path is written URL-encoded in the config: escapes there are kept as they are.
      if (prefix === null) return encodeURI(this.#path(ctx)).replace(/%25([0-9A-Fa-f]{2})/g, '%$1') + query;
      // The rest of the decoded URI is encoded again, "%", "?" and "#" included: it is data, never syntax.
      if (ctx.uri.startsWith(prefix)) return encodeURI(this.#path(ctx)).replace(/%25([0-9A-Fa-f]{2})/g, '%$1') + encodePath(ctx.uri.slice(prefix.length)) + query;
      // A rewrite (break) moved the URI out of the route's prefix: as nginx, the whole changed URI goes.
      return encodePath(ctx.uri) + query;
    }
    const raw = ctx.req.url ?? '/';
    if (ctx.internalRedirects === 0 && raw.startsWith('/') && ctx.rewritten === false) return raw;
    return encodePath(ctx.uri) + query;
  }

  handle(ctx: RequestContext): Promise<void> {
    return this.exchange(ctx, null);
  }

  /**
   * One request upstream, with retries: the client's as it is (`exchange` null), or as the cache
   * changes it, its response going to the exchange's sink. Rejects with an HttpError
   * (502/503/504) when no server answered.
   */
  exchange(ctx: RequestContext, exchange: Exchange | null): Promise<void> {
    return new Promise<void>((resolve, reject) => new ProxyRequest(this, ctx, exchange, resolve, reject).next());
  }

  /** The forwarding options of one attempt on `server` (Host by the `host` policy; the cache's changes). */
  requestHeaders(ctx: RequestContext, server: UpstreamServer, exchange: Exchange | null): string[] {
    const config = this.#config;
    const host = config.host === 'client' ? null : config.host === 'upstream' ? server.authority : (this.#hostTemplate as Template)(ctx);
    let forwarding = this.#forwarding;
    if (exchange) {
      forwarding = exchange.strip === 'all' ? this.#withoutConditionals : exchange.strip === 'range' ? this.#withoutRange : forwarding;
      if (exchange.add.length > 0) forwarding = { ...forwarding, add: [...forwarding.add, ...exchange.add] };
    }
    return upstreamRequestHeaders(ctx.req, ctx.clientAddress, ctx.listener.scheme, host === null ? forwarding : { ...forwarding, host }, server.authority);
  }

  /** The path sent upstream (see `#upstreamPath`). */
  upstreamPath(ctx: RequestContext): string {
    return this.#upstreamPath(ctx);
  }

  /** Response fields hidden from the client (by default the upstream's identity). */
  get hide(): ReadonlySet<string> {
    return this.#hide;
  }

  /** Hop-by-hop fields and `hide`: what never goes from an upstream's response to the client. */
  get drop(): ReadonlySet<string> {
    return this.#drop;
  }

  /** The group's response-head deadlines (one timer for all attempts), or null without a head timeout. */
  get headDeadlines(): DeadlineQueue<HttpAttempt> | null {
    return this.#headDeadlines;
  }

  /** One attempt on a uwsgi server (proxy/uwsgi.ts). */
  uwsgi(ctx: RequestContext, server: UpstreamServer, address: UwsgiAddress, path: string, headers: string[], canRetry: () => boolean, method: string, exchange: Exchange | null): Promise<Outcome> {
    return forwardUwsgi({ ctx, address, requestUri: path, headers, hide: this.#hide, group: this.#group.config, canRetry, name: server.name, method, sink: exchange?.sink ?? null });
  }

  /** WebSocket and other `Upgrade`s: 101 from the upstream, then bytes both ways with an idle timeout. */
  tunnel(ctx: RequestContext, server: UpstreamServer, path: string, headers: string[]): Promise<Outcome> {
    const upgrade = ctx.upgrade as { socket: Duplex; head: Buffer };
    const protocol = String(ctx.req.headers.upgrade ?? 'websocket');
    const hide = this.#hide;
    const idle = this.#group.config.idleTimeout;
    const headerTimeout = this.#group.config.headerTimeout;
    return new Promise<Outcome>((resolve) => {
      const client = upgrade.socket;
      let out: Writable = ctx.res;
      let controller: Dispatcher.DispatchController | null = null;
      let settled = false;
      let headerTimer: NodeJS.Timeout | undefined;
      const settle = (outcome: Outcome) => {
        if (!settled) {
          settled = true;
          clearTimeout(headerTimer);
          stopWatching();
          resolve(outcome);
        }
      };
      // The client left before the upstream answered the handshake: drop the upstream request
      // too, rather than hold its connection until the header timeout. node:http hands the
      // socket over paused, and a paused socket never sees the client's FIN: read it, keeping
      // what the client sends early (bounded) for the upstream.
      const early: Buffer[] = [];
      let earlyBytes = 0;
      const onEarlyData = (chunk: Buffer) => {
        early.push(chunk);
        earlyBytes += chunk.length;
        if (earlyBytes >= EARLY_DATA_LIMIT) client.pause();
      };
      const onClientGone = () => {
        controller?.abort(new ClientGone('client closed the connection'));
        settle(DONE);
      };
      const stopWatching = () => {
        client.off('data', onEarlyData);
        client.off('end', onClientGone);
        client.off('close', onClientGone);
      };
      client.on('data', onEarlyData);
      client.once('end', onClientGone);
      client.once('close', onClientGone);
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart(c) {
          controller = c;
          if (settled) c.abort(new ClientGone('client closed the connection'));
          else if (headerTimeout > 0) headerTimer = setTimeout(() => c.abort(new HeaderTimeout('handshake timeout')), headerTimeout);
        },
        onRequestUpgrade(_c, statusCode, upstreamHeaders, upstream) {
          clearTimeout(headerTimer);
          if (settled || client.destroyed) {
            upstream.destroy();
            settle(DONE);
            return;
          }
          stopWatching();
          const lines = [`HTTP/1.1 ${statusCode} Switching Protocols`];
          for (const [name, value] of Object.entries(upstreamHeaders)) {
            if (value === undefined || hide.has(name)) continue;
            for (const item of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${item}`);
          }
          ctx.status = statusCode;
          client.write(`${lines.join('\r\n')}\r\n\r\n`);
          if (upgrade.head.length > 0) upstream.write(upgrade.head);
          for (const chunk of early) upstream.write(chunk);
          const close = () => {
            client.destroy();
            upstream.destroy();
          };
          for (const socket of [client, upstream] as Duplex[]) {
            (socket as Duplex & { setTimeout?: (ms: number, cb: () => void) => void }).setTimeout?.(idle, close);
            socket.on('error', close);
            socket.on('close', close);
          }
          client.pipe(upstream);
          upstream.pipe(client);
          upstream.once('close', () => settle(DONE));
        },
        onResponseStart(_c, statusCode, upstreamHeaders) {
          clearTimeout(headerTimer);
          // The upstream declined the upgrade: pass its answer on as a normal response.
          out = sendHead(ctx, statusCode, clientResponseHeaders(upstreamHeaders as Record<string, string | string[]>, hide));
        },
        onResponseData(_c, chunk) {
          out.write(chunk);
        },
        onResponseEnd() {
          out.end();
          settle(DONE);
        },
        onResponseError(_c, error) {
          const code = errorCode(error);
          if (code === CLIENT_GONE) return;
          if (ctx.res.headersSent || ctx.status === 101) {
            upgrade.socket.destroy();
            settle(DONE);
            return;
          }
          settle({ kind: 'failed', ...classifyFailure(code) });
        },
      };
      server.pool.dispatch({ path, method: 'GET', headers, upgrade: protocol, body: null } as Dispatcher.DispatchOptions, handler);
    });
  }
}

/**
 * One request's way through the group (nginx `proxy_next_upstream`): attempts on servers until
 * one answers, bounded by `retry.tries` and `retry.timeout`; non-idempotent requests move on only
 * when nothing was sent. A state machine rather than an async loop, so that the common case (one
 * attempt that succeeds) costs one promise and no closures; what it holds is what the loop's
 * locals were.
 */
class ProxyRequest {
  readonly proxy: ProxyHandler;
  readonly ctx: RequestContext;
  readonly exchange: Exchange | null;
  readonly method: string;
  readonly hasBody: boolean;
  readonly #idempotent: boolean;
  readonly #started: number;
  readonly #resolve: () => void;
  readonly #reject: (error: unknown) => void;
  #path = '';
  #attempt = 0;
  /** The first server tried; `#tried` (every server tried) is made only once a retry is asked about. */
  #first: UpstreamServer | null = null;
  #tried: Set<UpstreamServer> | null = null;
  #lastStatus: 502 | 504 = 502;
  /** When the attempt in progress started (performance.now()), taken only while `portico:upstream:attempt` has subscribers. */
  #attemptStartedAt = 0;

  constructor(proxy: ProxyHandler, ctx: RequestContext, exchange: Exchange | null, resolve: () => void, reject: (error: unknown) => void) {
    this.proxy = proxy;
    this.ctx = ctx;
    this.exchange = exchange;
    this.#resolve = resolve;
    this.#reject = reject;
    this.method = exchange?.method ?? ctx.req.method ?? 'GET';
    this.#idempotent = IDEMPOTENT.has(this.method);
    this.hasBody = requestHasBody(ctx);
    this.#started = proxy.group.config.retry.timeout > 0 ? Date.now() : 0;
  }

  /** The servers tried so far, as the balancer's `pick` takes them (the same set every time: it remembers its answer for it). */
  #triedSet(): Set<UpstreamServer> {
    let tried = this.#tried;
    if (tried === null) {
      tried = new Set();
      if (this.#first) tried.add(this.#first);
      this.#tried = tried;
    }
    return tried;
  }

  /** Whether a failed attempt may move to another server (`beforeSend`: nothing reached the server). */
  mayRetryAfter(beforeSend: boolean): boolean {
    const group = this.proxy.group;
    const retry = group.config.retry;
    return (
      this.#attempt < retry.tries &&
      (retry.timeout === 0 || Date.now() - this.#started < retry.timeout) &&
      (!this.hasBody || !this.ctx.req.readableDidRead) &&
      (this.#idempotent || beforeSend) &&
      group.pick(this.ctx, this.#triedSet(), Date.now()) !== null
    );
  }

  /** The next attempt (the first one from `exchange`). Never throws: a failure rejects. */
  next(): void {
    try {
      this.#next();
    } catch (error) {
      this.#reject(error);
    }
  }

  #next(): void {
    const { ctx, proxy } = this;
    const group = proxy.group;
    if (this.#attempt === 0) {
      // RFC 6455 §4.1: the opening handshake is a GET; other methods are not tunnelled.
      if (ctx.upgrade && this.method !== 'GET') throw new HttpError(400, ErrorCodes.ERR_REQUEST_PARSE, 'an Upgrade request must be a GET');
      this.#path = proxy.upstreamPath(ctx);
    }
    this.#attempt++;
    const first = this.#first === null;
    const server = group.pick(ctx, this.#tried, Date.now());
    if (!server && first && group.dynamic) {
      // An app's group with no worker at this moment (its only worker recycling, every worker
      // crashed): wait for one, as the standalone arbiter queues connections while no worker is
      // ready, rather than fail at once. Bounded; then 503 with Retry-After (the app is
      // restarting, not broken).
      if (group.servers.length === 0) {
        this.#attempt--;
        group.waitForServer(MEMBER_WAIT_MS).then(
          (ready) => (ready ? this.next() : this.#reject(notReady(group))),
          (error: unknown) => this.#reject(error),
        );
        return;
      }
      throw notReady(group);
    }
    if (!server) {
      throw new HttpError(this.#lastStatus, this.#attempt === 1 ? ErrorCodes.ERR_UPSTREAM_UNAVAILABLE : ErrorCodes.ERR_UPSTREAM_FAILED, `no upstream server of "${group.name}" could answer`);
    }
    if (first) this.#first = server;
    else this.#triedSet().add(server);
    const headers = proxy.requestHeaders(ctx, server, this.exchange);
    server.active++;
    server.attempts++;
    this.#attemptStartedAt = upstreamAttempt.hasSubscribers ? performance.now() : 0;
    if (server.uwsgi) {
      // A uwsgi server gets an Upgrade request as a plain one (the field is hop-by-hop): its
      // answer declines the upgrade (RFC 9110 §7.8), as the protocol has no tunnel through nginx either.
      this.#await(server, () => proxy.uwsgi(ctx, server, server.uwsgi as UwsgiAddress, this.#path, headers, () => this.mayRetryAfter(false), this.method, this.exchange));
    } else if (ctx.upgrade && !this.exchange) {
      this.#await(server, () => proxy.tunnel(ctx, server, this.#path, headers));
    } else {
      new HttpAttempt(this, server).dispatch(this.#path, headers);
    }
  }

  /** An attempt made by a transport that answers with a promise (uwsgi, tunnels). */
  #await(server: UpstreamServer, start: () => Promise<Outcome>): void {
    let pending: Promise<Outcome>;
    try {
      pending = start();
    } catch (error) {
      server.active--;
      throw error;
    }
    pending.then(
      (outcome) => this.finish(server, outcome),
      (error: unknown) => {
        server.active--;
        this.#reject(error);
      },
    );
  }

  /** An attempt on `server` came to `outcome`: answer, retry, or fail. */
  finish(server: UpstreamServer, outcome: Outcome): void {
    server.active--;
    const ctx = this.ctx;
    if (this.#attemptStartedAt !== 0) publishAttempt(this, server, outcome, this.#attempt, this.#attemptStartedAt);
    // The client's body was refused (too large, too slow: edge/http/limits.ts) and the attempt
    // aborted for it: the answer is that refusal, and the server did nothing wrong.
    const refused = ctx.res.headersSent ? null : bodyRefusal(ctx.req);
    if (refused) {
      this.#reject(refused);
      return;
    }
    if (outcome.kind === 'done') {
      this.#resolve();
      return;
    }
    const group = this.proxy.group;
    // nginx: a 403 or 404 from the upstream is never an unsuccessful attempt for health.
    if (outcome.code !== 'HTTP_403' && outcome.code !== 'HTTP_404') server.recordFailure(Date.now());
    this.#lastStatus = outcome.status;
    const retry = group.config.retry;
    const wanted = outcome.reason === 'status' || (outcome.reason === 'timeout' ? retry.onTimeout : retry.onError);
    log().warn({ upstream: group.name, server: server.name, code: outcome.code, attempt: this.#attempt }, 'upstream attempt failed');
    if (!wanted || !this.mayRetryAfter(outcome.beforeSend)) {
      this.#reject(new HttpError(outcome.status, outcome.status === 504 ? ErrorCodes.ERR_UPSTREAM_TIMEOUT : ErrorCodes.ERR_UPSTREAM_FAILED, `upstream "${group.name}" failed: ${outcome.code}`));
      return;
    }
    // The next attempt starts from a fresh microtask, not from inside the failed one's undici
    // callback (as the async loop this replaced did).
    queueMicrotask(() => this.next());
  }
}

function publishAttempt(request: ProxyRequest, server: UpstreamServer, outcome: Outcome, attempt: number, startedAt: number): void {
  if (!upstreamAttempt.hasSubscribers) return;
  const failed = outcome.kind === 'failed' ? outcome : null;
  upstreamAttempt.publish({
    ctx: request.ctx,
    upstream: request.proxy.group.name,
    server: server.name,
    attempt,
    ok: failed === null,
    code: failed?.code ?? '',
    durationMs: performance.now() - startedAt,
  } satisfies UpstreamAttemptMessage);
}

function notReady(group: UpstreamGroup): HttpError {
  return new HttpError(503, ErrorCodes.ERR_UPSTREAM_UNAVAILABLE, `no worker of "${group.name}" is ready`, { headers: { 'retry-after': '1' } });
}

/**
 * One HTTP attempt on one server, as undici's dispatch handler. It uses undici's handler methods
 * that take the response head as received (`onConnect`/`onHeaders`/`onData`/`onComplete`/
 * `onError`, the ones undici's own `request` and `stream` use): given the newer
 * `onRequestStart`/`onResponseStart` form, undici wraps each request in an adapter that makes a
 * controller and parses the head and the trailers into objects, which this proxy would only turn
 * back into a flat list. The attempt is its own deadline entry (core/deadline-queue.ts) and its methods are
 * on the prototype: a request allocates this object, one listener and the dispatch options.
 */
class HttpAttempt implements Deadline {
  readonly #request: ProxyRequest;
  readonly #server: UpstreamServer;
  /** Where the response goes: the client's ServerResponse, or the cache's sink. */
  readonly #res: BodySink;
  /** Where the body goes: `#res`, or the route's compressor (sendHead says which). */
  #out: BodySink;
  #abort: ((error: Error) => void) | null = null;
  #resume: (() => void) | null = null;
  #responded = false;
  #settled = false;
  #totalTimer: NodeJS.Timeout | undefined = undefined;
  _deadline = 0;
  _prev: Deadline | null = null;
  _next: Deadline | null = null;
  _queued = false;

  constructor(request: ProxyRequest, server: UpstreamServer) {
    this.#request = request;
    this.#server = server;
    const res = request.exchange?.sink ?? request.ctx.res;
    this.#res = res;
    this.#out = res;
  }

  /** The client went away: stop the upstream request too (its connection is not reused). */
  readonly #onClientClose = (): void => {
    if (!this.#res.writableFinished) this.#abort?.(new ClientGone('client closed the connection'));
    this.#settle(DONE);
  };

  dispatch(path: string, headers: string[]): void {
    const request = this.#request;
    const group = request.proxy.group.config;
    this.#res.on('close', this.#onClientClose);
    // The total timer is off by default (`timeout` 0), so it stays a plain timer.
    if (group.timeout > 0) this.#totalTimer = setTimeout(expireTotal, group.timeout, this);
    this.#server.pool.dispatch(
      {
        path,
        method: request.method,
        headers,
        body: request.hasBody ? request.ctx.req : null,
        idempotent: false,
        blocking: true,
      } as Dispatcher.DispatchOptions,
      this as unknown as Dispatcher.DispatchHandler,
    );
  }

  #settle(outcome: Outcome): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#request.proxy.headDeadlines?.remove(this);
    clearTimeout(this.#totalTimer);
    this.#res.off('close', this.#onClientClose);
    this.#request.finish(this.#server, outcome);
  }

  /**
   * A timeout: before the request has a connection (it waits in the pool) the attempt settles at
   * once (nothing was sent); later, aborting the dispatch reports through onError. The error is
   * made only now: an Error captures a stack, and made per request up front it was 10% of the
   * proxy's CPU profile (bench/profile-summary.mjs).
   */
  timeout(error: TotalTimeout | HeaderTimeout): void {
    if (this.#abort) this.#abort(error);
    else this.#settle({ kind: 'failed', status: 504, reason: 'timeout', beforeSend: true, code: error.code });
  }

  /** The response-head deadline passed (core/deadline-queue.ts). */
  expireHead(): void {
    this.timeout(new HeaderTimeout('response head timeout'));
  }

  onConnect(abort: (error: Error) => void): void {
    this.#abort = abort;
    if (this.#settled) abort(new ClientGone('client closed the connection'));
    else this.#request.proxy.headDeadlines?.add(this);
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    // 1xx (e.g. 100 Continue to undici's own Expect) are not forwarded: node:http already
    // answered the client's Expect: 100-continue itself.
    if (statusCode < 200) return true;
    const request = this.#request;
    const proxy = request.proxy;
    proxy.headDeadlines?.remove(this);
    const statuses = proxy.group.config.retry.statuses;
    if (statuses.length > 0 && statuses.includes(statusCode) && request.mayRetryAfter(false)) {
      this.#abort?.(new RetryOnStatus(`status ${statusCode}`));
      this.#settle({ kind: 'failed', status: statusCode === 504 ? 504 : 502, reason: 'status', beforeSend: false, code: `HTTP_${statusCode}` });
      return true;
    }
    this.#responded = true;
    this.#resume = resume;
    const headers = clientResponseHeadersRaw(rawHeaders, proxy.drop);
    const sink = request.exchange?.sink;
    if (sink) sink.head(statusCode, headers);
    else this.#out = sendHead(request.ctx, statusCode, headers);
    return true;
  }

  /** Back-pressure: false pauses undici's parser until the consumer drains. */
  onData(chunk: Buffer): boolean {
    this.#request.ctx.bodyBytes += chunk.length;
    if (this.#out.write(chunk)) return true;
    this.#out.once('drain', this.#resume as () => void);
    return false;
  }

  onComplete(): void {
    this.#out.end();
    this.#settle(DONE);
  }

  onError(error: Error): void {
    const code = errorCode(error);
    if (code === 'ERR_PROXY_RETRY_STATUS' || code === CLIENT_GONE) return;
    if (this.#responded) {
      // Headers are gone: the only honest signal left is a cut connection.
      const group = this.#request.proxy.group;
      log().warn({ upstream: group.name, server: this.#server.name, code }, 'upstream failed mid-response');
      this.#res.destroy();
      this.#settle(DONE);
      return;
    }
    this.#settle({ kind: 'failed', ...classifyFailure(code) });
  }
}

function expireHead(attempt: HttpAttempt): void {
  attempt.expireHead();
}

function expireTotal(attempt: HttpAttempt): void {
  attempt.timeout(new TotalTimeout('total timeout'));
}

export function createProxyHandler(config: ProxyConfig, groups: ReadonlyMap<string, UpstreamGroup>, routePrefix: string | null): Handler {
  const group = groups.get(config.upstream);
  if (!group) throw new Error(`proxy to unknown upstream "${config.upstream}" (the config check should have refused this)`);
  return new ProxyHandler(config, group, routePrefix).handler();
}
