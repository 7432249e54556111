/**
 * The response cache of a `proxy` or `app` route (RFC 9111 shared cache, the nginx
 * `proxy_cache` role), and of the forward proxy's `http://` requests (Squid's). It wraps a
 * CacheOrigin (the route's ProxyHandler, or the forward proxy's exchange with a destination it
 * has checked): a request is answered from the zone's store when policy.ts allows, else it goes
 * to the origin through `exchange` with a sink that tees the response to the client and to the
 * store as it streams.
 *
 *   GET/HEAD  lookup (primary key from the key template, secondary from Vary, §4.1)
 *             → fresh: hit (a 304 when the client's validators match, §4.3.2)
 *             → stale within stale-while-revalidate: hit, one background revalidation (RFC 5861 §3)
 *             → must validate: conditional request (§4.3.1); 304 freshens the stored response
 *               (§4.3.4), a full response replaces it, an error serves it stale where
 *               stale-if-error or `useStale` allows (RFC 5861 §4), else the error goes through
 *             → none: miss; concurrent misses for one key wait for the first (nginx
 *               `proxy_cache_lock`, bounded by `lockTimeout`), then read what it stored
 *   PURGE     from an allowed address: removes a key's entries, or every key with a prefix
 *             (a path ending in "*"); else 403
 *   unsafe    (POST, PUT, DELETE, unknown methods): passed on; a non-error answer invalidates the
 *             target and same-host Location / Content-Location (§4.4)
 *
 * Every response of a cached route carries `Cache-Status` (RFC 9211), e.g. `portico; hit;
 * ttl=42`, `portico; fwd=miss; fwd-status=200; stored; ttl=60`.
 *
 * A HEAD goes upstream as a GET, so its answer can be stored (nginx `proxy_cache_convert_head`).
 * Requests with If-Match / If-Unmodified-Since are passed on untouched (§4.3.2: a cache must
 * not evaluate preconditions that only apply to an origin server). Range requests are answered
 * with the whole stored response (RFC 9110 §14.2 lets a server ignore Range).
 *
 * Coalescing holds within one process; across edge processes sharing a disk tier each process
 * makes its own first request (see docs/config.md, Response cache).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { EventEmitter } from 'node:events';
import { LRUCache } from 'lru-cache';
import type { ResolvedCacheRules } from '../../../config/resolved.js';
import { HttpError } from '../../../core/errors.js';
import { IpSet } from '../../../core/ip-list.js';
import { log } from '../../../core/log.js';
import type { RequestContext } from '../../context.js';
import { sendBody, sendHead, sendStatus } from '../../http/respond.js';
import { setCacheStatus } from '../../observe.js';
import { compileTemplate, type Template } from '../../variables.js';
import { addVary, compressBuffer, encodeHead, type ContentCoding, type RouteEncoder } from '../../middleware/encode.js';
import { evaluatePreconditions } from '../static/conditional.js';
import type { Handler } from '../types.js';
import { parseHttpDate } from '../../http/date.js';
import type { Exchange, ResponseSink } from '../proxy/attempt.js';
import {
  correctedInitialAge,
  currentAge,
  field,
  freshnessLifetime,
  invalidationTargets,
  parseCacheControl,
  responseDirectives,
  withoutExpires,
  remainingTtl,
  reuseDecision,
  SAFE_METHODS,
  secondaryKey,
  staleIfErrorAllows,
  storability,
  updateHeaders,
  varyNames,
  type Directives,
  type ResponseFacts,
} from './policy.js';
import { CacheEntry, fullKey, purgeInNode, type CacheStore, type EntryWriter, type StoredMeta } from './store.js';
import type { Readable, Writable } from 'node:stream';

const NO_ADD: readonly (readonly [string, string])[] = [];
/** RFC 9110 §15.4.5: the fields a 304 carries from the selected representation. */
const NOT_MODIFIED_FIELDS = new Set(['cache-control', 'content-location', 'date', 'etag', 'expires', 'vary']);
/** RFC 5861 §4: the statuses stale-if-error treats as errors. */
const ERROR_STATUSES = new Set([500, 502, 503, 504]);

const isSet = (value: string): boolean => value !== '' && value !== '0';

/** A waiter's promise for a key being fetched by another request. */
interface Lock {
  readonly promise: Promise<void>;
  release(): void;
}

function newLock(): Lock {
  let release = () => {};
  const promise = new Promise<void>((resolve) => (release = resolve));
  return { promise, release };
}

/** The client's request directives and whether the request may read the cache at all. */
interface RequestFacts {
  readonly directives: Directives;
  readonly pragmaNoCache: boolean;
}

const NO_DIRECTIVES: RequestFacts = { directives: parseCacheControl(undefined), pragmaNoCache: false };

