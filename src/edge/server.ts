/**
 * The edge server: the listeners of a process plus the current generation. Each listen address
 * gets one listener (edge/listen/: an HTTP/1.1 socket today, of kind "site" or "forward"); a
 * reload swaps the generation: sockets stay open, requests in flight finish on the generation
 * they started on. Node-level state comes in the EdgeEnvironment (edge/environment.ts) and is
 * handed to every generation.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ListenerInfo } from './context.js';
import type { ResolvedConfig } from '../config/resolved.js';
import { ErrorCodes, PorticoError } from '../core/errors.js';
import { log } from '../core/log.js';
import type { BoundAddress, ListenerKind, UpstreamChange } from './bus.js';
import { purgeInNode, type CacheZoneSnapshot } from './handlers/cache/store.js';
import type { UpstreamGroupSnapshot } from './handlers/proxy/upstream.js';
import type { EdgeEnvironment } from './environment.js';
import { buildGeneration, type Generation } from './generation.js';
import { ForwardRuntime } from './handlers/forward-proxy/index.js';
import { applyParserLimits } from './http/limits.js';
import { gateConnections } from './middleware/conn-limit.js';
import { createHttp1Server } from './listen/http1.js';
import { serveKind, type Listener, type ListenerHost } from './listen/kinds.js';
import { closeSessions, createH2cListener, destroySessions } from './listen/h2.js';
import { createTlsListener, type TlsTable } from './listen/tls.js';

export type { BoundAddress } from './bus.js';

export interface EdgeSnapshot {
  /** Each listener's open connections (upgraded ones included) and WebSocket tunnels. */
  readonly listeners: readonly { readonly key: string; readonly kind: ListenerKind; readonly connections: number; readonly tunnels: number }[];
  readonly upstreams: readonly UpstreamGroupSnapshot[];
  readonly cacheZones: readonly CacheZoneSnapshot[];
}

const LISTEN_ERRORS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'address not available on this machine',
};

export class EdgeServer implements ListenerHost {
  #generation: Generation;
  readonly #listeners = new Map<string, Listener>();
  readonly #environment: EdgeEnvironment;
  /**
   * Upgraded connections (WebSocket tunnels) by listen key: node:http no longer tracks them, so
   * `closeAllConnections` would not end them and a stop would wait on them forever. Generations
   * do not own them: a reload leaves them open; a stop ends them when its grace runs out.
   */
  readonly #tunnels = new Map<string, Set<Socket>>();
  /** The forward proxy's state across generations (open tunnels, its own ports). */
  readonly forward = new ForwardRuntime();

