/**
 * What the static handler knows about files, cached (nginx `open_file_cache` plus, for small
 * files, the bytes themselves). Why hand-written around lru-cache: the hot path must answer a
 * repeated request for a small file without a syscall, a promise or a header computation, and
 * that needs entries that carry precomputed response headers; the LRU bookkeeping itself is
 * lru-cache's (bounded in bytes).
 *
 * Freshness: an entry is trusted for `validity` ms, then its metadata is checked again with one
 * `stat` (shared by concurrent requests); a changed file is reloaded. So an edit is visible within
 * `validity` (default 1 s), as with nginx's `open_file_cache_valid`.
 */
import type { Stats } from 'node:fs';
import { readFile, realpath, stat } from 'node:fs/promises';
import { extname, sep } from 'node:path';
import { LRUCache } from 'lru-cache';
import mime from 'mime-types';
import type { ResolvedStatic } from '../../../config/resolved.js';

export type Encoding = 'br' | 'gzip' | 'zstd';
export const ENCODING_SUFFIX: Readonly<Record<Encoding, string>> = { br: '.br', gzip: '.gz', zstd: '.zst' };

export interface FileEntry {
  readonly kind: 'file';
  readonly path: string;
  readonly size: number;
  readonly mtimeMs: number;
  readonly ino: number;
  readonly etag: string | null;
  readonly lastModified: string | null;
  readonly contentType: string;
  /** The coding of a precompressed sibling (`file.gz` → "gzip"), null for the file itself. */
  readonly encoding: Encoding | null;
  /** The whole file, when it is small enough to keep; else null (streamed from disk). */
  readonly body: Buffer | null;
  /** Headers of a full 200 answer, flat [name, value, …]; copied before any change. */
  readonly headers: readonly string[];
  /** Precompressed siblings that exist (`file.br`, `file.gz`), best first in server preference. */
  readonly variants: readonly { readonly encoding: Encoding; readonly entry: FileEntry }[];
  /**
   * `body` compressed on the fly, per coding, kept so a hit is not compressed again (filled by
   * sendStoredBody on routes with `encode`; a promise while the first compression runs).
   */
  readonly encoded: Map<Encoding, Buffer | Promise<Buffer>>;
  checkedAt: number;
}

export interface DirectoryEntry {
  readonly kind: 'directory';
  readonly path: string;
  readonly mtimeMs: number;
  readonly ino: number;
  checkedAt: number;
}

export interface AbsentEntry {
  /** `missing`: no such file; `outside`: a symlink leads out of the root (or symlinks are denied). */
  readonly kind: 'missing' | 'outside' | 'other';
  readonly path: string;
  checkedAt: number;
}

export type PathEntry = FileEntry | DirectoryEntry | AbsentEntry;

const contentTypes = new Map<string, string>();
function contentTypeOf(path: string): string {
  const ext = extname(path).toLowerCase();
  let type = contentTypes.get(ext);
  if (type === undefined) {
    type = (ext && mime.contentType(ext)) || 'application/octet-stream';
    contentTypes.set(ext, type);
  }
  return type;
}

/** The sibling's type is the original's (`app.js.br` is JavaScript). */
function stripEncodingSuffix(path: string, encoding: Encoding | null): string {
  return encoding ? path.slice(0, -ENCODING_SUFFIX[encoding].length) : path;
}

function encodedBytes(entry: FileEntry): number {
  let bytes = 0;
  for (const body of entry.encoded.values()) if (!(body instanceof Promise)) bytes += body.length;
  return bytes;
}

export class FileCache {
  readonly #options: ResolvedStatic;
  readonly #lru: LRUCache<string, PathEntry>;
  readonly #pending = new Map<string, Promise<PathEntry>>();
  readonly #cacheControl: string | null;
  #rootReal: string | null = null;

