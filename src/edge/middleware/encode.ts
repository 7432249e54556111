/**
 * Response compression, the `encode` response filter (nginx `gzip`/`brotli`, Caddy `encode`): a
 * compressible response is compressed on the fly with gzip, brotli or zstd (node:zlib, off the
 * event loop on libuv's thread pool), chosen by the client's `Accept-Encoding`.
 *
 * It runs in `sendHead` (edge/http/respond.ts, phase 8 of edge/pipeline.ts) after the route's
 * header operations, so it decides on the final response head; `sendHead` then returns the
 * Writable the handler writes the body to: `ctx.res`, or an encoder piped into it (back-pressure
 * flows through, and a client that leaves destroys the encoder).
 *
 * Decided once per generation: a route with compression off has no `RouteEncoder` at all, so its
 * responses pay nothing. Per request the work is a scan of the flat header list and two small
 * bounded caches (Accept-Encoding value → coding, Content-Type → compressible).
 *
 * The rules, each with its reason:
 * - never for HEAD bodies (the head is the GET head: RFC 9110 §9.3.2), 1xx/204/205/304 (no
 *   content), 206 or a request with `Range` (the ranges would be of the identity body, and an
 *   encoded body has other offsets: RFC 9110 §14), nor when the response has a `Content-Encoding`
 *   already (never twice: static's precompressed `.br`/`.gz` siblings, an upstream's own gzip);
 * - never with `Cache-Control: no-transform` on the response or the request (RFC 9110 §7.7,
 *   RFC 9111 §5.2.1.6, §5.2.2.6);
 * - only for a configured media type, and only when the length is unknown (streamed) or at least
 *   `minLength` (nginx `gzip_min_length`: below it the framing costs more than it saves);
 * - `Vary: Accept-Encoding` on every response that would be compressed for some client, whether
 *   compressed this time or not, merged into an existing `Vary` (RFC 9110 §12.5.5), so a shared
 *   cache never gives a gzip body to a client that cannot read it;
 * - the coding: the client's highest q among the configured ones (q=0 refuses, `*` covers the
 *   unnamed, `x-gzip` is gzip: RFC 9110 §12.5.3, §8.4.1.3), ties broken by server preference
 *   (the `encodings` order, br before gzip by default); identity wins only when the client rates
 *   it strictly higher. No `Accept-Encoding` at all: identity (the RFC allows any coding then,
 *   but old clients that omit it may not decode one; nginx and Caddy do the same);
 * - a response compressed on the fly loses `Content-Length` (chunked framing: the length is not
 *   known until the end) and `Accept-Ranges`, and a strong `ETag` becomes weak (`W/"…"`), as nginx's gzip
 *   filter does (ngx_http_gzip_filter_module calls ngx_http_weak_etag): RFC 9110 §8.8.3 forbids
 *   one strong tag for two different byte sequences, and a weak tag still matches
 *   `If-None-Match` (weak comparison, RFC 9110 §13.1.2) at the origin, so revalidation through
 *   this filter keeps working without rewriting the request. (The other choice, a suffix like
 *   `"tag-gzip"`, keeps the tag strong, but the origin no longer recognises it, so every
 *   revalidation would become a full 200.) A 304 to a client that holds the weak tag carries that
 *   tag and the Vary back (RFC 9111 §4.3.4). A body compressed once and kept (static's hot cache,
 *   `sendStoredBody`) is sent with its own compressed Content-Length;
 * - `text/event-stream` is flushed after every write (Z_SYNC_FLUSH / BROTLI_OPERATION_FLUSH):
 *   each event reaches the client when the upstream sends it, not when a deflate block fills.
 *
 * zstd needs `zlib.createZstdCompress` (Node ≥ 22.15 / 23.8); on older runtimes (Node 20) it is
 * not offered, and asking for it in the config is refused with the field path.
 *
 * The API other parts build on (the response cache stores one variant per coding):
 * - `chooseEncoding(acceptEncoding, encodings)`: the coding to send, or null for identity;
 * - `RouteEncoder.inspect(requestHeaders, status, headers)` (`shouldCompress`): whether this response is
 *   compressible (`COMPRESSIBLE`: Vary applies), and whether to compress it;
 * - `createEncoder(coding, settings, options)`: a node:zlib Transform with the configured level;
 * - `compressBuffer(coding, settings, body)`: a whole body compressed, to keep;
 * - `sendStoredBody` (edge/http/respond.ts): an in-memory body whose compressed forms the caller
 *   keeps per coding (static's hot cache does), compressed once and then sent with a length;
 * - `RouteEncoder.choose(acceptEncoding)`: the normalised coding, a cache's secondary key for
 *   `Vary: Accept-Encoding` (one stored variant per coding, not per header spelling);
 * - `encodeHead(headers, coding)` / `addVary(headers)`: the header changes of a compressed answer.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { pipeline, type Transform, type Writable } from 'node:stream';
import zlib from 'node:zlib';
import type { ResolvedEncode } from '../../config/resolved.js';
import type { RequestContext } from '../context.js';

export type ContentCoding = 'zstd' | 'br' | 'gzip';

/** The zstd API of node:zlib, absent from Node 20 and from its type definitions. */
interface ZstdZlib {
  createZstdCompress?: (options?: { params?: Record<number, number>; flush?: number }) => Transform;
  constants: Record<string, number>;
}
const zstdZlib = zlib as unknown as ZstdZlib;

