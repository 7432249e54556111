/**
 * The rules of a shared HTTP cache (RFC 9111), as pure functions of headers and times, so each
 * rule is unit-tested on its own (policy.test.ts) and the handler (index.ts) only wires them:
 *
 *   - parseCacheControl          §5.2 directives, request and response
 *   - storability                §3 (+ §3.5 Authorization, §5.2.2.3 must-understand, private,
 *                                no-store, Set-Cookie policy)
 *   - freshnessLifetime          §4.2.1 (s-maxage > max-age > Expires - Date), §4.2.2 heuristic
 *   - current age                §4.2.3
 *   - reuse decision             §4 + §4.2.4 (stale), §5.2.1 request directives, RFC 5861
 *   - Vary secondary key         §4.1, with normalised values
 *   - updating stored headers    §3.2 (a 304 freshens, §4.3.4)
 *
 * Times are milliseconds since the epoch; lifetimes and ages are kept in seconds (HTTP's unit).
 */
import { parseDictionary, Token } from 'structured-headers';
import { parseHttpDate } from '../../http/date.js';

/** Parsed `Cache-Control` (§5.2). Names are lower case; a directive without argument maps to ''. */
export type Directives = ReadonlyMap<string, string>;

const EMPTY: Directives = new Map();

/**
 * §5.2: `Cache-Control` is a list of `token [ "=" ( token / quoted-string ) ]`, directive names
 * case-insensitive. Several field lines are one list (RFC 9110 §5.3). A directive repeated keeps
 * its first value, except that a second, different value of a delta-seconds directive is marked
 * as a conflict ("\0"): §4.2.1 says such a response should then be considered stale.
 */
export function parseCacheControl(value: string | readonly string[] | undefined): Directives {
  if (value === undefined) return EMPTY;
  const text = typeof value === 'string' ? value : value.join(',');
  if (text === '') return EMPTY;
  const out = new Map<string, string>();
  const re = /\s*([^\s=,]+)\s*(?:=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*)))?\s*(?:,|$)/gy;
  for (let m = re.exec(text); m !== null && m[0] !== ''; m = re.exec(text)) {
    const name = (m[1] as string).toLowerCase();
    const arg = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : (m[3] ?? '');
    const prior = out.get(name);
    if (prior === undefined) out.set(name, arg);
    else if (prior !== arg && DELTA_DIRECTIVES.has(name)) out.set(name, CONFLICT);
  }
  return out;
}

const CONFLICT = '\0';
const DELTA_DIRECTIVES = new Set(['max-age', 's-maxage', 'min-fresh', 'max-stale', 'stale-while-revalidate', 'stale-if-error']);

/** §1.2.2: the largest delta-seconds a cache must represent. */
const DELTA_MAX = 2_147_483_648;

/**
 * A delta-seconds argument: a non-negative integer (quoted forms are accepted, §5.2: "max-age=5"
 * and "max-age=\"5\"" are equivalent for a recipient), capped at 2^31 (§1.2.2). `undefined` when
 * absent; -1 when present but invalid (the caller treats the response as stale, §4.2.1).
 */
export function deltaSeconds(directives: Directives, name: string): number | undefined {
  const raw = directives.get(name);
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw)) return -1;
  const value = Number(raw);
  return value > DELTA_MAX ? DELTA_MAX : value;
}

/** Field names of a qualified `no-cache="a, b"` / `private="a"` (lower case), or null when unqualified. */
export function qualifiedFields(directives: Directives, name: string): readonly string[] | null {
  const raw = directives.get(name);
  if (raw === undefined || raw === '') return null;
  return raw
    .split(',')
    .map((field) => field.trim().toLowerCase())
    .filter((field) => field !== '');
}

/** Statuses a cache may give heuristic freshness (RFC 9110 §15.1 "heuristically cacheable"). */
export const HEURISTIC_STATUSES: ReadonlySet<number> = new Set([200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501]);

/**
 * Statuses whose caching semantics this cache implements, for §5.2.2.3 `must-understand`. 206
 * (partial content) is not among them: ranges are never stored, a cache that cannot combine
 * partial responses must not store them (§3.3).
 */
export const UNDERSTOOD_STATUSES: ReadonlySet<number> = new Set([200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 451, 501]);

export type SetCookiePolicy = 'no-store' | 'strip' | 'store';

/** What a response head looks like to the policy: lower-case names, flat list. */
export interface ResponseFacts {
  readonly status: number;
  /** Flat [name, value, …], names lower case (as undici and clientResponseHeaders give them). */
  readonly headers: readonly string[];
}

