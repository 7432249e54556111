/**
 * The edge server: listener sockets plus the current generation. Each listen address gets one
 * node:http server (HTTP/1.1, keep-alive); protocol limits that node:http enforces while parsing
 * (head size → 431, head/request timeouts → 408, malformed → 400) are configured here and their
 * errors answered in `onClientError`. TLS and HTTP/2 listeners will be created beside these by
 * listen/ with the same request listener. A reload swaps the generation: sockets stay open,
 * requests in flight finish on the generation they started on.
 */
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { ResolvedConfig } from '../config/resolve.js';
import { ErrorCodes, PorticoError } from '../core/errors.js';
import { edgeLimitStore } from '../core/limit-ipc.js';
import { log } from '../core/log.js';
import { RequestContext, type ListenerInfo } from './context.js';
import { buildGeneration, FORWARD_KEY_PREFIX, type Generation, type GenerationOptions } from './generation.js';
import { ForwardRuntime, handleConnect, handleForwardRequest } from './handlers/forward-proxy/index.js';
import { framingRefusal, upgradeProtocols, type FramingRefusal } from './http/framing.js';
import { admitOnConnection, applyParserLimits, disableNodeLimits, expectationRefusal, expectsContinue, headRefusal, overflowStatus, parserOptions, watchBody, type HeadRefusal } from './http/limits.js';
import { responseOnSocket, sendStatus } from './http/respond.js';
import { gateConnections } from './middleware/conn-limit.js';
import { handleRequest, handleUpgrade } from './pipeline.js';

interface Listener {
  readonly server: Server;
  info: ListenerInfo;
  /** Closing (a stop, or its address left the config): answers carry `Connection: close`. */
  draining: boolean;
}

export interface BoundAddress {
  readonly key: string;
  /** A URL a person can open: "http://127.0.0.1:8080" or "unix:/path". */
  readonly url: string;
  /** A forward proxy listener (not a virtual server's). */
  readonly forward: boolean;
}

function clientErrorStatus(code: string | undefined): number {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return 431; // RFC 6585 §5
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'ERR_HTTP_HEADERS_TIMEOUT':
      return 408; // RFC 9110 §15.5.9
    default:
      return 400;
  }
}

const CLOSE_AFTER_RESPONSE = Symbol('portico.closeAfterResponse');
type ClosingSocket = Socket & { [CLOSE_AFTER_RESPONSE]?: true };

/**
 * Answers a request node:http could not parse, then closes: the connection's framing is lost.
 * `serverHeader` is the generation's `http.serverHeader`, so these answers carry (or hide) the
 * same Server header as every other response.
 *
 * When the error is in bytes after a request that was received whole (pipelined garbage, data
 * after `Connection: close`), that request is still being answered: its response goes out, marked
 * to close, and nothing after it is read (RFC 9112 §9.6). Writing a 400 in its place would answer
 * a request the upstream may already have processed with a status it never produced.
 */
function onClientError(error: NodeJS.ErrnoException, socket: Socket, serverHeader: string | null, http: ResolvedConfig['http']): void {
  const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage ?? null;
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  if (inFlight && (inFlight.req?.complete || inFlight.headersSent)) {
    if (inFlight.writableEnded) {
      // Its whole answer is written (a framing refusal, say): let it drain, then close.
      socket.destroySoon();
    } else if (inFlight.req?.complete) {
      // node:http reports the error again for every later read: close once, on the first.
      if (!(socket as ClosingSocket)[CLOSE_AFTER_RESPONSE]) {
        (socket as ClosingSocket)[CLOSE_AFTER_RESPONSE] = true;
        if (!inFlight.headersSent) inFlight.shouldKeepAlive = false;
        inFlight.once('finish', () => socket.destroySoon());
      }
    } else {
      // Mid-response to a request whose own body broke: the only honest signal is a cut connection.
      socket.destroy();
    }
    log().debug({ code: error.code }, 'client error after a request in flight');
    return;
  }
  // A head over node's size limit: in the request line → 414, in the header fields → 431.
  const status = error.code === 'HPE_HEADER_OVERFLOW' ? overflowStatus(error, http) : clientErrorStatus(error.code);
  answerRaw(socket, status, serverHeader);
  log().debug({ code: error.code, status }, 'client error');
}

