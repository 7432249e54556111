/**
 * The one schema of `portico.config.*`: it gives both the TypeScript types (`UserConfig`, what a
 * user writes) and the runtime check (strict: an unknown key is an error). The JSDoc on each field
 * is the reference documentation. Units are parsed here ("10mb" → bytes, "30s" → ms); defaults,
 * inheritance (server → route) and path resolution happen afterwards in resolve.ts.
 *
 * Later parts (proxy, app, limits, cache, TLS, forward proxy) add their own keys here, each as
 * one more strict object, so the whole config stays one strictly decoded document (as Caddy's).
 */
import { z } from 'zod';
import { parseIpBlock } from '../core/ip-list.js';
import { templateProblem } from '../core/template.js';
import { parseDuration, parseSize } from '../core/units.js';

const show = (value: unknown): string => {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'an object';
  return String(value);
};

/** A duration: milliseconds as a number, or a string like "250ms", "30s", "5m", "1h30m", "7d". */
export const duration = () =>
  z
    .custom<string | number>((value) => (typeof value === 'string' || typeof value === 'number') && parseDuration(value) !== undefined, {
      error: (issue) => `expected a duration like "1h", got ${show(issue.input)}`,
    })
    .transform((value) => parseDuration(value) as number);

/** Node timers hold at most 2^31-1 ms (~24.8 days); a longer socket timeout is cut short with a warning. */
const TIMER_MAX_MS = 2 ** 31 - 1;

/** A duration used as a Node timer: as `duration()`, but refused above ~24 days instead of truncated. */
const timerDuration = () =>
  z
    .custom<string | number>(
      (value) => {
        if (typeof value !== 'string' && typeof value !== 'number') return false;
        const ms = parseDuration(value);
        return ms !== undefined && ms <= TIMER_MAX_MS;
      },
      {
        error: (issue) => {
          const input = issue.input;
          const ms = typeof input === 'string' || typeof input === 'number' ? parseDuration(input) : undefined;
          return ms === undefined ? `expected a duration like "1h", got ${show(input)}` : `expected a duration of at most "24d" (a Node timer limit), got ${show(input)}`;
        },
      },
    )
    .transform((value) => parseDuration(value) as number);

/** A size: bytes as a number, or a string like "512", "64kb", "10mb", "1g" (binary units). */
export const size = () =>
  z
    .custom<string | number>((value) => (typeof value === 'string' || typeof value === 'number') && parseSize(value) !== undefined, {
      error: (issue) => `expected a size like "10mb", got ${show(issue.input)}`,
    })
    .transform((value) => parseSize(value) as number);

const regexSource = () =>
  z.string().superRefine((source, ctx) => {
    try {
      new RegExp(source);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: `expected a valid regular expression, got ${show(source)} (${(error as Error).message})` });
    }
  });

/** A string with variables ("$host", "$uri", "$1"…), checked for unknown variable names. */
const template = () =>
  z.string().superRefine((text, ctx) => {
    const problem = templateProblem(text);
    if (problem) ctx.addIssue({ code: 'custom', message: `expected a template with known variables, got ${show(text)}: ${problem}` });
  });

const redirectStatus = z.union([z.literal(301), z.literal(302), z.literal(303), z.literal(307), z.literal(308)], {
  error: (issue) => `expected a redirect status 301, 302, 303, 307 or 308, got ${show(issue.input)}`,
});

// A fixed response is final: 1xx are interim (RFC 9110 §15.2) and would break the framing.
const httpStatus = z.number().int().min(200).max(599);

/** One listen address: ":8080", "8080", "127.0.0.1:8080", "[::1]:8080", "localhost:8080" or "unix:/path/to.sock". */
export const listenAddress = z.string().superRefine((text, ctx) => {
  if (!parseListen(text)) ctx.addIssue({ code: 'custom', message: `expected a listen address like ":8080", "127.0.0.1:8080", "[::1]:8080" or "unix:/path", got ${show(text)}` });
});

export type ListenAddress = { readonly kind: 'tcp'; readonly host: string; readonly port: number } | { readonly kind: 'unix'; readonly path: string };

/** Parses a listen address; an empty host means all interfaces (as nginx `listen 8080`). */
export function parseListen(text: string): ListenAddress | undefined {
  if (text.startsWith('unix:')) return text.length > 5 ? { kind: 'unix', path: text.slice(5) } : undefined;
  // Three separate forms. (One regex with an optional host and an optional ":" let the host take
  // digits of a bare port: "8080" matched as host "808", port 0, and was refused; and any host
  // text such as "a b" was accepted.)
  const match = /^(\d{1,5})$/.exec(text) ?? /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(text) ?? /^([A-Za-z0-9_.-]*):(\d{1,5})$/.exec(text);
  if (!match) return undefined;
  const [host, portText] = match.length === 2 ? ['', match[1] as string] : [match[1] as string, match[2] as string];
  const port = Number(portText);
  if (port > 65535) return undefined;
  return { kind: 'tcp', host, port };
}