/** Whether this runtime can compress zstd (checked once: Node 20 cannot). */
export const ZSTD_AVAILABLE = typeof zstdZlib.createZstdCompress === 'function';

// Bounds of the per-route lookup caches: enough for the distinct values real clients send; a
// client sending random values only ever costs a parse, never memory.
const CACHE_LIMIT = 256;

/** Parses Accept-Encoding (RFC 9110 §12.5.3): coding (lower-case) → q; a bad q drops the member. */
export function parseAcceptEncoding(header: string): Map<string, number> {
  const accepted = new Map<string, number>();
  for (const item of header.split(',')) {
    const semi = item.indexOf(';');
    const token = (semi === -1 ? item : item.slice(0, semi)).trim().toLowerCase();
    if (token === '') continue;
    let q = 1;
    if (semi !== -1) {
      for (const param of item.slice(semi + 1).split(';')) {
        const eq = param.indexOf('=');
        if (eq === -1 || param.slice(0, eq).trim().toLowerCase() !== 'q') continue;
        const text = param.slice(eq + 1).trim();
        // RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ).
        q = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/.test(text) ? Number(text) : Number.NaN;
      }
    }
    if (Number.isNaN(q)) continue;
    // "x-gzip" is an alias of gzip (RFC 9110 §8.4.1.3); the explicit "gzip" entry wins.
    const name = token === 'x-gzip' ? 'gzip' : token;
    if (token === 'x-gzip' && accepted.has('gzip')) continue;
    accepted.set(name, q);
  }
  return accepted;
}

/**
 * The coding to send for an `Accept-Encoding` value, from `encodings` (server preference, best
 * first), or null for identity. See the rules in the module comment.
 */
export function chooseEncoding(acceptEncoding: string | undefined, encodings: readonly ContentCoding[]): ContentCoding | null {
  if (acceptEncoding === undefined || acceptEncoding === '') return null;
  const accepted = parseAcceptEncoding(acceptEncoding);
  const star = accepted.get('*');
  let best: ContentCoding | null = null;
  let bestQ = 0;
  for (const coding of encodings) {
    const q = accepted.get(coding) ?? star ?? 0;
    // Strictly greater: on a tie the earlier (server-preferred) coding stays.
    if (q > bestQ) {
      best = coding;
      bestQ = q;
    }
  }
  if (best === null) return null;
  // Identity, when the client rates it explicitly (or through "*"), beats a coding rated lower.
  const identity = accepted.get('identity') ?? star;
  if (identity !== undefined && identity > bestQ) return null;
  return best;
}

