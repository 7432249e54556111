/**
 * Upstream groups (top-level `upstreams`, the nginx `upstream` block) and the route action that
 * uses them, `proxy` (nginx `proxy_pass`). Defaults are declared once, in the schema.
 */
import { z } from 'zod';
import { BALANCE_ALGORITHMS } from '../balance.js';
import type { ResolvedHandler, ResolvedUpstream } from '../resolved.js';
import { mergeHeaders, show, template, timerDuration } from './values.js';

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
    /** Share of requests relative to the others. */
    weight: z.number().int().min(1).max(1000).prefault(1),
    /** Used only while no primary server is available (nginx `backup`). */
    backup: z.boolean().prefault(false),
    /** Requests in flight at most; 0 = no cap (nginx `max_conns`). */
    maxConns: z.number().int().min(0).prefault(0),
  }),
]);

/** An upstream group (nginx `upstream`): servers, balancing, timeouts, health, retries. */
export const upstream = z.strictObject({
  /** The servers: addresses, or objects with `url`, `weight`, `backup`, `maxConns`. */
  servers: z.array(upstreamServer).min(1),
  /** `round-robin` (smooth weighted, nginx), `least-conn`, `ip-hash`, `hash` (consistent, on `hashKey`), `random-two` (two random choices). */
  balance: z.enum(BALANCE_ALGORITHMS).prefault('round-robin'),
  /** Key template for `hash`: "$request_uri", "$http_x_user", "$cookie_…" is written "$http_cookie". */
  hashKey: template().prefault('$request_uri'),
  /** Upstream keep-alive pool per server. */
  keepAlive: z
    .strictObject({
      /** Connections per server at most (a request waits for one beyond that). Omit for no cap. */
      connections: z.number().int().min(1).optional(),
      /** An idle pooled connection is closed after this. */
      idleTimeout: timerDuration().prefault('60s'),
    })
    .prefault({}),
  /** Time to establish a connection; then the next server or 504. */
  connectTimeout: timerDuration().prefault('5s'),
  /** Time from sending the request to the response head (nginx `proxy_read_timeout` for the head); then 504. */
  headerTimeout: timerDuration().prefault('60s'),
  /** Longest pause between reads of a response body, and idle time of a WebSocket. */
  idleTimeout: timerDuration().prefault('60s'),
  /** Whole-request limit per attempt; 0 = none. */
  timeout: timerDuration().prefault(0),
  /** Failures within `failTimeout` that take a server out for `failTimeout` (nginx `max_fails`); 0 disables. */
  maxFails: z.number().int().min(0).prefault(1),
  failTimeout: timerDuration().prefault('10s'),
  /** A server that comes back ramps its weight from 0 to full over this. */
  slowStart: timerDuration().prefault(0),
  /** Active health checks: GET `path` every `interval`. */
  healthCheck: z
    .strictObject({
      path: z.string().startsWith('/'),
      interval: timerDuration().prefault('5s'),
      timeout: timerDuration().prefault('2s'),
      /** Statuses that mean healthy. @default any 2xx or 3xx */
      statuses: z.array(z.number().int().min(100).max(599)).optional(),
      /** Good probes in a row to come back. */
      rise: z.number().int().min(1).prefault(2),
      /** Failed probes in a row to go out. */
      fall: z.number().int().min(1).prefault(3),
      /** `Host` of the probe. @default the server's host:port */
      host: z.string().optional(),
    })
    .optional(),
  /** nginx `proxy_next_upstream`: when a request moves to the next server. */
  retry: z
    .strictObject({
      /** Attempts at most, the first included. @default the number of servers */
      tries: z.number().int().min(1).optional(),
      /** Stop retrying once this much time has passed; 0 = no limit. */
      timeout: timerDuration().prefault(0),
      /** Failures that move to the next server: "error", "timeout" and statuses. */
      on: z.array(z.union([z.enum(['error', 'timeout']), z.number().int().min(400).max(599)])).prefault(['error', 'timeout']),
    })
    .prefault({}),
});

/**
 * Route action `proxy` (nginx `proxy_pass`): forward to an upstream group by name, or to one
 * server by URL. With a path in the URL ("http://127.0.0.1:3000/v2/"), the route's prefix is
 * replaced by it; without one, the request URI is passed as received (as nginx).
 */