/** The first value of a field in a flat header list (names lower case), or undefined. */
export function field(headers: readonly string[], name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) return headers[i + 1];
  return undefined;
}

/**
 * The directives that govern storing and reusing a response in this cache, and the targeted field
 * they came from (RFC 9213 §2.1): the first of `targeted` (most specific first) that is present and
 * a valid, non-empty Structured Fields Dictionary (RFC 8941 §3.2) decides, and then Cache-Control
 * and Expires are ignored; with none, Cache-Control does. A member's value becomes the directive's
 * argument as in Cache-Control: `?1` none, an integer, string or token its text; `?0` and inner
 * lists name no directive. An invalid targeted field is ignored as if absent (§2.2).
 */
export function responseDirectives(headers: readonly string[], targeted: readonly string[]): { directives: Directives; targeted: string | null } {
  for (const name of targeted) {
    const value = fieldList(headers, name);
    if (value === undefined) continue;
    let dictionary: ReturnType<typeof parseDictionary>;
    try {
      dictionary = parseDictionary(value);
    } catch {
      continue;
    }
    const directives = new Map<string, string>();
    for (const [key, [item]] of dictionary) {
      if (item === false || Array.isArray(item)) continue;
      directives.set(key, item === true ? '' : typeof item === 'number' || typeof item === 'string' || item instanceof Token ? String(item) : '');
    }
    if (directives.size > 0) return { directives, targeted: name };
  }
  return { directives: parseCacheControl(fieldList(headers, 'cache-control')), targeted: null };
}

/** The response as RFC 9213 §2.1 has a cache see it when a targeted field governs: without Expires. */
export function withoutExpires(response: ResponseFacts): ResponseFacts {
  if (field(response.headers, 'expires') === undefined) return response;
  const headers: string[] = [];
  for (let i = 0; i < response.headers.length; i += 2) if (response.headers[i] !== 'expires') headers.push(response.headers[i] as string, response.headers[i + 1] as string);
  return { status: response.status, headers };
}

/** All values of a field, joined as one list (RFC 9110 §5.3), or undefined when absent. */
export function fieldList(headers: readonly string[], name: string): string | undefined {
  let out: string | undefined;
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) out = out === undefined ? (headers[i + 1] as string) : `${out}, ${headers[i + 1] as string}`;
  return out;
}

export interface StoreOptions {
  /** The request carried `Authorization` (§3.5). */
  readonly authorization: boolean;
  /** Request directives (a request `no-store` forbids storing, §5.2.1.5). */
  readonly request: Directives;
  readonly setCookie: SetCookiePolicy;
  /** Configured lifetimes by status (nginx `proxy_cache_valid`): one for this status permits storing. */
  readonly valid?: Readonly<Record<string, number>>;
}

/** The configured lifetime (seconds) of a status, "any" as the fallback, or undefined. */
export function configuredLifetime(valid: Readonly<Record<string, number>> | undefined, status: number): number | undefined {
  return valid === undefined ? undefined : (valid[status] ?? valid.any);
}

export type StoreVerdict = { readonly store: true; readonly drop: readonly string[] } | { readonly store: false; readonly reason: string };

/**
 * §3: may a shared cache store this response to a GET (HEAD is converted to GET before it goes
 * upstream, as nginx `proxy_cache_convert_head`)? When it may, `drop` lists fields to leave out
 * of the stored copy (`private="f"` §5.2.2.7; `Set-Cookie` under the `strip` policy).
 */
