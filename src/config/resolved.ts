/**
 * The resolved config's types, and only types: what everything outside config/ reads. The edge
 * and the supervisor import this file, never the resolver (config/resolve.ts) or the schema's
 * runtime, so a type change is one place and importing the shape costs nothing at run time.
 * Values are plain JSON (`portico check` prints them), deep-frozen by the resolver.
 */
import type { IpRule } from '../core/ip-list.js';
import type { StaticFields } from './sections/server.js';
import type { BalanceAlgorithm } from './balance.js';
import type { ListenAddress } from './sections/values.js';

export type { ListenAddress };

export interface ResolvedRewrite {
  readonly from: string;
  readonly caseInsensitive: boolean;
  readonly to: string;
  readonly flag: 'last' | 'break' | 'redirect' | 'permanent' | null;
}

export interface ResolvedHeaderOps {
  readonly remove: readonly string[];
  readonly set: readonly (readonly [string, string])[];
  readonly add: readonly (readonly [string, string])[];
}

export interface ResolvedStatic extends Omit<StaticFields, 'maxAge' | 'precompressed'> {
  readonly maxAge: number | null;
  readonly precompressed: readonly ('br' | 'gzip' | 'zstd')[];
}

/** Response compression of a route (edge/middleware/encode.ts); null on a route when it is off. */
export interface ResolvedEncode {
  readonly enabled: boolean;
  /** Server preference, best first. */
  readonly encodings: readonly ('zstd' | 'br' | 'gzip')[];
  readonly level: { readonly gzip: number; readonly br: number; readonly zstd: number };
  readonly minLength: number;
  readonly types: readonly string[];
}

export type ResolvedHandler =
  | { readonly type: 'static'; readonly static: ResolvedStatic }
  | { readonly type: 'redirect'; readonly to: string; readonly status: 301 | 302 | 303 | 307 | 308 }
  | { readonly type: 'respond'; readonly status: number; readonly body: string | null; readonly headers: readonly (readonly [string, string])[] }
  | {
      readonly type: 'proxy';
      /** The upstream group (a key of ResolvedConfig.upstreams; URL targets get a group of their own). */
      readonly upstream: string;
      /** The URI part of a URL target (nginx `proxy_pass http://a/b/`): replaces the route's prefix. */
      readonly path: string | null;
      readonly host: string;
      readonly xForwarded: boolean;
      readonly forwarded: boolean;
      readonly via: boolean;
      readonly requestHeaders: ResolvedHeaderOps;
      readonly hideHeaders: readonly string[];
    }
  | { readonly type: 'none' };

export interface ResolvedUpstreamServer {
  /** "http://host:port", "https://host:port", "unix:/path", "uwsgi://host:port" or "uwsgi+unix:/path". */
  readonly url: string;
  readonly weight: number;
  readonly backup: boolean;
  readonly maxConns: number;
}

export interface ResolvedUpstream {
  readonly name: string;
  /**
   * The app (a key of ResolvedConfig.apps) whose workers are this group's servers, or null. Such a
   * group starts empty: its members come and go with the app's workers (see supervisor/apps.ts).
   */
  readonly app: string | null;
  readonly servers: readonly ResolvedUpstreamServer[];
  /**
   * How the group's servers are spoken to: HTTP/1.1 (undici pools) or the uwsgi binary protocol
   * (one request per connection, proxy/uwsgi.ts). One per group: a retry may move a request to
   * any server of it.
   */
  readonly protocol: 'http' | 'uwsgi';
  readonly balance: BalanceAlgorithm;
  readonly hashKey: string;
  readonly keepAlive: { readonly connections: number | null; readonly idleTimeout: number };
  readonly connectTimeout: number;
  readonly headerTimeout: number;
  readonly idleTimeout: number;
  readonly timeout: number;
  readonly maxFails: number;
  readonly failTimeout: number;
  readonly slowStart: number;
  readonly healthCheck: {
    readonly path: string;
    readonly interval: number;
    readonly timeout: number;
    readonly statuses: readonly number[];
    readonly rise: number;
    readonly fall: number;
    readonly host: string | null;
  } | null;
  readonly retry: {
    readonly tries: number;
    readonly timeout: number;
    readonly onError: boolean;
    readonly onTimeout: boolean;
    readonly statuses: readonly number[];
    /**
     * An idempotent request may go on to another server after it reached one that failed (nginx's
     * proxy_next_upstream); false: only when nothing reached it (a WSGI app's group: a request
     * that killed its worker is not sent on to kill another). @default true
     */
    readonly afterSend?: boolean;
  };
}