  constructor(options: ResolvedStatic) {
    this.#options = options;
    this.#lru = new LRUCache<string, PathEntry>({
      max: 100_000,
      // Every entry costs its path and bookkeeping; small files also their bytes.
      maxSize: Math.max(options.hotCacheSize, 1024 * 1024),
      sizeCalculation: (entry) => 256 + entry.path.length + (entry.kind === 'file' && entry.body ? entry.body.length + encodedBytes(entry) : 0),
    });
    const maxAge = options.maxAge === null ? null : Math.floor(options.maxAge / 1000);
    this.#cacheControl = maxAge === null ? null : `public, max-age=${maxAge}${options.immutable ? ', immutable' : ''}`;
  }

  /**
   * A compressed body was added to `entry.encoded`: count its bytes against `hotCacheSize`.
   * (lru-cache computes a size when a value is set, and skips it for the same value: a shallow
   * copy, sharing the map, is set instead.)
   */
  account(entry: FileEntry): void {
    if (this.#lru.peek(entry.path)?.kind === 'file') this.#lru.set(entry.path, { ...entry });
  }

  /** The entry for an absolute path: synchronously when cached and fresh, else after a stat. */
  lookup(path: string, now: number): PathEntry | Promise<PathEntry> {
    const entry = this.#lru.get(path);
    if (entry && now - entry.checkedAt < this.#options.hotCacheValidity) return entry;
    let pending = this.#pending.get(path);
    if (!pending) {
      pending = this.#refresh(path, entry, now).finally(() => this.#pending.delete(path));
      this.#pending.set(path, pending);
    }
    return pending;
  }

  async #refresh(path: string, previous: PathEntry | undefined, now: number): Promise<PathEntry> {
    const entry = await this.#load(path, previous, null);
    entry.checkedAt = now;
    this.#lru.set(path, entry);
    return entry;
  }

  async #root(): Promise<string> {
    this.#rootReal ??= await realpath(this.#options.root).catch(() => this.#options.root);
    return this.#rootReal;
  }

  /** Is `path` (already joined under the root) allowed by the symlink policy? */
  async #symlinkAllowed(path: string): Promise<boolean> {
    if (this.#options.symlinks === 'follow') return true;
    const root = await this.#root();
    let real: string;
    try {
      real = await realpath(path);
    } catch {
      return false;
    }
    if (this.#options.symlinks === 'deny') {
      // No link anywhere below the root: the real path is the root's real path plus the same tail.
      return real === root + path.slice(this.#options.root.length).replace(/\/$/, '') || real === root;
    }
    return real === root || real.startsWith(root.endsWith(sep) ? root : root + sep);
  }

  async #load(path: string, previous: PathEntry | undefined, encoding: Encoding | null): Promise<PathEntry> {
    let stats: Stats;
    try {
      stats = await stat(path);
    } catch {
      return { kind: 'missing', path, checkedAt: 0 };
    }
    const known = previous && (previous.kind === 'file' || previous.kind === 'directory') ? previous : undefined;
    if (known && known.ino === stats.ino && known.mtimeMs === stats.mtimeMs && (known.kind === 'directory' || known.size === stats.size)) {
      const previous = known;
      // Unchanged: keep the entry (and its bytes), but siblings may have appeared or gone.
      if (previous.kind === 'file' && encoding === null && this.#options.precompressed.length > 0) {
        const variants = await this.#variants(path, previous.variants);
        // `Vary: Accept-Encoding` is in the precomputed headers only when siblings exist: when the
        // first one appears (or the last goes), rebuild them, or shared caches would keep serving
        // one coding to everyone (RFC 9110 §12.5.5).
        if (variants.length > 0 !== previous.variants.length > 0) return this.fileEntry(path, previous, previous.size, previous.body, null, variants);
        return { ...previous, variants };
      }
      return previous;
    }
    if (!(await this.#symlinkAllowed(path))) return { kind: 'outside', path, checkedAt: 0 };
    if (stats.isDirectory()) return { kind: 'directory', path, mtimeMs: stats.mtimeMs, ino: stats.ino, checkedAt: 0 };
    if (!stats.isFile()) return { kind: 'other', path, checkedAt: 0 };
    let body: Buffer | null = null;
    if (stats.size <= this.#options.hotFileMaxSize && this.#options.hotCacheSize > 0) {
      try {
        body = await readFile(path);
      } catch {
        return { kind: 'missing', path, checkedAt: 0 };
      }
    }
    // A file changed between stat and read: describe what was read.
    const size = body ? body.length : stats.size;
    return this.fileEntry(path, stats, size, body, encoding, encoding === null ? await this.#variants(path) : []);
  }

  async #variants(path: string, previous: FileEntry['variants'] = []): Promise<FileEntry['variants']> {
    const out: { encoding: Encoding; entry: FileEntry }[] = [];
    for (const encoding of this.#options.precompressed) {
      const before = previous.find((variant) => variant.encoding === encoding)?.entry;
      const entry = await this.#load(path + ENCODING_SUFFIX[encoding], before, encoding);
      if (entry.kind === 'file') out.push({ encoding, entry });
    }
    return out;
  }

  /** Builds a file entry (also used for large files right after `fstat`, with fresh stats). */
  fileEntry(path: string, stats: Pick<Stats, 'mtimeMs' | 'ino'>, size: number, body: Buffer | null, encoding: Encoding | null, variants: FileEntry['variants']): FileEntry {
    const options = this.#options;
    // nginx's strong validator: "<mtime seconds hex>-<size hex>", plus the coding for a
    // precompressed sibling: RFC 9110 §8.8.3 wants distinct tags for distinct representations,
    // and `file.br` and `file.gz` can share size and mtime second. Equal tags would let a cache
    // revalidate its br copy on behalf of a gzip-only client and be told 304.
    const etag = options.etag ? `"${Math.floor(stats.mtimeMs / 1000).toString(16)}-${size.toString(16)}${encoding ? `-${encoding}` : ''}"` : null;
    const lastModified = options.lastModified ? new Date(Math.floor(stats.mtimeMs / 1000) * 1000).toUTCString() : null;
    const contentType = contentTypeOf(stripEncodingSuffix(path, encoding));
    const headers: string[] = ['Content-Type', contentType, 'Content-Length', String(size), 'Accept-Ranges', 'bytes'];
    if (etag) headers.push('ETag', etag);
    if (lastModified) headers.push('Last-Modified', lastModified);
    if (this.#cacheControl) headers.push('Cache-Control', this.#cacheControl);
    if (encoding) headers.push('Content-Encoding', encoding);
    if (encoding || variants.length > 0) headers.push('Vary', 'Accept-Encoding');
    return { kind: 'file', path, size, mtimeMs: stats.mtimeMs, ino: stats.ino, etag, lastModified, contentType, encoding, body, headers, variants, encoded: new Map(), checkedAt: 0 };
  }
}
