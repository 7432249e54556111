/**
 * The memory tier: an LRU (lru-cache) bounded in bytes (bodies plus an estimate of headers), per
 * process. Entries larger than `maxEntrySize` are never held here (they stream from disk).
 */
import { LRUCache } from 'lru-cache';
import { bufferingWriter, CacheEntry, fullKey, type CacheStore, type EntryWriter, type StoredMeta } from './store.js';

export interface MemoryOptions {
  readonly maxSize: number;
  readonly maxEntrySize: number;
}

export class MemoryStore implements CacheStore {
  readonly #entries: LRUCache<string, CacheEntry>;
  /** Vary names by primary key; many more keys than entries cost little. */
  readonly #vary = new LRUCache<string, readonly string[]>({ max: 100_000 });
  /** Full keys by primary key, for purge (kept in step by the LRU's dispose). */
  readonly #variants = new Map<string, Set<string>>();
  readonly #maxEntrySize: number;

  constructor(options: MemoryOptions) {
    this.#maxEntrySize = Math.min(options.maxEntrySize, options.maxSize);
    this.#entries = new LRUCache<string, CacheEntry>({
      maxSize: Math.max(1, options.maxSize),
      sizeCalculation: (entry) => Math.max(1, entry.size),
      dispose: (_entry, key) => this.#forget(key),
    });
  }

  get maxEntrySize(): number {
    return this.#maxEntrySize;
  }

  /** Entries held and their bytes, and the bound (for snapshots). */
  usage(): { entries: number; bytes: number; maxBytes: number } {
    return { entries: this.#entries.size, bytes: this.#entries.calculatedSize, maxBytes: this.#entries.maxSize };
  }

  #forget(key: string): void {
    const primary = key.slice(0, key.indexOf('\0'));
    const set = this.#variants.get(primary);
    if (!set) return;
    set.delete(key);
    if (set.size === 0) this.#variants.delete(primary);
  }

  /** Puts a complete entry (from the disk tier, or a writer's end). */
  put(entry: CacheEntry): void {
    if (entry.body === null || entry.body.length > this.#maxEntrySize) return;
    const key = fullKey(entry.meta.key, entry.meta.secondary);
    this.#entries.set(key, entry);
    if (!this.#entries.has(key)) return;
    let set = this.#variants.get(entry.meta.key);
    if (!set) this.#variants.set(entry.meta.key, (set = new Set()));
    set.add(key);
  }

  peek(key: string): CacheEntry | undefined {
    return this.#entries.get(key);
  }

  resize(entry: CacheEntry): void {
    const key = fullKey(entry.meta.key, entry.meta.secondary);
    // Only the entry held now (a newer response may have replaced it meanwhile).
    if (this.#entries.peek(key) === entry) this.#entries.set(key, entry);
  }

  get(key: string): Promise<CacheEntry | undefined> {
    return Promise.resolve(this.#entries.get(key));
  }

  open(meta: StoredMeta): EntryWriter | null {
    if (meta.bodySize > this.#maxEntrySize) return null;
    return bufferingWriter(this.#maxEntrySize, (body, size) => this.put(new CacheEntry({ ...meta, bodySize: size }, body)));
  }

  update(entry: CacheEntry, meta: StoredMeta): Promise<CacheEntry | undefined> {
    if (entry.body === null) return Promise.resolve(undefined);
    const next = new CacheEntry({ ...meta, bodySize: entry.body.length }, entry.body);
    this.put(next);
    return Promise.resolve(next);
  }

  delete(key: string): Promise<void> {
    this.#entries.delete(key);
    return Promise.resolve();
  }

  purge(key: string, prefix: boolean): Promise<number> {
    let count = 0;
    const primaries = prefix ? [...this.#variants.keys()].filter((primary) => primary.startsWith(key)) : [key];
    for (const primary of primaries) {
      for (const full of [...(this.#variants.get(primary) ?? [])]) if (this.#entries.delete(full)) count++;
      this.#vary.delete(primary);
    }
    if (prefix) for (const primary of [...this.#vary.keys()]) if (primary.startsWith(key)) this.#vary.delete(primary);
    return Promise.resolve(count);
  }

  peekVary(primary: string): readonly string[] | undefined {
    return this.#vary.get(primary);
  }

  getVary(primary: string): Promise<readonly string[]> {
    return Promise.resolve(this.#vary.get(primary) ?? []);
  }

  setVary(primary: string, names: readonly string[]): void {
    this.#vary.set(primary, names);
  }

  close(): Promise<void> {
    this.#entries.clear();
    this.#vary.clear();
    return Promise.resolve();
  }
}