/** An app run on its own worker processes by `portico up` (the arbiter of `portico app`, in-process). */
export interface ResolvedApp {
  readonly name: string;
  /** Absolute path of the app module; a WSGI app's "module:callable". */
  readonly module: string;
  /** A Python WSGI app (`apps.NAME.wsgi`), or null for a JavaScript one. */
  readonly wsgi: { readonly spec: string; readonly python: string; readonly cwd: string; readonly threads: number } | null;
  readonly workers: number;
  readonly timeout: number;
  readonly maxRequests: number;
  readonly maxRequestsJitter: number;
  readonly gracefulTimeout: number;
  /** Added to portico's environment for the workers (over `envFile`'s variables). */
  readonly env: Readonly<Record<string, string>>;
  /** Absolute path of a .env file read when each worker starts; null: none. */
  readonly envFile: string | null;
  /** The upstream group routes with `app: name` proxy to: "app:NAME". */
  readonly upstream: string;
}

/**
 * An external app server run by `portico up` (`apps.NAME.command`): started in its own process
 * group, restarted when it dies, stopped with SIGTERM then SIGKILL; routes with `app: NAME` reach
 * it over HTTP on `socket` (src/app/external.ts, src/supervisor/external.ts). Kept apart from
 * `apps` (the JavaScript apps on portico's own workers), which it shares names and routes with.
 */
export interface ResolvedExternalApp {
  readonly name: string;
  /** The program and its arguments (no shell). */
  readonly command: readonly string[];
  /** Where it listens for HTTP. */
  readonly socket: ListenAddress;
  /** Added to portico's environment (over `envFile`'s variables). */
  readonly env: Readonly<Record<string, string>>;
  /** Absolute path of a .env file read each time the command starts; null: none. */
  readonly envFile: string | null;
  /** Absolute working directory. */
  readonly cwd: string;
  /** The first delay of a crash loop's restarts (doubled each time, at most 30 s; the first restart is at once). */
  readonly restartDelay: number;
  /** SIGTERM, then SIGKILL after this. */
  readonly gracefulTimeout: number;
  /** The upstream group routes with `app: name` proxy to: "app:NAME". */
  readonly upstream: string;
}

/** A route's response cache (schema.ts `routeCache` documents each field). */
export interface ResolvedRouteCache extends ResolvedCacheRules {
  readonly key: string;
}

/** A cache's rules whatever it fronts (a route's upstream, or the forward proxy's destinations). */
export interface ResolvedCacheRules {
  readonly zone: string;
  readonly bypass: readonly string[];
  readonly noStore: readonly string[];
  readonly minUses: number;
  readonly maxObjectSize: number;
  readonly useStale: readonly ('error' | 'timeout' | 'http_500' | 'http_502' | 'http_503' | 'http_504' | 'updating')[];
  readonly lock: boolean;
  readonly lockTimeout: number;
  readonly setCookie: 'no-store' | 'strip' | 'store';
  /** Seconds by status ("200", "any") for responses without a lifetime of their own (nginx `proxy_cache_valid`). */
  readonly valid: Readonly<Record<string, number>>;
  readonly heuristicPercent: number;
  /** Seconds. */
  readonly heuristicMax: number;
  /** RFC 9213 targeted fields obeyed over Cache-Control, lower case, most specific first. */
  readonly targeted: readonly string[];
  /** Targeted fields removed before the client (lower case). */
  readonly stripTargeted: readonly string[];
  /** Addresses/CIDRs allowed to PURGE, or null when PURGE is not handled by the cache. */
  readonly purge: readonly string[] | null;
}

/** A cache zone's storage: memory per process, and an optional disk directory shared by processes. */
export interface ResolvedCacheZone {
  readonly name: string;
  readonly memorySize: number;
  readonly memoryEntryMax: number;
  /** Absolute, or null for memory only. */
  readonly dir: string | null;
  readonly diskSize: number;
}

/** A rate zone (nginx `limit_req_zone`): the key template and the rate in milli-requests per second. */
export interface ResolvedRateZone {
  readonly key: string;
  /** nginx's integer: "10r/s" → 10000, "300r/m" → 5000, "1r/m" → 16. */
  readonly rate: number;
}

/** A route's rate limit (nginx `limit_req`), in whole requests as written. */
export interface ResolvedRateLimit {
  readonly zone: string;
  readonly burst: number;
  /** Requests of the burst passed without delay; `nodelay` is the whole burst. */
  readonly delay: number;
  readonly nodelay: boolean;
  readonly status: number;
}

