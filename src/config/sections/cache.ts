/**
 * The response cache's config: storage zones (top-level `cache`, nginx `proxy_cache_path`) and the
 * rules of a route's or the forward proxy's `cache` (nginx `proxy_cache_*`), with their defaults
 * declared once, here in the schema.
 */
import { resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import type { ResolvedCacheRules, ResolvedCacheZone, ResolvedHandler, ResolvedRouteCache } from '../resolved.js';
import { cidr, duration, entryName, fieldName, size, template, timerDuration } from './values.js';

/** nginx `proxy_cache_use_stale`: the failures after which a stale stored response is served. */
const useStaleCondition = z.enum(['error', 'timeout', 'http_500', 'http_502', 'http_503', 'http_504', 'updating']);

/**
 * The response cache of a proxy or app route (RFC 9111 shared cache; nginx `proxy_cache`).
 * `true` caches with these defaults; an object sets them; `false` turns off a server's `cache`.
 */
export const routeCache = z.strictObject({
  enabled: z.boolean().prefault(true),
  /** The zone (a key of the top-level `cache.zones`, or "default"). */
  zone: z.string().min(1).prefault('default'),
  /** Cache key template (nginx `proxy_cache_key`). */
  key: template().pipe(z.string().min(1)).prefault('$scheme://$host$request_uri'),
  /** Templates; when one expands to a value other than "" or "0", the cache is not read for the request (its response may still be stored), as nginx `proxy_cache_bypass`. */
  bypass: z.array(template()).prefault([]),
  /** Templates; when one expands to a value other than "" or "0", the response is not stored (nginx `proxy_no_cache`). */
  noStore: z.array(template()).prefault([]),
  /** Requests for a key before its response is stored (nginx `proxy_cache_min_uses`). */
  minUses: z.number().int().min(1).prefault(1),
  /** Larger responses are passed on, not stored. */
  maxObjectSize: size().prefault('16mb'),
  /** Serve a stale stored response when the upstream fails like this (nginx `proxy_cache_use_stale`), beyond what the response's own `stale-if-error`/`stale-while-revalidate` allow; never for `must-revalidate` responses. */
  useStale: z.array(useStaleCondition).prefault([]),
  /** Concurrent misses for one key wait for the first one's response (nginx `proxy_cache_lock`). */
  lock: z.boolean().prefault(true),
  /** After this, a waiting request goes upstream itself, and its response is not stored (nginx `proxy_cache_lock_timeout`). */
  lockTimeout: timerDuration().prefault('5s'),
  /** Responses with `Set-Cookie`: `no-store` (passed on, not stored), `strip` (stored without it), `store` (stored with it: every client then gets the cookie). */
  setCookie: z.enum(['no-store', 'strip', 'store']).prefault('no-store'),
  /**
   * Lifetimes by status for responses that state none (no `s-maxage`/`max-age`, no `Expires`),
   * as nginx `proxy_cache_valid`: `{ "200": "10m", "404": "1m", "any": "1m" }`. Such a response is
   * stored for that long unless its Cache-Control forbids it (`no-store`, `private`).
   */
  valid: z.record(z.string().regex(/^([1-5]\d\d|any)$/, 'expected a status like "200", or "any"'), duration()).prefault({}),
  /** Heuristic freshness (RFC 9111 §4.2.2) for responses without explicit lifetime: this percent of the time since Last-Modified; 0 disables. */
  heuristicPercent: z.number().min(0).max(100).prefault(10),
  /** Upper bound of a heuristic lifetime. */
  heuristicMax: duration().prefault('1d'),
  /**
   * Targeted cache-control fields (RFC 9213) this cache obeys instead of Cache-Control and
   * Expires, most specific first: the first present and valid one decides.
   */
  targeted: z.array(fieldName).prefault(['Portico-Cache-Control', 'CDN-Cache-Control']),
  /** Targeted fields removed from responses before they reach the client (CDN-Cache-Control is meant for caches further down too, so it stays). */
  stripTargeted: z.array(fieldName).prefault(['Portico-Cache-Control']),
  /** `PURGE` requests (a key, or a prefix when the path ends in "*") from these addresses remove entries; others get 403. `false`: PURGE is passed on like any other method. */
  purge: z.union([z.literal(false), z.strictObject({ allow: z.array(cidr) })]).prefault({ allow: ['127.0.0.1', '::1'] }),
});

/** A cache zone's storage (nginx `proxy_cache_path` + `keys_zone`). */
const cacheZoneFields = {
  /** Memory tier size, per process (least recently used entries leave first). */
  memorySize: size().prefault('64mb'),
  /** Entries up to this size are held in memory; larger ones only on disk (streamed). */
  memoryEntryMax: size().prefault('1mb'),
  /** Disk tier directory, shared by all edge processes and kept across restarts; relative to the config file. No directory: memory only. */
  dir: z.string().min(1).optional(),
  /** Disk tier bound; the least recently used entries are deleted past it. */
  diskSize: size().prefault('1gb'),
};
const cacheZone = z.strictObject(cacheZoneFields);
type ParsedCacheZone = z.output<typeof cacheZone>;

/** Response cache storage. The fields here configure the zone "default"; `zones` adds named ones. */
export const cacheSection = z.strictObject({
  ...cacheZoneFields,
  /** Named zones for routes' `cache.zone`. */
  zones: z.record(entryName, cacheZone).prefault({}),
});


export type ParsedCacheSection = z.output<typeof cacheSection>;
export type ParsedRouteCache = z.output<typeof routeCache>;
/** The forward proxy's cache takes a route cache's fields but `key` (forward.ts). */
export const forwardCache = routeCache.omit({ key: true });
export type ParsedCacheRules = z.output<typeof forwardCache>;

/** What `cache: true` means: every field at its default. */
const ROUTE_CACHE_DEFAULTS: ParsedRouteCache = routeCache.parse({});
const FORWARD_CACHE_DEFAULTS: ParsedCacheRules = forwardCache.parse({});

function resolveZone(name: string, parsed: ParsedCacheZone, baseDir: string): ResolvedCacheZone {
  return { name, memorySize: parsed.memorySize, memoryEntryMax: parsed.memoryEntryMax, dir: parsed.dir === undefined ? null : resolvePath(baseDir, parsed.dir), diskSize: parsed.diskSize };
}

export function resolveCacheZones(parsed: ParsedCacheSection, baseDir: string): Record<string, ResolvedCacheZone> {
  const { zones, ...defaults } = parsed;
  const out: Record<string, ResolvedCacheZone> = { default: resolveZone('default', defaults, baseDir) };
  for (const [name, zone] of Object.entries(zones)) out[name] = resolveZone(name, zone, baseDir);
  return out;
}

/** A route's `cache` (or its server's, inherited), checked against the zones and the route's handler. */
export function resolveRouteCache(parsed: boolean | ParsedRouteCache | undefined, inherited: boolean, handler: ResolvedHandler, id: string, zones: Readonly<Record<string, ResolvedCacheZone>>, problems: string[]): ResolvedRouteCache | null {
  if (parsed === undefined || parsed === false) return null;
  const options = parsed === true ? ROUTE_CACHE_DEFAULTS : parsed;
  if (!options.enabled) return null;
  if (handler.type !== 'proxy') {
    // A server's cache applies to its proxy and app routes only; on a route it must fit.
    if (!inherited) problems.push(`${id}.cache: expected only on a "proxy" or "app" route, got it on a ${handler.type === 'none' ? 'route without handler' : `"${handler.type}" route`}`);
    return null;
  }
  const { zone, ...rules } = resolveCacheRules(options, `${id}.cache`, zones, problems);
  // The zone first, then the key: the resolved JSON `portico check` prints reads as before.
  return { zone, key: options.key, ...rules };
}

/** The forward proxy's `cache`: `true` is every field at its default; off unless given. */
export function resolveForwardCache(parsed: boolean | ParsedCacheRules | undefined, zones: Readonly<Record<string, ResolvedCacheZone>>, problems: string[]): ResolvedCacheRules | null {
  if (parsed === undefined || parsed === false) return null;
  const options = parsed === true ? FORWARD_CACHE_DEFAULTS : parsed;
  return options.enabled ? resolveCacheRules(options, 'forward.cache', zones, problems) : null;
}

/** The fields a route's `cache` and `forward.cache` share, the zone checked. */
function resolveCacheRules(options: ParsedCacheRules, at: string, zones: Readonly<Record<string, ResolvedCacheZone>>, problems: string[]): ResolvedCacheRules {
  const zone = options.zone;
  if (!(zone in zones)) problems.push(`${at}.zone: expected a cache zone (${Object.keys(zones).map((n) => `"${n}"`).join(', ')}), got ${JSON.stringify(zone)}`);
  return {
    zone,
    bypass: options.bypass,
    noStore: options.noStore,
    minUses: options.minUses,
    maxObjectSize: options.maxObjectSize,
    useStale: options.useStale,
    lock: options.lock,
    lockTimeout: options.lockTimeout,
    setCookie: options.setCookie,
    // Seconds, as the lifetimes of the freshness arithmetic.
    valid: Object.fromEntries(Object.entries(options.valid).map(([status, ms]) => [status, Math.floor(ms / 1000)])),
    heuristicPercent: options.heuristicPercent,
    // Seconds: the cache's freshness arithmetic is in seconds (RFC 9111 §4.2.1).
    heuristicMax: Math.floor(options.heuristicMax / 1000),
    targeted: options.targeted,
    stripTargeted: options.stripTargeted,
    purge: options.purge === false ? null : options.purge.allow,
  }
}
