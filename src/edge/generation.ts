/**
 * A generation: everything built from one resolved config (compiled routes, host tables per
 * listen address, the access log). Requests keep the generation they started on, so a reload
 * builds a whole new generation and swaps it in while the old one drains (core/lifecycle).
 */
import type { ListenAddress, ResolvedConfig } from '../config/resolve.js';
import { compileForward, type CompiledForward } from './handlers/forward-proxy/index.js';
import { createHandler, type HandlerEnvironment } from './handlers/index.js';
import { UpstreamGroup } from './handlers/proxy/upstream.js';
import { edgeLimitStore } from '../core/limit-ipc.js';
import { compileAccess } from './middleware/access.js';
import { compileCanonical } from './middleware/canonical.js';
import { compileEncoder } from './middleware/encode.js';
import { compileHeaderFilter } from './middleware/headers.js';
import { compileRealIp, type RealIp } from './middleware/real-ip.js';
import { compileRewrites } from './middleware/rewrite.js';
import { HostTable } from './route/hosts.js';
import { Router, type CompiledRoute, type CompiledServer } from './route/router.js';
import { createAccessLog, type AccessLog } from './log/access.js';

export const listenKey = (address: ListenAddress): string => (address.kind === 'unix' ? `unix:${address.path}` : `${address.host}:${address.port}`);

/** Listen keys of the forward proxy's listeners ("forward:127.0.0.1:3128"): its sockets are not virtual servers'. */
export const FORWARD_KEY_PREFIX = 'forward:';

export interface Generation {
  readonly config: ResolvedConfig;
  /** Host tables by listen key ("0.0.0.0:8080" style, see listenKey). */
  readonly hosts: ReadonlyMap<string, HostTable>;
  readonly listenAddresses: ReadonlyMap<string, ListenAddress>;
  readonly serverHeader: string | null;
  readonly unknownHost: ResolvedConfig['http']['unknownHost'];
  readonly accessLog: AccessLog | null;
  readonly realIp: RealIp | null;
  readonly upstreams: ReadonlyMap<string, UpstreamGroup>;
  /** The forward proxy of this config (its listeners are the listen keys starting with FORWARD_KEY_PREFIX), or null. */
  readonly forward: CompiledForward | null;
  /** Starts what runs in the background (active health checks) once the generation serves. */
  start(): void;
  /** Releases upstream pools and timers once no request uses this generation any more. */
  close(): Promise<void>;
}

function compileServer(config: ResolvedConfig['servers'][number], env: HandlerEnvironment, limits: ResolvedConfig['limits']): CompiledServer {
  const routes: CompiledRoute[] = config.routes.map((route) => ({
    id: route.id,
    config: route,
    rewrite: compileRewrites(route.rewrite),
    headers: compileHeaderFilter(route.headers),
    encode: compileEncoder(route.encode),
    accessLog: route.accessLog,
    access: compileAccess(route.access, limits, edgeLimitStore()),
    handler: createHandler(route, env),
  }));
  return {
    id: config.id,
    config,
    primaryName: config.names.find((name) => !name.startsWith('*.')) ?? '',
    canonical: compileCanonical(config.canonical),
    rewrite: compileRewrites(config.rewrite),
    router: new Router(routes),
  };
}

export interface GenerationOptions {
  readonly accessLog?: AccessLog | null;
  /**
   * Groups that outlive generations, by name: an app's group, whose members are its running
   * workers (supervisor/apps.ts keeps them). A reload must not start such a group empty, and
   * closing an old generation must not close the pools of workers that keep serving.
   */
  readonly sharedUpstreams?: ReadonlyMap<string, UpstreamGroup>;
}

export function buildGeneration(config: ResolvedConfig, options: GenerationOptions = {}): Generation {
  const upstreams = new Map<string, UpstreamGroup>();
  const owned: UpstreamGroup[] = [];
  for (const [name, group] of Object.entries(config.upstreams)) {
    const shared = options.sharedUpstreams?.get(name);
    if (shared) upstreams.set(name, shared);
    else {
      const built = new UpstreamGroup(group);
      upstreams.set(name, built);
      owned.push(built);
    }
  }
  const env: HandlerEnvironment = { upstreams, cacheZones: config.cache.zones };
  const servers = config.servers.map((server) => compileServer(server, env, config.limits));
  const byListener = new Map<string, CompiledServer[]>();
  const listenAddresses = new Map<string, ListenAddress>();
  for (const server of servers) {
    for (const address of server.config.listen) {
      const key = listenKey(address);
      listenAddresses.set(key, address);
      let list = byListener.get(key);
      if (!list) byListener.set(key, (list = []));
      list.push(server);
    }
  }
  const hosts = new Map<string, HostTable>();
  for (const [key, list] of byListener) hosts.set(key, new HostTable(list));
  const forward = config.forward ? compileForward(config.forward, config.cache.zones) : null;
  for (const address of config.forward?.listen ?? []) listenAddresses.set(FORWARD_KEY_PREFIX + listenKey(address), address);
  return {
    config,
    hosts,
    listenAddresses,
    serverHeader: config.http.serverHeader,
    unknownHost: config.http.unknownHost,
    accessLog: options.accessLog !== undefined ? options.accessLog : config.log.access ? createAccessLog(config.log.access) : null,
    realIp: compileRealIp(config.http.trustedProxies),
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