export function storability(response: ResponseFacts, directives: Directives, options: StoreOptions): StoreVerdict {
  const status = response.status;
  // §3: a final status; 206 and 304 need handling this cache does not do (§3.3, §4.3.4).
  if (status < 200 || status === 206 || status === 304) return { store: false, reason: `status ${status}` };
  if (options.request.has('no-store')) return { store: false, reason: 'request no-store' };
  const mustUnderstand = directives.has('must-understand');
  // §5.2.2.3: with must-understand, an understood status overrides no-store; any other is never stored.
  if (mustUnderstand && !UNDERSTOOD_STATUSES.has(status)) return { store: false, reason: 'must-understand' };
  if (directives.has('no-store') && !mustUnderstand) return { store: false, reason: 'no-store' };
  const privateFields = qualifiedFields(directives, 'private');
  // §5.2.2.7: unqualified private forbids a shared cache; a qualified one only those fields.
  if (directives.has('private') && privateFields === null) return { store: false, reason: 'private' };
  // §3.5: a response to a request with Authorization only with must-revalidate, public or s-maxage.
  if (options.authorization && !(directives.has('must-revalidate') || directives.has('public') || directives.has('s-maxage'))) {
    return { store: false, reason: 'authorization' };
  }
  // §3: some explicit permission or a heuristically cacheable status.
  const explicit = directives.has('public') || directives.has('max-age') || directives.has('s-maxage') || field(response.headers, 'expires') !== undefined || configuredLifetime(options.valid, status) !== undefined;
  if (!explicit && !HEURISTIC_STATUSES.has(status)) return { store: false, reason: 'no freshness information' };
  // Vary: * never matches a later request (§4.1): storing it only wastes space.
  const vary = fieldList(response.headers, 'vary');
  if (vary !== undefined && vary.split(',').some((name) => name.trim() === '*')) return { store: false, reason: 'vary *' };
  const drop = privateFields ? [...privateFields] : [];
  if (field(response.headers, 'set-cookie') !== undefined) {
    if (options.setCookie === 'no-store') return { store: false, reason: 'set-cookie' };
    if (options.setCookie === 'strip') drop.push('set-cookie');
  }
  return { store: true, drop };
}

/**
 * §4.2.1 freshness lifetime in seconds for a shared cache: s-maxage, else max-age, else
 * Expires - Date, else the config's lifetime for the status, else heuristic (§4.2.2). An invalid or conflicting value means 0 (stale).
 * `dateMs` is the Date header's time (or the response time when it has none).
 */
export function freshnessLifetime(response: ResponseFacts, directives: Directives, dateMs: number, heuristicPercent: number, heuristicMax: number, valid?: Readonly<Record<string, number>>): number {
  const shared = deltaSeconds(directives, 's-maxage');
  if (shared !== undefined) return shared < 0 ? 0 : shared;
  const maxAge = deltaSeconds(directives, 'max-age');
  if (maxAge !== undefined) return maxAge < 0 ? 0 : maxAge;
  const expires = field(response.headers, 'expires');
  if (expires !== undefined) {
    // §5.3: an invalid Expires (e.g. "0") means already expired.
    const at = parseHttpDate(expires);
    if (Number.isNaN(at)) return 0;
    return Math.max(0, Math.floor((at - dateMs) / 1000));
  }
  // The config's lifetime for a response that states none (nginx proxy_cache_valid), before any heuristic.
  const configured = configuredLifetime(valid, response.status);
  if (configured !== undefined) return configured;
  // §4.2.2: heuristics only for heuristically cacheable statuses or `public`, and (as every
  // cache in practice, and the RFC's own example) from Last-Modified: a fraction of its age.
  if (!HEURISTIC_STATUSES.has(response.status) && !directives.has('public')) return 0;
  const lastModified = parseHttpDate(field(response.headers, 'last-modified'));
  if (Number.isNaN(lastModified) || heuristicPercent <= 0) return 0;
  const since = (dateMs - lastModified) / 1000;
  if (since <= 0) return 0;
  return Math.min(heuristicMax, Math.floor((since * heuristicPercent) / 100));
}

/** §5.1 Age: the first member of the list if it is a non-negative integer, else ignored (0). */
export function ageValue(headers: readonly string[]): number {
  const raw = field(headers, 'age');
  if (raw === undefined) return 0;
  const first = raw.split(',')[0]?.trim() ?? '';
  if (!/^\d+$/.test(first)) return 0;
  return Math.min(Number(first), DELTA_MAX);
}

/**
 * §4.2.3 corrected_initial_age in seconds, from the request and response times of the exchange
 * that produced the stored response (ms) and its Date (ms).
 */
export function correctedInitialAge(headers: readonly string[], requestTime: number, responseTime: number, dateMs: number): number {
  const apparentAge = Math.max(0, (responseTime - dateMs) / 1000);
  const responseDelay = (responseTime - requestTime) / 1000;
  const correctedAgeValue = ageValue(headers) + responseDelay;
  return Math.max(apparentAge, correctedAgeValue);
}

/** §4.2.3 current_age in seconds (fractional; the Age field is its floor). */
export function currentAge(initialAge: number, responseTime: number, now: number): number {
  return initialAge + Math.max(0, (now - responseTime) / 1000);
}

