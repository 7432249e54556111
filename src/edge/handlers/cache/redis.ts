/**
 * The Redis tier of a cache zone (`state.cacheEntryMax`): responses up to that size are stored
 * in Redis too, where every node finds them, with Vary and freshness exactly as the local tiers
 * keep them (the same StoredMeta travels with the body). Larger bodies stay on each node's memory
 * and disk tiers. Every call is bounded by `state.redis.timeout`; a Redis that is down or slow
 * makes a lookup a miss and a write a no-op, never an error or a wait.
 *
 * Layout, under the fleet's prefix: `cache:<zone>:e:<primary>\0<secondary>` holds one response
 * (a 4-byte length, the StoredMeta as JSON, the body); `cache:<zone>:v:<primary>` the Vary names
 * of a primary key (JSON); `cache:<zone>:s:<primary>` the set of its stored variants' keys, so a
 * purge of a key (or an unsafe method's invalidation, on the request path) removes them without
 * scanning the keyspace (only a prefix purge scans). An entry expires an hour after it stops being fresh (it may still be
 * revalidated or served stale meanwhile); Redis's own `maxmemory-policy` bounds the rest.
 */
import type { SharedRedis } from '../../../state/redis.js';
import { RedisScript } from '../../../state/script.js';
import { bufferingWriter, CacheEntry, type EntryWriter, type StoredMeta } from './store.js';

/** How long past its freshness an entry is kept (for revalidation and stale serving). */
const KEPT_AFTER_STALE_MS = 3_600_000;
/** Keys per SCAN step of a purge. */
const SCAN_COUNT = 500;

/**
 * KEYS: the entry, its primary key's variant set. ARGV: the value, its ttl (ms). Stores the entry
 * and indexes it; the set lives as long as its longest-lived entry.
 */
const PUT = new RedisScript(`
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], KEYS[1])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
return 1
`);

/** KEYS: a primary key's variant set, its Vary names. Removes every variant it lists, and both; returns how many entries there were. */
const PURGE_KEY = new RedisScript(`
local removed = 0
for _, entry in ipairs(redis.call('SMEMBERS', KEYS[1])) do removed = removed + redis.call('UNLINK', entry) end
redis.call('UNLINK', KEYS[1], KEYS[2])
return removed
`);

/** A glob pattern matching `text` literally (SCAN MATCH), followed by `*`. */
function literalPrefix(text: string): string {
  return `${text.replace(/[*?[\]\\]/g, (c) => `\\${c}`)}*`;
}

export class RedisCacheTier {
  readonly #redis: SharedRedis;
  readonly #entryPrefix: string;
  readonly #varyPrefix: string;
  readonly #variantsPrefix: string;
  readonly maxEntrySize: number;

  constructor(redis: SharedRedis, zone: string) {
    this.#redis = redis;
    this.#entryPrefix = redis.key('cache', zone, 'e:');
    this.#varyPrefix = redis.key('cache', zone, 'v:');
    this.#variantsPrefix = redis.key('cache', zone, 's:');
    this.maxEntrySize = redis.settings.cacheEntryMax;
  }

  async get(key: string): Promise<CacheEntry | undefined> {
    if (!this.#redis.up) return undefined;
    try {
      const value = (await this.#redis.binary.get(this.#entryPrefix + key)) as Buffer | null;
      return value === null ? undefined : decode(value);
    } catch {
      return undefined;
    }
  }

  open(meta: StoredMeta): EntryWriter | null {
    if (meta.bodySize > this.maxEntrySize || !this.#redis.up) return null;
    return bufferingWriter(this.maxEntrySize, (body, size) => this.#put({ ...meta, bodySize: size }, body));
  }

  /** A 304 freshened a stored response: the shared copy gets the new metadata too. */
  async update(entry: CacheEntry, meta: StoredMeta): Promise<void> {
    if (entry.body === null || entry.body.length > this.maxEntrySize) return;
    await this.#put({ ...meta, bodySize: entry.body.length }, entry.body);
  }

  async delete(key: string): Promise<void> {
    if (!this.#redis.up) return;
    const entry = this.#entryPrefix + key;
    const primary = key.slice(0, key.indexOf('\0'));
    await Promise.all([this.#redis.client.unlink(entry), this.#redis.client.sRem(this.#variantsPrefix + primary, entry)]).catch(() => 0);
  }

  /** Every variant of `key` (a primary key), or of every primary key starting with it; resolves with how many entries went. */
  async purge(key: string, prefix: boolean): Promise<number> {
    if (!this.#redis.up) return 0;
    try {
      if (!prefix) return Number(await PURGE_KEY.run(this.#redis.client, [this.#variantsPrefix + key, this.#varyPrefix + key], []));
      const entries = await this.#scan(this.#entryPrefix + key);
      const all = [...entries, ...(await this.#scan(this.#varyPrefix + key)), ...(await this.#scan(this.#variantsPrefix + key))];
      for (let i = 0; i < all.length; i += SCAN_COUNT) await this.#redis.client.unlink(all.slice(i, i + SCAN_COUNT));
      return entries.length;
    } catch {
      return 0;
    }
  }

  async getVary(primary: string): Promise<readonly string[] | undefined> {
    if (!this.#redis.up) return undefined;
    try {
      const value = await this.#redis.client.get(this.#varyPrefix + primary);
      return value === null ? undefined : (JSON.parse(value) as string[]);
    } catch {
      return undefined;
    }
  }

  setVary(primary: string, names: readonly string[]): void {
    if (!this.#redis.up) return;
    this.#redis.client.set(this.#varyPrefix + primary, JSON.stringify(names), { expiration: { type: 'PX', value: 7 * 86_400_000 } }).catch(() => undefined);
  }

  async #put(meta: StoredMeta, body: Buffer): Promise<void> {
    if (!this.#redis.up) return;
    const fresh = Math.max(0, meta.lifetime - meta.initialAge) * 1000;
    const ttl = Math.ceil(fresh + KEPT_AFTER_STALE_MS);
    await PUT.run(this.#redis.client, [this.#entryPrefix + `${meta.key}\0${meta.secondary}`, this.#variantsPrefix + meta.key], [encode(meta, body), String(ttl)]).catch(() => undefined);
  }

  async #scan(prefix: string): Promise<string[]> {
    const found: string[] = [];
    for await (const keys of this.#redis.client.scanIterator({ MATCH: literalPrefix(prefix), COUNT: SCAN_COUNT })) found.push(...keys);
    return found;
  }
}

function encode(meta: StoredMeta, body: Buffer): Buffer {
  const head = Buffer.from(JSON.stringify(meta));
  const length = Buffer.allocUnsafe(4);
  length.writeUInt32BE(head.length);
  return Buffer.concat([length, head, body]);
}

/** An entry as stored, or undefined when it does not parse (a foreign or truncated value is a miss). */
function decode(value: Buffer): CacheEntry | undefined {
  if (value.length < 4) return undefined;
  const headLength = value.readUInt32BE(0);
  if (4 + headLength > value.length) return undefined;
  try {
    const meta = JSON.parse(value.subarray(4, 4 + headLength).toString()) as StoredMeta;
    const body = value.subarray(4 + headLength);
    if (typeof meta.key !== 'string' || meta.bodySize !== body.length) return undefined;
    return new CacheEntry(meta, body);
  } catch {
    return undefined;
  }
}