/** A short status answer written straight to a socket node:http no longer manages, then close. */
function answerRaw(socket: Socket, status: number, serverHeader: string | null): void {
  const body = `${status} ${STATUS_CODES[status]}\n`;
  // Written raw here (writeHead would refuse a CR/LF, this would not): never let one through.
  const server = serverHeader === null || /[\r\n\0]/.test(serverHeader) ? '' : `Server: ${serverHeader}\r\n`;
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${server}Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
}

/** Set on a socket once a request on it was refused for its framing: nothing after it is served. */
const FRAMING_LOST = Symbol('portico.framingLost');
type CheckedSocket = Socket & { [FRAMING_LOST]?: true };

/**
 * Answers a request whose framing cannot be trusted (edge/http/framing.ts) and closes the
 * connection (RFC 9112 §6.3, §11.2). node:http may already have parsed, and will still emit,
 * requests pipelined behind it, framed by its own reading of this one: the socket is marked so
 * that none of them is routed. The answer goes through sendStatus (Server header, access log),
 * before routing, so no handler and no upstream ever sees the request.
 */
function refuseFraming(generation: Generation, listener: ListenerInfo, req: IncomingMessage, res: ServerResponse, refusal: FramingRefusal | HeadRefusal): void {
  (req.socket as CheckedSocket)[FRAMING_LOST] = true;
  const ctx = new RequestContext(req, res, generation, listener);
  const accessLog = generation.accessLog;
  if (accessLog) res.once('close', () => accessLog.write(ctx));
  res.shouldKeepAlive = false;
  log().debug({ status: refusal.status, reason: refusal.reason }, 'request framing refused');
  try {
    sendStatus(ctx, refusal.status, { Connection: 'close' });
  } catch (error) {
    log().error({ err: error }, 'could not send a framing refusal');
    res.destroy();
  }
}

const LISTEN_ERRORS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'address not available on this machine',
};

export class EdgeServer {
  #generation: Generation;
  readonly #listeners = new Map<string, Listener>();
  readonly #options: Pick<GenerationOptions, 'sharedUpstreams'>;
  /**
   * Upgraded connections (WebSocket tunnels) by listen key: node:http no longer tracks them, so
   * `closeAllConnections` would not end them and a stop would wait on them forever. Generations
   * do not own them: a reload leaves them open; a stop ends them when its grace runs out.
   */
  readonly #tunnels = new Map<string, Set<Socket>>();
  /** The forward proxy's state across generations (open tunnels, its own ports). */
  readonly #forward = new ForwardRuntime();

  /** `options.sharedUpstreams`: groups every generation uses as they are (an app's workers). */
  constructor(config: ResolvedConfig, options: Pick<GenerationOptions, 'sharedUpstreams'> = {}) {
    this.#options = options;
    this.#generation = buildGeneration(config, options);
  }

  get generation(): Generation {
    return this.#generation;
  }

