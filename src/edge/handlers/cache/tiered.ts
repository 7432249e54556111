/**
 * A zone (nginx `keys_zone`): the memory tier in front of an optional disk tier and an optional
 * Redis tier shared by every node (`state`, redis.ts), as one CacheStore. Lookups try memory,
 * then disk, then Redis (a small entry found further down is promoted to memory); writes go to
 * every tier as the body streams; deletes and purges reach them all.
 *
 * Zones outlive config generations (a reload keeps what is cached): the node's CacheZones
 * (cache/zones.ts) hands out the same zone while its settings are unchanged.
 */
import type { ResolvedCacheZone } from '../../../config/resolved.js';
import { DiskStore } from './disk.js';
import { MemoryStore } from './memory.js';
import type { RedisCacheTier } from './redis.js';
import type { CacheEntry, CacheStore, CacheZoneSnapshot, EntryWriter, FillLock, StoredMeta } from './store.js';

export class TieredStore implements CacheStore {
  readonly name: string;
  readonly memory: MemoryStore;
  readonly disk: DiskStore | null;
  readonly shared: RedisCacheTier | null;
  readonly #announce: ((key: string, prefix: boolean) => Promise<number>) | null;

  /** `announce`: tells the node's other edge workers of a purge (null: there are none); `shared`: the fleet's Redis tier of this zone. */
  constructor(settings: ResolvedCacheZone, announce: ((key: string, prefix: boolean) => Promise<number>) | null = null, shared: RedisCacheTier | null = null) {
    this.name = settings.name;
    this.shared = shared;
    this.#announce = announce;
    this.memory = new MemoryStore({ maxSize: settings.memorySize, maxEntrySize: settings.memoryEntryMax });
    this.disk = settings.dir === null ? null : new DiskStore({ dir: settings.dir, maxSize: settings.diskSize, readWholeBelow: this.memory.maxEntrySize });
  }

  peek(key: string): CacheEntry | undefined {
    return this.memory.peek(key);
  }

  async get(key: string): Promise<CacheEntry | undefined> {
    const hit = this.memory.peek(key);
    if (hit || (!this.disk && !this.shared)) return hit;
    const found = (await this.disk?.get(key)) ?? (await this.shared?.get(key));
    if (found?.body) this.memory.put(found);
    return found;
  }

  open(meta: StoredMeta): EntryWriter | null {
    const writers = [this.memory.open(meta), this.disk?.open(meta) ?? null, this.shared?.open(meta) ?? null].filter((w): w is EntryWriter => w !== null);
    if (writers.length === 0) return null;
    if (writers.length === 1) return writers[0] as EntryWriter;
    return {
      write(chunk) {
        for (const writer of writers) writer.write(chunk);
      },
      async end() {
        await Promise.all(writers.map((writer) => writer.end()));
      },
      abort() {
        for (const writer of writers) writer.abort();
      },
    };
  }

  async update(entry: CacheEntry, meta: StoredMeta): Promise<CacheEntry | undefined> {
    const [fromDisk, fromMemory] = await Promise.all([this.disk?.update(entry, meta), this.memory.update(entry, meta), this.shared?.update(entry, meta)]);
    return fromMemory ?? fromDisk;
  }

  async delete(key: string): Promise<void> {
    await Promise.all([this.memory.delete(key), this.disk?.delete(key), this.shared?.delete(key)]);
  }

  async purge(key: string, prefix: boolean): Promise<number> {
    const [local, shared] = await Promise.all([this.purgeLocal(key, prefix), this.shared?.purge(key, prefix) ?? 0]);
    return Math.max(local, shared);
  }

  /** Purges this node's tiers (memory and disk), not the shared one: another node's purge, relayed. */
  async purgeLocal(key: string, prefix: boolean): Promise<number> {
    const [inMemory, onDisk] = await Promise.all([this.memory.purge(key, prefix), this.disk?.purge(key, prefix) ?? 0]);
    // An entry is usually in several tiers: count the larger.
    return Math.max(inMemory, onDisk);
  }

  peekVary(primary: string): readonly string[] | undefined {
    return this.memory.peekVary(primary);
  }

  async getVary(primary: string): Promise<readonly string[]> {
    const known = this.memory.peekVary(primary);
    if (known || (!this.disk && !this.shared)) return known ?? [];
    let names = this.disk ? await this.disk.getVary(primary) : [];
    if (names.length === 0 && this.shared) names = (await this.shared.getVary(primary)) ?? [];
    this.memory.setVary(primary, names);
    return names;
  }

  setVary(primary: string, names: readonly string[]): void {
    const known = this.memory.peekVary(primary);
    if (known && known.length === names.length && known.every((name, i) => name === names[i])) return;
    this.memory.setVary(primary, names);
    this.disk?.setVary(primary, names);
    this.shared?.setVary(primary, names);
  }

  resize(entry: CacheEntry): void {
    this.memory.resize(entry);
  }

  lockFill(key: string, timeoutMs: number): Promise<FillLock> {
    // Memory only: one process, the handler's own lock is all there is.
    return this.disk ? this.disk.lockFill(key, timeoutMs) : Promise.resolve({ leader: true, release: () => {} });
  }

  async announcePurge(key: string, prefix: boolean): Promise<number> {
    return (await this.#announce?.(key, prefix)) ?? 0;
  }

  snapshot(): CacheZoneSnapshot {
    return { name: this.name, memory: this.memory.usage(), disk: this.disk?.usage() ?? null };
  }

  async close(): Promise<void> {
    await Promise.all([this.memory.close(), this.disk?.close()]);
  }
}
