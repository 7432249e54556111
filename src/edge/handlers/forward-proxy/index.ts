/**
 * The forward proxy (Squid's role): its own listeners (edge/server.ts opens them for
 * `forward.listen`), where clients send absolute-form requests (`GET http://host/path
 * HTTP/1.1`, RFC 9112 §3.2.2) and `CONNECT host:port` tunnels (RFC 9110 §9.3.6). Every request
 * and tunnel goes through the same checks, in this order, before any connection to the
 * destination is made:
 *
 *   1. the client's address is allowed                       else 403
 *   2. proxy authentication, when configured                  else 407 + Proxy-Authenticate
 *   3. the target is a proxy target (absolute http:// URL,
 *      or host:port for CONNECT)                              else 400
 *   4. the destination port is allowed                        else 403
 *   5. the destination name and every address it resolves to
 *      pass the ACL (acl.ts); the proxy itself is refused     else 403 (502: no such name)
 *   6. CONNECT: under the cap of open tunnels                 else 503
 *
 * then the request is forwarded through keep-alive pools (undici) to the address that was
 * checked, or the tunnel is opened to it. With `forward.cache`, an http:// request that passed
 * every check goes through the shared cache (cache/index.ts) instead, keyed by its absolute URI
 * with the port explicit: a refused request is never answered from the cache and never fetched.
 * Denials answer with a short reason in the body. Every request and tunnel gets an access-log
 * line with the destination, the bytes each way and the duration (and the cache's verdict).
 */
import { requestHost } from '../../http/host.js';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { Agent, type Dispatcher } from 'undici';
import type { ResolvedCacheZone, ResolvedForward } from '../../../config/resolved.js';
import { ErrorCodes, HttpError } from '../../../core/errors.js';
import { log } from '../../../core/log.js';
import { RequestContext, type ForwardInfo, type ListenerInfo } from '../../context.js';
import type { Generation } from '../../generation.js';
import { responseOnSocket, sendBody } from '../../http/respond.js';
import { countInFlight, publishRequestEnd, requestEnd } from '../../observe.js';
import { CacheHandler, type CacheOrigin } from '../cache/index.js';
import type { CacheZones } from '../cache/zones.js';
import { CONDITIONAL_FIELDS, RANGE_FIELDS, type BodySink, type Exchange, type ResponseSink } from '../proxy/attempt.js';
import { CLIENT_GONE, ClientGone, classifyFailure, errorCode, type ProxyFailure } from '../proxy/errors.js';
import { clientResponseHeaders, upstreamRequestHeaders, type ForwardingOptions } from '../proxy/headers.js';
import { ForwardAcl, normaliseName } from './acl.js';
import { ProxyAuth } from './auth.js';
import { connectFirst, formatAddress, relay } from './tunnel.js';

/** RFC 9110 §7.6.3: the protocol and a pseudonym for this hop (no host name is disclosed). */
const VIA = '1.1 portico';

/**
 * What outlives a config generation: the ports the proxy listens on (a request to one of them
 * would loop through the proxy itself) and the number of open tunnels (the cap holds across
 * reloads, tunnels opened under the old config included). One per EdgeServer.
 */
export class ForwardRuntime {
  tunnels = 0;
  readonly ports = new Set<number>();
  /**
   * Client sockets of open tunnels, by listener key. node:http lets go of a socket it hands to a
   * CONNECT, so closing the listener neither waits for nor ends them: a stop ends them here.
   */
  readonly #open = new Map<Socket, string>();