  #createListener(key: string): Listener {
    const http = this.#generation.config.http;
    const server = createServer({
      // Head size, head/request deadlines, keep-alive idle time: edge/http/limits.ts.
      ...parserOptions(http),
      // The pipeline answers a missing Host itself (RFC 9112 §3.2: 400), through sendStatus, so
      // that answer gets the Server header and an access-log line like every other 400;
      // node's own answer here would have neither.
      requireHostHeader: false,
      // Strict parsing whatever NODE_OPTIONS says (--insecure-http-parser would accept CL with TE,
      // bare LF, obs-fold...: RFC 9112 §11.2 request smuggling).
      insecureHTTPParser: false,
      noDelay: true,
    });
    disableNodeLimits(server);
    gateConnections(server, () => this.#generation.config.http.maxConnections, edgeLimitStore(), () => this.#generation.serverHeader);
    const address = this.#generation.listenAddresses.get(key);
    const listener: Listener = { server, info: { scheme: 'http', port: address?.kind === 'tcp' ? address.port : 0, key }, draining: false };
    server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => onClientError(error, socket, this.#generation.serverHeader, this.#generation.config.http));
    if (key.startsWith(FORWARD_KEY_PREFIX)) {
      // A forward proxy listener (edge/handlers/forward-proxy/): absolute-form requests and
      // CONNECT tunnels, never the virtual servers' pipeline.
      server.on('request', (req, res) => {
        if (listener.draining) res.shouldKeepAlive = false;
        this.#onRequest(listener.info, req, res, true);
      });
      server.on('connect', (req, socket: Socket, head: Buffer) => handleConnect(this.#generation, this.#forward, listener.info, req, socket, head));
      return listener;
    }
    // The generation is read per request, so a reload applies to the next request on every socket.
    server.on('request', (req, res) => {
      // While draining, a keep-alive client is told this answer is the last (RFC 9112 §9.6), so
      // it opens its next request elsewhere instead of racing our close of the idle connection.
      if (listener.draining) res.shouldKeepAlive = false;
      this.#onRequest(listener.info, req, res);
    });
    server.on('upgrade', (req, socket: Socket, head: Buffer) => this.#onUpgrade(listener.info, req, socket, head));
    // `Expect: 100-continue`: the 100 is sent once the route's body limit allows the body
    // (edge/http/limits.ts limitBody); a body over it is refused without being sent at all.
    server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
      expectsContinue(req);
      this.#onRequest(listener.info, req, res);
    });
    server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
      if (!(req.socket as CheckedSocket)[FRAMING_LOST]) refuseFraming(this.#generation, listener.info, req, res, expectationRefusal(req));
    });
    // CONNECT asks for a tunnel, which only a forward proxy gives: an origin server does not
    // implement it (RFC 9110 §9.3.6, §15.6.2). Without this listener node:http would drop the
    // connection with no answer at all.
    server.on('connect', (_req, socket: Socket) => {
      socket.on('error', () => socket.destroy());
      answerRaw(socket, 501, this.#generation.serverHeader);
    });
    return listener;
  }

  /** Phase 0 for a request node:http parsed: framing checks (RFC 9112 §6), then the pipeline (or the forward proxy, on its listeners). */
  #onRequest(info: ListenerInfo, req: IncomingMessage, res: ServerResponse, forward = false): void {
    // A request behind one refused for its framing: its framing came from that one's, so it is
    // never served; the refusal's `Connection: close` ends the connection once it is written.
    if ((req.socket as CheckedSocket)[FRAMING_LOST]) return;
    const generation = this.#generation;
    const http = generation.config.http;
    // Past `maxRequestsPerConnection`: pipelined behind the last one, which closes the connection.
    if (!admitOnConnection(req, res, http)) return;
    const refusal = headRefusal(req, http) ?? framingRefusal(req);
    if (refusal) {
      refuseFraming(generation, info, req, res, refusal);
      return;
    }
    watchBody(req, res, http);
    if (forward) handleForwardRequest(generation, this.#forward, info, req, res);
    else handleRequest(generation, info, req, res);
  }

  /**
   * An `Upgrade` request: node:http stops parsing and hands over the socket with the bytes it read
   * past the head, unparsed. Those bytes reach an upstream only if it switches protocols.
   *   - A body declared on it (Content-Length, Transfer-Encoding) is in those unparsed bytes:
   *     nothing can frame it, so 400 and close (RFC 9112 §6.3).
   *   - `h2c` (RFC 9113 §3.1: deprecated) is ignored, as RFC 9110 §7.8 allows: the request is
   *     served as plain HTTP/1.1 and the connection closes. Tunnelled, an upstream's 101 would
   *     open a channel for requests the edge never routes (h2c smuggling).
   */
  #onUpgrade(info: ListenerInfo, req: IncomingMessage, socket: Socket, head: Buffer): void {
    this.#trackTunnel(info.key, socket);
    if ((req.socket as CheckedSocket)[FRAMING_LOST]) {
      socket.end();
      return;
    }
    const generation = this.#generation;
    const refusal: FramingRefusal | HeadRefusal | null =
      headRefusal(req, generation.config.http) ??
      framingRefusal(req) ??
      (req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0' ? { status: 400, reason: 'a body on an Upgrade request' } : null);
    if (refusal) {
      refuseFraming(generation, info, req, responseOnSocket(req, socket), refusal);
      return;
    }
    if (upgradeProtocols(req.headers.upgrade).includes('h2c')) {
      handleRequest(generation, info, req, responseOnSocket(req, socket));
      return;
    }
    handleUpgrade(generation, info, req, socket, head);
  }

  #trackTunnel(key: string, socket: Socket): void {
    let set = this.#tunnels.get(key);
    if (!set) this.#tunnels.set(key, (set = new Set()));
    const tunnels = set;
    tunnels.add(socket);
    socket.once('close', () => tunnels.delete(socket));
  }

  async #open(key: string): Promise<void> {
    const address = this.#generation.listenAddresses.get(key);
    if (!address) return;
    const listener = this.#createListener(key);
    await new Promise<void>((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException) => reject(new PorticoError(ErrorCodes.ERR_LISTEN, `cannot listen on ${key}: ${LISTEN_ERRORS[error.code ?? ''] ?? error.message} (${error.code ?? 'error'})`, { cause: error }));
      listener.server.once('error', onError);
      const ready = () => {
        listener.server.off('error', onError);
        resolve();
      };
      if (address.kind === 'unix') listener.server.listen(address.path, ready);
      else if (address.host === '') listener.server.listen(address.port, ready);
      else listener.server.listen(address.port, address.host.replace(/^\[|\]$/g, ''), ready);
    });
    const bound = listener.server.address();
    if (bound && typeof bound === 'object') listener.info = { ...listener.info, port: bound.port };
    if (bound && typeof bound === 'object' && key.startsWith(FORWARD_KEY_PREFIX)) this.#forward.ports.add(bound.port);
    listener.server.on('error', (error) => log().error({ err: error, listener: key }, 'listener error'));
    this.#listeners.set(key, listener);
  }

  /** Opens every listen address of the config; on failure the ones already open are closed. */
  async start(): Promise<void> {
    try {
      for (const key of this.#generation.listenAddresses.keys()) await this.#open(key);
      this.#generation.start();
    } catch (error) {
      await this.stop(0);
      throw error;
    }
  }

  /**
   * Swaps in a new config: listen addresses added are opened, removed ones closed (their open
   * connections finish), the rest keep their sockets. Throws, changing nothing, when a new address cannot be opened.
   */
  async reload(config: ResolvedConfig): Promise<void> {
    const previous = this.#generation;
    const next = buildGeneration(config, this.#options);
    const added = [...next.listenAddresses.keys()].filter((key) => !this.#listeners.has(key));
    const removed = [...this.#listeners.keys()].filter((key) => !next.listenAddresses.has(key));
    this.#generation = next;
    try {
      for (const key of added) await this.#open(key);
    } catch (error) {
      for (const key of added) await this.#close(key, 0);
      this.#generation = previous;
      next.accessLog?.close();
      void next.close();
      throw error;
    }
    next.start();
    for (const [key, listener] of this.#listeners) if (!added.includes(key)) applyParserLimits(listener.server, config.http);
    for (const key of removed) void this.#close(key, 30_000);
    // The old access log may still get lines from requests in flight: flush, then let it go.
    previous.accessLog?.flush();
    // Upstream pools close gracefully (undici lets requests in flight finish); the short delay
    // covers requests that were routed on the old generation but have not dispatched yet.
    setTimeout(() => void previous.close(), 2_000).unref();
  }

  async #close(key: string, graceMs: number): Promise<void> {
    const listener = this.#listeners.get(key);
    if (!listener) return;
    this.#listeners.delete(key);
    if (key.startsWith(FORWARD_KEY_PREFIX)) this.#forward.ports.delete(listener.info.port);
    listener.draining = true;
    const closed = new Promise<void>((resolve) => listener.server.close(() => resolve()));
    listener.server.closeIdleConnections();
    // node:http leaves a keep-alive connection open after the response in flight at close()
    // (until its keep-alive timeout): close each one as soon as it is idle.
    const idle = setInterval(() => listener.server.closeIdleConnections(), 100);
    const timer = setTimeout(() => {
      listener.server.closeAllConnections();
      for (const socket of this.#tunnels.get(key) ?? []) socket.destroy();
      this.#forward.closeTunnels(key);
    }, graceMs);
    await closed;
    clearTimeout(timer);
    clearInterval(idle);
    this.#tunnels.delete(key);
  }

  /** Stops accepting, lets requests in flight finish for up to `graceMs`, then closes what is left. */
  async stop(graceMs = 10_000): Promise<void> {
    await Promise.all([...this.#listeners.keys()].map((key) => this.#close(key, graceMs)));
    this.#generation.accessLog?.close();
    await this.#generation.close();
  }

  /** The addresses actually bound (ports resolved when the config said 0). */
  addresses(): BoundAddress[] {
    return [...this.#listeners.values()].map(({ info, server }) => {
      const forward = info.key.startsWith(FORWARD_KEY_PREFIX);
      const bound = server.address();
      if (typeof bound === 'string' || bound === null) return { key: info.key, url: `unix:${bound ?? info.key.slice(5)}`, forward };
      const host = bound.address === '::' || bound.address === '0.0.0.0' ? 'localhost' : bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
      return { key: info.key, url: `${info.scheme}://${host}:${bound.port}`, forward };
    });
  }
}
