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
import type { ResolvedHandler } from '../../../config/resolve.js';
import { ErrorCodes, HttpError } from '../../../core/errors.js';
import { log } from '../../../core/log.js';
import type { RequestContext } from '../../context.js';
import { bodyRefusal } from '../../http/limits.js';
import { sendHead } from '../../http/respond.js';
import { compileTemplate, type Template } from '../../variables.js';
import type { Handler } from '../types.js';
import { CONDITIONAL_FIELDS, DONE, RANGE_FIELDS, type BodySink, type Exchange, type Outcome } from './attempt.js';
import { clientResponseHeaders, upstreamRequestHeaders, type ForwardingOptions } from './headers.js';
import { MEMBER_WAIT_MS, type UpstreamGroup, type UpstreamServer } from './upstream.js';
import { forwardUwsgi } from './uwsgi.js';

type ProxyConfig = Extract<ResolvedHandler, { type: 'proxy' }>;

/** RFC 9110 §9.2.2. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ENOENT', 'UND_ERR_CONNECT_TIMEOUT']);
const TIMEOUTS = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ERR_PROXY_TOTAL_TIMEOUT', 'ERR_PROXY_HEADER_TIMEOUT']);

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
const TOTAL = 0;
const HEAD = 1;
class RetryOnStatus extends Error {
  readonly code = 'ERR_PROXY_RETRY_STATUS';
}
class ClientGone extends Error {
  readonly code = 'ERR_PROXY_CLIENT_GONE';
}

/** Bytes a client may send after an Upgrade request before the upstream's 101 (kept for the upstream). */
const EARLY_DATA_LIMIT = 64 * 1024;