/** What an upstream exchange of the cache is for. */
interface FetchPlan {
  readonly primary: string;
  /** The stored response being validated, or null on a miss. */
  readonly stale: CacheEntry | null;
  /** Send the stored response's validators (a conditional request, §4.3.1). */
  readonly conditional: boolean;
  /** May the response be stored (minUses reached, no bypass of storing, lock not timed out). */
  readonly mayStore: boolean;
  /** RFC 9211 `fwd` value. */
  readonly fwd: 'miss' | 'vary-miss' | 'stale' | 'bypass' | 'request';
  /** The request whose answer this is (null: a background revalidation, nobody waits for it). */
  readonly client: RequestContext | null;
  /** The request the upstream request is made from (the client's, or the one that triggered a background revalidation). */
  readonly context: RequestContext;
  /** Released once what this exchange will store is known (stored, or not storable). */
  readonly lock: Lock | null;
}

/**
 * What the cache fronts: the reverse proxy's ProxyHandler, or the forward proxy's exchange with a
 * destination. `exchange` sends one request as the cache changes it (its response going to the
 * exchange's sink) and throws an HttpError (502/504) when nothing answered; `handle` passes a
 * request the cache has no part in (an Upgrade) on as it is.
 */
export interface CacheOrigin {
  handle(ctx: RequestContext): void | Promise<void>;
  exchange(ctx: RequestContext, exchange: Exchange): Promise<void>;
}

export class CacheHandler {
  readonly #proxy: CacheOrigin;
  readonly #store: CacheStore;
  readonly #config: ResolvedCacheRules;
  readonly #key: Template;
  readonly #bypass: readonly Template[];
  readonly #noStore: readonly Template[];
  readonly #purgeAllowed: IpSet | null;
  /** Keys being fetched (proxy_cache_lock), by full key. */
  readonly #locks = new Map<string, Lock>();
  /** Keys being revalidated in the background (stale-while-revalidate: once). */
  readonly #revalidating = new Set<string>();
  /** Requests per primary key, for minUses. */
  readonly #uses: LRUCache<string, number> | null;
  /** Seconds: config-level stale serving (nginx proxy_cache_use_stale). */
  readonly #staleWhileRevalidate: number;
  readonly #staleOnError: number;
  readonly #staleOnTimeout: number;
  readonly #staleOnStatus: ReadonlySet<number>;

  /** `key` makes the primary key of a request (a route's compiled key template; the forward proxy's absolute URI). */
  constructor(proxy: CacheOrigin, store: CacheStore, config: ResolvedCacheRules, key: Template) {
    this.#proxy = proxy;
    this.#store = store;
    this.#config = config;
    this.#key = key;
    this.#bypass = config.bypass.map(compileTemplate);
    this.#noStore = config.noStore.map(compileTemplate);
    this.#purgeAllowed = config.purge === null ? null : new IpSet(config.purge);
    this.#uses = config.minUses > 1 ? new LRUCache<string, number>({ max: 100_000 }) : null;
    const stale = new Set(config.useStale);
    this.#staleWhileRevalidate = stale.has('updating') ? Infinity : 0;
    this.#staleOnError = stale.has('error') ? Infinity : 0;
    this.#staleOnTimeout = stale.has('timeout') ? Infinity : 0;
    this.#staleOnStatus = new Set([500, 502, 503, 504].filter((status) => stale.has(`http_${status}` as 'http_500')));
  }

  handler(): Handler {
    return this.handle.bind(this);
  }

