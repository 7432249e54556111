/**
 * Static files: nginx `root`/`alias` + `index` + `try_files` + `gzip_static` + `expires`, with
 * RFC 9110 conditional and range requests.
 *
 * Safety: the path arrives decoded and normalised by edge/http/target.ts, so it cannot climb
 * above "/"; it is then joined under the root as plain string concatenation (no `resolve`), and
 * the file cache refuses any path whose real location (symlinks followed) leaves the root.
 */
import { open } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import rangeParser from 'range-parser';
import type { ResolvedRoute, ResolvedStatic } from '../../../config/resolved.js';
import { ErrorCodes, HttpError } from '../../../core/errors.js';
import type { RequestContext } from '../../context.js';
import { removeDotSegments } from '../../http/target.js';
import { responseTurn, sendBody, sendHead, sendRedirect, sendStatus, sendStoredBody } from '../../http/respond.js';
import { compileTemplate, type Template } from '../../variables.js';
import { REROUTE, type Handler, type HandlerResult } from '../types.js';
import { evaluatePreconditions, ifRangeAllows, PROCEED } from './conditional.js';
import { FileCache, type FileEntry, type PathEntry } from './file-cache.js';
import { renderListing } from './listing.js';
import { sendFileRange } from './send-file.js';

const ALLOW = { Allow: 'GET, HEAD' };

type Fallback = { readonly kind: 'status'; readonly status: number } | { readonly kind: 'uri'; readonly template: Template };

/** Parses Accept-Encoding (RFC 9110 §12.5.3) into the acceptable codings by q, best first. */
function acceptedEncodings(header: string): Map<string, number> {
  const accepted = new Map<string, number>();
  for (const item of header.split(',')) {
    const [token, ...params] = item.trim().toLowerCase().split(';');
    if (!token) continue;
    let q = 1;
    for (const param of params) {
      const [key, value] = param.trim().split('=');
      if (key === 'q' && value !== undefined) q = Number(value);
    }
    if (!Number.isNaN(q)) accepted.set(token, q);
  }
  return accepted;
}

/** The precompressed variant to send, honouring q-values (q=0 refuses); server order breaks ties. */
function chooseVariant(entry: FileEntry, header: string | undefined): FileEntry {
  if (entry.variants.length === 0 || !header) return entry;
  const accepted = acceptedEncodings(header);
  const star = accepted.get('*');
  let best: FileEntry = entry;
  let bestQ = 0;
  for (const { encoding, entry: variant } of entry.variants) {
    const q = accepted.get(encoding) ?? (encoding === 'gzip' ? accepted.get('x-gzip') : undefined) ?? star ?? 0;
    if (q > bestQ) {
      best = variant;
      bestQ = q;
    }
  }
  // identity is acceptable unless refused explicitly; a coding only wins with q > 0.
  return best;
}

/** A segment starting with "." (".git", ".env"); "/.well-known/" (RFC 8615) is public by design. */
function hasDotSegment(path: string): boolean {
  return path.indexOf('/.', path.startsWith('/.well-known/') ? 12 : 0) !== -1;
}

export class StaticHandler {
  readonly #options: ResolvedStatic;
  readonly #prefix: string;
  readonly #cache: FileCache;
  readonly #tryFiles: readonly Template[];
  readonly #fallback: Fallback | null;

  constructor(route: ResolvedRoute, options: ResolvedStatic) {
    this.#options = options;
    this.#prefix = options.alias && route.match.kind !== 'regex' ? route.match.path : '';
    this.#cache = new FileCache(options);
    const tryFiles = options.tryFiles;
    this.#tryFiles = tryFiles.slice(0, -1).map((entry) => compileTemplate(entry));
    const last = tryFiles.at(-1);
    this.#fallback = last === undefined ? null : /^=\d{3}$/.test(last) ? { kind: 'status', status: Number(last.slice(1)) } : { kind: 'uri', template: compileTemplate(last) };
  }

  /** The handler function given to the pipeline (a named function reads well in stack traces). */
  handler(): Handler {
    return this.handle.bind(this);
  }

