/**
 * The explicit registry of content handlers: one entry per route action. Later parts add
 * `proxy`, `app` and `forward` here; the pipeline never knows which handler it runs.
 */
import type { ResolvedRoute } from '../../config/resolve.js';
import { ErrorCodes, HttpError } from '../../core/errors.js';
import { createProxyHandler } from './proxy/index.js';
import type { UpstreamGroup } from './proxy/upstream.js';
import { createRedirectHandler } from './redirect.js';
import { createRespondHandler } from './respond.js';
import { createStaticHandler } from './static/index.js';
import type { Handler } from './types.js';

export { REROUTE, type Handler, type HandlerResult } from './types.js';

/** What handlers may share within a generation (upstream groups and their pools). */
export interface HandlerEnvironment {
  readonly upstreams: ReadonlyMap<string, UpstreamGroup>;
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
    case 'proxy':
      return createProxyHandler(handler, env.upstreams, route.match.kind === 'prefix' ? route.match.path : null);
    case 'none':
      return function noHandler() {
        throw new HttpError(404, ErrorCodes.ERR_ROUTE_NOT_FOUND, 'route has no handler');
      };
  }
}
