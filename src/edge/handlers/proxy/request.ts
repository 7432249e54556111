/**
 * One request's way through an upstream group: which server each attempt goes to, by which
 * transport (raw sockets: HTTP to a plain-HTTP server without a request body, or to one that
 * closes every connection, and uwsgi: raw-exchange.ts; other HTTP through undici:
 * http-attempt.ts; an Upgrade: tunnel.ts), and whether a failed attempt moves on to the next
 * server (nginx `proxy_next_upstream`).
 */
import { ErrorCodes, HttpError } from '../../../core/errors.js';
import { log } from '../../../core/log.js';
import type { RequestContext } from '../../context.js';
import { bodyRefusal } from '../../http/limits.js';
import { upstreamAttempt, type UpstreamAttemptMessage } from '../../observe.js';
import type { Exchange, Outcome } from './attempt.js';
import { HttpAttempt } from './http-attempt.js';
import { httpRequestHead, RawExchange } from './raw-exchange.js';
import type { ProxyHandler } from './index.js';
import { MEMBER_WAIT_MS, type UpstreamGroup, type UpstreamServer } from './upstream.js';
import { forwardUwsgi } from './uwsgi.js';

/** RFC 9110 §9.2.2. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

function requestHasBody(ctx: RequestContext): boolean {
  const headers = ctx.req.headers;
  return headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && headers['content-length'] !== '0');
}

/**
 * One request's way through the group (nginx `proxy_next_upstream`): attempts on servers until
 * one answers, bounded by `retry.tries` and `retry.timeout`; non-idempotent requests move on only
 * when nothing was sent. A state machine rather than an async loop, so that the common case (one
 * attempt that succeeds) costs one promise and no closures; what it holds is what the loop's
 * locals were.
 */
export class ProxyRequest {
  readonly proxy: ProxyHandler;
  readonly ctx: RequestContext;
  readonly exchange: Exchange | null;
  readonly method: string;
  readonly hasBody: boolean;
  /** RFC 9110 §9.2.2: the method may be sent again (a retry, or a stale pooled connection's resend). */
  readonly idempotent: boolean;
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
    this.idempotent = IDEMPOTENT.has(this.method);
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
      ((this.idempotent && retry.afterSend !== false) || beforeSend) &&
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
    const raw = server.raw;
    if (raw?.protocol === 'uwsgi') {
      // A uwsgi server gets an Upgrade request as a plain one (the field is hop-by-hop): its
      // answer declines the upgrade (RFC 9110 §7.8), as the protocol has no tunnel through nginx either.
      this.#await(server, () => forwardUwsgi(this, server, raw, this.#path, headers));
    } else if (ctx.upgrade && !this.exchange) {
      this.#await(server, () => proxy.tunnel(ctx, server, this.#path, headers));
    } else if (raw !== null && (server.closesConnections || (!this.hasBody && group.config.keepAlive.connections === null))) {
      // A server that closes every connection (gunicorn's sync workers) takes requests with a
      // body this way too, each on a connection of its own, rather than pay undici's
      // per-connection costs for every request.
      const chunked = ctx.req.headers['transfer-encoding'] !== undefined;
      const body = !this.hasBody ? 'none' : chunked ? 'chunked' : 'raw';
      new RawExchange(this, server, raw, httpRequestHead(this.method, this.#path, headers, chunked), body).start();
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
