/**
 * The disk tier: one directory shared by every edge process of a node, surviving restarts (nginx
 * `proxy_cache_path`). Each stored response is one file:
 *
 *   <dir>/<h0>/<h1h2>/<hash(primary)>-<hash(secondary)>      (nginx `levels=1:2`)
 *
 *   offset 0   8  magic "PORTICO1"
 *          8   4  header length (u32 LE)
 *         12   4  CRC-32 of the header
 *         16   8  body length (u64 LE)
 *         24   4  CRC-32 of the body
 *         28   4  CRC-32 of bytes 0..28
 *         32      header: StoredMeta as JSON, then the body
 *
 * Crash safety: an entry is written to `<dir>/tmp/<pid>-<n>` and renamed into place only once
 * complete (rename(2) is atomic within a file system), so a process killed mid-write leaves a
 * temporary file that no lookup ever opens (removed at the next start when its pid is gone).
 * Independently, every read checks the magic, the prefix CRC, that the file is exactly as long
 * as the lengths say, the header CRC, and the body CRC (whole, before serving a body held in
 * memory; as it streams for larger ones, cutting the response on a mismatch): a torn or corrupt
 * file is deleted and treated as a miss, never served. No fsync: a kill cannot tear a renamed
 * file; after a power loss a file may be short or zeroed, which the checks catch.
 *
 * Size bound: each process keeps an index of the files it knows (scanned at start, its own
 * writes, rescanned periodically to see other processes' writes) in least-recently-used order,
 * and deletes from the cold end when the total passes `maxSize` (nginx's cache manager does
 * this in one process; here every process may, deletions of a missing file are harmless).
 */
import { createHash } from 'node:crypto';
import { createReadStream, type ReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { Transform } from 'node:stream';
import { crc32 } from 'node:zlib';
import { log } from '../../../core/log.js';
import { CacheEntry, fullKey, type CacheStore, type EntryWriter, type FillLock, type StoredMeta } from './store.js';

const MAGIC = Buffer.from('PORTICO1', 'latin1');
const PREFIX = 32;
/** A header larger than this is corrupt (a response head is bounded far below it). */
const MAX_HEADER = 1024 * 1024;

export interface DiskOptions {
  readonly dir: string;
  readonly maxSize: number;
  /** Bodies up to this size are read whole (and verified) when looked up; larger ones stream. */
  readonly readWholeBelow: number;
}

const hash = (text: string, length: number): string => createHash('sha256').update(text).digest('hex').slice(0, length);

let tmpCounter = 0;

/** The 32-byte prefix for a header and body. */
function prefixFor(header: Buffer, bodyLength: number, bodyCrc: number): Buffer {
  const prefix = Buffer.alloc(PREFIX);
  MAGIC.copy(prefix, 0);
  prefix.writeUInt32LE(header.length, 8);
  prefix.writeUInt32LE(crc32(header), 12);
  prefix.writeBigUInt64LE(BigInt(bodyLength), 16);
  prefix.writeUInt32LE(bodyCrc, 24);
  prefix.writeUInt32LE(crc32(prefix.subarray(0, 28)), 28);
  return prefix;
}

interface Parsed {
  readonly meta: StoredMeta;
  readonly bodyOffset: number;
  readonly bodyLength: number;
  readonly bodyCrc: number;
}

/** Validates the prefix and header of an entry file; null when torn or corrupt. */
async function readHead(handle: FileHandle): Promise<Parsed | null> {
  const { size } = await handle.stat();
  if (size < PREFIX) return null;
  const prefix = Buffer.alloc(PREFIX);
  await handle.read(prefix, 0, PREFIX, 0);
  if (!prefix.subarray(0, 8).equals(MAGIC) || crc32(prefix.subarray(0, 28)) !== prefix.readUInt32LE(28)) return null;
  const headerLength = prefix.readUInt32LE(8);
  const bodyLength = Number(prefix.readBigUInt64LE(16));
  if (headerLength > MAX_HEADER || PREFIX + headerLength + bodyLength !== size) return null;
  const header = Buffer.alloc(headerLength);
  await handle.read(header, 0, headerLength, PREFIX);
  if (crc32(header) !== prefix.readUInt32LE(12)) return null;
  let meta: StoredMeta;
  try {
    meta = JSON.parse(header.toString('utf8')) as StoredMeta;
  } catch {
    return null;
  }
  if (typeof meta.key !== 'string' || typeof meta.secondary !== 'string' || !Array.isArray(meta.headers)) return null;
  // The header is written before the body's length is known: the prefix has it.
  meta = { ...meta, bodySize: bodyLength };
  return { meta, bodyOffset: PREFIX + headerLength, bodyLength, bodyCrc: prefix.readUInt32LE(24) };
}

/** Passes a body through, checking its CRC and length at the end; a mismatch is an error (the response is cut). */
function verifying(stream: ReadStream, expectedCrc: number, expectedLength: number, onCorrupt: () => void): Readable {
  let crc = 0;
  let length = 0;
  const check = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      crc = crc32(chunk, crc);
      length += chunk.length;
      callback(null, chunk);
    },
    flush(callback) {
      if (crc !== expectedCrc || length !== expectedLength) {
        onCorrupt();
        callback(new Error('corrupt cache entry body'));
      } else callback();
    },
  });
  stream.on('error', (error) => check.destroy(error));
  check.on('close', () => stream.destroy());
  return stream.pipe(check);
}