/** A media-type matcher for `types` entries: "text/html", "text/*", "application/*+json", "*\/*". */
export function compileTypeMatcher(types: readonly string[]): (mediaType: string) => boolean {
  const exact = new Set<string>();
  const globs: string[] = [];
  for (const entry of types) {
    const lower = entry.trim().toLowerCase();
    if (!lower.includes('*')) exact.add(lower);
    else globs.push(lower.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*'));
  }
  // One alternation, compiled once per generation; looked up once per distinct Content-Type.
  const glob = globs.length === 0 ? null : new RegExp(`^(?:${globs.join('|')})$`);
  return (mediaType) => exact.has(mediaType) || (glob !== null && glob.test(mediaType));
}

/** The media type of a Content-Type value, lower-case, without parameters. */
function mediaTypeOf(contentType: string): string {
  const semi = contentType.indexOf(';');
  return (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
}

/** Does a Cache-Control value (request or response) carry `no-transform`? */
function hasNoTransform(value: string | string[] | undefined): boolean {
  if (value === undefined) return false;
  const text = Array.isArray(value) ? value.join(',') : value;
  return text.length >= 12 && /(?:^|,)\s*no-transform\s*(?:,|$)/i.test(text);
}

/** What `inspect` found: not compressible, compressible but not this time, or to compress. */
export const NOT_COMPRESSIBLE = 0;
export const COMPRESSIBLE = 1;
export type Inspection = typeof NOT_COMPRESSIBLE | typeof COMPRESSIBLE | ContentCoding;

/**
 * Adds `Accept-Encoding` to the response's Vary (RFC 9110 §12.5.5), merged into the first Vary
 * field, unless it is there already or Vary is "*" (which varies on everything).
 */
export function addVary(headers: string[]): void {
  let first = -1;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    if (name.length !== 4 || name.toLowerCase() !== 'vary') continue;
    if (/(?:^|,)\s*(?:\*|accept-encoding)\s*(?:,|$)/i.test(headers[i + 1] as string)) return;
    if (first === -1) first = i;
  }
  if (first === -1) {
    headers.push('Vary', 'Accept-Encoding');
    return;
  }
  // Several Vary field lines are one list (RFC 9110 §5.3): the first one takes the new member.
  const value = (headers[first + 1] as string).trim();
  headers[first + 1] = value === '' ? 'Accept-Encoding' : `${value}, Accept-Encoding`;
}

/**
 * The head of a compressed answer: `Content-Encoding` set, `Content-Length` and `Accept-Ranges`
 * removed, a strong `ETag` made weak (see the module comment for why). `Vary` is `addVary`'s.
 */
export function encodeHead(headers: string[], coding: ContentCoding): void {
  let write = 0;
  for (let read = 0; read < headers.length; read += 2) {
    const name = headers[read] as string;
    let value = headers[read + 1] as string;
    const lower = name.toLowerCase();
    if (lower === 'content-length' || lower === 'accept-ranges') continue;
    if (lower === 'etag' && value.startsWith('"')) value = `W/${value}`;
    headers[write] = name;
    headers[write + 1] = value;
    write += 2;
  }
  headers.length = write;
  headers.push('Content-Encoding', coding);
}

export interface EncoderOptions {
  /** Flush after every write (event streams): each chunk reaches the client at once. */
  readonly flushEachWrite?: boolean;
  /** The body length when known: brotli sizes its window to it. */
  readonly sizeHint?: number;
}

/**
 * ngx_brotli's default window (`brotli_window 512k`, lgwin 19): brotli's own default (22, 4 MiB)
 * would cost megabytes of memory per concurrent compressed response.
 */
const BROTLI_WINDOW = 19;

/** A compressing Transform for one response body with the configured level. */
export function createEncoder(coding: ContentCoding, settings: Pick<ResolvedEncode, 'level'>, options: EncoderOptions = {}): Transform {
  const c = zlib.constants;
  switch (coding) {
    case 'gzip':
      return zlib.createGzip({ level: settings.level.gzip, flush: options.flushEachWrite ? c.Z_SYNC_FLUSH : c.Z_NO_FLUSH });
    case 'br': {
      const params: Record<number, number> = { [c.BROTLI_PARAM_QUALITY]: settings.level.br, [c.BROTLI_PARAM_LGWIN]: BROTLI_WINDOW, [c.BROTLI_PARAM_MODE]: c.BROTLI_MODE_TEXT };
      if (options.sizeHint !== undefined) params[c.BROTLI_PARAM_SIZE_HINT] = options.sizeHint;
      return zlib.createBrotliCompress({ params, flush: options.flushEachWrite ? c.BROTLI_OPERATION_FLUSH : c.BROTLI_OPERATION_PROCESS });
    }
    case 'zstd': {
      const create = zstdZlib.createZstdCompress;
      if (!create) throw new Error('zstd compression needs a Node.js runtime with zlib.createZstdCompress (22.15 or later)');
      const k = zstdZlib.constants;
      return create({ params: { [k.ZSTD_c_compressionLevel as number]: settings.level.zstd }, flush: options.flushEachWrite ? (k.ZSTD_e_flush as number) : (k.ZSTD_e_continue as number) });
    }
  }
}

/**
 * A whole in-memory body compressed (on the thread pool), for callers that keep the result:
 * static's hot file cache, and the response cache storing one variant per coding.
 */
export function compressBuffer(coding: ContentCoding, settings: Pick<ResolvedEncode, 'level'>, body: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const encoder = createEncoder(coding, settings, { sizeHint: body.length });
    const chunks: Buffer[] = [];
    encoder.on('data', (chunk: Buffer) => chunks.push(chunk));
    encoder.once('end', () => resolve(Buffer.concat(chunks)));
    encoder.once('error', reject);
    encoder.end(body);
  });
}