  track(socket: Socket, listenerKey: string): void {
    this.#open.set(socket, listenerKey);
    socket.once('close', () => this.#open.delete(socket));
  }

  /** Ends the tunnels opened through one listener (its grace period is over). */
  closeTunnels(listenerKey: string): void {
    for (const [socket, key] of this.#open) if (key === listenerKey) socket.destroy();
  }
}

/** The forward proxy built from one config: ACLs, users, and the keep-alive pools to destinations. */
export class CompiledForward {
  readonly config: ResolvedForward;
  readonly acl: ForwardAcl;
  readonly auth: ProxyAuth | null;
  /** One undici Pool per destination address:port (keyed by origin), created on first use. */
  readonly agent: Agent;
  /** Sends checked requests to their destination (directly, or for the cache). */
  readonly origin: ForwardOrigin;
  /** The shared cache in front of `origin` (`forward.cache`), or null. */
  readonly cache: CacheHandler | null;
  /** This machine's own addresses, for the loop check. */
  readonly #local: Set<string>;

  /** `zones`: the config's cache zones; `cacheZones`: the node's stores for them (edge/environment.ts). */
  constructor(config: ResolvedForward, zones: Readonly<Record<string, ResolvedCacheZone>>, cacheZones: CacheZones) {
    this.config = config;
    this.acl = new ForwardAcl(config);
    this.auth = config.auth ? ProxyAuth.load(config.auth.htpasswd, config.auth.realm) : null;
    this.agent = new Agent({
      pipelining: 1,
      keepAliveTimeout: config.keepAliveTimeout,
      keepAliveMaxTimeout: config.keepAliveTimeout,
      headersTimeout: config.headerTimeout,
      bodyTimeout: config.idleTimeout,
      connect: { timeout: config.connectTimeout },
      // Request smuggling defence: a body that disagrees with its Content-Length is an error (RFC 9112 §6.3).
      strictContentLength: true,
    });
    this.origin = new ForwardOrigin(this);
    const zone = config.cache ? zones[config.cache.zone] : undefined;
    if (config.cache && !zone) throw new Error(`cache zone "${config.cache.zone}" unknown (the config check should have refused this)`);
    // The zone's store is the reverse proxy's (cache/zones.ts): one memory + disk budget, kept across reloads.
    this.cache = config.cache && zone ? new CacheHandler(this.origin, cacheZones.zoneFor(zone), config.cache, forwardKey) : null;
    this.#local = new Set(['0.0.0.0', '::']);
    for (const list of Object.values(networkInterfaces())) for (const item of list ?? []) this.#local.add(item.address);
  }

  /** Whether address:port is one of this proxy's own listeners (a request there would loop). */
  isSelf(address: string, port: number, runtime: ForwardRuntime): boolean {
    if (!runtime.ports.has(port)) return false;
    const ip = address.startsWith('::ffff:') ? address.slice(7) : address;
    return this.#local.has(ip) || ip.startsWith('127.') || ip === '::1';
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

export function compileForward(config: ResolvedForward, zones: Readonly<Record<string, ResolvedCacheZone>>, cacheZones: CacheZones): CompiledForward {
  return new CompiledForward(config, zones, cacheZones);
}

/**
 * The cache key of an http:// request: its absolute URI with the port always written (RFC 9110
 * §4.2.3: "http://a/x" and "http://a:80/x" name one resource, "http://a:8080/x" another) and
 * the path as received. Not a template: a key without the port would let one origin's response
 * answer for another's. Reads `requestUri` from the context, so the cache's view for a purge
 * prefix or an invalidated Location (another path on the same origin) gets its own key.
 */
function forwardKey(ctx: RequestContext): string {
  return (ctx.forward as ForwardInfo).origin + ctx.requestUri;
}

/** A refusal: status, a one-line reason for the body, extra headers. */
class Refusal {
  constructor(
    readonly status: number,
    readonly reason: string,
    readonly headers: readonly string[] = [],
  ) {}
}

/** Answers a refusal with its reason in a short text body; never throws. */
function refuse(ctx: RequestContext, refusal: Refusal): void {
  if (ctx.res.headersSent || ctx.res.destroyed) {
    ctx.res.destroy();
    return;
  }
  // The proxy's own answer: it carries the proxy's Server field.
  if (ctx.forward) ctx.forward.relayed = false;
  try {
    sendBody(ctx, refusal.status, ['Content-Type', 'text/plain; charset=utf-8', ...refusal.headers], `${refusal.status} ${STATUS_CODES[refusal.status] ?? ''}: ${refusal.reason}\n`);
  } catch (error) {
    log().error({ err: error }, 'forward proxy: could not send a refusal');
    ctx.res.destroy();
  }
}

/** The exchange is over (a tunnel closed, a response ended): observers hear of it (edge/observe.ts). */
function endExchange(ctx: RequestContext): void {
  if (requestEnd.hasSubscribers) publishRequestEnd(ctx);
}

/** Steps 1 and 2: the client may use the proxy, and who it is (null without auth). */
async function admit(ctx: RequestContext, forward: CompiledForward): Promise<Refusal | null> {
  if (!forward.acl.clientAllowed(ctx.clientAddress)) return new Refusal(403, `client ${ctx.clientAddress} may not use this proxy`);
  if (forward.auth) {
    const user = await forward.auth.verify(ctx.req.headers['proxy-authorization']);
    // RFC 9110 §15.5.8: 407 carries Proxy-Authenticate with the challenge.
    if (user === null) return new Refusal(407, 'proxy authentication required', ['Proxy-Authenticate', forward.auth.challenge]);
    (ctx.forward as NonNullable<RequestContext['forward']>).user = user;
  }
  // The credentials were for this proxy (RFC 9110 §11.7.2) and are consumed here: gone from the
  // request, they can be neither forwarded nor part of a cache key (a `Vary: Proxy-Authorization`
  // would otherwise write them into a stored entry's secondary key, on disk too).
  delete ctx.req.headers['proxy-authorization'];
  return null;
}

/** Step 5, after the port: the addresses that may be connected to, or a refusal. */
async function destination(forward: CompiledForward, runtime: ForwardRuntime, host: string, port: number): Promise<readonly string[] | Refusal> {
  const decision = await forward.acl.check(host);
  if (!decision.ok) return new Refusal(decision.status, decision.reason);
  const addresses = decision.addresses.filter((address) => !forward.isSelf(address, port, runtime));
  if (addresses.length === 0) return new Refusal(403, `${formatAddress(host, port)} is this proxy (a request loop)`);
  return addresses;
}

/** "host:port" or "[v6]:port" (RFC 9110 §9.3.6: CONNECT's target is authority-form, port required). */
const AUTHORITY = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9_.-]+)):(\d{1,5})$/;

function newContext(generation: Generation, listener: ListenerInfo, req: IncomingMessage, res: ServerResponse): RequestContext {
  const ctx = new RequestContext(req, res, generation, listener);
  ctx.forward = { destination: '', bytesUp: 0, user: null, origin: '', relayed: false };
  return ctx;
}

/**
 * A CONNECT request on a forward listener: node:http hands over the socket and the bytes read
 * past the head. Checks, then a tunnel to the checked address, or an answer and close.
 */
export function handleConnect(generation: Generation, runtime: ForwardRuntime, listener: ListenerInfo, req: IncomingMessage, socket: Socket, head: Buffer): void {
  const res = responseOnSocket(req, socket);
  const ctx = newContext(generation, listener, req, res);
  let logged = false;
  const logOnce = () => {
    if (!logged) {
      logged = true;
      endExchange(ctx);
    }
  };
  // A refusal is logged once written; a tunnel once it has closed (with its byte counts); a
  // client that leaves before either, when its socket closes (499).
  res.once('finish', logOnce);
  socket.once('close', () => {
    if (ctx.status === 0) logOnce();
  });
  connectTunnel(ctx, runtime, socket, head, logOnce).catch((error: unknown) => {
    log().error({ err: error, url: req.url }, 'forward proxy: CONNECT failed');
    refuse(ctx, new Refusal(500, 'internal error'));
  });
}

async function connectTunnel(ctx: RequestContext, runtime: ForwardRuntime, socket: Socket, head: Buffer, logTunnel: () => void): Promise<void> {
  const forward = ctx.generation.forward as CompiledForward;
  const admitted = await admit(ctx, forward);
  if (admitted) return refuse(ctx, admitted);
  const match = AUTHORITY.exec(ctx.req.url ?? '');
  const port = Number(match?.[3]);
  if (!match || port < 1 || port > 65535) return refuse(ctx, new Refusal(400, 'CONNECT needs a target like "example.com:443"'));
  const host = match[1] ?? normaliseName(match[2] as string);
  ctx.host = host;
  if (!forward.acl.connectPorts.has(port)) return refuse(ctx, new Refusal(403, `CONNECT to port ${port} is not allowed`));
  const addresses = await destination(forward, runtime, host, port);
  if (addresses instanceof Refusal) return refuse(ctx, addresses);
  if (socket.destroyed) return;
  // The slot is taken before connecting, so a burst of CONNECTs cannot all pass the check.
  if (runtime.tunnels >= forward.config.maxTunnels) return refuse(ctx, new Refusal(503, `too many open tunnels (${forward.config.maxTunnels})`, ['Retry-After', '1']));
  runtime.tunnels++;
  try {
    const connected = await connectFirst(addresses, port, forward.config.connectTimeout, () => socket.destroyed);
    if (!('socket' in connected)) {
      log().warn({ target: ctx.req.url, reason: connected.reason }, 'forward proxy: CONNECT destination failed');
      return refuse(ctx, new Refusal(connected.status, connected.reason));
    }
    const upstream = connected.socket;
    const info = ctx.forward as NonNullable<RequestContext['forward']>;
    info.destination = formatAddress(connected.address, port);
    if (socket.destroyed) {
      upstream.destroy();
      return;
    }
    // The socket is a raw tunnel from here: the ServerResponse used for refusals lets go of it.
    ctx.res.detachSocket(socket);
    runtime.track(socket, ctx.listener.key);
    ctx.status = 200;
    // RFC 9110 §9.3.6: a 2xx to CONNECT has no content and no framing headers.
    socket.write('HTTP/1.1 200 Connection established\r\n\r\n');
    const { up, down } = await relay(socket, upstream, head, forward.config.idleTimeout);
    info.bytesUp = up;
    ctx.bodyBytes = down;
    logTunnel();
  } finally {
    runtime.tunnels--;
  }
}

/** Request fields never forwarded: the credentials were for this proxy (RFC 9110 §11.7.2). */
const FORWARDING: ForwardingOptions = { host: null, xForwarded: false, forwarded: false, via: VIA, remove: new Set(['proxy-authorization']), set: [], add: [] };
/** The same for the cache's exchanges: without the client's range fields, or without them and its validators (the cache sends its own, RFC 9111 §4.3.1). */
const FORWARDING_WHOLE: ForwardingOptions = { ...FORWARDING, remove: new Set([...FORWARDING.remove, ...RANGE_FIELDS]) };
const FORWARDING_UNCONDITIONAL: ForwardingOptions = { ...FORWARDING, remove: new Set([...FORWARDING.remove, ...CONDITIONAL_FIELDS]) };

/** RFC 9110 §9.2.2: idempotent methods. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

/** What the checks established for one http:// request: where it may go, and how it is sent. */
interface ForwardTarget {
  /** The destination's addresses that passed the ACL, in the order to try them. */
  readonly addresses: readonly string[];
  readonly port: number;
  /** The request target sent to the destination (the path as received). */
  readonly path: string;
  readonly options: ForwardingOptions;
}

/** The checked target of each request in flight: an exchange (the cache's too) reads the one its request was checked for. */
const targets = new WeakMap<RequestContext, ForwardTarget>();

/** An absolute-form request on a forward listener. */
export function handleForwardRequest(generation: Generation, runtime: ForwardRuntime, listener: ListenerInfo, req: IncomingMessage, res: ServerResponse): void {
  const ctx = newContext(generation, listener, req, res);
  if (requestEnd.hasSubscribers) {
    res.once('close', () => publishRequestEnd(ctx));
    countInFlight(ctx);
  }
  forwardRequest(ctx, runtime).catch((error: unknown) => {
    log().error({ err: error, url: req.url }, 'forward proxy: request failed');
    refuse(ctx, new Refusal(500, 'internal error'));
  });
}

/** Counts the request body on its way to the destination (undici reads it as an async iterable). */
async function* counted(req: IncomingMessage, info: NonNullable<RequestContext['forward']>): AsyncGenerator<Buffer> {
  for await (const chunk of req) {
    info.bytesUp += (chunk as Buffer).length;
    yield chunk as Buffer;
  }
}

async function forwardRequest(ctx: RequestContext, runtime: ForwardRuntime): Promise<void> {
  const forward = ctx.generation.forward as CompiledForward;
  const req = ctx.req;
  ctx.generation.headerNames?.(req);
  const admitted = await admit(ctx, forward);
  if (admitted) return refuse(ctx, admitted);
  const target = req.url ?? '';
  // RFC 9112 §3.2.2: a proxy is sent the absolute URI. An origin-form request ("GET /") was
  // meant for a server, not for a proxy.
  if (!/^http:\/\//i.test(target)) {
    const reason = target.startsWith('/') || target === '*' ? 'this is a forward proxy: send the absolute URL (GET http://host/path) or CONNECT host:port' : 'only http:// URLs are forwarded (use CONNECT for https)';
    return refuse(ctx, new Refusal(400, reason));
  }
  // RFC 9112 §3.2: the Host field is checked as on the origin side (one, and a valid host), even
  // though the URI's authority replaces it upstream (§3.2.2, upstreamRequestHeaders).
  try {
    requestHost(req, null);
  } catch (error) {
    return refuse(ctx, new Refusal(400, (error as Error).message));
  }
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return refuse(ctx, new Refusal(400, 'the request target is not a valid URL'));
  }
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (host === '') return refuse(ctx, new Refusal(400, 'the URL has no host'));
  const port = url.port === '' ? 80 : Number(url.port);
  ctx.host = host;
  const info = ctx.forward as ForwardInfo;
  info.origin = `http://${formatAddress(normaliseName(host), port)}`;
  // For templates of the cache's `bypass`/`noStore` ($uri, $args, $arg_NAME).
  try {
    ctx.uri = decodeURIComponent(url.pathname);
  } catch {
    ctx.uri = url.pathname;
  }
  ctx.query = url.search.slice(1);
  ctx.hasQuery = url.search !== '' || target.includes('?');
  const method = req.method ?? 'GET';
  const cache = forward.cache;
  // PURGE of a stored URI (as Squid's, and the reverse cache's): answered by the cache from the
  // addresses its `purge.allow` lists, 403 from others. Nothing is fetched, so the destination
  // is not resolved (a name that no longer resolves can still be purged).
  if (method === 'PURGE' && cache?.purges) return answer(ctx, cache, false);
  // TRACE would reflect the client's headers (credentials included) back: not forwarded.
  if (method === 'TRACE') return refuse(ctx, new Refusal(405, 'TRACE is not forwarded', ['Allow', 'GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH']));
  // RFC 9110 §7.6.2: Max-Forwards counts down on OPTIONS (and TRACE); at 0 this hop answers.
  let options = FORWARDING;
  const maxForwards = req.headers['max-forwards'];
  if (method === 'OPTIONS' && typeof maxForwards === 'string' && /^\d+$/.test(maxForwards)) {
    const left = Number(maxForwards);
    if (left === 0) {
      sendBody(ctx, 200, ['Allow', 'GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH'], null);
      return;
    }
    // `remove` names what `set` replaces (ForwardingOptions): the client's value goes, ours is sent.
    options = { ...FORWARDING, remove: new Set([...FORWARDING.remove, 'max-forwards']), set: [['max-forwards', String(left - 1)]] };
  }
  if (!forward.acl.httpPorts.has(port)) return refuse(ctx, new Refusal(403, `port ${port} is not allowed`));
  const addresses = await destination(forward, runtime, host, port);
  if (addresses instanceof Refusal) return refuse(ctx, addresses);
  // The path as received (a proxy forwards the target it was given, RFC 9110 §7.6): the part
  // after the authority; "/" when empty, except "*" for OPTIONS (RFC 9112 §3.2.4).
  const afterAuthority = /^http:\/\/[^/?#]*(.*)$/is.exec(target)?.[1] ?? '';
  const path = afterAuthority === '' ? (method === 'OPTIONS' ? '*' : '/') : afterAuthority.startsWith('?') ? `/${afterAuthority}` : afterAuthority;
  // The client left while the name resolved: nothing to ask the destination for.
  if (ctx.res.destroyed) return;
  // Every check passed: only now may the cache answer, or the destination be asked.
  targets.set(ctx, { addresses, port, path, options });
  return answer(ctx, cache ?? forward.origin, true);
}

/**
 * The response from the destination, through the cache or not (`relayed`: it is the
 * destination's; a PURGE's is the cache's own); a failure before it becomes a refusal with its reason.
 */
async function answer(ctx: RequestContext, through: CacheHandler | ForwardOrigin, relayed: boolean): Promise<void> {
  (ctx.forward as ForwardInfo).relayed = relayed;
  try {
    await (through instanceof CacheHandler ? through.handle(ctx) : through.exchange(ctx, null));
  } catch (error) {
    if (!(error instanceof HttpError)) throw error;
    const headers: string[] = [];
    for (const [name, value] of Object.entries(error.headers ?? {})) headers.push(name, value);
    refuse(ctx, new Refusal(error.status, error.message, headers));
  }
}

/**
 * Sends checked requests to their destination: the client's as received (`exchange` null), or
 * as the cache changes it (HEAD as GET, its own validators, the response to its sink). The
 * name's addresses are tried in order while a connection does not open; then it throws an
 * HttpError (502, or 504 on a timeout) whose message is the refusal's reason.
 */
class ForwardOrigin implements CacheOrigin {
  readonly #forward: CompiledForward;