/** What the handler needs to know about a stored response to decide on reuse (see StoredMeta). */
export interface Freshness {
  /** Seconds. */
  readonly lifetime: number;
  readonly initialAge: number;
  readonly responseTime: number;
  readonly directives: Directives;
}

/**
 * - `fresh`: fresh enough for this request: serve it.
 * - `stale-allowed`: stale, but this request's max-stale accepts it (§5.2.1.2): serve it.
 * - `stale-while-revalidate`: stale within that window (RFC 5861 §3): serve it, revalidate in the background.
 * - `validate`: must be validated with the origin first (§4.3); stale-if-error may still apply.
 */
export type Reuse = 'fresh' | 'stale-allowed' | 'stale-while-revalidate' | 'validate';

export interface ReuseOptions {
  /** Config override: seconds of stale-while-revalidate to assume when the response gives none (nginx `proxy_cache_use_stale updating`). */
  readonly staleWhileRevalidate: number;
}

/**
 * §4 (and §4.2.4, §5.2.1, §5.2.2, RFC 5861): may a stored response answer this request without
 * contacting the origin? `request` are the request's directives; `pragmaNoCache` is a
 * `Pragma: no-cache` without any Cache-Control (§5.4).
 */
export function reuseDecision(stored: Freshness, request: Directives, pragmaNoCache: boolean, now: number, options: ReuseOptions): Reuse {
  const response = stored.directives;
  // §5.2.1.4 / §5.4: the client wants validation; §5.2.2.4: unqualified no-cache in the response.
  if (request.has('no-cache') || pragmaNoCache) return 'validate';
  if (response.has('no-cache') && qualifiedFields(response, 'no-cache') === null) return 'validate';
  const age = currentAge(stored.initialAge, stored.responseTime, now);
  const lifetime = stored.lifetime;
  // §5.2.1.1 max-age: not older than this (an invalid value is ignored).
  const maxAge = deltaSeconds(request, 'max-age');
  if (maxAge !== undefined && maxAge >= 0 && age > maxAge) return 'validate';
  // §5.2.1.3 min-fresh: still fresh for at least this long.
  const minFresh = deltaSeconds(request, 'min-fresh');
  if (minFresh !== undefined && minFresh >= 0 && lifetime - age < minFresh) return 'validate';
  if (age < lifetime) return 'fresh';
  // Stale. §5.2.2.2 must-revalidate, §5.2.2.8 proxy-revalidate and §5.2.2.10 s-maxage (which
  // implies proxy-revalidate for a shared cache): never served stale.
  if (mustRevalidate(response)) return 'validate';
  const staleness = age - lifetime;
  // §5.2.1.2 max-stale: without a value any staleness; with one, at most that much.
  const maxStale = request.get('max-stale');
  if (maxStale !== undefined) {
    const limit = maxStale === '' ? Infinity : deltaSeconds(request, 'max-stale');
    if (limit !== undefined && limit >= 0 && staleness <= limit) return 'stale-allowed';
  }
  const swr = deltaSeconds(response, 'stale-while-revalidate');
  const window = swr !== undefined && swr >= 0 ? swr : options.staleWhileRevalidate;
  if (window > 0 && staleness <= window) return 'stale-while-revalidate';
  return 'validate';
}

/** §5.2.2.2, §5.2.2.8, §5.2.2.10: a stale response may not be served without validation, ever. */
export function mustRevalidate(response: Directives): boolean {
  return response.has('must-revalidate') || response.has('proxy-revalidate') || response.has('s-maxage');
}

/**
 * RFC 5861 §4 stale-if-error: may this stale response answer after the origin failed? The
 * response's own `stale-if-error` window, or the route's configured one (nginx
 * `proxy_cache_use_stale error timeout http_5xx` serves any stale copy: `Infinity`); a request's
 * `stale-if-error` may widen it. Never with must-revalidate & co (RFC 9111 §4.2.4, §5.2.2.2).
 */
export function staleIfErrorAllows(stored: Freshness, request: Directives, now: number, configured: number): boolean {
  if (mustRevalidate(stored.directives)) return false;
  const staleness = currentAge(stored.initialAge, stored.responseTime, now) - stored.lifetime;
  if (staleness <= 0) return true;
  const fromResponse = deltaSeconds(stored.directives, 'stale-if-error');
  const fromRequest = deltaSeconds(request, 'stale-if-error');
  const window = Math.max(fromResponse !== undefined && fromResponse >= 0 ? fromResponse : 0, fromRequest !== undefined && fromRequest >= 0 ? fromRequest : 0, configured);
  return staleness <= window;
}