export interface ResolvedConnLimit {
  readonly zone: string;
  readonly max: number;
  readonly status: number;
}

/** The access phase of a route: server settings merged in (a route's own replace the server's). */
export interface ResolvedAccess {
  /** IP rules in order, first match wins; empty = everyone. */
  readonly rules: readonly IpRule[];
  /** Basic auth with an absolute htpasswd path, or null. */
  readonly basicAuth: { readonly realm: string; readonly htpasswd: string } | null;
  readonly rateLimit: readonly ResolvedRateLimit[];
  readonly connLimit: readonly ResolvedConnLimit[];
}

export interface ResolvedRoute {
  /** Where this route came from, for logs and errors: "servers[0].routes[2]". */
  readonly id: string;
  readonly match:
    | { readonly kind: 'exact'; readonly path: string }
    | { readonly kind: 'prefix'; readonly path: string; readonly skipRegex: boolean }
    | { readonly kind: 'regex'; readonly source: string; readonly caseInsensitive: boolean };
  /** Request methods this route takes instead of its sibling with the same matcher; null: any. */
  readonly methods: readonly string[] | null;
  readonly rewrite: readonly ResolvedRewrite[];
  readonly headers: ResolvedHeaderOps;
  readonly accessLog: boolean;
  /** Response compression, or null when off for this route. */
  readonly encode: ResolvedEncode | null;
  /** Largest request body in bytes (route, else server, else `http.maxBodySize`); 0 = no limit. */
  readonly maxBodySize: number;
  readonly handler: ResolvedHandler;
  /** The response cache of a proxy/app route, or null. */
  readonly cache: ResolvedRouteCache | null;
  readonly access: ResolvedAccess;
}

/** A server's TLS (config/sections/tls.ts): checked PEM files, or certificates Portico manages itself. */
export interface ResolvedTls {
  /** Absolute paths; several pairs (RSA and ECDSA) are offered together. Empty when `managed`. */
  readonly certs: readonly { readonly cert: string; readonly key: string }[];
  /** `"acme"`: ordered from the `acme` CA for each name (`tls: "auto"`); `"internal"`: issued by the local CA; null: the files of `certs`. */
  readonly managed: 'acme' | 'internal' | null;
  /** On-demand TLS: a name this server answers gets its certificate at its first handshake (after `acme.onDemand.ask` allows it). */
  readonly onDemand: boolean;
  /** Refuse a handshake whose SNI names no server of the address (read from the address's default server). */
  readonly strictSni: boolean;
  /** The `Strict-Transport-Security` value, or null. */
  readonly hsts: string | null;
}

/** The `admin` section (config/sections/admin.ts): the admin API's address and token. */
export interface ResolvedAdmin {
  readonly listen: ListenAddress;
  /** The bearer token every request must carry, or null (loopback or a unix socket only). */
  readonly token: string | null;
}

/** The `state` section (config/sections/state.ts): the Redis every node shares. */
export interface ResolvedState {
  readonly redis: { readonly url: string; readonly prefix: string; readonly timeout: number };
  readonly onRedisDown: 'local' | 'open' | 'closed';
  /** ms. */
  readonly leaseTtl: number;
  /** Bytes; 0: the cache is not shared. */
  readonly cacheEntryMax: number;
}

/** The `acme` section (config/sections/acme.ts), with defaults. */
export interface ResolvedAcme {
  readonly email: string | null;
  /** The directory URL. */
  readonly directory: string;
  /** An extra trusted root (PEM file) for the directory's HTTPS, or null. */
  readonly ca: string | null;
  readonly eab: { readonly kid: string; readonly hmacKey: string } | null;
  readonly challenges: readonly ('http-01' | 'tls-alpn-01')[];
  /** Absolute path of the data folder. */
  readonly dataDir: string;
  /** First retry delay after a failed order (ms); doubles up to an hour. */
  readonly retryDelay: number;
  readonly onDemand: { readonly ask: string; readonly burst: number; readonly interval: number } | null;
}

export interface ResolvedServer {
  readonly id: string;
  readonly listen: readonly ListenAddress[];
  /** TLS on every listen address of this server, or null (plain HTTP). */
  readonly tls: ResolvedTls | null;
  /** Its cleartext addresses also take HTTP/2 with prior knowledge (`http2: "h2c"`). */
  readonly h2c: boolean;
  readonly names: readonly string[];
  readonly default: boolean;
  readonly canonical: {
    readonly https: boolean;
    readonly www: 'add' | 'remove' | null;
    readonly trailingSlash: 'add' | 'remove' | null;
    readonly status: 301 | 302 | 303 | 307 | 308;
  };
  readonly rewrite: readonly ResolvedRewrite[];
  /** Log requests answered before a route is chosen (canonical redirects, no route). */
  readonly accessLog: boolean;
  readonly routes: readonly ResolvedRoute[];
}

