/**
 * The explicit registry of content handlers: one entry per route action (static, redirect,
 * respond, proxy with or without the cache; an app route is a proxy to its workers' group). The
 * forward proxy is not a route action: its listeners have their own entry (edge/listen/). The
 * pipeline never knows which handler it runs.
 */
import type { ResolvedCacheZone, ResolvedRoute } from '../../config/resolved.js';
import { ErrorCodes, HttpError } from '../../core/errors.js';
import { CacheHandler } from './cache/index.js';
import type { CacheZones } from './cache/zones.js';
import { createProxyHandler, ProxyHandler } from './proxy/index.js';
import type { UpstreamGroup } from './proxy/upstream.js';
import { createRedirectHandler } from './redirect.js';
import { createRespondHandler } from './respond.js';
import { createStaticHandler } from './static/index.js';
import type { Handler } from './types.js';
import { compileTemplate } from '../variables.js';

export { REROUTE, type Handler, type HandlerResult } from './types.js';

/** What handlers may share within a generation (upstream groups and their pools). */
export interface HandlerEnvironment {
  readonly upstreams: ReadonlyMap<string, UpstreamGroup>;
  /** Cache zones of the config. */
  readonly cacheZones: Readonly<Record<string, ResolvedCacheZone>>;
  /** The node's stores for them, which outlive generations (edge/environment.ts). */
  readonly cacheStores: CacheZones;
}

export function createHandler(route: ResolvedRoute, env: HandlerEnvironment): Handler {
  const handler = route.handler;
  switch (handler.type) {
    case 'static':
      return createStaticHandler(route, handler.static);
    case 'redirect':
      return createRedirectHandler(handler);
    case 'respond':
      return createRespondHandler(handler);
    case 'proxy': {
      const prefix = route.match.kind === 'prefix' ? route.match.path : null;
      if (!route.cache) return createProxyHandler(handler, env.upstreams, prefix);
      const group = env.upstreams.get(handler.upstream);
      if (!group) throw new Error(`proxy to unknown upstream "${handler.upstream}" (the config check should have refused this)`);
      const zone = env.cacheZones[route.cache.zone];
      if (!zone) throw new Error(`cache zone "${route.cache.zone}" unknown (the config check should have refused this)`);
      return new CacheHandler(new ProxyHandler(handler, group, prefix), env.cacheStores.zoneFor(zone), route.cache, compileTemplate(route.cache.key)).handler();
    }
    case 'none':
      return function noHandler() {
        throw new HttpError(404, ErrorCodes.ERR_ROUTE_NOT_FOUND, 'route has no handler');
      };
  }
}
