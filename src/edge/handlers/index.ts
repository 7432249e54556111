/**
 * The explicit registry of content handlers: one entry per route action. Later parts add
 * `proxy`, `app` and `forward` here; the pipeline never knows which handler it runs.
 */
import type { ResolvedCacheZone, ResolvedRoute } from '../../config/resolve.js';
import { ErrorCodes, HttpError } from '../../core/errors.js';
import { CacheHandler } from './cache/index.js';
import { zoneFor } from './cache/tiered.js';
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
  /** Cache zones of the config; their stores outlive generations (cache/tiered.ts zoneFor). */
  readonly cacheZones?: Readonly<Record<string, ResolvedCacheZone>>;
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
      const zone = env.cacheZones?.[route.cache.zone];
      if (!zone) throw new Error(`cache zone "${route.cache.zone}" unknown (the config check should have refused this)`);
      return new CacheHandler(new ProxyHandler(handler, group, prefix), zoneFor(zone), route.cache, compileTemplate(route.cache.key)).handler();
    }
    case 'none':
      return function noHandler() {
        throw new HttpError(404, ErrorCodes.ERR_ROUTE_NOT_FOUND, 'route has no handler');
      };
  }
}
