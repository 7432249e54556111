/**
 * Rate and connection limits counted fleet-wide in Redis: the LimitStore of a node whose config
 * has `state.redis` (held by the supervisor, which its edge workers ask over the node bus as
 * they ask the in-memory store; core/limit-ipc.ts). One Redis round trip per limited request,
 * one atomic script each, run with EVALSHA.
 *
 * - Rates: nginx `limit_req`'s leaky bucket, integer for integer as core/limit-store.ts computes
 *   it (all checks of a request first, then all accounted; the longest delay wins), on Redis's
 *   own clock (TIME), so nodes whose clocks differ still share one bucket.
 * - Connections: a sorted set of leases per key, each scored with its expiry. A node renews its
 *   leases (and its membership in the node set) every third of `state.leaseTtl`; a node that dies
 *   stops renewing, and its slots are free once their lease has expired.
 * - Redis down or slow (`state.redis.timeout`): `state.onRedisDown` decides. `"local"` keeps an
 *   in-memory store and gives each node its share: the rate and the connection count divided by
 *   the number of nodes last seen in the node set.
 *
 * Redis Cluster is not supported: one request's checks may name keys in different slots.
 */
import { randomUUID } from 'node:crypto';
import { MemoryLimitStore, PASS, type LimitStore, type RateCheck, type RateOutcome } from '../core/limit-store.js';
import type { RedisClient, SharedRedis } from './redis.js';
import { RedisScript } from './script.js';

/**
 * KEYS: one bucket per check. ARGV: rate, burst, delay (-1: nodelay) per check, in milli-requests.
 * Returns { action (0 pass, 1 delay, 2 reject), delayMs, retryAfterMs, index }.
 */
const TAKE = new RedisScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local excesses = {}
for i = 1, #KEYS do
  local rate = tonumber(ARGV[i * 3 - 2])
  local burst = tonumber(ARGV[i * 3 - 1])
  local state = redis.call('HMGET', KEYS[i], 'e', 'l')
  local excess = 0
  if state[1] then
    local ms = now - tonumber(state[2])
    if ms < -60000 then ms = 1 elseif ms < 0 then ms = 0 end
    excess = tonumber(state[1]) - math.floor(rate * ms / 1000) + 1000
    if excess < 0 then excess = 0 end
  end
  if excess > burst then
    return {2, 0, math.ceil((excess - burst) * 1000 / rate), i - 1}
  end
  excesses[i] = excess
end
local delay_ms, index = 0, -1
for i = 1, #KEYS do
  local rate = tonumber(ARGV[i * 3 - 2])
  local delay = tonumber(ARGV[i * 3])
  local excess = excesses[i]
  redis.call('HSET', KEYS[i], 'e', excess, 'l', now)
  -- nginx forgets a key that has drained and was idle for a minute.
  redis.call('PEXPIRE', KEYS[i], math.ceil(excess * 1000 / rate) + 60000)
  if delay >= 0 and excess > delay then
    local wait = math.floor((excess - delay) * 1000 / rate)
    if wait > delay_ms then delay_ms = wait; index = i - 1 end
  end
end
if delay_ms > 0 then return {1, delay_ms, 0, index} end
return {0, 0, 0, -1}
`);

/** KEYS[1]: the key's lease set. ARGV: max, lease id, lease ttl (ms). Returns 1 when a slot was taken. */
const ACQUIRE = new RedisScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
local ttl = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
`);

/**
 * KEYS[1]: the node set; KEYS[2..]: lease sets. ARGV: ttl, node id, then one lease id per lease
 * set key. Renews this node and its leases (re-adding any that expired while Redis was away:
 * the connections are still held); returns the number of live nodes.
 */
const HEARTBEAT = new RedisScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ttl)
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], now + ttl, ARGV[i + 1])
  redis.call('PEXPIRE', KEYS[i], ttl)