/** Response header operations, applied in this order: remove, set (replace), add (append). */
const headerOps = z.strictObject({
  /** Headers set on every response of this server/route, replacing any the handler set. */
  set: z.record(z.string(), z.string()).optional(),
  /** Headers appended to every response (a second value when the handler already set one). */
  add: z.record(z.string(), z.string()).optional(),
  /** Header names removed from every response (e.g. "X-Powered-By"). */
  remove: z.array(z.string()).optional(),
});

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
const staticFields = {
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
   * against 762 through a read stream (wrk, one core; see README Performance). @default "1mb"
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
  /** Media types compressed ("text/*" and "application/*+json" patterns allowed). @default text/*, JSON, JavaScript, XML, WebAssembly, SVG, uncompressed fonts, icons (see README) */
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

/**
 * Route action `proxy` (nginx `proxy_pass`): forward to an upstream group by name, or to one
 * server by URL. With a path in the URL ("http://127.0.0.1:3000/v2/"), the route's prefix is
 * replaced by it; without one, the request URI is passed as received (as nginx).
 */
const proxyAction = z.strictObject({
  /** An upstream name (a key of `upstreams`), or "http://host:port[/path]", "https://…", "unix:/path.sock", "uwsgi://host:port", "uwsgi+unix:/path.sock". */
  to: z.string().min(1),
  /** `Host` sent upstream: "client" (the request's), "upstream" (the server's host:port) or a template. @default "client" */
  host: template().optional(),
  /** Add X-Forwarded-For (appended), X-Forwarded-Proto and X-Forwarded-Host. @default true */
  xForwarded: z.boolean().optional(),
  /** Add an RFC 7239 `Forwarded` element. @default false */
  forwarded: z.boolean().optional(),
  /** Add `Via: 1.1 portico` (RFC 9110 §7.6.3). @default false */
  via: z.boolean().optional(),
  /** Request header operations, after the forwarding headers. */
  requestHeaders: headerOps.optional(),
  /** Upstream response headers not passed to the client (the upstream's identity). @default ["server", "x-powered-by"] */
  hideHeaders: z.array(z.string().min(1)).optional(),
});

/** nginx `proxy_cache_use_stale`: the failures after which a stale stored response is served. */
const useStaleCondition = z.enum(['error', 'timeout', 'http_500', 'http_502', 'http_503', 'http_504', 'updating']);

/**
 * The response cache of a proxy or app route (RFC 9111 shared cache; nginx `proxy_cache`).
 * `true` caches with these defaults; an object sets them; `false` turns off a server's `cache`.
 */
const routeCache = z.strictObject({
  /** @default true */
  enabled: z.boolean().optional(),
  /** The zone (a key of the top-level `cache.zones`, or "default"). @default "default" */
  zone: z.string().min(1).optional(),
  /** Cache key template (nginx `proxy_cache_key`). @default "$scheme://$host$request_uri" */
  key: template().pipe(z.string().min(1)).optional(),
  /** Templates; when one expands to a value other than "" or "0", the cache is not read for the request (its response may still be stored), as nginx `proxy_cache_bypass`. @default [] */
  bypass: z.array(template()).optional(),
  /** Templates; when one expands to a value other than "" or "0", the response is not stored (nginx `proxy_no_cache`). @default [] */
  noStore: z.array(template()).optional(),
  /** Requests for a key before its response is stored (nginx `proxy_cache_min_uses`). @default 1 */
  minUses: z.number().int().min(1).optional(),
  /** Larger responses are passed on, not stored. @default "16mb" */
  maxObjectSize: size().optional(),
  /** Serve a stale stored response when the upstream fails like this (nginx `proxy_cache_use_stale`), beyond what the response's own `stale-if-error`/`stale-while-revalidate` allow; never for `must-revalidate` responses. @default [] */
  useStale: z.array(useStaleCondition).optional(),
  /** Concurrent misses for one key wait for the first one's response (nginx `proxy_cache_lock`). @default true */
  lock: z.boolean().optional(),
  /** After this, a waiting request goes upstream itself, and its response is not stored (nginx `proxy_cache_lock_timeout`). @default "5s" */
  lockTimeout: timerDuration().optional(),
  /** Responses with `Set-Cookie`: `no-store` (passed on, not stored), `strip` (stored without it), `store` (stored with it: every client then gets the cookie). @default "no-store" */
  setCookie: z.enum(['no-store', 'strip', 'store']).optional(),
  /** Heuristic freshness (RFC 9111 §4.2.2) for responses without explicit lifetime: this percent of the time since Last-Modified; 0 disables. @default 10 */
  heuristicPercent: z.number().min(0).max(100).optional(),
  /** Upper bound of a heuristic lifetime. @default "1d" */
  heuristicMax: duration().optional(),
  /** `PURGE` requests (a key, or a prefix when the path ends in "*") from these addresses remove entries; others get 403. `false`: PURGE is passed on like any other method. @default { allow: ["127.0.0.1", "::1"] } */
  purge: z.union([z.literal(false), z.strictObject({ allow: z.array(z.lazy(() => cidr)) })]).optional(),
});

/** A zone name of `limits.rateZones` / `limits.connZones`. */
const zoneName = z.string().regex(/^[A-Za-z0-9_.-]+$/, 'expected a name of letters, digits, "_", "." or "-"');

/** An IP access rule (nginx `allow`/`deny`): an address, a CIDR block, "all", or "unix:" (clients on a unix socket). */
const ipTarget = z.string().superRefine((text, ctx) => {
  if (text !== 'all' && text !== 'unix:' && !parseIpBlock(text)) ctx.addIssue({ code: 'custom', message: `expected an IP address, a CIDR block like "10.0.0.0/8" or "2001:db8::/32", "all" or "unix:", got ${show(text)}` });
});
const ipRule = z.union([z.strictObject({ allow: ipTarget }), z.strictObject({ deny: ipTarget })], {
  error: (issue) => `expected { allow: "…" } or { deny: "…" }, got ${show(issue.input)}`,
});

/** One rate limit on a server or route (nginx `limit_req zone=… burst=… [nodelay | delay=…]`). */
const rateLimitRef = z
  .strictObject({
    /** A zone of `limits.rateZones` (its key and rate). */
    zone: zoneName,
    /** Requests over the rate that are delayed (or, with `nodelay`/`delay`, passed) rather than rejected. @default 0 */
    burst: z.number().int().min(0).max(1_000_000).optional(),
    /** Serve the burst at once instead of pacing it at the rate. @default false */
    nodelay: z.literal(true).optional(),
    /** Two-stage limiting: the first `delay` requests of the burst pass at once, the rest are paced. @default 0 */
    delay: z.number().int().min(0).max(1_000_000).optional(),
    /** Status of a rejected request (nginx `limit_req_status`); it carries `Retry-After`. @default 429 */
    status: z.number().int().min(400).max(599).optional(),
  })
  .superRefine((value, ctx) => {
    if (value.nodelay !== undefined && value.delay !== undefined) ctx.addIssue({ code: 'custom', path: ['delay'], input: value.delay, message: 'expected either "nodelay" or "delay", not both' });
  });

/** One concurrency limit on a server or route (nginx `limit_conn zone N`). */
const connLimitRef = z.strictObject({
  /** A zone of `limits.connZones` (its key). */
  zone: zoneName,
  /** Requests in flight at once per key. */
  max: z.number().int().min(1).max(1_000_000),
  /** Status of a request over the limit (nginx `limit_conn_status`, whose default is 503); it carries `Retry-After: 1`. @default 503 */
  status: z.number().int().min(400).max(599).optional(),
});

/** Access settings shared by servers (inherited) and routes (a route's own replace the server's; `false` turns one off). */
const accessFields = {
  /**
   * IP rules in order, the first that matches decides (nginx `allow`/`deny`): `[{ allow:
   * "10.0.0.0/8" }, { allow: "::1" }, { deny: "all" }]`. A denied client gets 403; no matching rule
   * allows. The client address is the real one (after `http.trustedProxies`).
   */
  access: z.union([z.literal(false), z.array(ipRule)]).optional(),
  /** HTTP basic authentication (RFC 7617, nginx `auth_basic`): 401 with `WWW-Authenticate` until a user of the htpasswd file gives its password. */
  basicAuth: z
    .union([
      z.literal(false),
      z.strictObject({
        /** Shown by browsers in the login prompt (the `realm` of `WWW-Authenticate: Basic`). */
        realm: z.string().min(1).regex(/^[\x20-\x7e]+$/, 'expected printable ASCII'),
        /** An htpasswd file (Apache `htpasswd`): bcrypt (`-B`), `$apr1$` (`-m`) or `{SHA}` (`-s`) entries; relative to the config file. */
        htpasswd: z.string().min(1),
      }),
    ])
    .optional(),
  /** Request rate limits (nginx `limit_req`): one or several, each naming a zone of `limits.rateZones`. */
  rateLimit: z.union([z.literal(false), rateLimitRef, z.array(rateLimitRef).min(1)]).optional(),
  /** Concurrency limits (nginx `limit_conn`): requests in flight per key of a zone of `limits.connZones`. */
  connLimit: z.union([z.literal(false), connLimitRef, z.array(connLimitRef).min(1)]).optional(),
};

/** "10r/s", "300r/m": an nginx rate, whole requests per second or per minute. */
const rate = z.string().superRefine((text, ctx) => {
  const match = /^(\d{1,9})r\/(s|m)$/.exec(text);
  if (!match || Number(match[1]) === 0) ctx.addIssue({ code: 'custom', message: `expected a rate like "10r/s" or "300r/m" (whole requests, more than 0), got ${show(text)}` });
});

const HANDLER_KEYS = ['static', 'redirect', 'respond', 'proxy', 'app'] as const;

/** An app name, a key of `apps` (also used in the upstream group name `app:NAME`). */
const appName = z.string().regex(/^[A-Za-z0-9_.-]+$/, 'expected a name of letters, digits, "_", "." or "-"');

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
const server = z.strictObject({
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
  ...accessFields,
});

const logLevel = z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

/**
 * An upstream server address (no path): HTTP "http://host:port", "https://host:port",
 * "unix:/path.sock"; or the uwsgi binary protocol (nginx `uwsgi_pass`) "uwsgi://host:port",
 * "uwsgi+unix:/path.sock".
 */
export const upstreamUrl = z.string().superRefine((text, ctx) => {
  if (text.startsWith('unix:/') || text.startsWith('uwsgi+unix:/')) return;
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  // "uwsgi:" is not a WHATWG special scheme: its empty path is "", not "/", and it has no default port.
  const uwsgi = url?.protocol === 'uwsgi:' && url.port !== '' && (url.pathname === '' || url.pathname === '/');
  const http = (url?.protocol === 'http:' || url?.protocol === 'https:') && url.pathname === '/';
  if (!url || !(uwsgi || http) || url.search || url.hash || url.username) {
    ctx.addIssue({ code: 'custom', message: `expected a server address like "http://127.0.0.1:3000", "unix:/run/app.sock", "uwsgi://127.0.0.1:3031" or "uwsgi+unix:/run/app.sock" (no path), got ${show(text)}` });
  }
});

const upstreamServer = z.union([
  upstreamUrl,
  z.strictObject({
    url: upstreamUrl,
    /** Share of requests relative to the others. @default 1 */
    weight: z.number().int().min(1).max(1000).optional(),
    /** Used only while no primary server is available (nginx `backup`). @default false */
    backup: z.boolean().optional(),
    /** Requests in flight at most; 0 = no cap (nginx `max_conns`). @default 0 */
    maxConns: z.number().int().min(0).optional(),
  }),
]);

/** "10.0.0.0/8", "192.168.1.7", "fd00::/8": an address or a CIDR block. */
const cidr: z.ZodType<string> = z.string().superRefine((text, ctx) => {
  if (!parseIpBlock(text)) ctx.addIssue({ code: 'custom', message: `expected an IP address or CIDR block like "10.0.0.0/8" or "::1", got ${show(text)}` });
});

/** An upstream group (nginx `upstream`): servers, balancing, timeouts, health, retries. */
const upstream = z.strictObject({
  /** The servers: addresses, or objects with `url`, `weight`, `backup`, `maxConns`. */
  servers: z.array(upstreamServer).min(1),
  /** `round-robin` (smooth weighted, nginx), `least-conn`, `ip-hash`, `hash` (consistent, on `hashKey`), `random-two` (two random choices). @default "round-robin" */
  balance: z.enum(['round-robin', 'least-conn', 'ip-hash', 'hash', 'random-two']).optional(),
  /** Key template for `hash`: "$request_uri", "$http_x_user", "$cookie_…" is written "$http_cookie". @default "$request_uri" */
  hashKey: template().optional(),
  /** Upstream keep-alive pool per server. */
  keepAlive: z
    .strictObject({
      /** Connections per server at most (a request waits for one beyond that). Omit for no cap. */
      connections: z.number().int().min(1).optional(),
      /** An idle pooled connection is closed after this. @default "60s" */
      idleTimeout: timerDuration().optional(),
    })
    .optional(),
  /** Time to establish a connection; then the next server or 504. @default "5s" */
  connectTimeout: timerDuration().optional(),
  /** Time from sending the request to the response head (nginx `proxy_read_timeout` for the head); then 504. @default "60s" */
  headerTimeout: timerDuration().optional(),
  /** Longest pause between reads of a response body, and idle time of a WebSocket. @default "60s" */
  idleTimeout: timerDuration().optional(),
  /** Whole-request limit per attempt; 0 = none. @default 0 */
  timeout: timerDuration().optional(),
  /** Failures within `failTimeout` that take a server out for `failTimeout` (nginx `max_fails`); 0 disables. @default 1 */
  maxFails: z.number().int().min(0).optional(),
  /** @default "10s" */
  failTimeout: timerDuration().optional(),
  /** A server that comes back ramps its weight from 0 to full over this. @default 0 */
  slowStart: timerDuration().optional(),
  /** Active health checks: GET `path` every `interval`. */
  healthCheck: z
    .strictObject({
      path: z.string().startsWith('/'),
      /** @default "5s" */
      interval: timerDuration().optional(),
      /** @default "2s" */
      timeout: timerDuration().optional(),
      /** Statuses that mean healthy. @default any 2xx or 3xx */
      statuses: z.array(z.number().int().min(100).max(599)).optional(),
      /** Good probes in a row to come back. @default 2 */
      rise: z.number().int().min(1).optional(),
      /** Failed probes in a row to go out. @default 3 */
      fall: z.number().int().min(1).optional(),
      /** `Host` of the probe. @default the server's host:port */
      host: z.string().optional(),
    })
    .optional(),
  /** nginx `proxy_next_upstream`: when a request moves to the next server. */
  retry: z
    .strictObject({
      /** Attempts at most, the first included. @default the number of servers */
      tries: z.number().int().min(1).optional(),
      /** Stop retrying once this much time has passed; 0 = no limit. @default 0 */
      timeout: timerDuration().optional(),
      /** Failures that move to the next server: "error", "timeout" and statuses. @default ["error", "timeout"] */
      on: z.array(z.union([z.enum(['error', 'timeout']), z.number().int().min(400).max(599)])).optional(),
    })
    .optional(),
});

const MODULE_APP_KEYS = ['workers', 'timeout', 'maxRequests', 'maxRequestsJitter'] as const;
const COMMAND_APP_KEYS = ['socket', 'env', 'cwd', 'restartDelay'] as const;

/**
 * An app run by `portico up`, served by routes with `app: NAME`. Either a JavaScript app
 * (`module`) on its own pre-forked worker processes (the `portico app` arbiter, in-process), or
 * an existing app server (`command`: gunicorn, uWSGI in HTTP mode, …) that portico starts,
 * restarts when it dies and stops, reaching it over HTTP on `socket`.
 */
const app = z
  .strictObject({
    /** The app module (.ts, .mts, .js, .mjs); its default export is a Fetch handler, a Node listener or a Fastify instance. Relative to the config file's folder. */
    module: z.string().min(1).optional(),
    /** An external app server to run instead: the program and its arguments, no shell (`["gunicorn", "-b", "unix:/run/app.sock", "app:app"]`). */
    command: z.array(z.string().min(1)).min(1).optional(),
    /** With `command`: where it listens for HTTP, "unix:/path" or "host:port"; requests go there once it accepts connections. */
    socket: listenAddress
      .refine((text) => parseListen(text)?.kind === 'unix' || (parseListen(text) as { port: number } | undefined)?.port !== 0, 'expected a fixed port, not 0')
      .optional(),
    /** With `command`: environment variables added to portico's own. */
    env: z.record(z.string(), z.string()).optional(),
    /** With `command`: its working directory, relative to the config file's folder. @default the config file's folder */
    cwd: z.string().min(1).optional(),
    /** With `command`: the first restart delay after a crash in a row (then doubled each time, at most 30 s; the first restart is at once). @default "250ms" */
    restartDelay: timerDuration().optional(),
    /** Worker processes. @default one per core */
    workers: z.number().int().min(1).max(1024).optional(),
    /** A worker with no heartbeat for this long is killed and replaced; also each request's deadline (503). @default "30s" */
    timeout: timerDuration().optional(),
    /** A worker is recycled after this many requests (leak containment); 0 = never. @default 0 */
    maxRequests: z.number().int().min(0).optional(),
    /** Adds 0..N to each worker's `maxRequests`, so workers do not recycle at once. @default 0 */
    maxRequestsJitter: z.number().int().min(0).optional(),
    /** Time for requests in flight when a worker stops, reloads or recycles, or for a `command` to exit after SIGTERM; then SIGKILL. @default "30s" (a `command`: "10s") */
    gracefulTimeout: timerDuration().optional(),
  })
  .superRefine((value, ctx) => {
    if ((value.module === undefined) === (value.command === undefined)) {
      ctx.addIssue({ code: 'custom', message: `expected exactly one of "module" (a JavaScript app) or "command" (an external app server), got ${value.module === undefined ? 'neither' : 'both'}` });
      return;
    }
    // Settings of the other kind would be silently ignored: refuse them, naming the field.
    const other: readonly (keyof typeof value)[] = value.module !== undefined ? COMMAND_APP_KEYS : MODULE_APP_KEYS;
    for (const key of other) {
      if (value[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], input: value[key], message: `expected only with "${value.module !== undefined ? 'command' : 'module'}"` });
    }
    if (value.command !== undefined && value.socket === undefined) ctx.addIssue({ code: 'custom', path: ['socket'], input: undefined, message: 'is required with "command": expected where it listens, "unix:/path" or "host:port", got nothing' });
  });

