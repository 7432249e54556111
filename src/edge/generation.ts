/**
 * A generation: everything built from one resolved config (compiled routes, host tables per
 * listen address, the listeners it wants and their kinds, the access log). Requests keep the
 * generation they started on, so a reload builds a whole new generation and swaps it in while
 * the old one drains (edge/server.ts reload). Node-level state (limits, cache zones, app groups)
 * is not built here: it comes in the EdgeEnvironment and outlives generations.
 */
import type { ListenAddress, ResolvedConfig } from '../config/resolved.js';
import type { ListenerKind } from './bus.js';
import type { EdgeEnvironment } from './environment.js';
import { compileForward, type CompiledForward } from './handlers/forward-proxy/index.js';
import { createHandler, type HandlerEnvironment } from './handlers/index.js';
import { UpstreamGroup } from './handlers/proxy/upstream.js';
import { compileAccess } from './middleware/access.js';
import { compileCanonical, httpsPortSuffix } from './middleware/canonical.js';
import { compileEncoder } from './middleware/encode.js';
import { compileHeaderFilter } from './middleware/headers.js';
import { compileRealIp, type RealIp } from './middleware/real-ip.js';
import { compileRewrites } from './middleware/rewrite.js';
import { compileHeaderNameFilter, type HeaderNameFilter } from './http/header-names.js';
import { AcmeChallenges } from './listen/acme-challenges.js';
import { TlsTable } from './listen/tls.js';
import { HostTable } from './route/hosts.js';
import { Router, type CompiledRoute, type CompiledServer } from './route/router.js';
import { createAccessLog, type AccessLog } from './log/access.js';

export const listenKey = (address: ListenAddress): string => (address.kind === 'unix' ? `unix:${address.path}` : `${address.host}:${address.port}`);

/** A socket the generation wants open: where, and what it serves. */
export interface ListenerSpec {
  /** "127.0.0.1:8080" or "unix:/path" (listenKey). */
  readonly key: string;
  readonly kind: ListenerKind;
  readonly address: ListenAddress;
  /** HTTPS (its servers have `tls`): a TLS socket offering h2 and http/1.1 (listen/tls.ts). */
  readonly tls: boolean;
  /** Cleartext HTTP/2 with prior knowledge too (a server of the address has `http2: "h2c"`; listen/h2.ts). */
  readonly h2c: boolean;
}

export interface Generation {
  readonly config: ResolvedConfig;
  /** Host tables by listen key ("0.0.0.0:8080" style, see listenKey). */
  readonly hosts: ReadonlyMap<string, HostTable>;
  /** The listeners this config wants, by listen key. */
  readonly listeners: ReadonlyMap<string, ListenerSpec>;
  /** The certificates of each HTTPS listener, by listen key (read from the files when this generation was built). */
  readonly tls: ReadonlyMap<string, TlsTable>;
  /** HTTP-01 and TLS-ALPN-01 answers (listen/acme-challenges.ts), when a server orders certificates from an ACME CA. */
  readonly acmeChallenges: AcmeChallenges | null;
  readonly serverHeader: string | null;
  readonly unknownHost: ResolvedConfig['http']['unknownHost'];
  readonly accessLog: AccessLog | null;
  readonly realIp: RealIp | null;
  /** Drops request fields with invalid names or framing lookalikes (http.ignoreInvalidHeaders), or null when all pass. */
  readonly headerNames: HeaderNameFilter | null;
  readonly upstreams: ReadonlyMap<string, UpstreamGroup>;
  /** The forward proxy of this config (its listeners are those of kind "forward"), or null. */
  readonly forward: CompiledForward | null;
  /** Starts what runs in the background (active health checks) once the generation serves. */
  start(): void;
  /** Releases upstream pools and timers once no request uses this generation any more. */
  close(): Promise<void>;
}

function compileServer(config: ResolvedConfig['servers'][number], env: HandlerEnvironment, all: ResolvedConfig, environment: EdgeEnvironment): CompiledServer {
  const limits = all.limits;
  const routes: CompiledRoute[] = config.routes.map((route) => ({
    id: route.id,
    config: route,
    rewrite: compileRewrites(route.rewrite),
    headers: compileHeaderFilter(route.headers),
    encode: compileEncoder(route.encode),
    accessLog: route.accessLog,
    access: compileAccess(route.access, limits, environment.limits),
    handler: createHandler(route, env),
  }));
  return {
    id: config.id,
    config,
    primaryName: config.names.find((name) => !name.startsWith('*.')) ?? '',
    canonical: compileCanonical(config.canonical, config.canonical.https ? httpsPortSuffix(config, all.servers) : ''),
    rewrite: compileRewrites(config.rewrite),
    router: new Router(routes),
  };
}

/**
 * Builds a generation from `config` on the node state of `environment`. The environment's shared
 * upstream groups (an app's workers) are used as they are: a reload must not start such a group
 * empty, and closing an old generation must not close the pools of workers that keep serving.
 */
export function buildGeneration(config: ResolvedConfig, environment: EdgeEnvironment): Generation {
  const upstreams = new Map<string, UpstreamGroup>();
  const owned: UpstreamGroup[] = [];
  for (const [name, group] of Object.entries(config.upstreams)) {
    const shared = environment.sharedUpstreams.get(name);
    if (shared) upstreams.set(name, shared);
    else {
      const built = new UpstreamGroup(group);
      upstreams.set(name, built);
      owned.push(built);
    }
  }
  const env: HandlerEnvironment = { upstreams, cacheZones: config.cache.zones, cacheStores: environment.cacheZones };
  const servers = config.servers.map((server) => compileServer(server, env, config, environment));
  const byListener = new Map<string, CompiledServer[]>();
  const listeners = new Map<string, ListenerSpec>();
  for (const server of servers) {
    for (const address of server.config.listen) {
      const key = listenKey(address);
      // The config check makes every server of an address agree on TLS; h2c is the address's if any of its servers asks.
      listeners.set(key, { key, kind: 'site', address, tls: server.config.tls !== null, h2c: server.config.h2c || (listeners.get(key)?.h2c ?? false) });
      let list = byListener.get(key);
      if (!list) byListener.set(key, (list = []));
      list.push(server);
    }
  }
  const hosts = new Map<string, HostTable>();
  const tls = new Map<string, TlsTable>();
  // The CA's validations are answered only where certificates are ordered from one.
  const acmeChallenges = config.servers.some((server) => server.tls?.managed === 'acme') ? new AcmeChallenges(config.acme.dataDir, environment.sharedState) : null;
  for (const [key, list] of byListener) {
    hosts.set(key, new HostTable(list));
    if (listeners.get(key)?.tls) tls.set(key, new TlsTable(list, () => environment.ticketKeys.current, environment.certificates, acmeChallenges));
  }
  const forward = config.forward ? compileForward(config.forward, config.cache.zones, environment.cacheZones) : null;
  // The config check refuses a forward address that a server listens on too.
  for (const address of config.forward?.listen ?? []) listeners.set(listenKey(address), { key: listenKey(address), kind: 'forward', address, tls: false, h2c: false });
  return {
    config,
    hosts,
    listeners,
    tls,
    acmeChallenges,
    serverHeader: config.http.serverHeader,
    unknownHost: config.http.unknownHost,
    accessLog: config.log.access ? createAccessLog(config.log.access) : null,
    realIp: compileRealIp(config.http.trustedProxies),
    headerNames: compileHeaderNameFilter(config.http),
    upstreams,
    forward,
    start() {
      for (const group of owned) group.start();
    },
    async close() {
      await Promise.all([...owned.map((group) => group.close()), forward?.close()]);
    },
  };
}
