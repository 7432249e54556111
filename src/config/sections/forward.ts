/**
 * The forward proxy's config (top-level `forward`, Squid's role): its listeners, who may use it,
 * where it may go, and its cache. Defaults are declared once, in the schema.
 */
import { existsSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import { parseIpBlock } from '../../core/ip-list.js';
import { Htpasswd } from '../../core/htpasswd.js';
import type { ResolvedCacheZone, ResolvedForward, ResolvedServer } from '../resolved.js';
import { forwardCache, resolveForwardCache } from './cache.js';
import { cidr, listenAddress, listenKey, parseListen, show, timerDuration, type ListenAddress } from './values.js';

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
export const forward = z.strictObject({
  /** Addresses to listen on (TCP: the client's address is what `allow` checks). */
  listen: z.union([tcpListenAddress, z.array(tcpListenAddress).min(1)]).prefault('127.0.0.1:3128'),
  /** Clients that may use the proxy (addresses or CIDR blocks); others get 403. */
  allow: z.array(cidr).prefault(['127.0.0.0/8', '::1']),
  /**
   * Destinations reachable even though the default deny would refuse them (private, loopback,
   * link-local, CGNAT, cloud-metadata ranges): host names ("intranet.example", "*.corp.example"),
   * addresses or CIDR blocks. A name is checked, then every address it resolves to.
   */
  allowDest: z.array(destination).prefault([]),
  /** Destinations always refused (names, wildcards, addresses, CIDR blocks), whatever `allowDest` says. */
  denyDest: z.array(destination).prefault([]),
  /** Only `allowDest` destinations are reachable (a whitelist proxy); otherwise any public address is. */
  onlyAllowDest: z.boolean().prefault(false),
  /** Ports `CONNECT` may open tunnels to (Squid's `SSL_ports`). */
  connectPorts: z.array(portOrRange).min(1).prefault([443]),
  /** Ports absolute-form `http://` requests may go to: Squid's `Safe_ports`, less the ones of other protocols (ftp 21, gopher 70, wais 210), as `http://` is all this proxy speaks. */
  httpPorts: z.array(portOrRange).min(1).prefault([80, 443, 280, 488, 591, 777, '1025-65535']),
  /** Proxy authentication (RFC 9110 §11.7.1, `Proxy-Authorization: Basic`): users from an htpasswd file. */
  auth: z
    .strictObject({
      /** An htpasswd file (bcrypt `htpasswd -B`, `$apr1$`, `{SHA}`), relative to the config file's folder. */
      htpasswd: z.string().min(1),
      /** The realm named in `Proxy-Authenticate`. */
      realm: z.string().min(1).regex(/^[\x20-\x21\x23-\x5b\x5d-\x7e]+$/, 'expected printable ASCII without a quote or backslash').prefault('portico'),
    })
    .optional(),
  /** Time to connect to a destination; then 504. */
  connectTimeout: timerDuration().prefault('10s'),
  /** Time from sending a forwarded request to its response head; then 504. */
  headerTimeout: timerDuration().prefault('60s'),
  /** A tunnel, or a forwarded response body, with no bytes either way for this long is closed. */
  idleTimeout: timerDuration().prefault('5m'),
  /** Open `CONNECT` tunnels at most, per edge worker process; one more gets 503. */
  maxTunnels: z.number().int().min(1).prefault(1024),
  /** How long a name's resolved addresses are reused (checked again on every use). */
  dnsCacheTtl: timerDuration().prefault('30s'),
  /** Idle keep-alive connections to destinations are closed after this. */
  keepAliveTimeout: timerDuration().prefault('30s'),
  /** Write forwarded requests and tunnels to the access log. */
  accessLog: z.boolean().prefault(true),
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
  cache: z.union([z.boolean(), forwardCache]).optional(),
});


export type ParsedForward = z.output<typeof forward>;

const portRanges = (ports: readonly (number | string)[]): [number, number][] =>
  ports.map((port) => {
    if (typeof port === 'number') return [port, port];
    const [low, high] = port.split('-').map(Number);
    return [low as number, high as number];
  });

export function resolveForward(parsed: ParsedForward, baseDir: string, servers: readonly ResolvedServer[], zones: Readonly<Record<string, ResolvedCacheZone>>, problems: string[]): ResolvedForward {
  const listenTexts = Array.isArray(parsed.listen) ? parsed.listen : [parsed.listen];
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
    auth = { htpasswd, realm: parsed.auth.realm };
  }
  return {
    listen,
    allow: parsed.allow,
    allowDest: parsed.allowDest,
    denyDest: parsed.denyDest,
    onlyAllowDest: parsed.onlyAllowDest,
    connectPorts: portRanges(parsed.connectPorts),
    httpPorts: portRanges(parsed.httpPorts),
    auth,
    connectTimeout: parsed.connectTimeout,
    headerTimeout: parsed.headerTimeout,
    idleTimeout: parsed.idleTimeout,
    maxTunnels: parsed.maxTunnels,
    dnsCacheTtl: parsed.dnsCacheTtl,
    keepAliveTimeout: parsed.keepAliveTimeout,
    accessLog: parsed.accessLog,
    cache: resolveForwardCache(parsed.cache, zones, problems),
  };
}