export const proxyAction = z.strictObject({
  /** An upstream name (a key of `upstreams`; "http://NAME/path" adds a path, as nginx), or "http://host:port[/path]", "https://…", "unix:/path.sock", "uwsgi://host:port", "uwsgi+unix:/path.sock". */
  to: z.string().min(1),
  /** `Host` sent upstream: "client" (the request's), "upstream" (the server's host:port) or a template. */
  host: template().prefault('client'),
  /** Add X-Forwarded-For (appended), X-Forwarded-Proto and X-Forwarded-Host. */
  xForwarded: z.boolean().prefault(true),
  /** Add an RFC 7239 `Forwarded` element. */
  forwarded: z.boolean().prefault(false),
  /** Add `Via: 1.1 portico` (RFC 9110 §7.6.3). */
  via: z.boolean().prefault(false),
  /**
   * Request header operations, after the forwarding headers. Values of `set` and `add` are
   * templates, as nginx `proxy_set_header`: "$remote_addr", "$proxy_add_x_forwarded_for", "$scheme".
   */
  requestHeaders: z
    .strictObject({
      /** Headers set on the request upstream, replacing the client's. */
      set: z.record(z.string(), template()).optional(),
      /** Headers appended (a second value when the client sent one). */
      add: z.record(z.string(), template()).optional(),
      /** Header names removed from the request. */
      remove: z.array(z.string()).optional(),
    })
    .optional(),
  /** Upstream response headers not passed to the client (the upstream's identity). */
  hideHeaders: z.array(z.string().min(1)).prefault(['server', 'x-powered-by']),
});


export type ParsedUpstream = z.output<typeof upstream>;
export type ParsedProxy = z.output<typeof proxyAction>;

/** A group's settings at their defaults, for the groups the config makes itself (a proxy to a URL, an app's workers). */
const GROUP_DEFAULTS: Omit<ParsedUpstream, 'servers'> = upstream.omit({ servers: true }).parse({});

/** A group of `servers` with every setting at its default. */
export function defaultUpstream(name: string, servers: readonly string[]): ResolvedUpstream {
  return resolveUpstream(name, { ...GROUP_DEFAULTS, servers: [...servers] });
}

export function resolveUpstream(name: string, parsed: ParsedUpstream): ResolvedUpstream {
  const servers = parsed.servers.map((server) =>
    typeof server === 'string' ? { url: server.replace(/\/$/, ''), weight: 1, backup: false, maxConns: 0 } : { ...server, url: server.url.replace(/\/$/, '') },
  );
  const on = parsed.retry.on;
  const check = parsed.healthCheck;
  return {
    name,
    app: null,
    servers,
    protocol: servers.length > 0 && servers.every((server) => isUwsgiUrl(server.url)) ? 'uwsgi' : 'http',
    balance: parsed.balance,
    hashKey: parsed.hashKey,
    keepAlive: { connections: parsed.keepAlive.connections ?? null, idleTimeout: parsed.keepAlive.idleTimeout },
    connectTimeout: parsed.connectTimeout,
    headerTimeout: parsed.headerTimeout,
    idleTimeout: parsed.idleTimeout,
    timeout: parsed.timeout,
    maxFails: parsed.maxFails,
    failTimeout: parsed.failTimeout,
    slowStart: parsed.slowStart,
    healthCheck: check ? { path: check.path, interval: check.interval, timeout: check.timeout, statuses: check.statuses ?? [], rise: check.rise, fall: check.fall, host: check.host ?? null } : null,
    // nginx's default: every server once (proxy_next_upstream_tries 0 is bounded by the servers).
    retry: {
      tries: parsed.retry.tries ?? servers.length,
      timeout: parsed.retry.timeout,
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
export function checkUpstream(group: ResolvedUpstream, problems: string[]): void {
  const uwsgi = group.servers.filter((server) => isUwsgiUrl(server.url)).length;
  if (uwsgi > 0 && uwsgi < group.servers.length) {
    problems.push(`upstreams.${group.name}.servers: expected servers of one protocol (all "uwsgi://"/"uwsgi+unix:" or all HTTP), got ${uwsgi} uwsgi and ${group.servers.length - uwsgi} HTTP`);
  }
  if (group.protocol === 'uwsgi' && group.healthCheck) {
    problems.push(`upstreams.${group.name}.healthCheck: expected no active health check on uwsgi servers (the probes speak HTTP; passive health applies), got an object`);
  }
}

/** A proxy action: `to` names a group, or is a URL that gets a one-server group named after the route. */
export function resolveProxy(proxy: ParsedProxy, id: string, upstreams: Map<string, ResolvedUpstream>, problems: string[]): ResolvedHandler | undefined {
  let group = upstreams.get(proxy.to)?.name;
  let path: string | null = null;
  // "http://NAME/path" with NAME a group: the group, with the path replacing the route's prefix
  // (nginx `proxy_pass http://backend/api/;` with an `upstream backend`).
  const named = group ? null : /^https?:\/\/([A-Za-z0-9_.-]+)(\/.*)?$/i.exec(proxy.to);
  if (named && upstreams.has(named[1] as string) && !(named[1] as string).includes('[')) {
    group = named[1] as string;
    path = named[2] ?? null;
  }
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
    upstreams.set(group, defaultUpstream(group, [origin]));
  }
  return {
    type: 'proxy',
    upstream: group,
    path,
    host: proxy.host,
    xForwarded: proxy.xForwarded,
    forwarded: proxy.forwarded,
    via: proxy.via,
    requestHeaders: mergeHeaders(undefined, proxy.requestHeaders),
    hideHeaders: proxy.hideHeaders.map((name) => name.toLowerCase()),
  };
}

