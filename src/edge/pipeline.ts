/**
 * THE phase order of the edge: the one file that wires it. Each request runs these phases in
 * this order (docs/lifecycle.md draws it with the status each phase can produce):
 *
 *   0. accept + protocol limits     edge/server.ts (node:http: head size 431, timeouts 408, parse errors 400)
 *   1. parse                        invalid header names dropped (edge/http/header-names.ts);
 *                                   request target and Host validated and normalised (400);
 *                                   the real client IP from trusted proxies (nginx realip)
 *   2. virtual host                 Host → server; unknown → default server, or 404/421 as configured
 *   3. canonical redirects          https / www / trailing slash (301/308…)
 *   4. server rewrite               nginx server-level `rewrite`
 *   5. route                        nginx `location` selection, then the route's rewrites;
 *                                   `last` (or a changed URI) searches again, at most 10 times (500);
 *                                   then the route's body limit (413; edge/http/limits.ts)
 *   6. access                       allow/deny 403, rate limits 429 (or a delay), concurrency limits
 *                                   503, basic auth 401 (edge/middleware/access.ts says why in this
 *                                   order); on the final route, after rewrites, as nginx's access
 *                                   phases, so a rewrite cannot skip them
 *   7. content                      the route's handler (static | redirect | respond | …); a
 *                                   handler may reroute (try-files fallback) back to phase 5
 *   8. response filters             in sendHead (edge/http/respond.ts): route headers, Server,
 *                                   compression (middleware/encode.ts; the body then goes through it)
 *   9. log                          when the response closes: `portico:request:end` (edge/observe.ts),
 *                                   whose subscribers are the access log (edge/log/access.ts) and metrics
 *
 * Errors are wrapped once, here: an HttpError answers with its status, anything else is logged
 * and answered 500. No exception or rejection from a request ever reaches the process.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ErrorCodes, HttpError } from '../core/errors.js';
import { log } from '../core/log.js';
import { RequestContext, type ListenerInfo } from './context.js';
import type { Generation } from './generation.js';
import { REROUTE, type HandlerResult } from './handlers/index.js';
import { requestHost } from './http/host.js';
import { limitBody } from './http/limits.js';
import { responseOnSocket, sendBody, sendStatus } from './http/respond.js';
import { parseTarget } from './http/target.js';
import { RewriteOutcome, runRewrites } from './middleware/rewrite.js';
import { countInFlight, publishRequestEnd, requestEnd } from './observe.js';
import type { CompiledRoute } from './route/router.js';

/** nginx stops a rewrite cycle after 10 internal redirects with a 500. */
const MAX_INTERNAL_REDIRECTS = 10;

const CONTEXT = Symbol('portico.context');
type ResponseWithContext = ServerResponse & { [CONTEXT]?: RequestContext };

/** Phase 9: the response closed; observers (the access log, metrics) hear of it on `portico:request:end`. */
function onResponseClose(this: ResponseWithContext): void {
  const ctx = this[CONTEXT];
  if (ctx) publishRequestEnd(ctx);
}

/** The request listener of one listener socket, bound to the generation current at accept time. */
export function handleRequest(generation: Generation, listener: ListenerInfo, req: IncomingMessage, res: ServerResponse, upgrade: RequestContext['upgrade'] = null): void {
  const ctx = new RequestContext(req, res, generation, listener);
  ctx.upgrade = upgrade;
  // Nobody listening (no access log, no metrics): no listener on the response at all.
  if (requestEnd.hasSubscribers) {
    (res as ResponseWithContext)[CONTEXT] = ctx;
    // `on`, not `once`: a response closes once, and `once` allocates a wrapper per request.
    res.on('close', onResponseClose);
    countInFlight(ctx);
  }
  let pending: void | Promise<void>;
  try {
    pending = runPhases(ctx);
  } catch (error) {
    fail(ctx, error);
    return;
  }
  if (pending) pending.catch((error: unknown) => fail(ctx, error));
}

/**
 * An `Upgrade` request (WebSocket): node:http hands over the raw socket. It runs the same
 * pipeline with a ServerResponse bound to that socket, so every phase (and every error answer)
 * works unchanged; a handler that can tunnel (proxy) takes the socket, any other answers normally
 * and the connection closes after that answer.
 */
export function handleUpgrade(generation: Generation, listener: ListenerInfo, req: IncomingMessage, socket: Socket, head: Buffer): void {
  handleRequest(generation, listener, req, responseOnSocket(req, socket), { socket, head });
}

