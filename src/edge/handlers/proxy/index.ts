/**
 * Route action `proxy` (nginx `proxy_pass` + `proxy_next_upstream`): pick a server of the group,
 * forward the request on a kept-alive connection (its own raw pool, or undici's), stream the response back with
 * back-pressure both ways, and on a failure move idempotent requests to the next server, bounded
 * by `retry.tries` and `retry.timeout`. Non-idempotent requests are retried only when the failure
 * happened before anything was sent (connect errors). Errors never show the upstream's address
 * or stack to the client: it gets 502 (error) or 504 (timeout).
 *
 * This file holds what a route's proxy knows (path, Host and forwarded fields, hidden fields);
 * request.ts walks one request through the group's servers, raw-exchange.ts (with uwsgi.ts),
 * http-attempt.ts and tunnel.ts are the transports of one attempt, errors.ts says what their
 * failures mean.
 */
import type { ResolvedHandler } from '../../../config/resolved.js';
import { DeadlineQueue, type Deadline } from '../../../core/deadline-queue.js';
import type { RequestContext } from '../../context.js';
import { compileTemplate, type Template } from '../../variables.js';
import type { Handler } from '../types.js';
import { CONDITIONAL_FIELDS, RANGE_FIELDS, type Exchange, type Outcome } from './attempt.js';
import { responseDropSet, upstreamRequestHeaders, type ForwardingOptions } from './headers.js';
import { responseTurn } from '../../http/respond.js';
import { ProxyRequest } from './request.js';
import { tunnel } from './tunnel.js';
import type { UpstreamGroup, UpstreamServer } from './upstream.js';

type ProxyConfig = Extract<ResolvedHandler, { type: 'proxy' }>;

/** An attempt waiting for its response head (http-attempt.ts, raw-exchange.ts): one entry of the group's head deadlines. */
export interface HeadWait extends Deadline {
  expireHead(): void;
}

function expireHead(attempt: HeadWait): void {
  attempt.expireHead();
}

/** A decoded path, percent-encoded for a request line ("%", "?", "#" and non-ASCII included). */
function encodePath(path: string): string {
  return encodeURI(path).replace(/\?/g, '%3F').replace(/#/g, '%23');
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
  readonly #headDeadlines: DeadlineQueue<HeadWait> | null;
  readonly #path: Template | null;
  readonly #prefix: string | null;
  readonly #hostTemplate: Template | null;
  /** `requestHeaders.set`/`add` with variables, expanded per request; null when all are literal. */
  readonly #headerTemplates: { readonly set: readonly (readonly [string, Template])[]; readonly add: readonly (readonly [string, Template])[] } | null;

  constructor(config: ProxyConfig, group: UpstreamGroup, routePrefix: string | null) {
    this.#config = config;
    this.#group = group;
    this.#hide = new Set(config.hideHeaders);
    this.#drop = responseDropSet(this.#hide);
    this.#headDeadlines = group.config.headerTimeout > 0 ? new DeadlineQueue<HeadWait>(group.config.headerTimeout, expireHead) : null;
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
      // An app's group (`apps.NAME`): its workers learn the client's address from the edge.
      toAppWorker: group.config.app !== null,
    };
    const templated = (ops: readonly (readonly [string, string])[]) => ops.map(([name, value]) => [name, compileTemplate(value)] as const);
    const dynamic = [...config.requestHeaders.set, ...config.requestHeaders.add].some(([, value]) => value.includes('$'));
    this.#headerTemplates = dynamic ? { set: templated(config.requestHeaders.set), add: templated(config.requestHeaders.add) } : null;
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
    // A pipelined request waits until the responses before it are sent (nginx reads the next
    // request only then): otherwise each one held an upstream request and a body chunk queued
    // behind a client that may not be reading at all.
    const turn = responseTurn(ctx);
    if (turn === true) return this.exchange(ctx, null);
    return turn.then((current) => (current ? this.exchange(ctx, null) : undefined));
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
    const templates = this.#headerTemplates;
    if (templates !== null) {
      const expand = (ops: readonly (readonly [string, Template])[]) => ops.map(([name, value]) => [name, value(ctx)] as const);
      const add = expand(templates.add);
      forwarding = { ...forwarding, set: expand(templates.set), add: exchange && exchange.add.length > 0 ? [...add, ...exchange.add] : add };
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
  get headDeadlines(): DeadlineQueue<HeadWait> | null {
    return this.#headDeadlines;
  }

  /** One attempt of a WebSocket or other `Upgrade` (proxy/tunnel.ts). */
  tunnel(ctx: RequestContext, server: UpstreamServer, path: string, headers: string[]): Promise<Outcome> {
    return tunnel(ctx, server, path, headers, this.#hide, this.#group.config);
  }
}

export function createProxyHandler(config: ProxyConfig, groups: ReadonlyMap<string, UpstreamGroup>, routePrefix: string | null): Handler {
  const group = groups.get(config.upstream);
  if (!group) throw new Error(`proxy to unknown upstream "${config.upstream}" (the config check should have refused this)`);
  return new ProxyHandler(config, group, routePrefix).handler();
}