/** A cache zone's storage (nginx `proxy_cache_path` + `keys_zone`). */
const cacheZoneFields = {
  /** Memory tier size, per process (least recently used entries leave first). @default "64mb" */
  memorySize: size(),
  /** Entries up to this size are held in memory; larger ones only on disk (streamed). @default "1mb" */
  memoryEntryMax: size(),
  /** Disk tier directory, shared by all edge processes and kept across restarts; relative to the config file. No directory: memory only. */
  dir: z.string().min(1),
  /** Disk tier bound; the least recently used entries are deleted past it. @default "1gb" */
  diskSize: size(),
};

/** Response cache storage. The fields here configure the zone "default"; `zones` adds named ones. */
const cacheSection = z.strictObject({
  ...cacheZoneFields,
  /** Named zones for routes' `cache.zone`. */
  zones: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'expected a name of letters, digits, "_", "." or "-"'), z.strictObject(cacheZoneFields).partial()).optional(),
}).partial();

/** A TCP port, or an inclusive range written "1025-65535". */
const portOrRange = z.union([
  z.number().int().min(1).max(65535),
  z.string().superRefine((text, ctx) => {
    const match = /^(\d{1,5})-(\d{1,5})$/.exec(text);
    const low = Number(match?.[1]);
    const high = Number(match?.[2]);
    if (!match || low < 1 || high > 65535 || low > high) ctx.addIssue({ code: 'custom', message: `expected a port 1-65535 or a range like "1025-65535", got ${show(text)}` });
  }),
]);