export class DiskStore implements CacheStore {
  readonly #dir: string;
  readonly #tmp: string;
  readonly #maxSize: number;
  readonly #readWholeBelow: number;
  /** Known files (relative path → size), least recently used first. */
  readonly #index = new Map<string, number>();
  #total = 0;
  #closed = false;
  readonly #ready: Promise<void>;
  readonly #rescanTimer: NodeJS.Timeout;

  /** Files known and their bytes, and the bound (for snapshots; other workers' files appear at the next scan). */
  usage(): { entries: number; bytes: number; maxBytes: number; dir: string } {
    return { entries: this.#index.size, bytes: this.#total, maxBytes: this.#maxSize, dir: this.#dir };
  }

  constructor(options: DiskOptions) {
    this.#dir = options.dir;
    this.#tmp = join(options.dir, 'tmp');
    this.#maxSize = options.maxSize;
    this.#readWholeBelow = options.readWholeBelow;
    this.#ready = this.#start().catch((error: unknown) => log().error({ err: error, dir: this.#dir }, 'cache directory could not be prepared'));
    // Other processes write into the same directory: see their files, so the bound holds.
    this.#rescanTimer = setInterval(() => void this.#scan().catch(() => {}), 60_000);
    this.#rescanTimer.unref();
  }

  /** Resolves once the directory exists and was scanned (tests and the CLI wait for it). */
  get ready(): Promise<void> {
    return this.#ready;
  }

  async #start(): Promise<void> {
    await mkdir(this.#tmp, { recursive: true });
    // Temporary files of processes that are gone (killed mid-write) are garbage.
    for (const name of await readdir(this.#tmp)) {
      const pid = Number(name.split('-')[0]);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) continue;
      if (pid === process.pid) continue;
      await rm(join(this.#tmp, name), { force: true });
    }
    // Fill locks of processes that are gone.
    for (const name of await readdir(join(this.#dir, 'locks')).catch(() => [] as string[])) {
      const path = join(this.#dir, 'locks', name);
      const holder = Number(await readFile(path, 'utf8').catch(() => ''));
      if (!(Number.isInteger(holder) && holder > 0 && isAlive(holder))) await rm(path, { force: true });
    }
    await this.#scan();
  }

  async #scan(): Promise<void> {
    const found: [string, number, number][] = [];
    for (const level1 of await readdir(this.#dir).catch(() => [] as string[])) {
      if (level1 === 'tmp' || level1.length !== 1) continue;
      for (const level2 of await readdir(join(this.#dir, level1)).catch(() => [] as string[])) {
        for (const name of await readdir(join(this.#dir, level1, level2)).catch(() => [] as string[])) {
          const rel = join(level1, level2, name);
          const info = await stat(join(this.#dir, rel)).catch(() => null);
          if (info?.isFile()) found.push([rel, info.size, info.mtimeMs]);
        }
      }
    }
    // Files this process already ranks keep their place; the others go in by age.
    found.sort((a, b) => a[2] - b[2]);
    const seen = new Set<string>();
    for (const [rel, size] of found) {
      seen.add(rel);
      if (!this.#index.has(rel)) this.#remember(rel, size);
    }
    for (const rel of [...this.#index.keys()]) if (!seen.has(rel)) this.#forget(rel);
    await this.#evict();
  }

  /** Records a file at the hot end of the index. */
  #remember(rel: string, size: number): void {
    const prior = this.#index.get(rel);
    if (prior !== undefined) {
      this.#total -= prior;
      this.#index.delete(rel);
    }
    this.#index.set(rel, size);
    this.#total += size;
  }

  #forget(rel: string): void {
    const prior = this.#index.get(rel);
    if (prior === undefined) return;
    this.#total -= prior;
    this.#index.delete(rel);
  }

  async #evict(): Promise<void> {
    while (this.#total > this.#maxSize && this.#index.size > 0) {
      const rel = this.#index.keys().next().value as string;
      this.#forget(rel);
      await unlink(join(this.#dir, rel)).catch(() => {});
    }
  }

  /** Relative folder and file name of a key. */
  #paths(primary: string, secondary: string | null): { folder: string; file: string } {
    const h = hash(primary, 32);
    const folder = join(h.slice(0, 1), h.slice(1, 3));
    return { folder, file: secondary === null ? `${h}.vary` : `${h}-${secondary === '' ? '0' : hash(secondary, 16)}` };
  }

  #split(key: string): [string, string] {
    const at = key.indexOf('\0');
    return [key.slice(0, at), key.slice(at + 1)];
  }

  peek(): CacheEntry | undefined {
    return undefined;
  }

  async get(key: string): Promise<CacheEntry | undefined> {
    await this.#ready;
    const [primary, secondary] = this.#split(key);
    const { folder, file } = this.#paths(primary, secondary);
    const rel = join(folder, file);
    const path = join(this.#dir, rel);
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch {
      return undefined;
    }
    try {
      const parsed = await readHead(handle);
      if (!parsed || parsed.meta.key !== primary || parsed.meta.secondary !== secondary) {
        if (!parsed) await this.#discard(rel, 'torn or corrupt entry');
        return undefined;
      }
      if (this.#index.has(rel)) this.#remember(rel, this.#index.get(rel) as number);
      if (parsed.bodyLength <= this.#readWholeBelow) {
        const body = Buffer.alloc(parsed.bodyLength);
        if (parsed.bodyLength > 0) await handle.read(body, 0, parsed.bodyLength, parsed.bodyOffset);
        if (crc32(body) !== parsed.bodyCrc) {
          await this.#discard(rel, 'corrupt entry body');
          return undefined;
        }
        return new CacheEntry(parsed.meta, body);
      }
      // Large: streamed from this file when served. The file may be replaced meanwhile: a 304
      // refresh rewrites it with new headers (of another length) and the same body, which is
      // served from its new offset; a different body (a newer response renamed over it) is not
      // this entry's, and the lookup fails (the handler asks the upstream).
      const { bodyLength, bodyCrc } = parsed;
      return new CacheEntry(parsed.meta, null, async () => {
        const file = await open(path, 'r');
        const again = await readHead(file).catch(() => null);
        if (!again || again.bodyLength !== bodyLength || again.bodyCrc !== bodyCrc) {
          await file.close();
          throw new Error('cache entry changed');
        }
        const bodyOffset = again.bodyOffset;
        const stream = createReadStream('', { fd: file, start: bodyOffset, end: bodyOffset + bodyLength - 1, autoClose: true });
        return verifying(stream, bodyCrc, bodyLength, () => void this.#discard(rel, 'corrupt entry body'));
      });
    } finally {
      // A streamed body opens the file again when served: nothing keeps this descriptor.
      await handle.close().catch(() => {});
    }
  }

  async #discard(rel: string, why: string): Promise<void> {
    log().warn({ file: join(this.#dir, rel), why }, 'cache entry discarded');
    this.#forget(rel);
    await unlink(join(this.#dir, rel)).catch(() => {});
  }

  open(meta: StoredMeta): EntryWriter | null {
    if (this.#closed || meta.bodySize > this.#maxSize) return null;
    const { folder, file } = this.#paths(meta.key, meta.secondary);
    const rel = join(folder, file);
    const tmp = join(this.#tmp, `${process.pid}-${++tmpCounter}`);
    let handle: Promise<FileHandle | null> | null = null;
    let crc = 0;
    let size = 0;
    let failed = false;
    // The header has a fixed length from the start (its bodySize is 0; the prefix, written
    // last, carries the real length), so the body streams to its final offset as it comes.
    const header = Buffer.from(JSON.stringify({ ...meta, bodySize: 0 }), 'utf8');
    let position = PREFIX + header.length;
    // Writes are chained: each waits for the one before.
    let chain: Promise<unknown> = Promise.resolve();
    const start = (): Promise<FileHandle | null> =>
      (handle ??= (async () => {
        await this.#ready;
        try {
          return await open(tmp, 'wx');
        } catch (error) {
          failed = true;
          log().warn({ err: error }, 'cache entry could not be written');
          return null;
        }
      })());
    const writeAt = (data: Buffer, at: number) => {
      chain = chain.then(async () => {
        const h = await start();
        if (!h || failed) return;
        try {
          await h.write(data, 0, data.length, at);
        } catch (error) {
          failed = true;
          log().warn({ err: error }, 'cache entry could not be written');
        }
      });
    };
    return {
      write: (chunk) => {
        if (failed) return;
        crc = crc32(chunk, crc);
        size += chunk.length;
        if (size > this.#maxSize) {
          failed = true;
          return;
        }
        writeAt(chunk, position);
        position += chunk.length;
      },
      end: async () => {
        const h = await start();
        await chain;
        if (!h || failed) {
          await h?.close().catch(() => {});
          await rm(tmp, { force: true });
          return;
        }
        try {
          await h.write(Buffer.concat([prefixFor(header, size, crc), header]), 0, PREFIX + header.length, 0);
          await h.close();
          await mkdir(join(this.#dir, folder), { recursive: true });
          await rename(tmp, join(this.#dir, rel));
          this.#remember(rel, PREFIX + header.length + size);
          await this.#evict();
        } catch (error) {
          log().warn({ err: error }, 'cache entry could not be committed');
          await h.close().catch(() => {});
          await rm(tmp, { force: true });
        }
      },
      abort: () => {
        failed = true;
        void (async () => {
          await chain;
          const h = await handle;
          await h?.close().catch(() => {});
          await rm(tmp, { force: true });
        })();
      },
    };
  }

  async update(entry: CacheEntry, meta: StoredMeta): Promise<CacheEntry | undefined> {
    // The body stays; the whole file is rewritten (headers change length), atomically.
    let body = entry.body;
    if (body === null && entry.open) {
      try {
        const stream = await entry.open(entry);
        const chunks: Buffer[] = [];
        for await (const chunk of stream) chunks.push(chunk as Buffer);
        body = Buffer.concat(chunks);
      } catch {
        return undefined;
      }
    }
    if (body === null) return undefined;
    const writer = this.open({ ...meta, bodySize: body.length });
    if (!writer) return undefined;
    writer.write(body);
    await writer.end();
    return new CacheEntry({ ...meta, bodySize: body.length }, body.length <= this.#readWholeBelow ? body : null, entry.open);
  }

  async delete(key: string): Promise<void> {
    const [primary, secondary] = this.#split(key);
    const { folder, file } = this.#paths(primary, secondary);
    const rel = join(folder, file);
    this.#forget(rel);
    await unlink(join(this.#dir, rel)).catch(() => {});
  }

  async purge(key: string, prefix: boolean): Promise<number> {
    await this.#ready;
    let count = 0;
    if (!prefix) {
      const { folder, file } = this.#paths(key, null);
      const stem = file.slice(0, -'.vary'.length);
      for (const name of await readdir(join(this.#dir, folder)).catch(() => [] as string[])) {
        if (!name.startsWith(stem)) continue;
        const rel = join(folder, name);
        this.#forget(rel);
        await unlink(join(this.#dir, rel)).then(
          () => !name.endsWith('.vary') && count++,
          () => {},
        );
      }
      return count;
    }
    // By prefix: every entry's header names its key (the file name is a hash).
    for (const level1 of await readdir(this.#dir).catch(() => [] as string[])) {
      if (level1 === 'tmp' || level1.length !== 1) continue;
      for (const level2 of await readdir(join(this.#dir, level1)).catch(() => [] as string[])) {
        for (const name of await readdir(join(this.#dir, level1, level2)).catch(() => [] as string[])) {
          const rel = join(level1, level2, name);
          const path = join(this.#dir, rel);
          let matches: boolean;
          if (name.endsWith('.vary')) {
            matches = await readVaryFile(path).then((v) => v !== null && v.key.startsWith(key));
          } else {
            const handle = await open(path, 'r').catch(() => null);
            if (!handle) continue;
            try {
              const parsed = await readHead(handle);
              matches = parsed === null || parsed.meta.key.startsWith(key);
            } finally {
              await handle.close().catch(() => {});
            }
          }
          if (!matches) continue;
          this.#forget(rel);
          await unlink(path).then(
            () => !name.endsWith('.vary') && count++,
            () => {},
          );
        }
      }
    }
    return count;
  }

  peekVary(): readonly string[] | undefined {
    return undefined;
  }

  resize(): void {
    // Variants are kept in memory only.
  }

  /**
   * nginx `proxy_cache_lock` across the processes sharing this directory: `<dir>/locks/<hash>`
   * created with O_EXCL holds the leader's pid. A waiter polls (every 25 ms) until the file is
   * gone or the timeout; a lock whose pid is dead (a killed process) is broken.
   */
  async lockFill(key: string, timeoutMs: number): Promise<FillLock> {
    await this.#ready;
    const path = join(this.#dir, 'locks', hash(key, 32));
    const deadline = Date.now() + timeoutMs;
    for (let attempt = 0; ; attempt++) {
      try {
        await writeFile(path, String(process.pid), { flag: 'wx' });
        let released = false;
        return {
          leader: true,
          release: () => {
            if (released) return;
            released = true;
            void unlink(path).catch(() => {});
          },
        };
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' && attempt === 0) {
          await mkdir(join(this.#dir, 'locks'), { recursive: true });
          continue;
        }
        if (code !== 'EEXIST') return { leader: true, release: () => {} };
      }
      // Held by another process: a dead holder's lock is broken, and so is one older than the
      // wait (its pid may have been reused by an unrelated process), else wait for it.
      const holder = Number(await readFile(path, 'utf8').catch(() => ''));
      const info = await stat(path).catch(() => null);
      const stale = info !== null && info.mtimeMs < Date.now() - Math.max(timeoutMs, 10_000);
      if (attempt < 3 && (stale || (Number.isInteger(holder) && holder > 0 && holder !== process.pid && !isAlive(holder)))) {
        await unlink(path).catch(() => {});
        continue;
      }
      while (Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 25));
        if (!(await stat(path).then(() => true, () => false))) return { leader: false, released: true };
      }
      return { leader: false, released: false };
    }
  }

  async getVary(primary: string): Promise<readonly string[]> {
    await this.#ready;
    const { folder, file } = this.#paths(primary, null);
    const stored = await readVaryFile(join(this.#dir, folder, file));
    return stored !== null && stored.key === primary ? stored.names : [];
  }

  setVary(primary: string, names: readonly string[]): void {
    const { folder, file } = this.#paths(primary, null);
    const path = join(this.#dir, folder, file);
    void (async () => {
      await this.#ready;
      if (names.length === 0) {
        await unlink(path).catch(() => {});
        return;
      }
      const tmp = join(this.#tmp, `${process.pid}-${++tmpCounter}`);
      await mkdir(join(this.#dir, folder), { recursive: true });
      await writeFile(tmp, JSON.stringify({ key: primary, names }));
      await rename(tmp, path);
    })().catch((error: unknown) => log().warn({ err: error }, 'cache vary index could not be written'));
  }

  close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#rescanTimer);
    return Promise.resolve();
  }

  /** Bytes of entries this process knows of (for tests and metrics). */
  get size(): number {
    return this.#total;
  }

  fullKey(primary: string, secondary: string): string {
    return fullKey(primary, secondary);
  }
}

async function readVaryFile(path: string): Promise<{ key: string; names: string[] } | null> {
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as { key?: unknown; names?: unknown };
    if (typeof parsed.key !== 'string' || !Array.isArray(parsed.names) || !parsed.names.every((n) => typeof n === 'string')) return null;
    return { key: parsed.key, names: parsed.names as string[] };
  } catch {
    return null;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