end
return redis.call('ZCARD', KEYS[1])
`);

const REJECT_CLOSED: RateOutcome = Object.freeze({ action: 'reject', delayMs: 0, retryAfterMs: 1_000, index: 0 });
const ACTIONS = ['pass', 'delay', 'reject'] as const;

/** How a slot was granted, so its release goes back to the same place. */
type Grant = { readonly where: 'redis'; readonly lease: string } | { readonly where: 'local' } | { readonly where: 'open' };
const LOCAL: Grant = { where: 'local' };
const OPEN: Grant = { where: 'open' };

export class SharedLimitStore implements LimitStore {
  readonly #redis: SharedRedis;
  readonly #client: RedisClient;
  readonly #policy: 'local' | 'open' | 'closed';
  readonly #leaseTtl: number;
  readonly #nodeId = randomUUID();
  readonly #local = new MemoryLimitStore();
  /** "zone\0key" → how each slot this node holds was granted (most recent last). */
  readonly #grants = new Map<string, Grant[]>();
  readonly #heartbeat: NodeJS.Timeout;
  #leaseSeq = 0;
  /** The node set's size at the last heartbeat (at least 1: this node). */
  #nodes = 1;
  /** Limit decisions made by `onRedisDown` rather than by Redis (metrics). */
  fallbacks = 0;

  constructor(redis: SharedRedis) {
    this.#redis = redis;
    this.#client = redis.client;
    this.#policy = redis.settings.onRedisDown;
    this.#leaseTtl = redis.settings.leaseTtl;
    this.#heartbeat = setInterval(() => void this.#beat(), Math.max(250, Math.floor(this.#leaseTtl / 3)));
    this.#heartbeat.unref();
    redis.onChange((up) => {
      if (up) void this.#beat();
    });
    if (redis.up) void this.#beat();
  }

  /** Nodes seen in the node set at the last heartbeat. */
  get nodes(): number {
    return this.#nodes;
  }

  /** This node's id in the node set (and in its lease ids). */
  get nodeId(): string {
    return this.#nodeId;
  }

  take(checks: readonly RateCheck[]): RateOutcome | Promise<RateOutcome> {
    if (!this.#redis.up) return this.#fallbackTake(checks);
    const keys: string[] = [];
    const args: string[] = [];
    for (const check of checks) {
      keys.push(this.#redis.key('rate', check.zone, check.key));
      args.push(String(check.rate), String(check.burst), check.delay === Infinity ? '-1' : String(check.delay));
    }
    return TAKE.run(this.#client, keys, args).then(
      (reply) => {
        const [action, delayMs, retryAfterMs, index] = reply as [number, number, number, number];
        return action === 0 ? PASS : { action: ACTIONS[action] ?? 'pass', delayMs, retryAfterMs, index };
      },
      () => this.#fallbackTake(checks),
    );
  }

  acquire(zone: string, key: string, max: number): boolean | Promise<boolean> {
    const slot = `${zone}\0${key}`;
    if (!this.#redis.up) return this.#fallbackAcquire(slot, zone, key, max);
    const lease = `${this.#nodeId}:${++this.#leaseSeq}`;
    return ACQUIRE.run(this.#client, [this.#redis.key('conn', zone, key)], [String(max), lease, String(this.#leaseTtl)]).then(
      (taken) => {
        if (taken !== 1) return false;
        this.#grant(slot, { where: 'redis', lease });
        return true;
      },
      () => this.#fallbackAcquire(slot, zone, key, max),
    );
  }

  release(zone: string, key: string): void {
    const slot = `${zone}\0${key}`;
    const grants = this.#grants.get(slot);
    const grant = grants?.pop();
    if (grants?.length === 0) this.#grants.delete(slot);
    if (grant === undefined || grant.where === 'open') return;
    if (grant.where === 'local') {
      this.#local.release(zone, key);
      return;
    }
    // A release that cannot reach Redis is not retried: the lease expires by itself.
    if (this.#redis.up) this.#client.zRem(this.#redis.key('conn', zone, key), grant.lease).catch(() => undefined);
  }

  /** Slots this node holds for `key` (tests, diagnostics). */
  held(zone: string, key: string): number {
    return this.#grants.get(`${zone}\0${key}`)?.length ?? 0;
  }

  /** Stops renewing; gives back this node's leases and membership (a clean stop frees its slots at once). */
  async close(): Promise<void> {
    clearInterval(this.#heartbeat);
    if (!this.#redis.up) return;
    const removals: Promise<unknown>[] = [this.#client.zRem(this.#redis.key('nodes'), this.#nodeId)];
    for (const [slot, grants] of this.#grants) {
      const split = slot.indexOf('\0');
      const leases = grants.flatMap((grant) => (grant.where === 'redis' ? [grant.lease] : []));
      if (leases.length > 0) removals.push(this.#client.zRem(this.#redis.key('conn', slot.slice(0, split), slot.slice(split + 1)), leases));
    }
    this.#grants.clear();
    await Promise.allSettled(removals);
  }

  #grant(slot: string, grant: Grant): void {
    const grants = this.#grants.get(slot);
    if (grants) grants.push(grant);
    else this.#grants.set(slot, [grant]);
  }

  #fallbackTake(checks: readonly RateCheck[]): RateOutcome {
    this.fallbacks++;
    if (this.#policy === 'open') return PASS;
    if (this.#policy === 'closed') return REJECT_CLOSED;
    const nodes = this.#nodes;
    return this.#local.take(nodes <= 1 ? checks : checks.map((check) => ({ ...check, rate: Math.max(1, Math.floor(check.rate / nodes)) })));
  }

  #fallbackAcquire(slot: string, zone: string, key: string, max: number): boolean {
    this.fallbacks++;
    if (this.#policy === 'closed') return false;
    if (this.#policy === 'open') {
      this.#grant(slot, OPEN);
      return true;
    }
    if (!this.#local.acquire(zone, key, Math.max(1, Math.ceil(max / this.#nodes)))) return false;
    this.#grant(slot, LOCAL);
    return true;
  }

  async #beat(): Promise<void> {
    if (!this.#redis.up) return;
    const keys = [this.#redis.key('nodes')];
    const args = [String(this.#leaseTtl), this.#nodeId];
    for (const [slot, grants] of this.#grants) {
      const split = slot.indexOf('\0');
      const setKey = this.#redis.key('conn', slot.slice(0, split), slot.slice(split + 1));
      for (const grant of grants) {
        if (grant.where !== 'redis') continue;
        keys.push(setKey);
        args.push(grant.lease);
      }
    }
    try {
      const nodes = await HEARTBEAT.run(this.#client, keys, args);
      if (typeof nodes === 'number' && nodes >= 1) this.#nodes = nodes;
    } catch {
      // Redis is down or slow: the next beat tries again; the last node count stands.
    }
  }
}