/** A destination of the forward proxy's ACLs: a host name ("example.com"), a wildcard ("*.example.com"), an IP address or a CIDR block. */
const destination = z.string().superRefine((text, ctx) => {
  const ip = parseIpBlock(text) !== null;
  const name = /^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?$/i.test(text);
  if (!ip && !name) ctx.addIssue({ code: 'custom', message: `expected a host name ("example.com", "*.example.com"), an IP address or a CIDR block ("10.0.0.0/8"), got ${show(text)}` });
});

const tcpListenAddress = listenAddress.refine((text) => !text.startsWith('unix:'), 'expected a TCP address like ":3128" or "127.0.0.1:3128" (a unix socket has no client address to check)');

/**
 * The forward proxy (Squid's role): clients send absolute-form requests (`GET http://host/path`)
 * and `CONNECT host:443` tunnels to these addresses, and the proxy reaches the destination for
 * them. Never an open proxy: only `allow`ed clients are served, and private, loopback,
 * link-local, CGNAT and cloud-metadata destinations are refused unless `allowDest` lists them.
 */
const forward = z.strictObject({
  /** Addresses to listen on (TCP: the client's address is what `allow` checks). @default "127.0.0.1:3128" */
  listen: z.union([tcpListenAddress, z.array(tcpListenAddress).min(1)]).optional(),
  /** Clients that may use the proxy (addresses or CIDR blocks); others get 403. @default ["127.0.0.0/8", "::1"] */
  allow: z.array(cidr).optional(),
  /**
   * Destinations reachable even though the default deny would refuse them (private, loopback,
   * link-local, CGNAT, cloud-metadata ranges): host names ("intranet.example", "*.corp.example"),
   * addresses or CIDR blocks. A name is checked, then every address it resolves to. @default []
   */
  allowDest: z.array(destination).optional(),
  /** Destinations always refused (names, wildcards, addresses, CIDR blocks), whatever `allowDest` says. @default [] */
  denyDest: z.array(destination).optional(),
  /** Only `allowDest` destinations are reachable (a whitelist proxy); otherwise any public address is. @default false */
  onlyAllowDest: z.boolean().optional(),
  /** Ports `CONNECT` may open tunnels to (Squid's `SSL_ports`). @default [443] */
  connectPorts: z.array(portOrRange).min(1).optional(),
  /** Ports absolute-form `http://` requests may go to (Squid's `Safe_ports`, the HTTP ones). @default [80, 443, 280, 488, 591, 777, "1025-65535"] */
  httpPorts: z.array(portOrRange).min(1).optional(),
  /** Proxy authentication (RFC 9110 §11.7.1, `Proxy-Authorization: Basic`): users from an htpasswd file. */
  auth: z
    .strictObject({
      /** An htpasswd file (bcrypt `htpasswd -B`, `$apr1$`, `{SHA}`), relative to the config file's folder. */
      htpasswd: z.string().min(1),
      /** The realm named in `Proxy-Authenticate`. @default "portico" */
      realm: z.string().min(1).regex(/^[\x20-\x21\x23-\x5b\x5d-\x7e]+$/, 'expected printable ASCII without a quote or backslash').optional(),
    })
    .optional(),
  /** Time to connect to a destination; then 504. @default "10s" */
  connectTimeout: timerDuration().optional(),
  /** Time from sending a forwarded request to its response head; then 504. @default "60s" */
  headerTimeout: timerDuration().optional(),
  /** A tunnel, or a forwarded response body, with no bytes either way for this long is closed. @default "5m" */
  idleTimeout: timerDuration().optional(),
  /** Open `CONNECT` tunnels at most, per edge worker process; one more gets 503. @default 1024 */
  maxTunnels: z.number().int().min(1).optional(),
  /** How long a name's resolved addresses are reused (checked again on every use). @default "30s" */
  dnsCacheTtl: timerDuration().optional(),
  /** Idle keep-alive connections to destinations are closed after this. @default "30s" */
  keepAliveTimeout: timerDuration().optional(),
  /** Write forwarded requests and tunnels to the access log. @default true */
  accessLog: z.boolean().optional(),
  /**
   * Cache cacheable responses to absolute-form `http://` requests (RFC 9111 shared cache, the
   * Squid `cache_dir` role) in a zone of the top-level `cache` section: the same rules, stores,
   * coalescing, stale serving, `PURGE` and `Cache-Status` as a route's `cache`. `true` uses the
   * zone "default"; an object takes a route cache's fields, except `key`: the key is always the
   * absolute URI with the port made explicit (`http://host:port/path?query`), so no template
   * can let two origins share an entry. Looked up only after the client, proxy-authentication
   * and destination checks passed; never for `CONNECT`. Off unless given (Squid's `cache deny all`).
   * @default false
   */
  cache: z.union([z.boolean(), routeCache.omit({ key: true })]).optional(),
});