function errorCode(error: unknown): string {
  const e = error as { code?: string; cause?: { code?: string } };
  return e?.cause?.code ?? e?.code ?? 'UNKNOWN';
}

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
  readonly #path: Template | null;
  readonly #prefix: string | null;
  readonly #hostTemplate: Template | null;

  constructor(config: ProxyConfig, group: UpstreamGroup, routePrefix: string | null) {
    this.#config = config;
    this.#group = group;
    this.#hide = new Set(config.hideHeaders);
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
   * changes it, its response going to the exchange's sink. Throws an HttpError (502/503/504) when
   * no server answered.
   */
  async exchange(ctx: RequestContext, exchange: Exchange | null): Promise<void> {
    const group = this.#group;
    const retry = group.config.retry;
    const method = exchange?.method ?? ctx.req.method ?? 'GET';
    const idempotent = IDEMPOTENT.has(method);
    const hasBody = requestHasBody(ctx);
    // RFC 6455 §4.1: the opening handshake is a GET; other methods are not tunnelled.
    if (ctx.upgrade && method !== 'GET') throw new HttpError(400, ErrorCodes.ERR_REQUEST_PARSE, 'an Upgrade request must be a GET');
    const started = Date.now();
    const path = this.#upstreamPath(ctx);
    let tried: Set<UpstreamServer> | null = null;
    let lastStatus: 502 | 504 = 502;
    for (let attempt = 1; ; attempt++) {
      const now = Date.now();
      const server = group.pick(ctx, tried, now);
      if (!server && tried === null && group.dynamic) {
        // An app's group with no worker at this moment (its only worker recycling, every worker
        // crashed): wait for one, as the standalone arbiter queues connections while no worker is
        // ready, rather than fail at once. Bounded; then 503 with Retry-After (the app is
        // restarting, not broken).
        if (group.servers.length === 0 && (await group.waitForServer(MEMBER_WAIT_MS))) {
          attempt--;
          continue;
        }
        throw new HttpError(503, ErrorCodes.ERR_UPSTREAM_UNAVAILABLE, `no worker of "${group.name}" is ready`, { headers: { 'retry-after': '1' } });
      }
      if (!server) {
        throw new HttpError(lastStatus, attempt === 1 ? ErrorCodes.ERR_UPSTREAM_UNAVAILABLE : ErrorCodes.ERR_UPSTREAM_FAILED, `no upstream server of "${group.name}" could answer`);
      }
      (tried ??= new Set()).add(server);
      const mayRetryAfter = (beforeSend: boolean): boolean =>
        attempt < retry.tries &&
        (retry.timeout === 0 || Date.now() - started < retry.timeout) &&
        (!hasBody || !ctx.req.readableDidRead) &&
        (idempotent || beforeSend) &&
        group.pick(ctx, tried, Date.now()) !== null;
      const host = this.#config.host === 'client' ? null : this.#config.host === 'upstream' ? server.authority : (this.#hostTemplate as Template)(ctx);
      let forwarding = this.#forwarding;
      if (exchange) {
        forwarding = exchange.strip === 'all' ? this.#withoutConditionals : exchange.strip === 'range' ? this.#withoutRange : forwarding;
        if (exchange.add.length > 0) forwarding = { ...forwarding, add: [...forwarding.add, ...exchange.add] };
      }
      const headers = upstreamRequestHeaders(ctx.req, ctx.clientAddress, ctx.listener.scheme, host === null ? forwarding : { ...forwarding, host }, server.authority);
      server.active++;
      let outcome: Outcome;
      try {
        // A uwsgi server gets an Upgrade request as a plain one (the field is hop-by-hop): its
        // answer declines the upgrade (RFC 9110 §7.8), as the protocol has no tunnel through nginx either.
        outcome = server.uwsgi
          ? await forwardUwsgi({ ctx, address: server.uwsgi, requestUri: path, headers, hide: this.#hide, group: group.config, canRetry: () => mayRetryAfter(false), name: server.name, method, sink: exchange?.sink ?? null })
          : ctx.upgrade && !exchange
            ? await this.#tunnel(ctx, server, path, headers)
            : await this.#forward(ctx, server, path, headers, hasBody, () => mayRetryAfter(false), method, exchange);
      } finally {
        server.active--;
      }
      // The client's body was refused (too large, too slow: edge/http/limits.ts) and the attempt
      // aborted for it: the answer is that refusal, and the server did nothing wrong.
      const refused = ctx.res.headersSent ? null : bodyRefusal(ctx.req);
      if (refused) throw refused;
      if (outcome.kind === 'done') return;
      // nginx: a 403 or 404 from the upstream is never an unsuccessful attempt for health.
      if (outcome.code !== 'HTTP_403' && outcome.code !== 'HTTP_404') server.recordFailure(Date.now());
      lastStatus = outcome.status;
      const wanted = outcome.reason === 'status' || (outcome.reason === 'timeout' ? retry.onTimeout : retry.onError);
      log().warn({ upstream: group.name, server: server.name, code: outcome.code, attempt }, 'upstream attempt failed');
      if (!wanted || !mayRetryAfter(outcome.beforeSend)) {
        throw new HttpError(outcome.status, outcome.status === 504 ? ErrorCodes.ERR_UPSTREAM_TIMEOUT : ErrorCodes.ERR_UPSTREAM_FAILED, `upstream "${group.name}" failed: ${outcome.code}`);
      }
    }
  }

  /** One attempt on one server. Resolves `done` once the response went to the client (or the client left). */
  #forward(ctx: RequestContext, server: UpstreamServer, path: string, headers: string[], hasBody: boolean, canRetry: () => boolean, method: string, exchange: Exchange | null): Promise<Outcome> {
    const group = this.#group.config;
    const sink = exchange?.sink ?? null;
    const res: BodySink = sink ?? ctx.res;
    const hide = this.#hide;
    return new Promise<Outcome>((resolve) => {
      let controller: Dispatcher.DispatchController | null = null;
      let responded = false;
      let settled = false;
      let totalTimer: NodeJS.Timeout | undefined;
      let headerTimer: NodeJS.Timeout | undefined;
      const settle = (outcome: Outcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(totalTimer);
        clearTimeout(headerTimer);
        res.off('close', onClientClose);
        resolve(outcome);
      };
      const onClientClose = () => {
        // The client went away: stop the upstream request too (its connection is not reused).
        if (!res.writableFinished) controller?.abort(new ClientGone('client closed the connection'));
        settle(DONE);
      };
      res.on('close', onClientClose);
      // A timer that fires while the request still waits for a pooled connection settles at once
      // (nothing was sent); later, aborting the dispatch reports through onResponseError. The
      // error is made when the timer fires: an Error captures a stack, and made per request up
      // front it was 10% of the proxy's CPU profile (bench/profile-summary.mjs).
      const expire = (kind: typeof TOTAL | typeof HEAD) => {
        const error = kind === TOTAL ? new TotalTimeout('total timeout') : new HeaderTimeout('response head timeout');
        if (controller) controller.abort(error);
        else settle({ kind: 'failed', status: 504, reason: 'timeout', beforeSend: true, code: error.code });
      };
      if (group.timeout > 0) totalTimer = setTimeout(expire, group.timeout, TOTAL);
      const resume = () => controller?.resume();
      // Where the body goes: the client, or the route's compressor (sendHead says which).
      let out: BodySink = res;

      const handler: Dispatcher.DispatchHandler = {
        onRequestStart(c) {
          controller = c;
          if (settled) c.abort(new ClientGone('client closed the connection'));
          else if (group.headerTimeout > 0) headerTimer = setTimeout(expire, group.headerTimeout, HEAD);
        },
        onResponseStart(c, statusCode, upstreamHeaders) {
          // 1xx (e.g. 100 Continue to undici's own Expect) are not forwarded: node:http already
          // answered the client's Expect: 100-continue itself.
          if (statusCode < 200) return;
          clearTimeout(headerTimer);
          if (group.retry.statuses.includes(statusCode) && canRetry()) {
            c.abort(new RetryOnStatus(`status ${statusCode}`));
            settle({ kind: 'failed', status: statusCode === 504 ? 504 : 502, reason: 'status', beforeSend: false, code: `HTTP_${statusCode}` });
            return;
          }
          responded = true;
          const headers = clientResponseHeaders(upstreamHeaders as Record<string, string | string[]>, hide);
          if (sink) sink.head(statusCode, headers);
          else out = sendHead(ctx, statusCode, headers);
        },
        onResponseData(c, chunk) {
          ctx.bodyBytes += chunk.length;
          if (!out.write(chunk)) {
            c.pause();
            out.once('drain', resume);
          }
        },
        onResponseEnd() {
          out.end();
          settle(DONE);
        },
        onResponseError(_c, error) {
          const code = errorCode(error);
          if (code === 'ERR_PROXY_RETRY_STATUS' || code === 'ERR_PROXY_CLIENT_GONE') return;
          if (responded) {
            // Headers are gone: the only honest signal left is a cut connection.
            log().warn({ upstream: group.name, server: server.name, code }, 'upstream failed mid-response');
            res.destroy();
            settle(DONE);
            return;
          }
          const timeout = TIMEOUTS.has(code);
          settle({ kind: 'failed', status: timeout ? 504 : 502, reason: timeout ? 'timeout' : 'error', beforeSend: CONNECT_FAILURES.has(code), code });
        },
      };
      server.pool.dispatch(
        {
          path,
          method,
          headers,
          body: hasBody ? ctx.req : null,
          idempotent: false,
          blocking: true,
        } as Dispatcher.DispatchOptions,
        handler,
      );
    });
  }

  /** WebSocket and other `Upgrade`s: 101 from the upstream, then bytes both ways with an idle timeout. */
  #tunnel(ctx: RequestContext, server: UpstreamServer, path: string, headers: string[]): Promise<Outcome> {
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
          if (code === 'ERR_PROXY_CLIENT_GONE') return;
          if (ctx.res.headersSent || ctx.status === 101) {
            upgrade.socket.destroy();
            settle(DONE);
            return;
          }
          const timeout = TIMEOUTS.has(code);
          settle({ kind: 'failed', status: timeout ? 504 : 502, reason: timeout ? 'timeout' : 'error', beforeSend: CONNECT_FAILURES.has(code), code });
        },
      };
      server.pool.dispatch({ path, method: 'GET', headers, upgrade: protocol, body: null } as Dispatcher.DispatchOptions, handler);
    });
  }
}

export function createProxyHandler(config: ProxyConfig, groups: ReadonlyMap<string, UpstreamGroup>, routePrefix: string | null): Handler {
  const group = groups.get(config.upstream);
  if (!group) throw new Error(`proxy to unknown upstream "${config.upstream}" (the config check should have refused this)`);
  return new ProxyHandler(config, group, routePrefix).handler();
}
