/**
 * Parsed config → ResolvedConfig: defaults filled, server settings merged into each route once
 * (nginx merges server → location at load, never per request), relative paths made absolute,
 * deep-frozen. The result is plain JSON (`portico check` prints it) and everything else is built
 * from it; regexes stay source strings here and are compiled per generation by the edge.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import zlib from 'node:zlib';
import { isAbsolute, join, resolve as resolvePath } from 'node:path';
import { Htpasswd } from '../core/htpasswd.js';
import { ConfigError } from './errors.js';
import type { ResolvedAccess, ResolvedApp, ResolvedCacheRules, ResolvedCacheZone, ResolvedConfig, ResolvedEncode, ResolvedExternalApp, ResolvedForward, ResolvedHandler, ResolvedHeaderOps, ResolvedRewrite, ResolvedRoute, ResolvedRouteCache, ResolvedServer, ResolvedStatic, ResolvedUpstream } from './resolved.js';
import { parseListen, type ListenAddress, type ParsedApp, type ParsedCacheSection, type ParsedConfig, type ParsedEncode, type ParsedForward, type ParsedForwardCache, type ParsedHeaderOps, type ParsedProxy, type ParsedRewrite, type ParsedRoute, type ParsedRouteCache, type ParsedServer, type ParsedStatic, type ParsedUpstream } from './schema.js';

const DEFAULT_CACHE_KEY = '$scheme://$host$request_uri';

function resolveZone(name: string, parsed: Omit<ParsedCacheSection, 'zones'> | undefined, baseDir: string): ResolvedCacheZone {
  return {
    name,
    memorySize: parsed?.memorySize ?? 64 * 1024 * 1024,
    memoryEntryMax: parsed?.memoryEntryMax ?? 1024 * 1024,
    dir: parsed?.dir === undefined ? null : resolvePath(baseDir, parsed.dir),
    diskSize: parsed?.diskSize ?? 1024 * 1024 * 1024,
  };
}

function resolveCacheZones(parsed: ParsedCacheSection | undefined, baseDir: string): Record<string, ResolvedCacheZone> {
  const { zones, ...defaults } = parsed ?? {};
  const out: Record<string, ResolvedCacheZone> = { default: resolveZone('default', defaults, baseDir) };
  for (const [name, zone] of Object.entries(zones ?? {})) out[name] = resolveZone(name, zone, baseDir);
  return out;
}

/** A route's `cache` (or its server's, inherited), checked against the zones and the route's handler. */
function resolveRouteCache(parsed: ParsedRouteCache | undefined, inherited: boolean, handler: ResolvedHandler, id: string, zones: Readonly<Record<string, ResolvedCacheZone>>, problems: string[]): ResolvedRouteCache | null {
  if (parsed === undefined || parsed === false) return null;
  const options = parsed === true ? {} : parsed;
  if (options.enabled === false) return null;
  if (handler.type !== 'proxy') {
    // A server's cache applies to its proxy and app routes only; on a route it must fit.
    if (!inherited) problems.push(`${id}.cache: expected only on a "proxy" or "app" route, got it on a ${handler.type === 'none' ? 'route without handler' : `"${handler.type}" route`}`);
    return null;
  }
  const { zone, ...rules } = resolveCacheRules(options, `${id}.cache`, zones, problems);
  // The zone first, then the key: the resolved JSON `portico check` prints reads as before.
  return { zone, key: options.key ?? DEFAULT_CACHE_KEY, ...rules };
}

/** The fields a route's `cache` and `forward.cache` share, defaults filled, the zone checked. */
function resolveCacheRules(options: Exclude<ParsedForwardCache, boolean>, at: string, zones: Readonly<Record<string, ResolvedCacheZone>>, problems: string[]): ResolvedCacheRules {
  const zone = options.zone ?? 'default';
  if (!(zone in zones)) problems.push(`${at}.zone: expected a cache zone (${Object.keys(zones).map((n) => `"${n}"`).join(', ')}), got ${JSON.stringify(zone)}`);
  return {
    zone,
    bypass: options.bypass ?? [],
    noStore: options.noStore ?? [],
    minUses: options.minUses ?? 1,
    maxObjectSize: options.maxObjectSize ?? 16 * 1024 * 1024,
    useStale: options.useStale ?? [],
    lock: options.lock ?? true,
    lockTimeout: options.lockTimeout ?? 5_000,
    setCookie: options.setCookie ?? 'no-store',
    heuristicPercent: options.heuristicPercent ?? 10,
    heuristicMax: Math.floor((options.heuristicMax ?? 86_400_000) / 1000),
    purge: options.purge === false ? null : (options.purge?.allow ?? ['127.0.0.1', '::1']),
  };
}