/** No content: RFC 9110 §15.3.5 (204), §15.3.6 (205), §15.4.5 (304); 206 carries ranges. */
function statusMayCompress(status: number): boolean {
  return status >= 200 && status !== 204 && status !== 205 && status !== 206 && status !== 304;
}

/**
 * A 304 to a client that revalidates the compressed copy it holds (`If-None-Match: W/"x"`, the
 * tag this filter gave it, where the origin's is the strong "x"): the 304 carries the weak tag
 * and `Vary` of that copy. RFC 9111 §4.3.4 selects the stored responses a 304 updates by its
 * validator, so a strong "x" would update nothing there; RFC 9110 §15.4.5 wants the `Vary` the
 * 200 would have had.
 */
function revalidatedCompressed(requestHeaders: IncomingHttpHeaders, headers: string[]): void {
  const ifNoneMatch = requestHeaders['if-none-match'];
  if (ifNoneMatch === undefined || !ifNoneMatch.includes('W/"')) return;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    if (name.length !== 4 || name.toLowerCase() !== 'etag') continue;
    const tag = headers[i + 1] as string;
    if (tag.startsWith('"') && ifNoneMatch.includes(`W/${tag}`)) {
      headers[i + 1] = `W/${tag}`;
      addVary(headers);
    }
    return;
  }
}

/**
 * The compression filter of one route, built once per generation from its resolved settings
 * (null settings: no filter, and no per-request work at all).
 */
export class RouteEncoder {
  readonly settings: ResolvedEncode;
  readonly #matches: (mediaType: string) => boolean;
  readonly #choices = new Map<string, ContentCoding | null>();
  readonly #types = new Map<string, boolean>();

  constructor(settings: ResolvedEncode) {
    this.settings = settings;
    this.#matches = compileTypeMatcher(settings.types);
  }