  /**
   * The path below the root for a request path: the route prefix removed for `alias`. Null when
   * the path is not below the prefix at a segment boundary, and "" for the prefix itself.
   *
   * Why not nginx's plain string cut: with `prefix: "/static"` (no trailing slash) the cut turns
   * "/static../secret" into "/../secret" (nginx's well-known alias traversal) and "/staticfoo"
   * into "/foo"; the decoded path never climbs above "/", but that cut would. The rest must
   * start a new segment ("/static/…"), or be empty. A URI that does not start with the prefix
   * at all (a try-files candidate, a `break` rewrite) has no place under the alias either.
   */
  #relative(uri: string): string | null {
    const prefix = this.#prefix;
    if (!prefix) return uri;
    if (!uri.startsWith(prefix)) return null;
    const rest = uri.slice(prefix.length);
    if (prefix.endsWith('/')) return `/${rest}`;
    // "" maps to the root itself: a directory is then redirected to "<prefix>/" (as nginx does
    // for a directory without its slash), a file (an exact route aliasing one file) is served.
    if (rest === '') return '';
    return rest.startsWith('/') ? rest : null;
  }

  handle(ctx: RequestContext): HandlerResult | Promise<HandlerResult> {
    const method = ctx.req.method;
    if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, ErrorCodes.ERR_STATIC_METHOD, 'static files answer GET and HEAD', { headers: ALLOW });
    const relative = this.#relative(ctx.uri);
    if (relative === null) throw new HttpError(404, ErrorCodes.ERR_STATIC_NOT_FOUND, 'path is not below the alias prefix');
    // A backslash is a separator on some systems; refuse it rather than guess (never a traversal here).
    if (relative.includes('\\')) throw new HttpError(400, ErrorCodes.ERR_REQUEST_TARGET, 'backslash in a static path');
    if (this.#options.dotfiles !== 'allow' && hasDotSegment(relative)) {
      const status = this.#options.dotfiles === 'deny' ? 403 : 404;
      throw new HttpError(status, status === 403 ? ErrorCodes.ERR_STATIC_FORBIDDEN : ErrorCodes.ERR_STATIC_NOT_FOUND, 'dotfile');
    }
    if (this.#tryFiles.length > 0 || this.#fallback) return this.#tryFilesThenFallback(ctx);
    const path = this.#options.root + relative;
    const entry = this.#cache.lookup(path, Date.now());
    // The hot path: a fresh cached entry is served without a promise.
    if (!(entry instanceof Promise)) return this.#serveEntry(ctx, entry, relative);
    return entry.then((resolved) => this.#serveEntry(ctx, resolved, relative));
  }

  async #tryFilesThenFallback(ctx: RequestContext): Promise<HandlerResult> {
    const now = Date.now();
    for (const template of this.#tryFiles) {
      let candidate: string;
      try {
        candidate = removeDotSegments(template(ctx));
      } catch {
        continue;
      }
      const relative = this.#relative(candidate);
      // Same refusals as for the request path: a candidate built from $arg_/$http_ values is as
      // untrusted as the URI.
      if (relative === null || relative.includes('\\')) continue;
      if (this.#options.dotfiles !== 'allow' && hasDotSegment(relative)) continue;
      const entry = await this.#cache.lookup(this.#options.root + relative, now);
      if (candidate.endsWith('/') ? entry.kind === 'directory' : entry.kind === 'file') {
        // nginx: a directory found by "$uri/" for a URI without its slash is redirected to the
        // slash (as a plain request for it is), so the index's relative links resolve.
        if (entry.kind === 'directory' && !ctx.uri.endsWith('/')) return this.#serveDirectory(ctx, relative.slice(0, -1));
        return this.#serveEntry(ctx, entry, relative);
      }
    }
    const fallback = this.#fallback;
    if (!fallback) throw new HttpError(404, ErrorCodes.ERR_STATIC_NOT_FOUND, 'no try-files candidate exists');
    if (fallback.kind === 'status') throw new HttpError(fallback.status, ErrorCodes.ERR_STATIC_NOT_FOUND, 'try-files fallback status');
    // nginx: the last try_files entry is an internal redirect, searched through the routes again.
    const target = fallback.template(ctx);
    const q = target.indexOf('?');
    ctx.uri = removeDotSegments(q === -1 ? target : target.slice(0, q));
    if (q !== -1) {
      ctx.query = target.slice(q + 1);
      ctx.hasQuery = true;
    }
    return REROUTE;
  }

  #serveEntry(ctx: RequestContext, entry: PathEntry, relative: string): HandlerResult | Promise<HandlerResult> {
    switch (entry.kind) {
      case 'file':
        if (relative.endsWith('/')) throw new HttpError(404, ErrorCodes.ERR_STATIC_NOT_FOUND, 'a file asked for as a directory');
        return this.#serveFile(ctx, chooseVariant(entry, ctx.req.headers['accept-encoding']));
      case 'directory':
        return this.#serveDirectory(ctx, relative);
      case 'outside':
        throw new HttpError(403, ErrorCodes.ERR_STATIC_FORBIDDEN, 'symlink leads outside the root');
      default:
        throw new HttpError(404, ErrorCodes.ERR_STATIC_NOT_FOUND, 'no such file');
    }
  }

  async #serveDirectory(ctx: RequestContext, relative: string): Promise<HandlerResult> {
    if (!relative.endsWith('/')) {
      // nginx: a directory without its slash is redirected to it, so relative links resolve.
      const location = encodeURI(`${ctx.uri}/`).replace(/\?/g, '%3F').replace(/#/g, '%23') + (ctx.query ? `?${ctx.query}` : '');
      sendRedirect(ctx, 301, location);
      return undefined;
    }
    const dir = this.#options.root + relative;
    if (this.#options.index !== false) {
      for (const name of this.#options.index) {
        const entry = await this.#cache.lookup(dir + name, Date.now());
        if (entry.kind === 'file') return this.#serveFile(ctx, chooseVariant(entry, ctx.req.headers['accept-encoding']));
      }
    }
    if (this.#options.listing) {
      const html = await renderListing(dir, ctx.uri, this.#options.dotfiles === 'allow');
      sendBody(ctx, 200, ['Content-Type', 'text/html; charset=utf-8'], html);
      return undefined;
    }
    // nginx answers a directory without index (and no autoindex) with 403.
    throw new HttpError(403, ErrorCodes.ERR_STATIC_FORBIDDEN, 'directory without an index file');
  }

  #serveFile(ctx: RequestContext, entry: FileEntry): HandlerResult | Promise<HandlerResult> {
    if (entry.body === null) return this.#streamFile(ctx, entry);
    return this.#answer(ctx, entry, entry.body, null);
  }

  /**
   * Preconditions, then Range, then the answer. `body` is the whole file in memory, or null with
   * `stream(start, end)` to read a slice from disk.
   */
  #answer(ctx: RequestContext, entry: FileEntry, body: Buffer | null, stream: ((start: number, end: number, out: Writable) => void) | null): void | Promise<void> {
    const req = ctx.req;
    const method = req.method as string;
    const condition = evaluatePreconditions(method, req.headers, entry.etag, entry.lastModified === null ? null : entry.mtimeMs);
    if (condition !== PROCEED) {
      if (condition === 304) {
        // RFC 9110 §15.4.5: the validators and caching headers a 200 would have had.
        const headers: string[] = [];
        if (entry.etag) headers.push('ETag', entry.etag);
        if (entry.lastModified) headers.push('Last-Modified', entry.lastModified);
        for (let i = 0; i < entry.headers.length; i += 2) {
          const name = entry.headers[i] as string;
          if (name === 'Cache-Control' || name === 'Vary') headers.push(name, entry.headers[i + 1] as string);
        }
        sendBody(ctx, 304, headers, null);
      } else sendStatus(ctx, 412);
      return;
    }
    const range = req.headers.range;
    if (range !== undefined && method === 'GET' && ifRangeAllows(req.headers, entry.etag, entry.lastModified)) {
      const ranges = rangeParser(entry.size, range, { combine: true });
      if (ranges === -1) {
        // RFC 9110 §15.5.17: unsatisfiable, with the current length.
        sendStatus(ctx, 416, { 'Content-Range': `bytes */${entry.size}` });
        return;
      }
      // -2 (malformed) and several ranges: answer the whole representation (RFC 9110 §14.2 allows ignoring Range).
      if (ranges !== -2 && ranges.type === 'bytes' && ranges.length === 1) {
        const { start, end } = ranges[0] as { start: number; end: number };
        const headers = [...entry.headers];
        const at = headers.indexOf('Content-Length');
        headers[at + 1] = String(end - start + 1);
        headers.push('Content-Range', `bytes ${start}-${end}/${entry.size}`);
        ctx.bodyBytes = end - start + 1;
        const out = sendHead(ctx, 206, headers);
        if (body) out.end(body.subarray(start, end + 1));
        else (stream as NonNullable<typeof stream>)(start, end, out);
        return;
      }
    }
    // A compressing route: the compressed bytes are kept with the entry, compressed once per coding.
    if (body && ctx.route?.encode && entry.size > 0) return sendStoredBody(ctx, 200, [...entry.headers], body, entry.encoded, () => this.#cache.account(entry));
    ctx.bodyBytes = method === 'HEAD' ? 0 : entry.size;
    // The body goes where the response filters say: the socket, or a compressor (middleware/encode.ts).
    const out = sendHead(ctx, 200, [...entry.headers]);
    if (method === 'HEAD' || entry.size === 0) out.end();
    else if (body) out.end(body);
    else (stream as NonNullable<typeof stream>)(0, entry.size - 1, out);
  }

  /** Large files: open, then describe and stream what was opened (no race between stat and read). */
  async #streamFile(ctx: RequestContext, cached: FileEntry): Promise<HandlerResult> {
    // A pipelined request behind a response still being written waits for its turn before it
    // opens the file: otherwise each of a connection's pipelined requests held a descriptor and
    // its buffers at once (slowhttptest -X -k 3: three per slow connection).
    if (!(await responseTurn(ctx))) return undefined;
    let handle;
    try {
      handle = await open(cached.path, 'r');
    } catch {
      throw new HttpError(404, ErrorCodes.ERR_STATIC_NOT_FOUND, 'file vanished');
    }
    let owned = true;
    try {
      const stats = await handle.stat();
      const entry = stats.mtimeMs === cached.mtimeMs && stats.size === cached.size ? cached : this.#cache.fileEntry(cached.path, stats, stats.size, null, cached.encoding, cached.variants);
      const fileHandle = handle;
      this.#answer(ctx, entry, null, (start, end, out) => {
        owned = false;
        sendFileRange(ctx, fileHandle, start, end, out);
      });
    } finally {
      if (owned) await handle.close();
    }
    return undefined;
  }
}

export function createStaticHandler(route: ResolvedRoute, options: ResolvedStatic): Handler {
  return new StaticHandler(route, options).handler();
}