function runPhases(ctx: RequestContext): void | Promise<void> {
  const req = ctx.req;
  // 1. parse (fields with invalid names are dropped first, so no phase sees them)
  ctx.generation.headerNames?.(req);
  const target = parseTarget(req.url ?? '', req.method ?? 'GET');
  ctx.uri = target.path;
  ctx.query = target.query;
  ctx.hasQuery = target.hasQuery;
  ctx.host = requestHost(req, target.authority);
  ctx.generation.realIp?.(ctx);

  // 2. virtual host
  const table = ctx.generation.hosts.get(ctx.listener.key);
  if (!table) throw new Error(`no host table for listener ${ctx.listener.key}`);
  let server = ctx.host === '' ? undefined : table.lookup(ctx.host);
  if (!server) {
    const unknown = ctx.generation.unknownHost;
    // RFC 9110 §15.5.20: 421 tells the client this connection cannot serve that authority.
    if (unknown !== 'default') throw new HttpError(unknown, ErrorCodes.ERR_ROUTE_NO_HOST, `no server for host "${ctx.host}"`);
    server = table.defaultServer;
  }
  ctx.server = server;
  if (target.path === '*') {
    // RFC 9110 §9.3.7: OPTIONS * asks about the server, not a resource.
    sendBody(ctx, 204, ['Allow', 'GET, HEAD, OPTIONS'], null);
    return;
  }

  // 3. canonical redirects
  if (server.canonical?.(ctx)) return;

  // 4. server rewrite
  if (server.rewrite.length > 0 && runRewrites(ctx, server.rewrite) === RewriteOutcome.Answered) return;

  // 5.–7. route, access, content
  return routeAndServe(ctx);
}

function routeAndServe(ctx: RequestContext): void | Promise<void> {
  const server = ctx.server;
  if (!server) throw new Error('routeAndServe before virtual host selection');
  for (;;) {
    // 5. route
    if (!server.router.select(ctx)) throw new HttpError(404, ErrorCodes.ERR_ROUTE_NOT_FOUND, `no route for ${ctx.uri}`);
    const route = ctx.route;
    if (!route) throw new Error('router selected no route');
    if (route.rewrite.length > 0) {
      const outcome = runRewrites(ctx, route.rewrite);
      if (outcome === RewriteOutcome.Answered) return;
      if (outcome === RewriteOutcome.Rematch) {
        countInternalRedirect(ctx);
        continue;
      }
    }

    // The body limit is the route's (nginx checks client_max_body_size once the location is found).
    limitBody(ctx, route.config.maxBodySize);

    // 6. access (edge/middleware/access.ts): allow/deny 403, rate limits 429 (or a delay),
    // concurrency limits 503, basic auth 401; the real IP was taken in phase 1.
    const access = route.access;
    if (access !== null) {
      const pending = access(ctx);
      if (pending) return pending.then(() => serve(ctx, route));
    }

    // 7. content
    const result = route.handler(ctx);
    if (result === REROUTE) {
      countInternalRedirect(ctx);
      continue;
    }
    if (result instanceof Promise) return result.then((settled) => afterHandler(ctx, settled));
    return;
  }
}

/** Phase 7 after an asynchronous access phase. */
function serve(ctx: RequestContext, route: CompiledRoute): void | Promise<void> {
  const result = route.handler(ctx);
  if (result instanceof Promise) return result.then((settled) => afterHandler(ctx, settled));
  return afterHandler(ctx, result);
}

function afterHandler(ctx: RequestContext, result: HandlerResult): void | Promise<void> {
  if (result !== REROUTE) return;
  countInternalRedirect(ctx);
  return routeAndServe(ctx);
}

function countInternalRedirect(ctx: RequestContext): void {
  if (++ctx.internalRedirects > MAX_INTERNAL_REDIRECTS) {
    throw new HttpError(500, ErrorCodes.ERR_ROUTE_LOOP, `rewrite or internal redirection cycle while processing "${ctx.uri}"`);
  }
}

/** The one place a failed request becomes a response. */
function fail(ctx: RequestContext, error: unknown): void {
  const res = ctx.res;
  const http = error instanceof HttpError ? error : null;
  const status = http?.status ?? 500;
  if (!http) {
    // A bug or an unexpected failure: the stack is what a person needs.
    log().error({ err: error, url: ctx.req.url, route: ctx.route?.id, code: ErrorCodes.ERR_HANDLER }, 'request failed');
  } else if (status >= 500) {
    // An expected failure (upstream down, rewrite loop): its code and message say it all.
    log().error({ code: http.code, status, reason: http.message, url: ctx.req.url, route: ctx.route?.id }, 'request failed');
  }
  if (res.headersSent || res.destroyed) {
    // Too late for a status: cut the connection so the client sees a truncated response, not a wrong one.
    res.destroy();
    return;
  }
  try {
    sendStatus(ctx, status, http?.headers);
  } catch (inner) {
    log().error({ err: inner }, 'could not send an error response');
    res.destroy();
  }
}