// ---------------------------------------------------------------------------------------------
// Vary (§4.1)

/** The field names a response's Vary lists, lower case, sorted, deduplicated ([] when none). */
export function varyNames(headers: readonly string[]): readonly string[] {
  const vary = fieldList(headers, 'vary');
  if (vary === undefined) return [];
  const names = new Set<string>();
  for (const part of vary.split(',')) {
    const name = part.trim().toLowerCase();
    if (name !== '') names.add(name);
  }
  return [...names].sort();
}

/** Fields whose list members are case-insensitive and unordered, for normalisation (§4.1). */
const CASE_INSENSITIVE_SETS = new Set(['accept-encoding']);

/**
 * One selecting field's value normalised as §4.1 allows: field lines combined, whitespace around
 * list commas removed; for Accept-Encoding (tokens, case-insensitive, order irrelevant since
 * q-values rank them) lower-cased and sorted. Absent and empty stay distinct (§4.1: a field
 * present in one request and absent in the other does not match).
 */
export function normaliseSelecting(name: string, value: string | string[] | undefined): string {
  if (value === undefined) return '\u0001';
  const joined = typeof value === 'string' ? value : value.join(',');
  const members = joined
    .split(',')
    .map((member) => member.trim().replace(/\s*;\s*/g, ';').replace(/\s*=\s*/g, '='))
    .filter((member) => member !== '');
  if (CASE_INSENSITIVE_SETS.has(name)) return members.map((member) => member.toLowerCase()).sort().join(',');
  return members.join(',');
}

/** The secondary key of a request for the given Vary names ("" when none). */
export function secondaryKey(names: readonly string[], requestHeaders: Readonly<Record<string, string | string[] | undefined>>): string {
  if (names.length === 0) return '';
  let key = '';
  for (const name of names) key += `${name}:${normaliseSelecting(name, requestHeaders[name])}\n`;
  return key;
}

// ---------------------------------------------------------------------------------------------
// Updating stored headers (§3.2) and invalidation (§4.4)

/** Never stored or taken from a 304 (§3.1: hop-by-hop and connection-specific; §3.2: Content-Length). */
const NOT_UPDATED = new Set(['content-length', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'age']);

/**
 * §3.2 / §4.3.4: the stored header list updated with a 304's fields: each field of the new
 * response replaces the stored one of that name, except Content-Length and hop-by-hop fields.
 */
export function updateHeaders(stored: readonly string[], fresh: readonly string[]): string[] {
  const replaced = new Set<string>();
  for (let i = 0; i < fresh.length; i += 2) {
    const name = fresh[i] as string;
    if (!NOT_UPDATED.has(name)) replaced.add(name);
  }
  const out: string[] = [];
  for (let i = 0; i < stored.length; i += 2) if (!replaced.has(stored[i] as string)) out.push(stored[i] as string, stored[i + 1] as string);
  for (let i = 0; i < fresh.length; i += 2) if (replaced.has(fresh[i] as string)) out.push(fresh[i] as string, fresh[i + 1] as string);
  return out;
}

/** RFC 9110 §9.2.1: methods that are safe; any other (unknown ones included) invalidates (§4.4). */
export const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

/**
 * §4.4: URIs to invalidate after a non-error response to an unsafe method: the target, and the
 * Location / Content-Location URIs when they are on the same host (to stop denial of service by
 * invalidating other sites' entries). Returns request URIs (path and query) on this host.
 */
export function invalidationTargets(status: number, requestUri: string, headers: readonly string[], scheme: string, host: string): string[] {
  if (status < 200 || status >= 400) return [];
  const out = [requestUri];
  const base = `${scheme}://${host || 'localhost'}`;
  for (const name of ['location', 'content-location']) {
    const value = field(headers, name);
    if (value === undefined) continue;
    let url: URL;
    try {
      url = new URL(value, base + requestUri);
    } catch {
      continue;
    }
    if (url.host.toLowerCase() !== new URL(base).host.toLowerCase()) continue;
    const target = url.pathname + url.search;
    if (!out.includes(target)) out.push(target);
  }
  return out;
}

/**
 * The remaining freshness in whole seconds at `now` (RFC 9211 `ttl`, negative once stale).
 */
export function remainingTtl(stored: Freshness, now: number): number {
  return Math.floor(stored.lifetime - currentAge(stored.initialAge, stored.responseTime, now));
}
