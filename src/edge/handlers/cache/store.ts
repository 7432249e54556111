/**
 * What a cache store keeps, and the `CacheStore` interface every tier implements (memory.ts,
 * disk.ts, and the two together in tiered.ts), so that another one (Redis, for several nodes)
 * can be added without touching the handler. Shaped like undici's cache store: a lookup, a
 * streaming writer, deletes, plus what a shared proxy cache needs (Vary index per primary key,
 * purge by key or prefix).
 *
 * Keys: the primary key is the route's key template evaluated ("http://example.com/a?b"); a
 * stored response lives under `primary + "\0" + secondary`, the secondary key being the
 * normalised values of the fields its Vary names (policy.ts secondaryKey, RFC 9111 §4.1). The
 * Vary names of a primary key are kept beside it (`vary`) so a lookup knows which fields to read.
 */
import type { Readable } from 'node:stream';
import { parseHttpDate } from '../../http/date.js';
import { field, qualifiedFields, responseDirectives, type Directives, type Freshness } from './policy.js';

/** The JSON-serialisable description of a stored response (the disk tier's entry header). */
export interface StoredMeta {
  /** Primary key. */
  readonly key: string;
  readonly secondary: string;
  readonly status: number;
  /** Flat [name, value, …], names lower case, as stored (hop-by-hop, Age and dropped fields removed). */
  readonly headers: readonly string[];
  /** §4.2.3: when the request that got this response was sent, and when the response came (ms). */
  readonly requestTime: number;
  readonly responseTime: number;
  /** Seconds (§4.2.1), computed when stored or freshened. */
  readonly lifetime: number;
  /** corrected_initial_age, seconds (§4.2.3). */
  readonly initialAge: number;
  readonly bodySize: number;
  /** The RFC 9213 targeted field whose directives govern this response (then Cache-Control does not), when one does. */
  readonly targeted?: string;
  /** Stored fields not sent on a hit (targeted fields the route strips before the client). */
  readonly hiddenOnHit?: readonly string[];
}

export const fullKey = (primary: string, secondary: string): string => `${primary}\0${secondary}`;

const NO_TARGETED: readonly string[] = [];

/** Fields not sent from a stored response as they are: we send our own Age (RFC 9111 §5.1). */
const REPLACED_ON_HIT = new Set(['age', 'content-length']);

/**
 * A stored response ready to serve: its metadata and what is derived from it once (directives,
 * validators, the header list a hit sends), and its body, in memory or on disk.
 */
export class CacheEntry implements Freshness {
  readonly meta: StoredMeta;
  readonly directives: Directives;
  readonly lifetime: number;
  readonly initialAge: number;
  readonly responseTime: number;
  readonly etag: string | null;
  readonly lastModified: string | null;
  /** For If-Modified-Since (RFC 9111 §4.3.2: Last-Modified, else Date, else when received). */
  readonly modifiedMs: number;
  /** The header list a hit sends (before Age and Cache-Status), computed once. */
  readonly hitHeaders: readonly string[];
  /** The body when held in memory, else null (then `open` streams it). */
  readonly body: Buffer | null;
  readonly open: ((entry: CacheEntry) => Promise<Readable>) | null;
  /**
   * Compressed copies of the body by content coding (the route's `encode`), made once from a
   * memory body so hits do not compress again; their head has Content-Encoding, Vary and a weak
   * ETag as the on-the-fly filter would write them. Memory only.
   */
  variants: Map<string, { readonly headers: readonly string[]; readonly body: Buffer }> | null = null;
  /** Codings being compressed now (one compression per coding). */
  pending: Set<string> | null = null;
  readonly #baseSize: number;
  /** Memoised `Cache-Status`/`Age` per whole second, so a hit builds no strings (see handler). */
  stampSecond = -1;
  stampAge = '';
  stampTtl = 0;

  constructor(meta: StoredMeta, body: Buffer | null, open: ((entry: CacheEntry) => Promise<Readable>) | null = null) {
    this.meta = meta;
    this.body = body;
    this.open = open;
    this.directives = responseDirectives(meta.headers, meta.targeted === undefined ? NO_TARGETED : [meta.targeted]).directives;
    this.lifetime = meta.lifetime;
    this.initialAge = meta.initialAge;
    this.responseTime = meta.responseTime;
    this.etag = field(meta.headers, 'etag') ?? null;
    this.lastModified = field(meta.headers, 'last-modified') ?? null;
    const lm = parseHttpDate(this.lastModified ?? undefined);
    const date = parseHttpDate(field(meta.headers, 'date'));
    this.modifiedMs = !Number.isNaN(lm) ? lm : !Number.isNaN(date) ? date : meta.responseTime;
    // §5.2.2.4: fields named by a qualified no-cache are not sent without revalidation; a hit
    // is by definition not revalidated.
    const hidden = qualifiedFields(this.directives, 'no-cache');
    const hit: string[] = [];
    for (let i = 0; i < meta.headers.length; i += 2) {
      const name = meta.headers[i] as string;
      if (REPLACED_ON_HIT.has(name) || hidden?.includes(name) || meta.hiddenOnHit?.includes(name)) continue;
      hit.push(name, meta.headers[i + 1] as string);
    }
    // The stored body's length, whatever framing the upstream used (chunked has none).
    if (meta.status !== 204 && meta.status !== 304) hit.push('content-length', String(meta.bodySize));
    this.hitHeaders = hit;
    let headerBytes = 0;
    for (const item of meta.headers) headerBytes += item.length;
    this.#baseSize = (body?.length ?? 0) + headerBytes + 256;
  }