/** The forward proxy (edge/handlers/forward-proxy/): listeners, ACLs, authentication, timeouts. */
export interface ResolvedForward {
  readonly listen: readonly ListenAddress[];
  /** Clients that may use the proxy: addresses and CIDR blocks. */
  readonly allow: readonly string[];
  readonly allowDest: readonly string[];
  readonly denyDest: readonly string[];
  readonly onlyAllowDest: boolean;
  /** Inclusive [low, high] port ranges. */
  readonly connectPorts: readonly (readonly [number, number])[];
  readonly httpPorts: readonly (readonly [number, number])[];
  /** `htpasswd` is an absolute path. */
  readonly auth: { readonly htpasswd: string; readonly realm: string } | null;
  readonly connectTimeout: number;
  readonly headerTimeout: number;
  readonly idleTimeout: number;
  readonly maxTunnels: number;
  readonly dnsCacheTtl: number;
  readonly keepAliveTimeout: number;
  readonly accessLog: boolean;
  /** The cache of `http://` responses, or null (off). Its key is the absolute URI, port explicit (not configurable). */
  readonly cache: ResolvedCacheRules | null;
}

export interface ResolvedConfig {
  /** The file this came from, or null for an embedded/programmatic config. */
  readonly source: string | null;
  readonly log: {
    readonly level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
    readonly error: string;
    /** Error log lines: `auto` (text on a terminal), `json` or `text`. */
    readonly format: 'auto' | 'json' | 'text';
    /** `format`: "combined", "json", or a line of nginx log_format variables. */
    readonly access: { readonly format: string; readonly path: string } | null;
  };
  readonly http: {
    readonly serverHeader: string | null;
    readonly unknownHost: 'default' | 404 | 421;
    readonly keepAliveTimeout: number;
    readonly headersTimeout: number;
    readonly requestTimeout: number;
    readonly bodyTimeout: number;
    readonly maxUriLength: number;
    readonly maxHeaderSize: number;
    readonly maxHeaders: number;
    readonly maxBodySize: number;
    /** nginx `send_timeout` (ms): a response the client takes nothing of for this long is cut; 0 = none. */
    readonly sendTimeout: number;
    /** Request header names with `_` pass (nginx `underscores_in_headers`). */
    readonly underscoresInHeaders: boolean;
    /** Invalid request header names and framing lookalikes are dropped (nginx `ignore_invalid_headers`). */
    readonly ignoreInvalidHeaders: boolean;
    readonly maxRequestsPerConnection: number;
    readonly trustedProxies: readonly string[];
    /** Open client connections per node; 0 = no cap. */
    readonly maxConnections: number;
  };
  readonly limits: {
    readonly rateZones: Readonly<Record<string, ResolvedRateZone>>;
    readonly connZones: Readonly<Record<string, { readonly key: string }>>;
  };
  readonly upstreams: Readonly<Record<string, ResolvedUpstream>>;
  readonly apps: Readonly<Record<string, ResolvedApp>>;
  readonly externalApps: Readonly<Record<string, ResolvedExternalApp>>;
  /** Cache zones by name ("default" always). */
  readonly cache: { readonly zones: Readonly<Record<string, ResolvedCacheZone>> };
  /** Edge worker processes as the config says (`"auto"`: one per core), or null when it does not say (then `--workers`, `PORTICO_WORKERS`, or one per core). */
  readonly workers: number | 'auto' | null;
  /** Automatic HTTPS: the ACME account and CA, the data folder (also the local CA's), on-demand TLS. */
  readonly acme: ResolvedAcme;
  /** The admin API, metrics and dashboard, or null when off. */
  readonly admin: ResolvedAdmin | null;
  /** State shared by several nodes (Redis), or null: each node keeps its own. */
  readonly state: ResolvedState | null;
  /** Grace for requests in flight on SIGTERM/SIGINT (ms). */
  readonly gracefulTimeout: number;
  /** Absolute path of the pid file, or null (an embedded config, without `pidFile`). */
  readonly pidFile: string | null;
  readonly servers: readonly ResolvedServer[];
  readonly forward: ResolvedForward | null;
  /** What is suspicious but served (an expired certificate…), each line with its field path. */
  readonly warnings: readonly string[];
}