export const configSchema = z.strictObject({
  /** Logs. */
  log: z
    .strictObject({
      /** Error log level. @default "info" */
      level: logLevel.optional(),
      /** Error log destination: "stderr", "stdout" or a file path. @default "stderr" */
      error: z.string().min(1).optional(),
      /** Access log; `false` turns it off. @default { format: "combined", path: "stdout" } */
      access: z
        .union([
          z.literal(false),
          z.strictObject({
            /** `combined` (nginx/Apache) or `json` (one object per line). @default "combined" */
            format: z.enum(['combined', 'json']).optional(),
            /** "stdout", "stderr" or a file path. @default "stdout" */
            path: z.string().min(1).optional(),
          }),
        ])
        .optional(),
    })
    .optional(),
  /** HTTP protocol settings for all listeners. */
  http: z
    .strictObject({
      /** `Server` response header value; `false` hides it. @default "Portico" */
      serverHeader: z.union([z.string().min(1).regex(/^[\x20-\x7e]+$/, 'expected printable ASCII (no control characters)'), z.literal(false)]).optional(),
      /** A Host that no server names: `default` (the listener's default server), or answer 404 or 421 (RFC 9110 §15.5.20). @default "default" */
      unknownHost: z.union([z.literal('default'), z.literal(404), z.literal(421)]).optional(),
      /** Idle keep-alive connections are closed after this (nginx `keepalive_timeout`). @default "75s" */
      keepAliveTimeout: timerDuration().optional(),
      /**
       * Time to receive a request head (nginx `client_header_timeout`); then 408 and close. A total
       * deadline from the head's first byte, not reset by each byte received, so a client trickling
       * its head (slowloris) is cut at this bound; a new connection that sends nothing is closed
       * after it too. At most `requestTimeout`. `0` = none. @default "60s" (or `requestTimeout` when shorter)
       */
      headersTimeout: timerDuration().optional(),
      /** Time to receive the whole request, head and body; then 408 (or the connection is closed when the answer has started). `0` = none. @default "300s" */
      requestTimeout: timerDuration().optional(),
      /**
       * Longest pause between two reads of a request body (nginx `client_body_timeout`); then 408
       * and close, or the connection is cut when the answer has started. `0` = none. @default "60s"
       */
      bodyTimeout: timerDuration().optional(),
      /** Longest request target, the URI of the request line (nginx: a request line longer than one `large_client_header_buffers` buffer, 8k); longer → 414 (RFC 9112 §3, RFC 9110 §15.5.15). @default "8kb" */
      maxUriLength: size().optional(),
      /** Largest request header section, the header fields without the request line (nginx `large_client_header_buffers`); larger → 431 (RFC 6585 §5). @default "16kb" */
      maxHeaderSize: size().optional(),
      /** Most header fields in one request (Apache `LimitRequestFields`); more → 431 (RFC 6585 §5). @default 100 */
      maxHeaders: z.number().int().min(1).max(10_000).optional(),
      /**
       * Largest request body (nginx `client_max_body_size`); `0` = no limit. A Content-Length above
       * it is answered 413 before any of the body is read; a chunked body is counted while it
       * streams, and at the limit the upstream request is aborted (it never receives more than the
       * limit), the client gets 413 and the connection closes. Servers and routes may set their own.
       * @default "1mb"
       */
      maxBodySize: size().optional(),
      /** Requests served on one connection before it is closed (nginx `keepalive_requests`): the last one is answered with `Connection: close`. @default 1000 */
      maxRequestsPerConnection: z.number().int().min(1).optional(),
      /** Peers trusted to say who the client is: from them, the client address is taken from X-Forwarded-For (nginx `set_real_ip_from`, recursive). @default [] */
      trustedProxies: z.array(cidr).optional(),
      /**
       * Open client connections per node, all edge workers together; a connection over it is
       * answered 503 with `Retry-After: 1` and closed without its request being read. 0 = no cap.
       * @default 0
       */
      maxConnections: z.number().int().min(0).optional(),
    })
    .optional(),
  /** Zones of rate and concurrency limits, referenced by `rateLimit`/`connLimit` of servers and routes (nginx `limit_req_zone`, `limit_conn_zone`). */
  limits: z
    .strictObject({
      /** Rate zones by name: `{ key, rate }`. The key is a template ("$remote_addr", "$http_x_api_key", "$route", "$remote_addr:$route"); an empty key is not limited. */
      rateZones: z
        .record(
          zoneName,
          z.strictObject({
            /** What is counted separately: a template. */
            key: template(),
            /** "10r/s" or "300r/m". */
            rate,
          }),
        )
        .optional(),
      /** Concurrency zones by name: `{ key }` (a template, as for rate zones). */
      connZones: z.record(zoneName, z.strictObject({ key: template() })).optional(),
    })
    .optional(),
  /** Upstream groups by name, for `proxy: { to: "name" }`. */
  upstreams: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'expected a name of letters, digits, "_", "." or "-"'), upstream).optional(),
  /** Apps by name, each on its own pool of worker processes, for routes with `app: "name"`. */
  apps: z.record(appName, app).optional(),
  /** Response cache storage (zones); routes turn caching on with `cache`. */
  cache: cacheSection.optional(),
  /**
   * Edge worker processes (nginx `worker_processes`): `"auto"` is one per core; with 1, everything
   * runs in one process. With more, a supervisor owns the listening sockets and the apps' worker
   * pools, and restarts an edge worker that dies. `portico up --workers N` overrides it; when
   * neither says, the `PORTICO_WORKERS` environment variable does (as gunicorn's WEB_CONCURRENCY).
   * @default "auto"
   */
  workers: z
    .custom<'auto' | number>((value) => value === 'auto' || (typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 1024), {
      error: (issue) => `expected "auto" or a whole number of processes 1-1024, got ${show(issue.input)}`,
    })
    .optional(),
  /**
   * On SIGTERM/SIGINT, how long requests in flight (and open WebSocket tunnels) may take before
   * what is left is closed (gunicorn `graceful_timeout`). `portico up --graceful-timeout D` overrides it.
   * @default "30s"
   */
  gracefulTimeout: timerDuration().optional(),
  /**
   * Where `portico up` writes its process id, for `portico reload` and `kill -HUP $(cat FILE)`
   * (nginx `pid`); relative to the config file. `portico up --pid FILE` overrides it.
   * @default a file in the temporary folder named after the config file's path
   */
  pidFile: z.string().min(1).optional(),
  /** Virtual servers, the nginx `server` blocks. Required unless `forward` is given. */
  servers: z.array(server).min(1).optional(),
  /** The forward proxy (Squid's role): its own listeners for absolute-form requests and CONNECT tunnels. */
  forward: forward.optional(),
}).superRefine((value, ctx) => {
  // A config serves something: virtual servers, a forward proxy, or both.
  if (value.servers === undefined && value.forward === undefined) ctx.addIssue({ code: 'custom', path: ['servers'], input: undefined, message: 'is required (unless "forward" is given): expected an array, got nothing' });
});

