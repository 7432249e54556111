/**
 * Virtual servers (top-level `servers`, the nginx `server` block) and their routes (nginx
 * `location`): matchers, the content handlers (static, redirect, respond; proxy and app come
 * from upstream.ts and app.ts), rewrite, headers, compression, and what a route inherits from
 * its server, merged once here.
 */
import { statSync } from 'node:fs';
import zlib from 'node:zlib';
import { resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import type { ResolvedAcme, ResolvedCacheZone, ResolvedEncode, ResolvedHandler, ResolvedRewrite, ResolvedRoute, ResolvedServer, ResolvedStatic, ResolvedUpstream } from '../resolved.js';
import { resolveAppRoute } from './app.js';
import { resolveRouteCache, routeCache } from './cache.js';
import { accessFields, resolveAccess, type ZoneNames } from './limits.js';
import { resolveTls, tlsOptions } from './tls.js';
import { proxyAction, resolveProxy } from './upstream.js';
import { duration, headerOps, httpStatus, listenAddress, listenKey, mergeHeaders, parseListen, redirectStatus, regexSource, size, stripUndefined, template, type ListenAddress } from './values.js';

/**
 * A rewrite rule, with nginx `rewrite` semantics: if `from` (a regex on the decoded, normalised
 * path `$uri`) matches, the URI becomes `to` (variables and `$1`… captures expanded). Arguments of
 * the original request are appended unless `to` has its own `?…` (end `to` with "?" to drop them).
 */
const rewriteRule = z.strictObject({
  /** Regular expression tested against `$uri`. */
  from: regexSource(),
  /** Replacement: "/new/$1", "/search?q=$1", or "https://$host$request_uri" (an absolute URL redirects). */
  to: template(),
  /**
   * - `last`: stop rewriting and search the routes again with the new URI (up to 10 times, then 500);
   * - `break`: stop rewriting and serve from the current route with the new URI;
   * - `redirect` / `permanent`: answer 302 / 301 with `Location: to`;
   * - none: go on with the next rule; if the URI changed, the routes are searched again at the end.
   */
  flag: z.enum(['last', 'break', 'redirect', 'permanent']).optional(),
  /** Match `from` case-insensitively (nginx `~*`). @default false */
  caseInsensitive: z.boolean().optional(),
});

const precompressedEncoding = z.enum(['br', 'gzip', 'zstd']);

/** Static files: nginx `root`/`alias`/`index`/`try_files`/`expires`, Caddy `file_server`. */
export const staticFields = {
  /** The directory files are served from. Relative paths are resolved against the config file's folder. */
  root: z.string().min(1),
  /** nginx `alias`: the route's matched prefix is removed before the path is joined to `root`. @default false */
  alias: z.boolean(),
  /** Index files tried, in order, for a request ending in "/". `false` disables. @default ["index.html"] */
  index: z.union([z.array(z.string().min(1)), z.literal(false)]),
  /**
   * nginx `try_files`: candidates tried in order ("$uri", "$uri/", "$uri.html"); the last entry is
   * the fallback, either a URI searched through the routes again (SPA: "/index.html") or "=404".
   */
  tryFiles: z.array(template().pipe(z.string().min(1))).min(2),
  /** Browser cache lifetime: `Cache-Control: max-age`. Omit for no Cache-Control header. */
  maxAge: duration(),
  /** Adds `immutable` to Cache-Control (for hashed asset names). @default false */
  immutable: z.boolean(),
  /** Send a strong `ETag` ("mtime-size", as nginx) and answer `If-None-Match`/`If-Match`. @default true */
  etag: z.boolean(),
  /** Send `Last-Modified` and answer `If-Modified-Since`/`If-Unmodified-Since`. @default true */
  lastModified: z.boolean(),
  /** Serve `file.br` / `file.gz` / `file.zst` beside `file` when the client accepts it (nginx `gzip_static`). `true` = ["br", "gzip"]. @default true */
  precompressed: z.union([z.boolean(), z.array(precompressedEncoding)]),
  /** Paths with a segment starting with "." (except /.well-known/): `ignore` → 404, `deny` → 403, `allow` → served. @default "ignore" */
  dotfiles: z.enum(['ignore', 'deny', 'allow']),
  /** HTML directory listing for directories without an index file. @default false */
  listing: z.boolean(),
  /** Symlinks: `inside` follows only those resolving inside `root`, `follow` all, `deny` none. @default "inside" */
  symlinks: z.enum(['inside', 'follow', 'deny']),
  /**
   * Files up to this size are kept in memory with precomputed headers (nginx `open_file_cache`
   * plus the page cache). Why 1 MiB: serving a 1 MiB file from memory measured 4,282 req/s
   * against 762 through a read stream (wrk, one core; see docs/performance.md). @default "1mb"
   */
  hotFileMaxSize: size(),
  /** Total bytes of the in-memory hot file cache, per process (least recently used files leave first). `0` disables it. @default "64mb" */
  hotCacheSize: size(),
  /** How long a cached file is trusted before its metadata is checked again (nginx `open_file_cache_valid`). @default "1s" */
  hotCacheValidity: duration(),
};

const staticOptions = z.strictObject(staticFields).partial();

const contentCoding = z.enum(['zstd', 'br', 'gzip']);

/** A media type or a pattern with "*": "text/html", "text/*", "application/*+json". */
const mediaRange = z.string().regex(/^[A-Za-z0-9!#$&^_.+*-]+\/[A-Za-z0-9!#$&^_.+*-]+$/, 'expected a media type like "text/html", "text/*" or "application/*+json"');

/**
 * On-the-fly response compression (nginx `gzip`/`brotli`, Caddy `encode`) for every handler's
 * responses: gzip, brotli and (where the runtime has it) zstd, chosen by the client's
 * `Accept-Encoding`. Never for a body that is encoded already (static's precompressed siblings),
 * for ranges, `Cache-Control: no-transform`, HEAD bodies, or bodies below `minLength`.
 */
const encodeFields = {
  /** Compress responses of this server/route. @default false (as nginx's `gzip off`: turn it on where wanted) */
  enabled: z.boolean(),
  /**
   * Codings offered, in server preference order (a tie in the client's q-values goes to the
   * earlier one). "zstd" needs Node ≥ 22.15. @default ["zstd", "br", "gzip"] where zstd exists, else ["br", "gzip"]
   */
  encodings: z.array(contentCoding).min(1),
  /**
   * Compression level per coding. Why these defaults: on-the-fly work costs CPU per response;
   * gzip 6 is zlib's default, brotli 4 compresses smaller than gzip 6 at about its speed (11 is
   * for precompressing), zstd 3 is zstd's default. @default { gzip: 6, br: 4, zstd: 3 }
   */
  level: z
    .strictObject({
      /** 1 (fastest) to 9 (smallest). @default 6 */
      gzip: z.number().int().min(1).max(9).optional(),
      /** 0 (fastest) to 11 (smallest). @default 4 */
      br: z.number().int().min(0).max(11).optional(),
      /** 1 (fastest) to 19 (smallest). @default 3 */
      zstd: z.number().int().min(1).max(19).optional(),
    }),
  /** Bodies shorter than this (by `Content-Length`) are sent as they are (nginx `gzip_min_length`); a streamed body of unknown length is compressed. @default 512 (Caddy's) */
  minLength: size(),
  /** Media types compressed ("text/*" and "application/*+json" patterns allowed). @default text/*, JSON, JavaScript, XML, WebAssembly, SVG, uncompressed fonts, icons (see docs/config.md) */
  types: z.array(mediaRange).min(1),
};

/** `true` = enabled with the defaults, `false` = off, or the fields (given fields override the server's). */
const encodeOptions = z.union([z.boolean(), z.strictObject(encodeFields).partial()]);

const redirectAction = z.strictObject({
  /** Target URL or path; variables expand ("https://$host$request_uri", "/docs/$1" with captures of a regex route). */
  to: template().pipe(z.string().min(1)),
  /** @default 302 */
  status: redirectStatus.optional(),
});

const respondAction = z.strictObject({
  /** @default 200 */
  status: httpStatus.optional(),
  /** Body text; variables expand. */
  body: template().optional(),
  /** Extra headers of this response. */
  headers: z.record(z.string(), z.string()).optional(),
  /** @default "text/plain; charset=utf-8" when there is a body */
  contentType: z.string().optional(),
});

const HANDLER_KEYS = ['static', 'redirect', 'respond', 'proxy', 'app'] as const;

/**
 * A route, the nginx `location`. Exactly one of `exact`, `prefix`, `regex` says which requests it
 * takes (none = prefix "/"); at most one handler (`static`, `redirect`, `respond`) says what it does.
 * Selection follows nginx: an exact match wins; else the longest prefix is remembered, and if it
 * has `skipRegex` it wins; else regex routes are tried in order and the first match wins; else the
 * longest prefix.
 */
const route = z
  .strictObject({
    /** Matches this path exactly (nginx `location = /path`). */
    exact: z.string().startsWith('/').optional(),
    /** Matches paths starting with this prefix (nginx `location /prefix`). */
    prefix: z.string().startsWith('/').optional(),
    /** Matches paths by regular expression (nginx `location ~ re`); captures are `$1`… */
    regex: regexSource().optional(),
    /** For `regex`: case-insensitive (nginx `~*`). @default false */
    caseInsensitive: z.boolean().optional(),
    /** For `prefix`: when it is the longest prefix, regex routes are not tried (nginx `^~`). @default false */
    skipRegex: z.boolean().optional(),
    /**
     * Request methods this route takes ("OPTIONS", ["POST", "PUT"]) from a route with the same
     * matcher and no `methods`, which takes the others; that route must exist. What nginx writes
     * as `if ($request_method = OPTIONS) { return 204; }` in a location.
     */
    methods: z.array(z.string().regex(/^[A-Z]+$/, 'expected a method in capitals, like "GET" or "OPTIONS"')).min(1).optional(),
    /** Rewrite rules run when this route is selected (nginx location-level `rewrite`). */
    rewrite: z.array(rewriteRule).optional(),
    /** Response header operations; merged over the server's. */
    headers: headerOps.optional(),
    /** Write this route's requests to the access log. Inherited from the server. @default true */
    accessLog: z.boolean().optional(),
    /** Largest request body on this route (nginx `client_max_body_size` in a `location`); `0` = no limit. Inherited from the server. @default the server's */
    maxBodySize: size().optional(),
    /** Serve files; fields not given are inherited from the server's `static`. */
    static: staticOptions.optional(),
    /** Response compression; fields not given are inherited from the server's `encode`. */
    encode: encodeOptions.optional(),
    /** Answer with a redirect (the client is told to go elsewhere). */
    redirect: redirectAction.optional(),
    /** Answer with a fixed response (nginx `return`). */
    respond: respondAction.optional(),
    /** Forward to an upstream (reverse proxy). */
    proxy: proxyAction.optional(),
    /**
     * Serve with an app of `apps` (its name): the edge balances over the app's worker processes
     * (least outstanding requests). The request URI goes to the app as received.
     */
    app: z.string().min(1).optional(),
    /** Response cache for a `proxy` or `app` route; overrides the server's `cache`. */
    cache: z.union([z.boolean(), routeCache]).optional(),
    ...accessFields,
  })
  .superRefine((value, ctx) => {
    const matchers = (['exact', 'prefix', 'regex'] as const).filter((key) => value[key] !== undefined);
    if (matchers.length > 1) ctx.addIssue({ code: 'custom', message: `expected at most one of "exact", "prefix", "regex", got ${matchers.map((m) => `"${m}"`).join(' and ')}` });
    const handlers = HANDLER_KEYS.filter((key) => value[key] !== undefined);
    if (handlers.length > 1) ctx.addIssue({ code: 'custom', message: `expected at most one handler (${HANDLER_KEYS.join(', ')}), got ${handlers.join(' and ')}` });
    // `input` is the field's own value: without it the line said "got an object" (the route).
    if (value.caseInsensitive !== undefined && value.regex === undefined) ctx.addIssue({ code: 'custom', path: ['caseInsensitive'], input: value.caseInsensitive, message: 'expected only with "regex"' });
    if (value.skipRegex !== undefined && value.prefix === undefined) ctx.addIssue({ code: 'custom', path: ['skipRegex'], input: value.skipRegex, message: 'expected only with "prefix"' });
  });

/** A virtual server, the nginx `server` block. */
export const server = z.strictObject({
  /** Addresses to listen on. @default [":8080"] */
  listen: z.union([listenAddress, z.array(listenAddress).min(1)]).optional(),
  /** Host names served: exact ("example.com") or wildcard ("*.example.com"). Empty: only as default server. */
  names: z.array(z.string().regex(/^(\*\.)?[a-z0-9_.-]+$|^[0-9a-f:]+$/i, 'expected a host name like "example.com" or "*.example.com"')).optional(),
  /** Default server of its listen addresses: takes requests whose Host matches no server. The first server on an address is the default unless another says so. */
  default: z.boolean().optional(),
  /** Common canonicalisations, answered with redirects before routing. */
  canonical: z
    .strictObject({
      /** Redirect plain HTTP to https://$host$request_uri. @default false */
      https: z.boolean().optional(),
      /** `add`: example.com → www.example.com; `remove`: www.example.com → example.com. */
      www: z.enum(['add', 'remove']).optional(),
      /** `add`: /docs → /docs/ (only for paths without an extension); `remove`: /docs/ → /docs. */
      trailingSlash: z.enum(['add', 'remove']).optional(),
      /** Status of these redirects; 308 is used instead of 301 for methods other than GET/HEAD. @default 301 */
      status: redirectStatus.optional(),
    })
    .optional(),
  /** Rewrite rules run before the route is selected (nginx server-level `rewrite`). */
  rewrite: z.array(rewriteRule).optional(),
  /** Response header operations for every route of this server. */
  headers: headerOps.optional(),
  /** @default true */
  accessLog: z.boolean().optional(),
  /** Largest request body on this server's routes (nginx `client_max_body_size` in a `server`); `0` = no limit. @default `http.maxBodySize` */
  maxBodySize: size().optional(),
  /** Static file settings inherited by every route's `static` (e.g. `root`). */
  static: staticOptions.optional(),
  /** Response compression inherited by every route (`true` turns it on with the defaults). */
  encode: encodeOptions.optional(),
  /** Routes (nginx `location`s). Without routes, the server serves its `static` root at "/". */
  routes: z.array(route).optional(),
  /** Response cache inherited by this server's `proxy` and `app` routes (nginx `proxy_cache` at server level). */
  cache: z.union([z.boolean(), routeCache]).optional(),
  /** HTTPS on this server's listen addresses: certificates (PEM files), strict SNI, HSTS. */
  tls: tlsOptions.optional(),
  /**
   * `"h2c"`: this server's (cleartext) addresses also take HTTP/2 with prior knowledge (RFC 9113
   * §3.3), as a load balancer in front speaks it; HTTP/1.1 keeps working on the same port. Over
   * TLS, HTTP/2 is negotiated by ALPN and needs no setting.
   */
  http2: z.literal('h2c').optional(),
  ...accessFields,
}).superRefine((value, ctx) => {
  if (value.http2 !== undefined && value.tls !== undefined) ctx.addIssue({ code: 'custom', path: ['http2'], input: value.http2, message: 'expected only without "tls" (over TLS, HTTP/2 is negotiated by ALPN)' });
});

const STATIC_DEFAULTS: Omit<ResolvedStatic, 'root'> = {
  alias: false,
  index: ['index.html'],
  tryFiles: [],
  maxAge: null,
  immutable: false,
  etag: true,
  lastModified: true,
  precompressed: ['br', 'gzip'],
  dotfiles: 'ignore',
  listing: false,
  symlinks: 'inside',
  hotFileMaxSize: 1024 * 1024,
  hotCacheSize: 64 * 1024 * 1024,
  hotCacheValidity: 1000,
};

/** zstd needs zlib.createZstdCompress (Node 22.15+ / 23.8+); Node 20 has none. */
const ZSTD_AVAILABLE = typeof (zlib as unknown as { createZstdCompress?: unknown }).createZstdCompress === 'function';

export const ENCODE_DEFAULTS: ResolvedEncode = {
  enabled: true,
  encodings: ZSTD_AVAILABLE ? ['zstd', 'br', 'gzip'] : ['br', 'gzip'],
  level: { gzip: 6, br: 4, zstd: 3 },
  minLength: 512,
  // Caddy's `encode` defaults and nginx's usual gzip_types: text, JSON, JavaScript, XML and the
  // formats built on them, WebAssembly, SVG, uncompressed fonts, icons. Images, audio, video,
  // archives and woff/woff2 fonts are compressed already: compressing again only costs CPU.
  types: [
    'text/*',
    'application/json',
    'application/*+json',
    'application/javascript',
    'application/x-javascript',
    'application/ecmascript',
    'application/xml',
    'application/*+xml',
    'application/wasm',
    'application/x-ndjson',
    'application/vnd.ms-fontobject',
    'application/x-font-ttf',
    'application/x-font-opentype',
    'font/ttf',
    'font/otf',
    'font/eot',
    'image/svg+xml',
    'image/x-icon',
    'image/vnd.microsoft.icon',
    'image/bmp',
  ],
};

/** One `encode` value as fields (true = defaults on, an object = on unless it says otherwise). */
function encodeSettings(value: ParsedEncode | undefined, path: string, problems: string[]): Partial<Omit<ResolvedEncode, 'level'>> & { level?: Partial<ResolvedEncode['level']> } | null | undefined {
  if (value === undefined) return undefined;
  if (value === false) return null;
  if (value === true) return { enabled: true };
  if (value.encodings?.includes('zstd') && !ZSTD_AVAILABLE) {
    const problem = `${path}.encodings: expected codings this runtime can produce ("br", "gzip"; zstd needs Node.js 22.15 or later, this is ${process.version}), got ${JSON.stringify(value.encodings)}`;
    // A server's value is seen once per route: report it once.
    if (!problems.includes(problem)) problems.push(problem);
  }
  return { ...stripUndefined(value), enabled: value.enabled ?? true };
}

/** Compression of a route: the route's `encode` over the server's, field by field (levels per coding). */
function resolveEncode(server: ParsedEncode | undefined, route: ParsedEncode | undefined, serverPath: string, routePath: string, problems: string[]): ResolvedEncode | null {
  const fromServer = encodeSettings(server, serverPath, problems);
  const fromRoute = encodeSettings(route, routePath, problems);
  if (fromRoute === null || (fromRoute === undefined && !fromServer)) return null;
  const merged: ResolvedEncode = {
    ...ENCODE_DEFAULTS,
    ...fromServer,
    ...fromRoute,
    level: { ...ENCODE_DEFAULTS.level, ...stripUndefined(fromServer?.level ?? {}), ...stripUndefined(fromRoute?.level ?? {}) },
  };
  if (!merged.enabled) return null;
  // The same coding twice would only repeat a preference: keep the first.
  return { ...merged, encodings: [...new Set(merged.encodings)] };
}

function resolveRewrites(rules: readonly ParsedRewrite[] | undefined): ResolvedRewrite[] {
  return (rules ?? []).map((rule) => ({ from: rule.from, caseInsensitive: rule.caseInsensitive ?? false, to: rule.to, flag: rule.flag ?? null }));
}

/**
 * A static root must be a folder that exists when the config is loaded: a typo (`./pubic`) would
 * otherwise answer 404 for every file with nothing in the log that says why. The problem names
 * the field that set the root (the route's, or the server's it inherits), once per field.
 */
function checkStaticRoot(root: string, given: string, fieldPath: string, problems: string[], checked: Set<string>): void {
  if (checked.has(fieldPath)) return;
  checked.add(fieldPath);
  const stats = statSync(root, { throwIfNoEntry: false });
  if (stats === undefined) problems.push(`${fieldPath}: folder not found: ${given} (${root})`);
  else if (!stats.isDirectory()) problems.push(`${fieldPath}: expected a folder, got a file: ${given} (${root})`);
}

function resolveStatic(server: ParsedStatic | undefined, route: ParsedStatic, baseDir: string, path: string, serverPath: string, problems: string[], checked: Set<string>): ResolvedStatic | undefined {
  const merged = { ...STATIC_DEFAULTS, ...stripUndefined(server ?? {}), ...stripUndefined(route) } as Omit<ResolvedStatic, 'root' | 'precompressed' | 'maxAge'> & {
    root?: string;
    precompressed: boolean | ResolvedStatic['precompressed'];
    maxAge: number | null | undefined;
  };
  if (!merged.root) {
    problems.push(`${path}.root: is required: expected a directory (on the route's static or the server's static), got nothing`);
    return undefined;
  }
  const root = resolvePath(baseDir, merged.root);
  checkStaticRoot(root, merged.root, route.root !== undefined ? `${path}.root` : `${serverPath}.static.root`, problems, checked);
  const precompressed: ResolvedStatic['precompressed'] = merged.precompressed === true ? ['br', 'gzip'] : merged.precompressed === false ? [] : merged.precompressed;
  return {
    ...merged,
    root,
    maxAge: merged.maxAge ?? null,
    precompressed,
  };
}

/** What resolving a route needs from the rest of the config. */
export interface RouteContext {
  /** The config file's folder, which relative paths are resolved against. */
  readonly baseDir: string;
  /** Where problems are collected (all are reported at once). */
  readonly problems: string[];
  /** What is suspicious but served (config/sections/tls.ts). */
  readonly warnings: string[];
  /** Upstream groups by name; a proxy route to a URL adds its one-server group. */
  readonly upstreams: Map<string, ResolvedUpstream>;
  /** Apps by name, with their group's name. */
  readonly apps: ReadonlyMap<string, { readonly upstream: string }>;
  readonly cacheZones: Readonly<Record<string, ResolvedCacheZone>>;
  readonly limitZones: ZoneNames;
  /** `http.maxBodySize`, what a route inherits when neither it nor its server says. */
  readonly httpMaxBodySize: number;
}

function resolveRoute(route: ParsedRoute, server: ParsedServer, id: string, context: RouteContext, checked: Set<string>): ResolvedRoute {
  const { baseDir, problems } = context;
  const match: ResolvedRoute['match'] =
    route.exact !== undefined
      ? { kind: 'exact', path: route.exact }
      : route.regex !== undefined
        ? { kind: 'regex', source: route.regex, caseInsensitive: route.caseInsensitive ?? false }
        : { kind: 'prefix', path: route.prefix ?? '/', skipRegex: route.skipRegex ?? false };
  const serverPath = id.slice(0, id.indexOf('.routes['));
  let handler: ResolvedHandler = { type: 'none' };
  if (route.static) {
    const resolved = resolveStatic(server.static, route.static, baseDir, `${id}.static`, serverPath, problems, checked);
    if (resolved) handler = { type: 'static', static: resolved };
  } else if (route.redirect) {
    handler = { type: 'redirect', to: route.redirect.to, status: route.redirect.status ?? 302 };
  } else if (route.respond) {
    const body = route.respond.body ?? null;
    const headers: [string, string][] = Object.entries(route.respond.headers ?? {});
    if (body !== null && !headers.some(([name]) => name.toLowerCase() === 'content-type')) headers.unshift(['Content-Type', route.respond.contentType ?? 'text/plain; charset=utf-8']);
    handler = { type: 'respond', status: route.respond.status ?? 200, body, headers };
  } else if (route.proxy) {
    handler = resolveProxy(route.proxy, id, context.upstreams, problems) ?? handler;
  } else if (route.app !== undefined) {
    handler = resolveAppRoute(route.app, id, context.apps, problems) ?? handler;
  } else if (server.static?.root !== undefined) {
    // As nginx's `root` at server level: static files are the default content of every route.
    const resolved = resolveStatic(server.static, {}, baseDir, `${id}.static`, serverPath, problems, checked);
    if (resolved) handler = { type: 'static', static: resolved };
  }
  return {
    id,
    match,
    methods: route.methods ?? null,
    rewrite: resolveRewrites(route.rewrite),
    headers: mergeHeaders(server.headers, route.headers),
    accessLog: route.accessLog ?? server.accessLog ?? true,
    encode: resolveEncode(server.encode, route.encode, `${serverPath}.encode`, `${id}.encode`, problems),
    maxBodySize: route.maxBodySize ?? server.maxBodySize ?? context.httpMaxBodySize,
    handler,
    cache: resolveRouteCache(route.cache ?? server.cache, route.cache === undefined, handler, id, context.cacheZones, problems),
    access: resolveAccess(server, route, serverPath, id, baseDir, context.limitZones, problems, checked),
  };
}

export function resolveServer(server: ParsedServer, index: number, context: RouteContext): ResolvedServer {
  const id = `servers[${index}]`;
  const checked = new Set<string>();
  const listenTexts = server.listen === undefined ? [':8080'] : Array.isArray(server.listen) ? server.listen : [server.listen];
  const routes = server.routes
    ? server.routes.map((route, i) => resolveRoute(route, server, `${id}.routes[${i}]`, context, checked))
    : [resolveRoute({}, server, `${id}.routes[0]`, context, checked)];
  // A route with `methods` takes those methods from its sibling with the same matcher: that
  // sibling must exist, or the other methods would have no route.
  const matcherKey = (route: ResolvedRoute) => JSON.stringify(route.match);
  for (const route of routes) {
    if (route.methods === null) continue;
    if (!routes.some((other) => other.methods === null && matcherKey(other) === matcherKey(route))) {
      context.problems.push(`${route.id}.methods: expected a route with the same ${route.match.kind} and no "methods" (it takes the other methods), got none`);
    }
  }
  const names = (server.names ?? []).map((name) => name.toLowerCase());
  return {
    id,
    listen: listenTexts.map((text) => parseListen(text) as ListenAddress),
    tls: server.tls ? resolveTls(server.tls, names, context.baseDir, `${id}.tls`, context.problems, context.warnings) : null,
    h2c: server.http2 === 'h2c',
    names,
    default: server.default ?? false,
    canonical: {
      https: server.canonical?.https ?? false,
      www: server.canonical?.www ?? null,
      trailingSlash: server.canonical?.trailingSlash ?? null,
      status: server.canonical?.status ?? 301,
    },
    rewrite: resolveRewrites(server.rewrite),
    accessLog: server.accessLog ?? true,
    routes,
  };
}

/**
 * Cross-field checks the schema cannot express: one default server per address, unique names per
 * address, and TLS on all servers of an address or none (one socket speaks one protocol; nginx's
 * `listen 443 ssl` is per address too, and a server without a certificate there could not answer).
 */
export function checkServers(servers: readonly ResolvedServer[], problems: string[]): void {
  const defaults = new Map<string, string>();
  const names = new Map<string, string>();
  const tlsByAddress = new Map<string, ResolvedServer>();
  for (const server of servers) {
    for (const address of server.listen) {
      const key = listenKey(address);
      const first = tlsByAddress.get(key);
      if (!first) tlsByAddress.set(key, server);
      else if ((first.tls === null) !== (server.tls === null)) {
        const [withTls, without] = server.tls ? [server, first] : [first, server];
        problems.push(`${server.id}.${server.tls ? 'tls' : 'listen'}: expected every server on "${key}" to have "tls" or none, but ${withTls.id} has it and ${without.id} does not`);
      }
      if (server.default) {
        const other = defaults.get(key);
        if (other) problems.push(`${server.id}.default: expected one default server for "${key}", but ${other} is the default already`);
        else defaults.set(key, server.id);
      }
      for (const name of server.names) {
        const other = names.get(`${key} ${name}`);
        if (other) problems.push(`${server.id}.names: expected each name once per address, but "${name}" on "${key}" is also in ${other}.names`);
        else names.set(`${key} ${name}`, server.id);
      }
    }
  }
}

/**
 * Managed certificates against the `acme` section: on-demand issuance needs its ask hook (without
 * one, anyone who points a name at the server makes it order certificates: Caddy refuses it too),
 * and a CA validates names only on ports 80 (HTTP-01) and 443 (TLS-ALPN-01, RFC 8737 §3).
 */
export function checkManagedTls(servers: readonly ResolvedServer[], acme: ResolvedAcme, problems: string[], warnings: string[]): void {
  const cleartextOn80 = servers.some((server) => server.tls === null && server.listen.some((address) => address.kind === 'tcp' && address.port === 80));
  for (const server of servers) {
    if (server.tls?.managed !== 'acme') continue;
    if (server.tls.onDemand && acme.onDemand === null) problems.push(`${server.id}.tls.onDemand: expected "acme.onDemand.ask" to be set (the URL that allows each name), got none: without it anyone could make this server order certificates`);
    const on443 = server.listen.some((address) => address.kind === 'tcp' && address.port === 443);
    const http01 = acme.challenges.includes('http-01') && cleartextOn80;
    const alpn = acme.challenges.includes('tls-alpn-01') && on443;
    if (!http01 && !alpn) warnings.push(`${server.id}.tls: "auto" with no listener a CA validates on (a cleartext one on port 80 for HTTP-01, this server on port 443 for TLS-ALPN-01): a public CA will not validate its names`);
  }
}

export type ParsedServer = z.output<typeof server>;
export type ParsedRoute = z.output<typeof route>;
type ParsedStatic = z.output<typeof staticOptions>;
type ParsedRewrite = z.output<typeof rewriteRule>;
type ParsedEncode = z.output<typeof encodeOptions>;
export type StaticFields = { [K in keyof typeof staticFields]: z.output<(typeof staticFields)[K]> };