  /** `chooseEncoding` with this route's codings, cached per header value (clients send few distinct ones). */
  choose(acceptEncoding: string | undefined): ContentCoding | null {
    if (acceptEncoding === undefined) return null;
    let choice = this.#choices.get(acceptEncoding);
    if (choice === undefined) {
      choice = chooseEncoding(acceptEncoding, this.settings.encodings);
      if (this.#choices.size >= CACHE_LIMIT) this.#choices.clear();
      this.#choices.set(acceptEncoding, choice);
    }
    return choice;
  }

  /** Is this Content-Type value one of the configured types? Cached per value. */
  compressibleType(contentType: string): boolean {
    let yes = this.#types.get(contentType);
    if (yes === undefined) {
      yes = this.#matches(mediaTypeOf(contentType));
      if (this.#types.size >= CACHE_LIMIT) this.#types.clear();
      this.#types.set(contentType, yes);
    }
    return yes;
  }

  /**
   * `shouldCompress`: NOT_COMPRESSIBLE (leave the response alone), COMPRESSIBLE (it varies on
   * Accept-Encoding but goes out as identity this time), or the coding to compress it with.
   * `headers` is the flat response head; it is not modified.
   */
  inspect(requestHeaders: IncomingHttpHeaders, status: number, headers: readonly string[]): Inspection {
    if (!statusMayCompress(status) || requestHeaders.range !== undefined) return NOT_COMPRESSIBLE;
    let contentType: string | undefined;
    let length = -1;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i] as string;
      switch (name.length) {
        case 12:
          if (name.toLowerCase() === 'content-type') contentType = headers[i + 1];
          break;
        case 14:
          if (name.toLowerCase() === 'content-length') length = Number(headers[i + 1]);
          break;
        case 16:
          // Any coding already applied, "identity" aside (RFC 9110 §8.4: it is no coding).
          if (name.toLowerCase() === 'content-encoding' && (headers[i + 1] as string).trim().toLowerCase() !== 'identity') return NOT_COMPRESSIBLE;
          break;
        case 13:
          if (name.toLowerCase() === 'cache-control' && hasNoTransform(headers[i + 1])) return NOT_COMPRESSIBLE;
          break;
      }
    }
    if (contentType === undefined || !this.compressibleType(contentType)) return NOT_COMPRESSIBLE;
    if (length !== -1 && length < this.settings.minLength) return NOT_COMPRESSIBLE;
    if (hasNoTransform(requestHeaders['cache-control'])) return NOT_COMPRESSIBLE;
    const coding = this.choose(requestHeaders['accept-encoding']);
    // HEAD: the head a GET would get (Content-Encoding, no Content-Length), no body work.
    return coding === null ? COMPRESSIBLE : coding;
  }

  /**
   * The filter step of `sendHead`: decides, rewrites the head, and returns the encoder the body
   * goes to (null: write to `ctx.res` as it is). Call before `writeHead`, then `pipeTo`.
   */
  apply(ctx: RequestContext, status: number, headers: string[]): ContentCoding | null {
    if (status === 304) {
      revalidatedCompressed(ctx.req.headers, headers);
      return null;
    }
    const verdict = this.inspect(ctx.req.headers, status, headers);
    if (verdict === NOT_COMPRESSIBLE) return null;
    addVary(headers);
    if (verdict === COMPRESSIBLE) return null;
    encodeHead(headers, verdict);
    return verdict;
  }

  /**
   * The body sink of a compressed response, after `writeHead`: an encoder piped into `ctx.res`.
   * HEAD has no body: `ctx.res` itself (node:http drops whatever is written).
   */
  pipeTo(ctx: RequestContext, coding: ContentCoding, headers: readonly string[]): Writable {
    const res = ctx.res;
    if (ctx.req.method === 'HEAD') return res;
    let eventStream = false;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i] as string;
      if (name.length === 12 && name.toLowerCase() === 'content-type') eventStream = mediaTypeOf(headers[i + 1] as string) === 'text/event-stream';
    }
    const encoder = createEncoder(coding, this.settings, { flushEachWrite: eventStream });
    // nginx `$body_bytes_sent` counts what went on the wire: the compressed bytes.
    let sent = 0;
    encoder.on('data', (chunk: Buffer) => {
      sent += chunk.length;
    });
    encoder.once('end', () => {
      ctx.bodyBytes = sent;
    });
    // A client that leaves destroys the encoder (and through it the handler's source); an
    // encoder error cuts the connection: the head is gone, a truncated body is the honest answer.
    pipeline(encoder, res, (error) => {
      if (error && !res.destroyed) res.destroy(error);
    });
    return encoder;
  }
}

export function compileEncoder(settings: ResolvedEncode | null): RouteEncoder | null {
  return settings === null || !settings.enabled ? null : new RouteEncoder(settings);
}