/** What a user writes in `portico.config.*` (durations and sizes as strings or numbers). */
export type UserConfig = z.input<typeof configSchema>;
/** The config after the schema: units parsed, not yet resolved. */
export type ParsedConfig = z.output<typeof configSchema>;
export type ParsedServer = NonNullable<ParsedConfig['servers']>[number];
export type ParsedForward = NonNullable<ParsedConfig['forward']>;
export type ParsedForwardCache = NonNullable<ParsedForward['cache']>;
export type ParsedRoute = NonNullable<ParsedServer['routes']>[number];
export type ParsedStatic = NonNullable<ParsedServer['static']>;
export type ParsedRewrite = NonNullable<ParsedServer['rewrite']>[number];
export type ParsedHeaderOps = NonNullable<ParsedServer['headers']>;
export type ParsedUpstream = NonNullable<ParsedConfig['upstreams']>[string];
export type ParsedProxy = NonNullable<ParsedRoute['proxy']>;
export type ParsedApp = NonNullable<ParsedConfig['apps']>[string];
export type ParsedEncode = NonNullable<ParsedServer['encode']>;
export type ParsedRouteCache = NonNullable<ParsedRoute['cache']>;
export type ParsedCacheSection = NonNullable<ParsedConfig['cache']>;
export type StaticFields = { [K in keyof typeof staticFields]: z.output<(typeof staticFields)[K]> };