  constructor(forward: CompiledForward) {
    this.#forward = forward;
  }

  handle(ctx: RequestContext): Promise<void> {
    return this.exchange(ctx, null);
  }

  async exchange(ctx: RequestContext, exchange: Exchange | null): Promise<void> {
    const target = targets.get(ctx);
    if (!target) throw new Error('forward proxy: an exchange for a request that was not checked');
    const req = ctx.req;
    const method = exchange?.method ?? req.method ?? 'GET';
    let options = target.options;
    if (exchange) {
      if (exchange.strip !== 'none') options = options === FORWARDING ? (exchange.strip === 'all' ? FORWARDING_UNCONDITIONAL : FORWARDING_WHOLE) : { ...options, remove: new Set([...options.remove, ...(exchange.strip === 'all' ? CONDITIONAL_FIELDS : RANGE_FIELDS)]) };
      if (exchange.add.length > 0) options = { ...options, add: [...options.add, ...exchange.add] };
    }
    const headers = upstreamRequestHeaders(req, ctx.clientAddress, 'http', options);
    const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
    const info = ctx.forward as ForwardInfo;
    const { addresses, port, path } = target;
    for (let i = 0; i < addresses.length; i++) {
      const address = addresses[i] as string;
      info.destination = formatAddress(address, port);
      const outcome = await dispatch(ctx, this.#forward, address, port, method, path, headers, hasBody ? counted(req, info) : null, IDEMPOTENT.has(method), exchange?.sink ?? null);
      if (outcome === null) return;
      // Only a connection that never opened moves on to the name's next address.
      if (!outcome.beforeSend || i === addresses.length - 1) {
        log().warn({ url: req.url, destination: info.destination, code: outcome.code }, 'forward proxy: destination failed');
        throw new HttpError(outcome.status, outcome.status === 504 ? ErrorCodes.ERR_UPSTREAM_TIMEOUT : ErrorCodes.ERR_UPSTREAM_FAILED, `${info.destination}: ${outcome.code}`);
      }
    }
  }
}

type Failure = ProxyFailure;

/**
 * One request to one address, through the agent's keep-alive pool for it; the response streams
 * to the client (or the cache's sink) with back-pressure. Resolves null once answered (or the
 * consumer left), or the failure when nothing was sent to it yet.
 */
function dispatch(ctx: RequestContext, forward: CompiledForward, address: string, port: number, method: string, path: string, headers: string[], body: AsyncIterable<Buffer> | null, idempotent: boolean, sink: ResponseSink | null): Promise<Failure | null> {
  const res: BodySink = sink ?? ctx.res;
  return new Promise((resolve) => {
    let controller: Dispatcher.DispatchController | null = null;
    let settled = false;
    let responded = false;
    const settle = (outcome: Failure | null) => {
      if (settled) return;
      settled = true;
      res.off('close', onClientClose);
      resolve(outcome);
    };
    const onClientClose = () => {
      if (!res.writableFinished) controller?.abort(new ClientGone('client closed the connection'));
      settle(null);
    };
    res.on('close', onClientClose);
    const resume = () => controller?.resume();
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        if (settled) c.abort(new ClientGone('client closed the connection'));
      },
      onResponseStart(_c, statusCode, upstreamHeaders) {
        // 1xx are not relayed: node:http answered the client's Expect itself.
        if (statusCode < 200) return;
        responded = true;
        const out = clientResponseHeaders(upstreamHeaders as Record<string, string | string[]>, NOTHING_HIDDEN);
        // RFC 9110 §7.6.3: this hop is appended to the response's Via too (a stored response
        // keeps it, so a hit carries it once, as the miss did).
        const via = out.indexOf('via');
        if (via !== -1 && via % 2 === 0) out[via + 1] = `${out[via + 1] as string}, ${VIA}`;
        else out.push('via', VIA);
        if (sink) sink.head(statusCode, out);
        else {
          ctx.status = statusCode;
          ctx.res.writeHead(statusCode, out);
        }
      },
      onResponseData(c, chunk) {
        ctx.bodyBytes += chunk.length;
        if (!res.write(chunk)) {
          c.pause();
          res.once('drain', resume);
        }
      },
      onResponseEnd() {
        res.end();
        settle(null);
      },
      onResponseError(_c, error) {
        const code = errorCode(error);
        if (code === CLIENT_GONE) return;
        if (responded) {
          // The head is gone: a cut connection is the only honest signal left.
          res.destroy();
          settle(null);
          return;
        }
        settle(classifyFailure(code));
      },
    };
    forward.agent.dispatch(
      {
        origin: `http://${formatAddress(address, port)}`,
        path,
        method,
        headers,
        body,
        idempotent,
        blocking: true,
      } as Dispatcher.DispatchOptions,
      handler,
    );
  });
}

const NOTHING_HIDDEN: ReadonlySet<string> = new Set();
