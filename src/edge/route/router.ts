/**
 * Route selection inside one virtual server, with nginx `location` semantics (compiled once per
 * generation; a live router is never modified):
 *   1. an `exact` route equal to the path wins at once;
 *   2. the longest matching `prefix` is remembered; if it has `skipRegex` (nginx `^~`) it wins;
 *   3. `regex` routes are tried in config order; the first match wins (its captures become $1…);
 *   4. otherwise the remembered longest prefix wins; with none, there is no route (404).
 * Then a route with `methods` that has the chosen route's matcher takes the request if its method
 * is one of them (nginx's `if ($request_method …)` in a location, as a route of its own).
 */
import type { AccessStep } from '../middleware/access.js';
import type { ResolvedRoute, ResolvedServer } from '../../config/resolved.js';
import type { RequestContext } from '../context.js';
import type { Handler } from '../handlers/index.js';
import type { CompiledRewrite } from '../middleware/rewrite.js';
import type { HeaderFilter } from '../middleware/headers.js';
import type { CompiledCanonical } from '../middleware/canonical.js';
import type { RouteEncoder } from '../middleware/encode.js';

export interface CompiledRoute {
  readonly id: string;
  readonly config: ResolvedRoute;
  readonly rewrite: readonly CompiledRewrite[];
  readonly headers: HeaderFilter | null;
  /** Response compression; null when off (decided once per generation, no per-request check). */
  readonly encode: RouteEncoder | null;
  readonly accessLog: boolean;
  /** Phase 6 (edge/middleware/access.ts): null when the route checks nothing. */
  readonly access: AccessStep | null;
  readonly handler: Handler;
}

export interface CompiledServer {
  readonly id: string;
  readonly config: ResolvedServer;
  /** First configured name, for `$server_name` and `$host` when the request had no Host. */
  readonly primaryName: string;
  readonly canonical: CompiledCanonical | null;
  readonly rewrite: readonly CompiledRewrite[];
  readonly router: Router;
}

interface PrefixEntry {
  readonly path: string;
  readonly skipRegex: boolean;
  readonly route: CompiledRoute;
}

export class Router {
  /** Routes with `methods`, by the route with the same matcher that takes the other methods. */
  readonly #byMethod = new Map<CompiledRoute, { readonly methods: ReadonlySet<string>; readonly route: CompiledRoute }[]>();
  readonly #exact = new Map<string, CompiledRoute>();
  readonly #prefixes: PrefixEntry[] = [];
  readonly #regexes: { readonly re: RegExp; readonly route: CompiledRoute }[] = [];

  constructor(routes: readonly CompiledRoute[]) {
    const key = (route: CompiledRoute) => JSON.stringify(route.config.match);
    for (const route of routes) {
      if (route.config.methods === null) continue;
      // The config check made sure the sibling exists; the first one is the one selection finds.
      const sibling = routes.find((other) => other.config.methods === null && key(other) === key(route)) as CompiledRoute;
      const list = this.#byMethod.get(sibling) ?? [];
      list.push({ methods: new Set(route.config.methods), route });
      this.#byMethod.set(sibling, list);
    }
    for (const route of routes) {
      if (route.config.methods !== null) continue;
      const match = route.config.match;
      if (match.kind === 'exact') {
        if (!this.#exact.has(match.path)) this.#exact.set(match.path, route);
      } else if (match.kind === 'prefix') {
        if (!this.#prefixes.some((p) => p.path === match.path)) this.#prefixes.push({ path: match.path, skipRegex: match.skipRegex, route });
      } else {
        this.#regexes.push({ re: new RegExp(match.source, match.caseInsensitive ? 'i' : ''), route });
      }
    }
    // Longest first, so the first prefix that matches is the longest.
    this.#prefixes.sort((a, b) => b.path.length - a.path.length);
  }

  /** Sets `ctx.route` (and `ctx.captures` for a regex route); returns false when nothing matches. */
  select(ctx: RequestContext): boolean {
    const path = ctx.uri;
    const exact = this.#exact.get(path);
    if (exact) {
      ctx.route = this.#forMethod(exact, ctx);
      return true;
    }
    let prefix: PrefixEntry | undefined;
    for (const entry of this.#prefixes) {
      if (path.startsWith(entry.path)) {
        prefix = entry;
        break;
      }
    }
    if (!prefix?.skipRegex) {
      for (const { re, route } of this.#regexes) {
        const captures = re.exec(path);
        if (captures) {
          ctx.route = this.#forMethod(route, ctx);
          ctx.captures = captures;
          return true;
        }
      }
    }
    ctx.route = prefix ? this.#forMethod(prefix.route, ctx) : null;
    return prefix !== undefined;
  }

  /** The route of `methods` that takes this request's method, else `route` itself. */
  #forMethod(route: CompiledRoute, ctx: RequestContext): CompiledRoute {
    if (this.#byMethod.size === 0) return route;
    const variants = this.#byMethod.get(route);
    if (variants === undefined) return route;
    const method = ctx.req.method ?? '';
    for (const variant of variants) if (variant.methods.has(method)) return variant.route;
    return route;
  }
}