/**
 * The head deadline lies within the whole-request deadline (node:http refuses to start otherwise).
 * Unset, it is 60 s (nginx `client_header_timeout`), or the request deadline when that is shorter.
 */
function resolveDeadlines(http: ParsedConfig['http'], problems: string[]): { headersTimeout: number; requestTimeout: number } {
  const requestTimeout = http?.requestTimeout ?? 300_000;
  const given = http?.headersTimeout;
  const headersTimeout = given ?? (requestTimeout > 0 ? Math.min(60_000, requestTimeout) : 60_000);
  if (given !== undefined && requestTimeout > 0 && given > requestTimeout) {
    problems.push(`http.headersTimeout: expected at most http.requestTimeout (${requestTimeout} ms), got ${given} ms`);
  }
  return { headersTimeout, requestTimeout };
}

/** nginx `client_max_body_size` default. */
const DEFAULT_MAX_BODY_SIZE = 1024 * 1024;

/** The default pid file of a config file: one per config path, in the temporary folder (`portico reload` finds it again from the same path). */
export function defaultPidFile(source: string): string {
  return join(tmpdir(), `portico-${createHash('sha256').update(source).digest('hex').slice(0, 12)}.pid`);
}

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
function encodeFields(value: ParsedEncode | undefined, path: string, problems: string[]): Partial<Omit<ResolvedEncode, 'level'>> & { level?: Partial<ResolvedEncode['level']> } | null | undefined {
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
  const fromServer = encodeFields(server, serverPath, problems);
  const fromRoute = encodeFields(route, routePath, problems);
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

const outputPath = (path: string, baseDir: string): string =>
  path === 'stdout' || path === 'stderr' || isAbsolute(path) ? path : resolvePath(baseDir, path);

function resolveRewrites(rules: readonly ParsedRewrite[] | undefined): ResolvedRewrite[] {
  return (rules ?? []).map((rule) => ({ from: rule.from, caseInsensitive: rule.caseInsensitive ?? false, to: rule.to, flag: rule.flag ?? null }));
}

/**
 * Route header ops merged over the server's: a route's `set` of a name replaces the server's `set`
 * and `add` of it, and a route's `remove` of a name drops the server's `set`/`add` of it. (Ops run
 * remove → set → add, so without this a route could not remove a header its server sets, and a
 * route `set` still got the server's `add` appended as a second value.)
 */
function mergeHeaders(server: ParsedHeaderOps | undefined, route: ParsedHeaderOps | undefined): ResolvedHeaderOps {
  const routeRemoves = new Set((route?.remove ?? []).map((n) => n.toLowerCase()));
  const routeSets = new Set(Object.keys(route?.set ?? {}).map((n) => n.toLowerCase()));
  const overridden = (name: string): boolean => routeRemoves.has(name.toLowerCase()) || routeSets.has(name.toLowerCase());
  const set = new Map<string, [string, string]>();
  for (const [name, value] of Object.entries(server?.set ?? {})) if (!overridden(name)) set.set(name.toLowerCase(), [name, value]);
  for (const [name, value] of Object.entries(route?.set ?? {})) set.set(name.toLowerCase(), [name, value]);
  return {
    remove: [...new Set([...(server?.remove ?? []), ...(route?.remove ?? [])].map((n) => n.toLowerCase()))],
    set: [...set.values()],
    add: [...Object.entries(server?.add ?? {}).filter(([name]) => !overridden(name)), ...Object.entries(route?.add ?? {})],
  };
}

function resolveStatic(server: ParsedStatic | undefined, route: ParsedStatic, baseDir: string, path: string, problems: string[]): ResolvedStatic | undefined {
  const merged = { ...STATIC_DEFAULTS, ...stripUndefined(server ?? {}), ...stripUndefined(route) } as Omit<ResolvedStatic, 'root' | 'precompressed' | 'maxAge'> & {
    root?: string;
    precompressed: boolean | ResolvedStatic['precompressed'];
    maxAge: number | null | undefined;
  };
  if (!merged.root) {
    problems.push(`${path}.root: is required: expected a directory (on the route's static or the server's static), got nothing`);
    return undefined;
  }
  const precompressed: ResolvedStatic['precompressed'] = merged.precompressed === true ? ['br', 'gzip'] : merged.precompressed === false ? [] : merged.precompressed;
  return {
    ...merged,
    root: resolvePath(baseDir, merged.root),
    maxAge: merged.maxAge ?? null,
    precompressed,
  };
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function resolveUpstream(name: string, parsed: ParsedUpstream): ResolvedUpstream {
  const servers = parsed.servers.map((server) =>
    typeof server === 'string'
      ? { url: server.replace(/\/$/, ''), weight: 1, backup: false, maxConns: 0 }
      : { url: server.url.replace(/\/$/, ''), weight: server.weight ?? 1, backup: server.backup ?? false, maxConns: server.maxConns ?? 0 },
  );
  const on = parsed.retry?.on ?? ['error', 'timeout'];
  const check = parsed.healthCheck;
  return {
    name,
    app: null,
    servers,
    protocol: servers.length > 0 && servers.every((server) => isUwsgiUrl(server.url)) ? 'uwsgi' : 'http',
    balance: parsed.balance ?? 'round-robin',
    hashKey: parsed.hashKey ?? '$request_uri',
    keepAlive: { connections: parsed.keepAlive?.connections ?? null, idleTimeout: parsed.keepAlive?.idleTimeout ?? 60_000 },
    connectTimeout: parsed.connectTimeout ?? 5_000,
    headerTimeout: parsed.headerTimeout ?? 60_000,
    idleTimeout: parsed.idleTimeout ?? 60_000,
    timeout: parsed.timeout ?? 0,
    maxFails: parsed.maxFails ?? 1,
    failTimeout: parsed.failTimeout ?? 10_000,
    slowStart: parsed.slowStart ?? 0,
    healthCheck: check
      ? { path: check.path, interval: check.interval ?? 5_000, timeout: check.timeout ?? 2_000, statuses: check.statuses ?? [], rise: check.rise ?? 2, fall: check.fall ?? 3, host: check.host ?? null }
      : null,
    // nginx's default: every server once (proxy_next_upstream_tries 0 is bounded by the servers).
    retry: {
      tries: parsed.retry?.tries ?? servers.length,
      timeout: parsed.retry?.timeout ?? 0,
      onError: on.includes('error'),
      onTimeout: on.includes('timeout'),
      statuses: on.filter((item): item is number => typeof item === 'number'),
    },
  };
}

export const isUwsgiUrl = (url: string): boolean => url.startsWith('uwsgi://') || url.startsWith('uwsgi+unix:');

/**
 * Checks of a user's group the schema cannot make: one protocol for all its servers (a retry may
 * go to any of them, and they take different requests), and no HTTP health probe of a uwsgi server.
 */
function checkUpstream(group: ResolvedUpstream, problems: string[]): void {
  const uwsgi = group.servers.filter((server) => isUwsgiUrl(server.url)).length;
  if (uwsgi > 0 && uwsgi < group.servers.length) {
    problems.push(`upstreams.${group.name}.servers: expected servers of one protocol (all "uwsgi://"/"uwsgi+unix:" or all HTTP), got ${uwsgi} uwsgi and ${group.servers.length - uwsgi} HTTP`);
  }
  if (group.protocol === 'uwsgi' && group.healthCheck) {
    problems.push(`upstreams.${group.name}.healthCheck: expected no active health check on uwsgi servers (the probes speak HTTP; passive health applies), got an object`);
  }
}

/** A proxy action: `to` names a group, or is a URL that gets a one-server group named after the route. */
function resolveProxy(proxy: ParsedProxy, id: string, upstreams: Map<string, ResolvedUpstream>, problems: string[]): ResolvedHandler | undefined {
  let group = upstreams.get(proxy.to)?.name;
  let path: string | null = null;
  if (!group) {
    let origin: string | undefined;
    if (proxy.to.startsWith('unix:/') || proxy.to.startsWith('uwsgi+unix:/')) origin = proxy.to;
    else if (/^uwsgi:\/\//i.test(proxy.to)) {
      // No URI part: uwsgi sends the request's own REQUEST_URI/PATH_INFO (nginx `uwsgi_pass` has none either).
      try {
        const url = new URL(proxy.to);
        origin = url.port !== '' && (url.pathname === '' || url.pathname === '/') && !url.search && !url.hash && !url.username ? `uwsgi://${url.host}` : undefined;
      } catch {
        origin = undefined;
      }
    } else if (/^https?:\/\//i.test(proxy.to)) {
      const authorityEnd = proxy.to.indexOf('/', proxy.to.indexOf('//') + 2);
      origin = authorityEnd === -1 ? proxy.to : proxy.to.slice(0, authorityEnd);
      path = authorityEnd === -1 ? null : proxy.to.slice(authorityEnd);
      try {
        new URL(origin);
      } catch {
        origin = undefined;
      }
    }
    if (!origin) {
      const names = [...upstreams.keys()].filter((name) => !name.includes('['));
      problems.push(`${id}.proxy.to: expected an upstream name${names.length ? ` (${names.map((n) => `"${n}"`).join(', ')})` : ''} or a URL like "http://127.0.0.1:3000" or "uwsgi://127.0.0.1:3031" (no path), got ${JSON.stringify(proxy.to)}`);
      return undefined;
    }
    group = `${id}.proxy`;
    upstreams.set(group, resolveUpstream(group, { servers: [origin] }));
  }
  return {
    type: 'proxy',
    upstream: group,
    path,
    host: proxy.host ?? 'client',
    xForwarded: proxy.xForwarded ?? true,
    forwarded: proxy.forwarded ?? false,
    via: proxy.via ?? false,
    requestHeaders: mergeHeaders(undefined, proxy.requestHeaders),
    hideHeaders: (proxy.hideHeaders ?? ['server', 'x-powered-by']).map((name) => name.toLowerCase()),
  };
}

/**
 * An app and the upstream group its routes proxy to. The edge reaches the app's workers through
 * the proxy's own transport (undici pools over each worker's unix socket), so an `app` route is a
 * proxy route with settings fitted to local workers:
 * - `least-conn`: a worker busy with a slow request gets no new ones while others are idle
 *   (gunicorn's sync workers behind nginx have the same need);
 * - no passive marking down (maxFails 0): a worker leaves the group when the arbiter says so, not
 *   after a failure, and a crashed one is replaced at once anyway;
 * - retries on errors, not timeouts, at most 2 tries: a connect error (a worker that just died)
 *   costs nothing to retry, and an idempotent request cut by a crash is tried once more on another
 *   worker (nginx's `proxy_next_upstream error`); a slow request is never run twice, and a request
 *   that kills its worker can take down one more at most;
 * - the response-head timeout outlasts the workers' own request deadline, so a slow app answers
 *   with its own 503 rather than the edge's 504.
 */
function resolveApp(name: string, parsed: ParsedApp, baseDir: string, problems: string[]): { app: ResolvedApp; upstream: ResolvedUpstream } {
  // The schema guarantees `module` unless `command` is given, which resolveExternalApp takes.
  const module = resolvePath(baseDir, parsed.module as string);
  if (!existsSync(module)) problems.push(`apps.${name}.module: expected an app module file, got ${JSON.stringify(parsed.module)} (${module}: no such file)`);
  const timeout = parsed.timeout ?? 30_000;
  const upstreamName = `app:${name}`;
  const base = resolveUpstream(upstreamName, { servers: [] });
  return {
    app: {
      name,
      module,
      workers: parsed.workers ?? availableParallelism(),
      timeout,
      maxRequests: parsed.maxRequests ?? 0,
      maxRequestsJitter: parsed.maxRequestsJitter ?? 0,
      gracefulTimeout: parsed.gracefulTimeout ?? 30_000,
      upstream: upstreamName,
    },
    upstream: {
      ...base,
      app: name,
      balance: 'least-conn',
      headerTimeout: Math.max(60_000, timeout + 5_000),
      maxFails: 0,
      retry: { tries: 2, timeout: 0, onError: true, onTimeout: false, statuses: [] },
    },
  };
}

/**
 * An external app (`command`): the group is an app group (it starts empty and gets its one member
 * once the command's socket accepts, so requests wait for it, bounded, as for workers booting),
 * with the same settings as a JavaScript app's, reached over HTTP.
 */
function resolveExternalApp(name: string, parsed: ParsedApp, baseDir: string): { app: ResolvedExternalApp; upstream: ResolvedUpstream } {
  // Only the group of a JavaScript app is taken (its module check is given an existing path).
  const { upstream } = resolveApp(name, { ...parsed, module: baseDir }, baseDir, []);
  return {
    app: {
      name,
      command: parsed.command ?? [],
      socket: parseListen(parsed.socket as string) as ListenAddress,
      env: parsed.env ?? {},
      cwd: resolvePath(baseDir, parsed.cwd ?? '.'),
      restartDelay: parsed.restartDelay ?? 250,
      gracefulTimeout: parsed.gracefulTimeout ?? 10_000,
      upstream: upstream.name,
    },
    upstream,
  };
}

/** Route action `app`: a proxy handler on the app's group, the request URI passed as received. */
function resolveAppRoute(name: string, id: string, apps: ReadonlyMap<string, { readonly upstream: string }>, problems: string[]): ResolvedHandler | undefined {
  const app = apps.get(name);
  if (!app) {
    const names = [...apps.keys()];
    problems.push(`${id}.app: expected an app name (a key of "apps"${names.length ? `: ${names.map((n) => `"${n}"`).join(', ')}` : ', which has none'}), got ${JSON.stringify(name)}`);
    return undefined;
  }
  return {
    type: 'proxy',
    upstream: app.upstream,
    path: null,
    host: 'client',
    xForwarded: true,
    forwarded: false,
    via: false,
    requestHeaders: mergeHeaders(undefined, undefined),
    hideHeaders: ['server', 'x-powered-by'],
  };
}

type AccessSettings = Pick<ParsedRoute, 'access' | 'basicAuth' | 'rateLimit' | 'connLimit'>;

/** The zones routes may name, for checking references. */
interface ZoneNames {
  readonly rate: ReadonlySet<string>;
  readonly conn: ReadonlySet<string>;
}

/**
 * A route's access settings: each of `access`, `basicAuth`, `rateLimit`, `connLimit` is the
 * route's own when it has one (`false` turns it off), else the server's, as nginx inherits
 * `allow`/`deny`, `auth_basic`, `limit_req` and `limit_conn` from server to location (a
 * location's own list replaces the server's, it is not appended). Problems are reported at the
 * path where the setting is written.
 */
function resolveAccess(server: AccessSettings, route: AccessSettings, serverId: string, routeId: string, baseDir: string, zones: ZoneNames, problems: string[], checked: Set<string>): ResolvedAccess {
  const pick = <K extends keyof AccessSettings>(key: K): { value: AccessSettings[K]; at: string } =>
    route[key] !== undefined ? { value: route[key], at: `${routeId}.${key}` } : { value: server[key], at: `${serverId}.${key}` };
  // A server's setting is checked once, not once per route that inherits it.
  const report = (at: string, message: string): void => {
    if (checked.has(at + message)) return;
    checked.add(at + message);
    problems.push(`${at}${message}`);
  };

  const rules = pick('access');
  const auth = pick('basicAuth');
  let basicAuth: ResolvedAccess['basicAuth'] = null;
  if (auth.value) {
    const path = resolvePath(baseDir, auth.value.htpasswd);
    try {
      Htpasswd.load(path);
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? `${path}: no such file` : (error as Error).message;
      report(`${auth.at}.htpasswd`, `: expected a readable htpasswd file of bcrypt, $apr1$ or {SHA} entries, got ${JSON.stringify(auth.value.htpasswd)} (${reason})`);
    }
    basicAuth = { realm: auth.value.realm, htpasswd: path };
  }

  const refs = <T extends { zone: string }>(value: false | T | T[] | undefined, at: string, known: ReadonlySet<string>, kind: string): { ref: T; at: string }[] => {
    if (value === undefined || value === false) return [];
    const list = Array.isArray(value) ? value.map((ref, i) => ({ ref, at: `${at}[${i}]` })) : [{ ref: value, at }];
    const seen = new Set<string>();
    for (const { ref, at: where } of list) {
      if (!known.has(ref.zone)) {
        const names = [...known].map((n) => `"${n}"`).join(', ');
        report(`${where}.zone`, `: expected a zone of limits.${kind}${names ? ` (${names})` : ', which has none'}, got ${JSON.stringify(ref.zone)}`);
      } else if (seen.has(ref.zone)) {
        report(`${where}.zone`, `: expected each zone once per list (nginx: "is duplicate"), got ${JSON.stringify(ref.zone)} again`);
      }
      seen.add(ref.zone);
    }
    return list;
  };
  const rate = pick('rateLimit');
  const conn = pick('connLimit');
  return {
    rules: rules.value === false || rules.value === undefined ? [] : rules.value,
    basicAuth,
    rateLimit: refs(rate.value, rate.at, zones.rate, 'rateZones').map(({ ref }) => ({
      zone: ref.zone,
      burst: ref.burst ?? 0,
      delay: ref.nodelay ? (ref.burst ?? 0) : (ref.delay ?? 0),
      nodelay: ref.nodelay ?? false,
      status: ref.status ?? 429,
    })),
    connLimit: refs(conn.value, conn.at, zones.conn, 'connZones').map(({ ref }) => ({ zone: ref.zone, max: ref.max, status: ref.status ?? 503 })),
  };
}

/** "10r/s" → 10000 milli-requests per second; "300r/m" → 5000 (nginx: rate * 1000 / scale, in integers). */
export function parseRate(text: string): number {
  const match = /^(\d+)r\/(s|m)$/.exec(text);
  if (!match) return 0;
  return Math.trunc((Number(match[1]) * 1000) / (match[2] === 'm' ? 60 : 1));
}

function resolveRoute(route: ParsedRoute, server: ParsedServer, id: string, baseDir: string, problems: string[], upstreams: Map<string, ResolvedUpstream>, apps: ReadonlyMap<string, { readonly upstream: string }>, zones: Readonly<Record<string, ResolvedCacheZone>>, httpMaxBodySize: number, limitZones: ZoneNames, checked: Set<string>): ResolvedRoute {
  const match: ResolvedRoute['match'] =
    route.exact !== undefined
      ? { kind: 'exact', path: route.exact }
      : route.regex !== undefined
        ? { kind: 'regex', source: route.regex, caseInsensitive: route.caseInsensitive ?? false }
        : { kind: 'prefix', path: route.prefix ?? '/', skipRegex: route.skipRegex ?? false };
  let handler: ResolvedHandler = { type: 'none' };
  if (route.static) {
    const resolved = resolveStatic(server.static, route.static, baseDir, `${id}.static`, problems);
    if (resolved) handler = { type: 'static', static: resolved };
  } else if (route.redirect) {
    handler = { type: 'redirect', to: route.redirect.to, status: route.redirect.status ?? 302 };
  } else if (route.respond) {
    const body = route.respond.body ?? null;
    const headers: [string, string][] = Object.entries(route.respond.headers ?? {});
    if (body !== null && !headers.some(([name]) => name.toLowerCase() === 'content-type')) headers.unshift(['Content-Type', route.respond.contentType ?? 'text/plain; charset=utf-8']);
    handler = { type: 'respond', status: route.respond.status ?? 200, body, headers };
  } else if (route.proxy) {
    handler = resolveProxy(route.proxy, id, upstreams, problems) ?? handler;
  } else if (route.app !== undefined) {
    handler = resolveAppRoute(route.app, id, apps, problems) ?? handler;
  } else if (server.static?.root !== undefined) {
    // As nginx's `root` at server level: static files are the default content of every route.
    const resolved = resolveStatic(server.static, {}, baseDir, `${id}.static`, problems);
    if (resolved) handler = { type: 'static', static: resolved };
  }
  return {
    id,
    match,
    rewrite: resolveRewrites(route.rewrite),
    headers: mergeHeaders(server.headers, route.headers),
    accessLog: route.accessLog ?? server.accessLog ?? true,
    encode: resolveEncode(server.encode, route.encode, `${id.slice(0, id.indexOf('.routes['))}.encode`, `${id}.encode`, problems),
    maxBodySize: route.maxBodySize ?? server.maxBodySize ?? httpMaxBodySize,
    handler,
    cache: resolveRouteCache(route.cache ?? server.cache, route.cache === undefined, handler, id, zones, problems),
    access: resolveAccess(server, route, id.slice(0, id.indexOf('.routes[')), id, baseDir, limitZones, problems, checked),
  };
}

function resolveServer(server: ParsedServer, index: number, baseDir: string, problems: string[], upstreams: Map<string, ResolvedUpstream>, apps: ReadonlyMap<string, { readonly upstream: string }>, zones: Readonly<Record<string, ResolvedCacheZone>>, httpMaxBodySize: number, limitZones: ZoneNames): ResolvedServer {
  const id = `servers[${index}]`;
  const checked = new Set<string>();
  const listenTexts = server.listen === undefined ? [':8080'] : Array.isArray(server.listen) ? server.listen : [server.listen];
  const routes = server.routes
    ? server.routes.map((route, i) => resolveRoute(route, server, `${id}.routes[${i}]`, baseDir, problems, upstreams, apps, zones, httpMaxBodySize, limitZones, checked))
    : [resolveRoute({}, server, `${id}.routes[0]`, baseDir, problems, upstreams, apps, zones, httpMaxBodySize, limitZones, checked)];
  return {
    id,
    listen: listenTexts.map((text) => parseListen(text) as ListenAddress),
    names: (server.names ?? []).map((name) => name.toLowerCase()),
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

const listenKey = (address: ListenAddress): string => (address.kind === 'unix' ? `unix:${address.path}` : `${address.host}:${address.port}`);

/** Cross-field checks the schema cannot express: one default server per address, unique names per address. */
function checkServers(servers: readonly ResolvedServer[], problems: string[]): void {
  const defaults = new Map<string, string>();
  const names = new Map<string, string>();
  for (const server of servers) {
    for (const address of server.listen) {
      const key = listenKey(address);
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

/** Squid's Safe_ports, less the ones of other protocols (ftp 21, gopher 70, wais 210): `http://` is all this proxy speaks. */
const HTTP_PORTS: readonly (number | string)[] = [80, 443, 280, 488, 591, 777, '1025-65535'];

const portRanges = (ports: readonly (number | string)[]): [number, number][] =>
  ports.map((port) => {
    if (typeof port === 'number') return [port, port];
    const [low, high] = port.split('-').map(Number);
    return [low as number, high as number];
  });

function resolveForward(parsed: ParsedForward, baseDir: string, servers: readonly ResolvedServer[], zones: Readonly<Record<string, ResolvedCacheZone>>, problems: string[]): ResolvedForward {
  const listenTexts = parsed.listen === undefined ? ['127.0.0.1:3128'] : Array.isArray(parsed.listen) ? parsed.listen : [parsed.listen];
  const listen = listenTexts.map((text) => parseListen(text) as ListenAddress);
  // One socket cannot be both: a virtual server answers origin-form requests, the proxy refuses them.
  for (const address of listen) {
    const key = listenKey(address);
    const other = servers.find((server) => server.listen.some((own) => listenKey(own) === key && !(address.kind === 'tcp' && address.port === 0)));
    if (other) problems.push(`forward.listen: expected an address no server listens on, but "${key}" is also in ${other.id}.listen`);
  }
  let auth: ResolvedForward['auth'] = null;
  if (parsed.auth) {
    const htpasswd = resolvePath(baseDir, parsed.auth.htpasswd);
    if (!existsSync(htpasswd)) problems.push(`forward.auth.htpasswd: expected an htpasswd file, got ${JSON.stringify(parsed.auth.htpasswd)} (${htpasswd}: no such file)`);
    else {
      // Read here too, so `portico check` and a reload refuse a file with a line no user could log in with.
      try {
        Htpasswd.load(htpasswd);
      } catch (error) {
        problems.push(`forward.auth.htpasswd: expected an htpasswd file of user:hash lines, got ${(error as Error).message}`);
      }
    }
    auth = { htpasswd, realm: parsed.auth.realm ?? 'portico' };
  }
  return {
    listen,
    allow: parsed.allow ?? ['127.0.0.0/8', '::1'],
    allowDest: parsed.allowDest ?? [],
    denyDest: parsed.denyDest ?? [],
    onlyAllowDest: parsed.onlyAllowDest ?? false,
    connectPorts: portRanges(parsed.connectPorts ?? [443]),
    httpPorts: portRanges(parsed.httpPorts ?? HTTP_PORTS),
    auth,
    connectTimeout: parsed.connectTimeout ?? 10_000,
    headerTimeout: parsed.headerTimeout ?? 60_000,
    idleTimeout: parsed.idleTimeout ?? 300_000,
    maxTunnels: parsed.maxTunnels ?? 1024,
    dnsCacheTtl: parsed.dnsCacheTtl ?? 30_000,
    keepAliveTimeout: parsed.keepAliveTimeout ?? 30_000,
    accessLog: parsed.accessLog ?? true,
    cache: parsed.cache === undefined || parsed.cache === false || (parsed.cache !== true && parsed.cache.enabled === false) ? null : resolveCacheRules(parsed.cache === true ? {} : parsed.cache, 'forward.cache', zones, problems),
  };
}

export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}

/** Resolves a parsed config; `baseDir` anchors relative paths (the config file's folder). */
export function resolveConfig(parsed: ParsedConfig, baseDir: string, source: string | null): ResolvedConfig {
  const problems: string[] = [];
  const upstreams = new Map<string, ResolvedUpstream>();
  for (const [name, group] of Object.entries(parsed.upstreams ?? {})) {
    const resolved = resolveUpstream(name, group);
    checkUpstream(resolved, problems);
    upstreams.set(name, resolved);
  }
  const apps = new Map<string, ResolvedApp>();
  const externalApps = new Map<string, ResolvedExternalApp>();
  for (const [name, parsedApp] of Object.entries(parsed.apps ?? {})) {
    if (parsedApp.command !== undefined) {
      const external = resolveExternalApp(name, parsedApp, baseDir);
      externalApps.set(name, external.app);
      upstreams.set(external.upstream.name, external.upstream);
      continue;
    }
    const resolved = resolveApp(name, parsedApp, baseDir, problems);
    apps.set(name, resolved.app);
    // "app:NAME" cannot clash with a user's group: ":" is not allowed in upstream names.
    upstreams.set(resolved.upstream.name, resolved.upstream);
  }
  const routable = new Map<string, { readonly upstream: string }>([...apps, ...externalApps]);
  const maxBodySize = parsed.http?.maxBodySize ?? DEFAULT_MAX_BODY_SIZE;
  const zones = resolveCacheZones(parsed.cache, baseDir);
  const rateZones = Object.fromEntries(Object.entries(parsed.limits?.rateZones ?? {}).map(([name, zone]) => [name, { key: zone.key, rate: parseRate(zone.rate) }]));
  const connZones = Object.fromEntries(Object.entries(parsed.limits?.connZones ?? {}).map(([name, zone]) => [name, { key: zone.key }]));
  const limitZones: ZoneNames = { rate: new Set(Object.keys(rateZones)), conn: new Set(Object.keys(connZones)) };
  const servers = (parsed.servers ?? []).map((server, i) => resolveServer(server, i, baseDir, problems, upstreams, routable, zones, maxBodySize, limitZones));
  checkServers(servers, problems);
  const forward = parsed.forward ? resolveForward(parsed.forward, baseDir, servers, zones, problems) : null;
  const { headersTimeout, requestTimeout } = resolveDeadlines(parsed.http, problems);
  if (problems.length > 0) throw new ConfigError(problems, source ?? undefined);
  const access = parsed.log?.access;
  return deepFreeze({
    source,
    log: {
      level: parsed.log?.level ?? 'info',
      error: outputPath(parsed.log?.error ?? 'stderr', baseDir),
      access: access === false ? null : { format: access?.format ?? 'combined', path: outputPath(access?.path ?? 'stdout', baseDir) },
    },
    http: {
      serverHeader: parsed.http?.serverHeader === false ? null : (parsed.http?.serverHeader ?? 'Portico'),
      unknownHost: parsed.http?.unknownHost ?? 'default',
      keepAliveTimeout: parsed.http?.keepAliveTimeout ?? 75_000,
      headersTimeout,
      requestTimeout,
      bodyTimeout: parsed.http?.bodyTimeout ?? 60_000,
      maxUriLength: parsed.http?.maxUriLength ?? 8 * 1024,
      maxHeaderSize: parsed.http?.maxHeaderSize ?? 16 * 1024,
      maxHeaders: parsed.http?.maxHeaders ?? 100,
      maxBodySize,
      maxRequestsPerConnection: parsed.http?.maxRequestsPerConnection ?? 1000,
      trustedProxies: parsed.http?.trustedProxies ?? [],
      maxConnections: parsed.http?.maxConnections ?? 0,
    },
    limits: { rateZones, connZones },
    upstreams: Object.fromEntries(upstreams),
    apps: Object.fromEntries(apps),
    externalApps: Object.fromEntries(externalApps),
    cache: { zones },
    workers: parsed.workers ?? null,
    gracefulTimeout: parsed.gracefulTimeout ?? 30_000,
    pidFile: parsed.pidFile !== undefined ? resolvePath(baseDir, parsed.pidFile) : source !== null ? defaultPidFile(source) : null,
    servers,
    forward,
  });
}
