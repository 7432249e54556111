/**
 * The `state` section: state shared by several Portico nodes (Traefik's Redis rate limiter,
 * Souin's shared cache), kept in Redis. Without it every node keeps its own limits and cache.
 * With it: rate and connection limits count fleet-wide, small cache entries are shared, purges
 * reach every node, and automatic HTTPS keeps its certificates and locks there (src/state/).
 */
import { z } from 'zod';
import type { ResolvedState } from '../resolved.js';
import { show, size, timerDuration } from './values.js';

const redisUrl = z.string().refine((text) => {
  try {
    const url = new URL(text);
    return url.protocol === 'redis:' || url.protocol === 'rediss:';
  } catch {
    return false;
  }
}, { error: (issue) => `expected a URL like "redis://127.0.0.1:6379" (or "rediss://" for TLS), got ${show(issue.input)}` });

export const stateSection = z.strictObject({
  /** The Redis server every node shares. */
  redis: z.strictObject({
    /** `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS. */
    url: redisUrl,
    /** Prepended to every key and channel, so several fleets (or other apps) can share one Redis. */
    prefix: z.string().max(64).prefault('portico:'),
    /** The longest a request waits on Redis; past it the request is decided as `onRedisDown` says. */
    timeout: timerDuration().prefault('50ms'),
  }),
  /**
   * When Redis cannot be reached (or answers later than `redis.timeout`): `"local"`, each node
   * enforces its share of every limit (the rate and connection counts divided by the number of
   * nodes last seen); `"open"`, limits let every request through; `"closed"`, limited requests
   * are refused. Every node logs once, counts it in `portico_state_fallback_total`, and
   * reconnects with backoff.
   */
  onRedisDown: z.enum(['local', 'open', 'closed']).prefault('local'),
  /**
   * How long a node's connection-limit slot and its membership outlive the node: a node that
   * dies without releasing its slots has them back within this time. Each node renews its own at
   * a third of it.
   */
  leaseTtl: timerDuration().prefault('30s'),
  /** Cache entries up to this size are also stored in Redis, for every node; larger ones stay on each node's memory and disk tiers. 0: the cache is not shared. */
  cacheEntryMax: size().prefault('1mb'),
});

export type ParsedState = z.output<typeof stateSection>;

export function resolveState(parsed: ParsedState | undefined, problems: string[]): ResolvedState | null {
  if (parsed === undefined) return null;
  if (parsed.leaseTtl < 1_000) problems.push(`state.leaseTtl: expected at least 1s (a node renews its leases every third of it), got ${parsed.leaseTtl} ms`);
  return {
    redis: { url: parsed.redis.url, prefix: parsed.redis.prefix, timeout: parsed.redis.timeout },
    onRedisDown: parsed.onRedisDown,
    leaseTtl: parsed.leaseTtl,
    cacheEntryMax: parsed.cacheEntryMax,
  };
}