  /** Bytes accounted in a memory tier (the body, headers, and compressed variants). */
  get size(): number {
    let size = this.#baseSize;
    if (this.variants) for (const variant of this.variants.values()) size += variant.body.length + 256;
    return size;
  }
}

export type FillLock = { readonly leader: true; release(): void } | { readonly leader: false; readonly released: boolean };

/** Takes a response body as it streams from the upstream; `end` commits it, `abort` drops it. */
export interface EntryWriter {
  write(chunk: Buffer): void;
  /** Commits the entry (atomically: before this resolves, no lookup sees a partial one). */
  end(): Promise<void>;
  abort(): void;
}

/**
 * A writer that keeps the body in memory up to `maxSize` bytes (past it, the entry is dropped)
 * and hands it whole to `commit` at the end: the memory tier's and the Redis tier's.
 */
export function bufferingWriter(maxSize: number, commit: (body: Buffer, size: number) => Promise<void> | void): EntryWriter {
  const chunks: Buffer[] = [];
  let size = 0;
  let dropped = false;
  return {
    write(chunk) {
      if (dropped) return;
      size += chunk.length;
      if (size > maxSize) {
        dropped = true;
        chunks.length = 0;
        return;
      }
      chunks.push(chunk);
    },
    async end() {
      if (!dropped) await commit(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size), size);
    },
    abort() {
      dropped = true;
      chunks.length = 0;
    },
  };
}

export interface CacheStore {
  /** A lookup answered without I/O (the memory tier), or undefined: then call `get`. */
  peek(key: string): CacheEntry | undefined;
  get(key: string): Promise<CacheEntry | undefined>;
  /** Starts storing a response; null when this store will not take it (too big, closed). */
  open(meta: StoredMeta): EntryWriter | null;
  /** Replaces the metadata of a stored response (a 304 freshened it, RFC 9111 §4.3.4), keeping its body. */
  update(entry: CacheEntry, meta: StoredMeta): Promise<CacheEntry | undefined>;
  delete(key: string): Promise<void>;
  /** Removes every variant of a primary key, or of every primary key starting with `key` when `prefix`; resolves with how many. */
  purge(key: string, prefix: boolean): Promise<number>;
  /** The Vary names known for a primary key without I/O, or undefined when unknown here. */
  peekVary(primary: string): readonly string[] | undefined;
  getVary(primary: string): Promise<readonly string[]>;
  setVary(primary: string, names: readonly string[]): void;
  /** An entry grew (a compressed variant was added): account its new size where it is held. */
  resize(entry: CacheEntry): void;
  /**
   * Coalescing across processes that share this store (optional): the first caller for a key
   * becomes the leader (and calls `release` once its entry is committed); the others wait until
   * it releases (`released`) or `timeoutMs` passes, then look the key up again.
   */
  lockFill?(key: string, timeoutMs: number): Promise<FillLock>;
  /**
   * After a purge here: tells the other copies of this store in the node (each edge worker's
   * memory tier) to drop the same key or prefix; resolves once they all have (or after a
   * bounded wait), so that a purge answered 200 is a purge no worker serves from, with the most
   * entries one of them dropped (a worker other than this one may be the only one that had it).
   * Absent when there are none to tell.
   */
  announcePurge?(key: string, prefix: boolean): Promise<number>;
  /** Plain data for the admin API and metrics: entries and bytes per tier. */
  snapshot?(): CacheZoneSnapshot;
  close(): Promise<void>;
}

/**
 * A purge for the whole node: this store's tiers, then the other workers' memory tiers. The count
 * is the most entries one worker dropped: the worker that got the purge may never have stored the
 * entry, so 0 here is not "not cached" while another worker had it.
 */
export async function purgeInNode(store: CacheStore, key: string, prefix: boolean): Promise<number> {
  const here = await store.purge(key, prefix);
  return Math.max(here, (await store.announcePurge?.(key, prefix)) ?? 0);
}

/** What a zone holds, as plain data. */
export interface CacheZoneSnapshot {
  readonly name: string;
  readonly memory: { readonly entries: number; readonly bytes: number; readonly maxBytes: number };
  readonly disk: { readonly entries: number; readonly bytes: number; readonly maxBytes: number; readonly dir: string } | null;
}