  handle(ctx: RequestContext): void | Promise<void> {
    const method = ctx.req.method ?? 'GET';
    if (ctx.upgrade) return this.#proxy.handle(ctx);
    if (method === 'GET' || method === 'HEAD') {
      const headers = ctx.req.headers;
      // §4.3.2: preconditions that only an origin server can evaluate: pass the request on.
      if (headers['if-match'] !== undefined || headers['if-unmodified-since'] !== undefined) return this.#pass(ctx, 'portico; fwd=request; detail=precondition', false);
      for (const template of this.#bypass) if (isSet(template(ctx))) return this.#fetch({ primary: this.#key(ctx), stale: null, conditional: false, mayStore: this.#mayStore(ctx), fwd: 'bypass', client: ctx, context: ctx, lock: null });
      const primary = this.#key(ctx);
      const cc = headers['cache-control'];
      const pragma = headers.pragma;
      // Most requests carry neither: one shared object, nothing parsed.
      const request: RequestFacts =
        cc === undefined && pragma === undefined ? NO_DIRECTIVES : { directives: parseCacheControl(cc), pragmaNoCache: cc === undefined && /(?:^|,)\s*no-cache\s*(?:,|$)/i.test(pragma ?? '') };
      // The hot path: Vary names and the entry in memory, fresh: answered without a promise.
      const names = this.#store.peekVary(primary);
      if (names !== undefined) {
        const entry = this.#store.peek(fullKey(primary, secondaryKey(names, headers)));
        if (entry !== undefined && this.#tryServe(ctx, entry, request, Date.now())) return;
      }
      return this.#lookup(ctx, primary, request);
    }
    if (method === 'PURGE' && this.#purgeAllowed) return this.#purge(ctx);
    if (SAFE_METHODS.has(method)) return this.#pass(ctx, 'portico; fwd=method', false);
    return this.#pass(ctx, 'portico; fwd=method', true);
  }

  /** Serves a stored response if policy allows it without the origin; false when it must not. */
  #tryServe(ctx: RequestContext, entry: CacheEntry, request: RequestFacts, now: number, prefix = 'portico; hit'): boolean {
    const decision = reuseDecision(entry, request.directives, request.pragmaNoCache, now, { staleWhileRevalidate: this.#staleWhileRevalidate });
    if (decision === 'fresh') {
      this.#serve(ctx, entry, now, null, prefix);
      return true;
    }
    if (decision === 'stale-allowed') {
      this.#serve(ctx, entry, now, 'detail=stale', prefix);
      return true;
    }
    if (decision === 'stale-while-revalidate') {
      this.#serve(ctx, entry, now, 'detail=stale-while-revalidate', prefix);
      this.#revalidateInBackground(ctx, entry);
      return true;
    }
    return false;
  }

  /** The stored response for a request: its primary key's Vary names, its full key and the entry (memory, then disk). */
  async #find(primary: string, headers: IncomingHttpHeaders): Promise<{ names: readonly string[]; key: string; entry: CacheEntry | undefined }> {
    const names = await this.#store.getVary(primary);
    const key = fullKey(primary, secondaryKey(names, headers));
    return { names, key, entry: this.#store.peek(key) ?? (await this.#store.get(key)) };
  }

  /**
   * `again`: this request waited on a fill of the same primary key that turned out to be another
   * variant (its Vary was unknown until that response came); it looks up once more, so that the
   * requests for its own variant wait on one fill too instead of each going upstream.
   */
  async #lookup(ctx: RequestContext, primary: string, request: RequestFacts, again = false): Promise<void> {
    const { names, key, entry: stored } = await this.#find(primary, ctx.req.headers);
    let entry = stored;
    const now = Date.now();
    if (entry && this.#tryServe(ctx, entry, request, now)) return;
    // §5.2.1.7 only-if-cached: nothing usable without the origin → 504.
    if (request.directives.has('only-if-cached')) {
      setCacheStatus(ctx, this.#config.zone, 'portico; fwd=miss; detail=only-if-cached');
      sendStatus(ctx, 504, { 'Cache-Status': ctx.cacheStatus });
      return;
    }
    const mayStore = this.#mayStore(ctx);
    const fwd = entry ? 'stale' : names.length > 0 ? 'vary-miss' : 'miss';
    if (!this.#config.lock) return this.#fetch({ primary, stale: entry ?? null, conditional: entry !== undefined && hasValidators(entry), mayStore, fwd, client: ctx, context: ctx, lock: null });
    const pending = this.#locks.get(key);
    if (!pending) {
      const lock = newLock();
      this.#locks.set(key, lock);
      let unlock: (() => void) | null = null;
      try {
        // Across processes (a disk tier shared by edge workers): a lock file per key.
        const shared = this.#store.lockFill ? await this.#store.lockFill(key, this.#config.lockTimeout) : { leader: true as const, release: () => {} };
        if (shared.leader) unlock = shared.release;
        // Leader or not, a fill may have completed between this request's lookup and now (the
        // lookup awaited the disk, or another process filled it): what it stored is served, not
        // fetched again. It may have been the first response to name a Vary: the key is worked
        // out again, and a request for another variant waits on (or leads) that one's fill.
        const found = await this.#find(primary, ctx.req.headers);
        if (found.entry && found.entry !== entry && this.#tryServe(ctx, found.entry, request, Date.now(), 'portico; fwd=miss; collapsed')) return;
        if (!found.entry && found.key !== key && !again) return await this.#lookup(ctx, primary, request, true);
        if (!shared.leader) entry = found.entry ?? entry;
        const storeIt = shared.leader || shared.released ? mayStore : false;
        await this.#fetch({ primary, stale: entry ?? null, conditional: entry !== undefined && hasValidators(entry), mayStore: storeIt, fwd, client: ctx, context: ctx, lock });
      } finally {
        unlock?.();
        lock.release();
        if (this.#locks.get(key) === lock) this.#locks.delete(key);
      }
      return;
    }
    // Another request fetches this key: wait for what it stores (nginx proxy_cache_lock).
    let timer: NodeJS.Timeout | undefined;
    const released = await Promise.race([pending.promise.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(resolve, this.#config.lockTimeout, false)))]);
    clearTimeout(timer);
    if (released) {
      const found = await this.#find(primary, ctx.req.headers);
      entry = found.entry;
      if (entry && this.#tryServe(ctx, entry, request, Date.now(), 'portico; fwd=miss; collapsed')) return;
      // The fill was another variant: wait on (or lead) the fill of this one.
      if (!entry && found.key !== key && !again) return this.#lookup(ctx, primary, request, true);
    }
    // Timed out (its response is not stored, as nginx), or the first one stored nothing usable.
    await this.#fetch({ primary, stale: entry ?? null, conditional: entry !== undefined && hasValidators(entry), mayStore: released ? mayStore : false, fwd, client: ctx, context: ctx, lock: null });
  }

  #mayStore(ctx: RequestContext): boolean {
    for (const template of this.#noStore) if (isSet(template(ctx))) return false;
    return true;
  }

  /**
   * Sends a stored response: 200-style with its body, or 304/412 per the client's validators
   * (RFC 9111 §4.3.2; only If-None-Match / If-Modified-Since get here). `extra` is appended to
   * the Cache-Status (e.g. "detail=stale").
   */
  #serve(ctx: RequestContext, entry: CacheEntry, now: number, extra: string | null, prefix = 'portico; hit'): void {
    const second = Math.floor(now / 1000);
    if (entry.stampSecond !== second) {
      entry.stampSecond = second;
      entry.stampAge = String(Math.floor(currentAge(entry.initialAge, entry.responseTime, now)));
      entry.stampTtl = remainingTtl(entry, now);
    }
    const status = `${prefix}; ttl=${entry.stampTtl}${extra === null ? '' : `; ${extra}`}`;
    setCacheStatus(ctx, this.#config.zone, status);
    const req = ctx.req;
    if ((req.headers['if-none-match'] !== undefined || req.headers['if-modified-since'] !== undefined) && entry.meta.status === 200) {
      if (evaluatePreconditions(req.method ?? 'GET', req.headers, entry.etag, entry.modifiedMs) === 304) {
        const headers: string[] = [];
        const stored = entry.hitHeaders;
        for (let i = 0; i < stored.length; i += 2) if (NOT_MODIFIED_FIELDS.has(stored[i] as string)) headers.push(stored[i] as string, stored[i + 1] as string);
        headers.push('age', entry.stampAge, 'cache-status', status);
        sendHead(ctx, 304, headers).end();
        return;
      }
    }
    const encode = ctx.route?.encode;
    if (encode && entry.body !== null && entry.body.length > 0) {
      // The route compresses: a stored compressed copy for the client's coding, else make one
      // (in the background) and let the filter compress this answer on the fly.
      const verdict = encode.inspect(req.headers, entry.meta.status, entry.hitHeaders);
      if (typeof verdict === 'string') {
        const variant = entry.variants?.get(verdict);
        if (variant) {
          const headers = variant.headers.slice();
          headers.push('age', entry.stampAge, 'cache-status', status);
          // Content-Encoding is set: the filter leaves it alone (never compressed twice).
          const out = sendHead(ctx, entry.meta.status, headers);
          ctx.bodyBytes = req.method === 'HEAD' ? 0 : variant.body.length;
          out.end(variant.body);
          return;
        }
        this.#compressVariant(entry, verdict, encode);
      }
    }
    const headers = entry.hitHeaders.slice();
    headers.push('age', entry.stampAge, 'cache-status', status);
    // The body goes where sendHead says: the client, or the route's compressor.
    const out = sendHead(ctx, entry.meta.status, headers);
    if (entry.body !== null) {
      ctx.bodyBytes = req.method === 'HEAD' ? 0 : entry.body.length;
      out.end(entry.body);
      return;
    }
    if (req.method === 'HEAD' || !entry.open) {
      out.end();
      return;
    }
    streamBody(ctx, entry, out);
  }

  /** Compresses a memory entry's body once for a coding and keeps it on the entry. */
  #compressVariant(entry: CacheEntry, coding: ContentCoding, encode: RouteEncoder): void {
    if (entry.pending?.has(coding)) return;
    (entry.pending ??= new Set()).add(coding);
    compressBuffer(coding, encode.settings, entry.body as Buffer).then(
      (body) => {
        const headers = entry.hitHeaders.slice();
        addVary(headers);
        encodeHead(headers, coding);
        // The compressed length is known: no chunked framing on hits.
        headers.push('content-length', String(body.length));
        (entry.variants ??= new Map()).set(coding, { headers, body });
        this.#store.resize(entry);
      },
      (error: unknown) => log().warn({ err: error, coding }, 'cache variant could not be compressed'),
    );
  }

  /** Starts one background revalidation of a key (stale-while-revalidate), unless one runs. */
  #revalidateInBackground(ctx: RequestContext, entry: CacheEntry): void {
    const key = fullKey(entry.meta.key, entry.meta.secondary);
    if (this.#revalidating.has(key)) return;
    this.#revalidating.add(key);
    this.#fetch({ primary: entry.meta.key, stale: entry, conditional: hasValidators(entry), mayStore: true, fwd: 'stale', client: null, context: ctx, lock: null })
      .catch((error: unknown) => log().warn({ err: error, key: entry.meta.key }, 'background revalidation failed'))
      .finally(() => this.#revalidating.delete(key));
  }

  /**
   * One exchange with the upstream for the cache: a miss, a validation, a bypass or a
   * background revalidation. Stale-if-error applies when it fails before a response.
   */
  async #fetch(plan: FetchPlan): Promise<void> {
    const ctx = plan.client;
    const sink = new StoringSink(this, plan);
    const exchange: Exchange = {
      method: 'GET',
      strip: plan.conditional ? 'all' : 'range',
      add: plan.conditional && plan.stale ? validatorsOf(plan.stale) : NO_ADD,
      sink,
    };
    try {
      await this.#proxy.exchange(plan.context, exchange);
      // The response went out; its entry commits right after (a disk write may still run):
      // waiters of the lock must find it, so the lock is held until then (bounded).
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([sink.settled, new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#config.lockTimeout)))]);
      clearTimeout(timer);
      sink.release();
    } catch (error) {
      sink.release();
      const status = error instanceof HttpError ? error.status : 502;
      const stale = plan.stale;
      if (stale && this.#staleOnFailure(stale, ctx, status === 504 ? 'timeout' : 'error')) {
        if (ctx) this.#serve(ctx, stale, Date.now(), 'detail=stale-if-error', `portico; fwd=stale; fwd-status=${status}`);
        return;
      }
      if (!ctx) throw error;
      setCacheStatus(ctx, this.#config.zone, `portico; fwd=${plan.fwd}; detail=upstream-error`);
      if (error instanceof HttpError) throw new HttpError(error.status, error.code, error.message, { cause: error.cause, headers: { ...error.headers, 'Cache-Status': ctx.cacheStatus } });
      throw error;
    }
    if (sink.retryUnconditional && ctx) {
      // §4.3.4: a 304 whose strong validator matches no stored response updates nothing; ask again for the whole response.
      await this.#fetch({ ...plan, conditional: false, lock: null });
    }
  }

  /** RFC 5861 §4 + config `useStale`: may `stale` answer after this failure? */
  #staleOnFailure(stale: CacheEntry, ctx: RequestContext | null, failure: 'error' | 'timeout' | number): boolean {
    const configured = failure === 'error' ? this.#staleOnError : failure === 'timeout' ? this.#staleOnTimeout : this.#staleOnStatus.has(failure) ? Infinity : 0;
    const request = ctx ? parseCacheControl(ctx.req.headers['cache-control']) : new Map<string, string>();
    return staleIfErrorAllows(stale, request, Date.now(), configured);
  }

  /** Passes a request on (not read from the cache, not stored), with its Cache-Status; `invalidate` for unsafe methods (§4.4). */
  async #pass(ctx: RequestContext, cacheStatus: string, invalidate: boolean): Promise<void> {
    const sink = new PassSink(ctx, this.#config.zone, cacheStatus);
    await this.#proxy.exchange(ctx, { method: ctx.req.method ?? 'GET', strip: 'none', add: NO_ADD, sink });
    if (!invalidate || sink.status === 0) return;
    const targets = invalidationTargets(sink.status, ctx.requestUri, sink.headers ?? [], ctx.listener.scheme, ctx.req.headers.host ?? ctx.host);
    for (const target of targets) {
      const key = this.#keyFor(ctx, target);
      await this.#store.purge(key, false).catch(() => 0);
      await this.#store.announcePurge?.(key, false);
    }
  }

  /** The key of another URI on the request's host (for invalidation and purge). */
  #keyFor(ctx: RequestContext, requestUri: string): string {
    const question = requestUri.indexOf('?');
    let path = question === -1 ? requestUri : requestUri.slice(0, question);
    try {
      path = decodeURIComponent(path);
    } catch {
      // keep it encoded
    }
    const view = Object.create(ctx, {
      uri: { value: path },
      query: { value: question === -1 ? '' : requestUri.slice(question + 1) },
      hasQuery: { value: question !== -1 },
      requestUri: { value: requestUri },
    }) as RequestContext;
    return this.#key(view);
  }

  /** PURGE (nginx cache_purge, Varnish): 200 with how many were removed, 404 when none, 403 from other addresses. */
  async #purge(ctx: RequestContext): Promise<void> {
    if (!(this.#purgeAllowed as IpSet).has(ctx.clientAddress)) {
      sendStatus(ctx, 403);
      return;
    }
    const uri = ctx.requestUri;
    const prefix = uri.endsWith('*');
    const key = prefix ? this.#keyFor(ctx, uri.slice(0, -1)) : this.#key(ctx);
    const count = await purgeInNode(this.#store, key, prefix);
    for (const [lockKey] of this.#locks) if (prefix ? lockKey.startsWith(key) : lockKey.startsWith(`${key}\0`)) this.#locks.delete(lockKey);
    sendBody(ctx, count > 0 ? 200 : 404, ['Content-Type', 'application/json'], `${JSON.stringify({ purged: count, key: prefix ? `${key}*` : key })}\n`);
  }

  /** Whether PURGE is the cache's (`purge.allow`), not passed on. */
  get purges(): boolean {
    return this.#purgeAllowed !== null;
  }

  // ---- used by StoringSink ------------------------------------------------------------------

  get store(): CacheStore {
    return this.#store;
  }

  get config(): ResolvedCacheRules {
    return this.#config;
  }

  /**
   * A fill that began before its key's Vary was known (its lock is on the key without a
   * secondary part) turns out to fill `key`: requests for `key` that come meanwhile wait on the
   * same lock instead of fetching it a second time.
   */
  aliasLock(key: string, lock: Lock): void {
    if (this.#locks.has(key)) return;
    this.#locks.set(key, lock);
    void lock.promise.then(() => {
      if (this.#locks.get(key) === lock) this.#locks.delete(key);
    });
  }

  /** minUses: counts this request and says whether the key has been asked for often enough. */
  countUse(primary: string): boolean {
    const uses = this.#uses;
    if (!uses) return true;
    const count = (uses.get(primary) ?? 0) + 1;
    uses.set(primary, count);
    return count >= this.#config.minUses;
  }

  staleOnStatus(stale: CacheEntry, ctx: RequestContext | null, status: number): boolean {
    return ERROR_STATUSES.has(status) && this.#staleOnFailure(stale, ctx, status);
  }

  serveStored(ctx: RequestContext, entry: CacheEntry, status: string, extra: string | null): void {
    this.#serve(ctx, entry, Date.now(), extra, status);
  }
}

function hasValidators(entry: CacheEntry): boolean {
  return entry.etag !== null || entry.lastModified !== null;
}

/** §4.3.1: the stored response's entity tag and Last-Modified as validators. */
function validatorsOf(entry: CacheEntry): (readonly [string, string])[] {
  const out: (readonly [string, string])[] = [];
  if (entry.etag !== null) out.push(['if-none-match', entry.etag]);
  if (entry.lastModified !== null) out.push(['if-modified-since', entry.lastModified]);
  return out;
}

/** Streams a disk entry's body; a failure after the head cuts the response (never a wrong one). */
function streamBody(ctx: RequestContext, entry: CacheEntry, out: Writable): void {
  const res = ctx.res;
  (entry.open as (entry: CacheEntry) => Promise<Readable>)(entry).then(
    (stream) => {
      stream.on('data', (chunk: Buffer) => {
        ctx.bodyBytes += chunk.length;
        if (!out.write(chunk)) {
          stream.pause();
          out.once('drain', () => stream.resume());
        }
      });
      stream.on('end', () => out.end());
      stream.on('error', () => res.destroy());
      res.once('close', () => stream.destroy());
    },
    () => res.destroy(),
  );
}

/** A sink that passes the response on, adding Cache-Status, and remembers status and headers. */
class PassSink extends EventEmitter implements ResponseSink {
  readonly #ctx: RequestContext;
  readonly #cacheStatus: string;
  readonly #zone: string;
  /** Where the body goes once the head is sent (the client, or the route's compressor). */
  #out: Writable;
  status = 0;
  headers: readonly string[] | null = null;

  constructor(ctx: RequestContext, zone: string, cacheStatus: string) {
    super();
    this.#ctx = ctx;
    this.#zone = zone;
    this.#cacheStatus = cacheStatus;
    this.#out = ctx.res;
    ctx.res.once('close', () => this.emit('close'));
  }

  override once(event: string | symbol, listener: (...args: unknown[]) => void): this {
    // Back-pressure comes from where the body is written.
    if (event === 'drain') this.#out.once('drain', listener);
    else super.once(event, listener);
    return this;
  }

  head(status: number, headers: string[]): void {
    this.status = status;
    this.headers = headers.slice();
    setCacheStatus(this.#ctx, this.#zone, `${this.#cacheStatus}; fwd-status=${status}`);
    headers.push('cache-status', this.#ctx.cacheStatus);
    this.#out = sendHead(this.#ctx, status, headers);
  }

  write(chunk: Buffer): boolean {
    return this.#out.write(chunk);
  }

  end(): void {
    this.#out.end();
  }

  destroy(): void {
    this.#ctx.res.destroy();
  }

  get writableFinished(): boolean {
    return this.#ctx.res.writableFinished;
  }
}

/**
 * The sink of a cache exchange: decides at the response head whether to store (policy.ts), tees
 * the body to the client and a store writer (bounded by maxObjectSize), freshens on a 304,
 * serves stale on an error status where allowed. While it stores, a client that leaves does not
 * stop the upstream response (others may be waiting for it); otherwise it does.
 */
class StoringSink extends EventEmitter implements ResponseSink {
  readonly #cache: CacheHandler;
  readonly #plan: FetchPlan;
  readonly #requestTime = Date.now();
  #writer: EntryWriter | null = null;
  #size = 0;
  /** The client still takes the body: where it goes (the client, or the route's compressor, once the head is sent). */
  #client: Writable | null;
  #finished = false;
  #released = false;
  /** Set when a 304 did not match the stored response (§4.3.4): the handler asks again, unconditionally. */
  retryUnconditional = false;

  constructor(cache: CacheHandler, plan: FetchPlan) {
    super();
    this.#cache = cache;
    this.#plan = plan;
    const res = plan.client?.res ?? null;
    this.#client = res;
    if (res) {
      res.once('close', () => {
        if (res.writableFinished) return;
        this.#client = null;
        // Nobody reads the body any more: stop the upstream, unless it fills the cache.
        if (this.#writer === null) this.emit('close');
      });
    }
  }

  readonly #settled = newLock();

  /** Resolves once what this exchange stores is committed (or known not to be stored). */
  get settled(): Promise<void> {
    return this.#settled.promise;
  }

  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#plan.lock?.release();
    this.#settled.release();
  }

  override once(event: string | symbol, listener: (...args: unknown[]) => void): this {
    // Back-pressure comes from where the body is written.
    if (event === 'drain' && this.#client) this.#client.once('drain', listener);
    else if (event === 'drain') process.nextTick(listener);
    else super.once(event, listener);
    return this;
  }

  #stop(): void {
    // Ends the upstream side: the transport sees the consumer gone.
    process.nextTick(() => this.emit('close'));
  }

  head(status: number, headers: string[]): void {
    const plan = this.#plan;
    const cache = this.#cache;
    const ctx = plan.client;
    const now = Date.now();
    const stale = plan.stale;
    if (stale && status === 304 && plan.conditional) {
      const etag = field(headers, 'etag');
      // §4.3.4: a strong validator in the 304 must be the stored one's.
      if (etag !== undefined && !etag.startsWith('W/') && stale.etag !== null && etag !== stale.etag) {
        this.retryUnconditional = true;
        this.release();
        this.#stop();
        return;
      }
      const meta = this.#metaFor(stale.meta.status, updateHeaders(stale.meta.headers, headers), stale.meta.secondary, now, stale.meta.bodySize);
      const fresh = new CacheEntry(meta, stale.body, stale.open);
      void cache.store
        .update(stale, meta)
        .catch(() => undefined)
        .finally(() => this.release());
      if (ctx && this.#client) cache.serveStored(ctx, fresh, 'portico; fwd=stale; fwd-status=304', null);
      this.#client = null;
      this.#stop();
      return;
    }
    if (stale && cache.staleOnStatus(stale, ctx, status)) {
      this.release();
      if (ctx && this.#client) cache.serveStored(ctx, stale, `portico; fwd=stale; fwd-status=${status}`, 'detail=stale-if-error');
      this.#client = null;
      this.#stop();
      return;
    }
    // A new response: may it be stored?
    const request = ctx ?? null;
    const reqHeaders = request?.req.headers ?? {};
    const governing = responseDirectives(headers, cache.config.targeted);
    const directives = governing.directives;
    // RFC 9213 §2.1: a targeted field that decides makes Expires ignored as well.
    const facts: ResponseFacts = governing.targeted === null ? { status, headers } : withoutExpires({ status, headers });
    const verdict = storability(facts, directives, {
      authorization: reqHeaders.authorization !== undefined,
      request: parseCacheControl(reqHeaders['cache-control']),
      setCookie: cache.config.setCookie,
      valid: cache.config.valid,
    });
    let detail: string | null = null;
    const names = varyNames(headers);
    if (!verdict.store) detail = verdict.reason.replace(/\s+/g, '-');
    else if (!plan.mayStore) detail = 'no-store-config';
    else if (!cache.countUse(plan.primary)) detail = 'min-uses';
    else {
      const length = Number(field(headers, 'content-length') ?? NaN);
      if (length > cache.config.maxObjectSize) detail = 'too-large';
      else {
        const stored: string[] = [];
        for (let i = 0; i < headers.length; i += 2) if (!verdict.drop.includes(headers[i] as string)) stored.push(headers[i] as string, headers[i + 1] as string);
        const secondary = secondaryKey(names, reqHeaders);
        const meta = this.#metaFor(status, stored, secondary, now, Number.isNaN(length) ? 0 : length);
        this.#writer = cache.store.open(meta);
        if (this.#writer) {
          cache.store.setVary(plan.primary, names);
          if (plan.lock && secondary !== '') cache.aliasLock(fullKey(plan.primary, secondary), plan.lock);
        }
        else detail = 'not-stored';
      }
    }
    if (this.#writer === null) this.release();
    // Invalidate what this replaces when it is not stored (a no-store answer to a validation, §4.4 spirit: never serve the old one again).
    if (stale && this.#writer === null && status !== 304 && !ERROR_STATUSES.has(status)) void cache.store.delete(fullKey(stale.meta.key, stale.meta.secondary)).catch(() => {});
    if (!ctx || !this.#client) {
      if (this.#writer === null) this.#stop();
      return;
    }
    const fwd = `portico; fwd=${plan.fwd}; fwd-status=${status}`;
    let cacheStatus = this.#writer ? `${fwd}; stored` : fwd;
    if (this.#writer) {
      const lifetime = freshnessLifetime(facts, directives, dateOf(headers, now), cache.config.heuristicPercent, cache.config.heuristicMax, cache.config.valid);
      cacheStatus += `; ttl=${Math.floor(lifetime - correctedInitialAge(headers, this.#requestTime, now, dateOf(headers, now)))}`;
    }
    if (detail !== null) cacheStatus += `; detail=${detail}`;
    setCacheStatus(ctx, cache.config.zone, cacheStatus);
    // The client's own validators against the new response (they were sent upstream on a miss,
    // and a 200 means they did not match there; on a validation they were ours).
    if (status === 200 && plan.conditional && (reqHeaders['if-none-match'] !== undefined || reqHeaders['if-modified-since'] !== undefined)) {
      const lm = parseHttpDate(field(headers, 'last-modified'));
      if (evaluatePreconditions(ctx.req.method ?? 'GET', reqHeaders, field(headers, 'etag') ?? null, Number.isNaN(lm) ? null : lm) === 304) {
        const out: string[] = [];
        for (let i = 0; i < headers.length; i += 2) if (NOT_MODIFIED_FIELDS.has(headers[i] as string)) out.push(headers[i] as string, headers[i + 1] as string);
        out.push('cache-status', cacheStatus);
        sendHead(ctx, 304, out).end();
        this.#client = null;
        if (this.#writer === null) this.#stop();
        return;
      }
    }
    headers.push('cache-status', cacheStatus);
    this.#client = sendHead(ctx, status, stripFields(headers, cache.config.stripTargeted));
  }

  #metaFor(status: number, headers: readonly string[], secondary: string, now: number, bodySize: number): StoredMeta {
    const config = this.#cache.config;
    const date = dateOf(headers, now);
    const { directives, targeted } = responseDirectives(headers, config.targeted);
    const facts: ResponseFacts = targeted === null ? { status, headers } : withoutExpires({ status, headers });
    const hiddenOnHit = config.stripTargeted.filter((name) => field(headers, name) !== undefined);
    return {
      key: this.#plan.primary,
      secondary,
      status,
      headers,
      requestTime: this.#requestTime,
      responseTime: now,
      lifetime: freshnessLifetime(facts, directives, date, config.heuristicPercent, config.heuristicMax, config.valid),
      ...(targeted === null ? {} : { targeted }),
      ...(hiddenOnHit.length === 0 ? {} : { hiddenOnHit }),
      initialAge: correctedInitialAge(headers, this.#requestTime, now, date),
      bodySize,
    };
  }

  write(chunk: Buffer): boolean {
    const writer = this.#writer;
    if (writer) {
      this.#size += chunk.length;
      if (this.#size > this.#cache.config.maxObjectSize) {
        writer.abort();
        this.#writer = null;
        this.release();
        if (!this.#client) this.#stop();
      } else writer.write(chunk);
    }
    const client = this.#client;
    if (client) return client.write(chunk);
    return true;
  }

  end(): void {
    this.#finished = true;
    this.#client?.end();
    const writer = this.#writer;
    this.#writer = null;
    if (!writer) {
      this.release();
      return;
    }
    writer.end().then(
      () => this.release(),
      () => this.release(),
    );
  }

  destroy(): void {
    this.#writer?.abort();
    this.#writer = null;
    this.release();
    // A cut connection is the only honest signal once the head went out.
    if (this.#client) this.#plan.client?.res.destroy();
  }

  get writableFinished(): boolean {
    return this.#finished;
  }
}

/** The head without the fields named in `names` (lower case), in place; most routes name none that are present. */
function stripFields(headers: string[], names: readonly string[]): string[] {
  if (names.length === 0) return headers;
  for (let i = headers.length - 2; i >= 0; i -= 2) if (names.includes(headers[i] as string)) headers.splice(i, 2);
  return headers;
}

/** The Date of a response (ms), or when it was received when it has none or an invalid one. */
function dateOf(headers: readonly string[], receivedAt: number): number {
  const date = parseHttpDate(field(headers, 'date'));
  return Number.isNaN(date) ? receivedAt : date;
}