  constructor(config: ResolvedConfig, environment: EdgeEnvironment) {
    this.#environment = environment;
    this.#generation = buildGeneration(config, environment);
    // A rotation reaches the current generation's contexts; the next generation is built with the new keys.
    this.#stopTicketRotation = environment.ticketKeys.onChange((keys) => {
      for (const table of this.#generation.tls.values()) table.setTicketKeys(keys);
    });
  }

  readonly #stopTicketRotation: () => void;

  get generation(): Generation {
    return this.#generation;
  }

  get environment(): EdgeEnvironment {
    return this.#environment;
  }

  /**
   * Drains, enables or weighs an upstream server of the current generation, named by its URL or
   * its name; false when there is no such server. Runtime state, as HAProxy's: a reload builds
   * new groups and forgets it.
   */
  changeUpstream(group: string, server: string, change: UpstreamChange): boolean {
    const upstream = this.#generation.upstreams.get(group);
    const found = upstream?.servers.find((s) => s.url === server || s.name === server);
    if (!upstream || !found) return false;
    if ('drained' in change) found.drained = change.drained;
    else upstream.setWeight(found.url, change.weight);
    log().info({ upstream: group, server: found.url, ...change }, 'upstream server changed (admin API)');
    return true;
  }

  /** Purges a key (or every key under a prefix) from a cache zone: memory and disk, announced to the other workers; null when the zone does not exist here. */
  async purgeCache(zone: string, key: string, prefix: boolean): Promise<number | null> {
    const store = this.#environment.cacheZones.byName(zone);
    if (!store) return null;
    // As a PURGE request does: memory and disk here, then the other workers' memory tiers.
    return purgeInNode(store, key, prefix);
  }

  /** Another node's purge (one-process node): this node's memory and disk tiers drop the key or prefix. */
  purgeLocalCache(zone: string, key: string, prefix: boolean): Promise<void> {
    return this.#environment.cacheZones.purgeLocal(zone, key, prefix);
  }

  /** Plain data about this process's edge, for the admin API and metrics: listeners, upstream servers, cache zones. */
  snapshot(): EdgeSnapshot {
    return {
      // `_connections` is net.Server's own synchronous count (getConnections() is asynchronous);
      // read here, at snapshot time, rather than counting every connection on the hot path.
      listeners: [...this.#listeners.entries()].map(([key, listener]) => ({ key, kind: listener.kind, connections: (listener.socketServer as unknown as { _connections: number })._connections, tunnels: this.#tunnels.get(key)?.size ?? 0 })),
      upstreams: [...this.#generation.upstreams.values()].map((group) => group.snapshot()),
      cacheZones: this.#environment.cacheZones.snapshot(),
    };
  }

  #createListener(key: string): Listener {
    const spec = this.#generation.listeners.get(key);
    if (!spec) throw new Error(`no listener ${key} in the generation`);
    const settings = (): ResolvedConfig['http'] => this.#generation.config.http;
    const info: ListenerInfo = { scheme: spec.tls ? 'https' : 'http', port: spec.address.kind === 'tcp' ? spec.address.port : 0, key };
    // The parser's own answers (400, 408, 414, 431) get an access-log line too.
    const onParserAnswer = (socket: Socket, status: number, bodyBytes: number): void => this.#generation.accessLog?.writeUnparsed({ clientAddress: socket.remoteAddress ?? '', status, bodyBytes, listener: info });
    const server = createHttp1Server(this.#generation.config.http, () => this.#generation.serverHeader, settings, onParserAnswer);
    // HTTPS: the TLS socket server listens and hands each connection to `server` or to HTTP/2.
    // A reload reads `tlsTable` again per handshake, so new certificates apply at once.
    // h2c: a cleartext socket server that sends connections opening with the HTTP/2 preface to HTTP/2.
    const h2 = spec.tls ? createTlsListener(settings, () => this.#tlsTable(key), server) : spec.h2c ? createH2cListener(settings, server) : null;
    const socketServer = h2 ? h2.socketServer : server;
    gateConnections(socketServer, () => this.#generation.config.http.maxConnections, this.#environment.limits, () => this.#generation.serverHeader, spec.tls);
    const listener: Listener = { kind: spec.kind, server, socketServer, h2, info, draining: false };
    serveKind(listener, this);
    return listener;
  }

  /** The current generation's certificates for an HTTPS listener (a reload keeps an address's TLS: see reload). */
  #tlsTable(key: string): TlsTable {
    const table = this.#generation.tls.get(key);
    if (!table) throw new Error(`no TLS table for listener ${key}`);
    return table;
  }

  trackTunnel(key: string, socket: Socket): void {
    let set = this.#tunnels.get(key);
    if (!set) this.#tunnels.set(key, (set = new Set()));
    const tunnels = set;
    tunnels.add(socket);
    socket.once('close', () => tunnels.delete(socket));
  }

  async #open(key: string): Promise<void> {
    const spec = this.#generation.listeners.get(key);
    if (!spec) return;
    const address = spec.address;
    const listener = this.#createListener(key);
    await new Promise<void>((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException) => reject(new PorticoError(ErrorCodes.ERR_LISTEN, `cannot listen on ${key}: ${LISTEN_ERRORS[error.code ?? ''] ?? error.message} (${error.code ?? 'error'})`, { cause: error }));
      const socketServer = listener.socketServer;
      socketServer.once('error', onError);
      const ready = () => {
        socketServer.off('error', onError);
        resolve();
      };
      if (address.kind === 'unix') socketServer.listen(address.path, ready);
      else if (address.host === '') socketServer.listen(address.port, ready);
      else socketServer.listen(address.port, address.host.replace(/^\[|\]$/g, ''), ready);
    });
    const bound = listener.socketServer.address();
    if (bound && typeof bound === 'object') listener.info = { ...listener.info, port: bound.port };
    if (bound && typeof bound === 'object' && listener.kind === 'forward') this.forward.ports.add(bound.port);
    listener.socketServer.on('error', (error) => log().error({ err: error, listener: key }, 'listener error'));
    this.#listeners.set(key, listener);
  }

  /** Opens every listen address of the config; on failure the ones already open are closed. */
  async start(): Promise<void> {
    try {
      for (const key of this.#generation.listeners.keys()) await this.#open(key);
      this.#generation.start();
    } catch (error) {
      await this.stop(0);
      throw error;
    }
  }

  /**
   * The listeners of the config without sockets: connections are handed in by `inject`, as the
   * kernel would hand them to a listening socket (the in-process test server, testing/). The same
   * listeners, servers and pipeline as `start`; only `listen` is not called.
   */
  startInMemory(): void {
    for (const key of this.#generation.listeners.keys()) this.#listeners.set(key, this.#createListener(key));
    this.#generation.start();
  }

  /** The listeners' keys, kinds and what requests see of them (scheme, port). */
  listenerInfos(): { readonly key: string; readonly kind: ListenerKind; readonly info: ListenerInfo }[] {
    return [...this.#listeners.entries()].map(([key, listener]) => ({ key, kind: listener.kind, info: listener.info }));
  }

  /**
   * A connection handed to listener `key`. Cleartext: to what listens, so the connection limits
   * apply as to an accepted socket; HTTPS and h2c: to their HTTP/1.1 server, as after the TLS
   * handshake (or the h2c sniff) found HTTP/1.1.
   */
  inject(key: string, socket: Duplex): void {
    const listener = this.#listeners.get(key);
    if (!listener) throw new Error(`no listener ${key}`);
    (listener.h2 ? listener.server : listener.socketServer).emit('connection', socket);
  }

  /**
   * Swaps in a new config: listen addresses added are opened, removed ones closed (their open
   * connections finish), the rest keep their sockets. Throws, changing nothing, when a new address
   * cannot be opened, or an open one would change its kind (the socket would have to close first).
   */
  /** Opens the access log's file again at its path (SIGUSR1): logrotate renamed the old one. */
  reopenLogs(): void {
    this.#generation.accessLog?.reopen();
  }

  async reload(config: ResolvedConfig): Promise<void> {
    const previous = this.#generation;
    const next = buildGeneration(config, this.#environment);
    for (const [key, listener] of this.#listeners) {
      const wanted = next.listeners.get(key);
      if (wanted === undefined) continue;
      const https = listener.info.scheme === 'https';
      const h2c = !https && listener.h2 !== null;
      const change =
        wanted.kind !== listener.kind ? `from ${listener.kind} to ${wanted.kind}` : wanted.tls !== https ? (wanted.tls ? 'from HTTP to HTTPS' : 'from HTTPS to HTTP') : wanted.h2c !== h2c ? (wanted.h2c ? 'to take h2c' : 'to stop taking h2c') : null;
      if (change !== null) {
        void next.close();
        next.accessLog?.close();
        throw new PorticoError(ErrorCodes.ERR_LISTEN, `${key}: a listener cannot change ${change} on reload; restart portico to apply`);
      }
    }
    const added = [...next.listeners.keys()].filter((key) => !this.#listeners.has(key));
    const removed = [...this.#listeners.keys()].filter((key) => !next.listeners.has(key));
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
    if (listener.kind === 'forward') this.forward.ports.delete(listener.info.port);
    listener.draining = true;
    const closed = new Promise<void>((resolve) => listener.socketServer.close(() => resolve()));
    // HTTP/2 sessions go on accepting streams until told otherwise: GOAWAY now, the streams in flight finish.
    if (listener.h2) closeSessions(listener.h2);
    listener.server.closeIdleConnections();
    // node:http leaves a keep-alive connection open after the response in flight at close()
    // (until its keep-alive timeout): close each one as soon as it is idle.
    const idle = setInterval(() => listener.server.closeIdleConnections(), 100);
    const timer = setTimeout(() => {
      listener.server.closeAllConnections();
      if (listener.h2) destroySessions(listener.h2);
      for (const socket of this.#tunnels.get(key) ?? []) socket.destroy();
      this.forward.closeTunnels(key);
    }, graceMs);
    await closed;
    clearTimeout(timer);
    clearInterval(idle);
    this.#tunnels.delete(key);
  }

  /** Stops accepting, lets requests in flight finish for up to `graceMs`, then closes what is left. */
  async stop(graceMs = 10_000): Promise<void> {
    this.#stopTicketRotation();
    await Promise.all([...this.#listeners.keys()].map((key) => this.#close(key, graceMs)));
    this.#generation.accessLog?.close();
    await this.#generation.close();
  }

  /** The addresses actually bound (ports resolved when the config said 0). */
  addresses(): BoundAddress[] {
    return [...this.#listeners.values()].map(({ info, socketServer, kind }) => {
      const bound = socketServer.address();
      if (typeof bound === 'string' || bound === null) return { key: info.key, url: `unix:${bound ?? info.key.slice(5)}`, kind };
      const host = bound.address === '::' || bound.address === '0.0.0.0' ? 'localhost' : bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
      return { key: info.key, url: `${info.scheme}://${host}:${bound.port}`, kind };
    });
  }
}
