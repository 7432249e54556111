/**
 * The pure rules of the shared cache (policy.ts), one case per rule of RFC 9111 / RFC 5861.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ageValue,
  correctedInitialAge,
  currentAge,
  deltaSeconds,
  freshnessLifetime,
  invalidationTargets,
  normaliseSelecting,
  parseCacheControl,
  reuseDecision,
  secondaryKey,
  staleIfErrorAllows,
  storability,
  updateHeaders,
  varyNames,
  type Freshness,
} from './policy.js';

const cc = parseCacheControl;
const NOW = Date.parse('2026-01-01T00:00:00Z');
/** The directives of a flat header list's Cache-Control. */
const ccOf = (headers: readonly string[]) => cc(headers.includes('cache-control') ? headers[headers.indexOf('cache-control') + 1] : undefined);
const store = (status: number, headers: string[], options: { authorization?: boolean; request?: string; setCookie?: 'no-store' | 'strip' | 'store' } = {}) =>
  storability({ status, headers }, ccOf(headers), {
    authorization: options.authorization ?? false,
    request: cc(options.request),
    setCookie: options.setCookie ?? 'no-store',
  });
const stored = (lifetime: number, ageSeconds: number, directives = ''): Freshness => ({ lifetime, initialAge: ageSeconds, responseTime: NOW, directives: cc(directives) });

describe('Cache-Control parsing (§5.2)', () => {
  it('names are case-insensitive, arguments tokens or quoted strings, lines combined', () => {
    const d = cc(['Max-Age=60, no-cache="Set-Cookie, X-A"', 'PUBLIC']);
    assert.equal(d.get('max-age'), '60');
    assert.equal(d.get('no-cache'), 'Set-Cookie, X-A');
    assert.equal(d.get('public'), '');
  });
  it('delta-seconds: quoted accepted, invalid is -1, huge is capped at 2^31 (§1.2.2)', () => {
    assert.equal(deltaSeconds(cc('max-age="30"'), 'max-age'), 30);
    assert.equal(deltaSeconds(cc('max-age=abc'), 'max-age'), -1);
    assert.equal(deltaSeconds(cc('max-age=-1'), 'max-age'), -1);
    assert.equal(deltaSeconds(cc('max-age=99999999999999'), 'max-age'), 2_147_483_648);
    assert.equal(deltaSeconds(cc('public'), 'max-age'), undefined);
  });
  it('a repeated delta directive with another value is a conflict (treated as stale, §4.2.1)', () => {
    assert.equal(deltaSeconds(cc('max-age=1, max-age=2'), 'max-age'), -1);
    assert.equal(deltaSeconds(cc('max-age=5, max-age=5'), 'max-age'), 5);
  });
});

describe('storability (§3)', () => {
  it('a 200 is storable without explicit freshness (heuristically cacheable); a 302 is not', () => {
    assert.equal(store(200, []).store, true);
    assert.equal(store(302, []).store, false);
    assert.equal(store(302, ['cache-control', 'max-age=60']).store, true);
    assert.equal(store(500, ['expires', 'Thu, 01 Jan 2099 00:00:00 GMT']).store, true);
  });
  it('206 and 304 and 1xx are never stored', () => {
    for (const status of [101, 206, 304]) assert.equal(store(status, ['cache-control', 'max-age=60']).store, false);
  });
  it('no-store, private, Vary: *, a request no-store', () => {
    assert.equal(store(200, ['cache-control', 'no-store']).store, false);
    assert.equal(store(200, ['cache-control', 'private, max-age=60']).store, false);
    assert.equal(store(200, ['cache-control', 'max-age=60', 'vary', 'accept, *']).store, false);
    assert.equal(store(200, ['cache-control', 'max-age=60'], { request: 'no-store' }).store, false);
  });
  it('private="f" stores without f; Set-Cookie under each policy', () => {
    assert.deepEqual(store(200, ['cache-control', 'private="x-a", max-age=60']), { store: true, drop: ['x-a'] });
    assert.equal(store(200, ['set-cookie', 'a=1']).store, false);
    assert.deepEqual(store(200, ['set-cookie', 'a=1'], { setCookie: 'strip' }), { store: true, drop: ['set-cookie'] });
    assert.deepEqual(store(200, ['set-cookie', 'a=1'], { setCookie: 'store' }), { store: true, drop: [] });
  });
  it('Authorization: only with public, must-revalidate or s-maxage (§3.5)', () => {
    assert.equal(store(200, ['cache-control', 'max-age=60'], { authorization: true }).store, false);
    for (const directive of ['public', 'must-revalidate', 's-maxage=60']) assert.equal(store(200, ['cache-control', directive], { authorization: true }).store, true, directive);
  });
  it('must-understand: an understood status overrides no-store, another is never stored (§5.2.2.3)', () => {
    assert.equal(store(200, ['cache-control', 'no-store, must-understand']).store, true);
    assert.equal(store(299, ['cache-control', 'no-store, must-understand, max-age=60']).store, false);
  });
});

describe('freshness lifetime (§4.2.1, §4.2.2)', () => {
  const date = NOW;
  const life = (status: number, headers: string[], percent = 10) => freshnessLifetime({ status, headers }, ccOf(headers), date, percent, 86_400);
  it('s-maxage over max-age over Expires', () => {
    assert.equal(life(200, ['cache-control', 'max-age=10, s-maxage=20']), 20);
    assert.equal(life(200, ['cache-control', 'max-age=10', 'expires', new Date(date + 100_000).toUTCString()]), 10);
    assert.equal(life(200, ['expires', new Date(date + 100_000).toUTCString()]), 100);
  });
  it('invalid Expires or max-age means stale', () => {
    assert.equal(life(200, ['expires', '0']), 0);
    assert.equal(life(200, ['cache-control', 'max-age=x']), 0);
  });
  it('heuristic: 10% of the time since Last-Modified, bounded, only for heuristically cacheable statuses', () => {
    const lm = new Date(date - 1_000_000).toUTCString();
    assert.equal(life(200, ['last-modified', lm]), 100);
    assert.equal(life(200, ['last-modified', new Date(date - 10_000_000_000).toUTCString()]), 86_400);
    assert.equal(life(302, ['last-modified', lm]), 0);
    assert.equal(life(200, ['last-modified', lm], 0), 0);
    assert.equal(life(200, []), 0);
  });
});

describe('age (§4.2.3, §5.1)', () => {
  it('Age: first member, non-negative integer, else ignored', () => {
    assert.equal(ageValue(['age', '30']), 30);
    assert.equal(ageValue(['age', '30, 40']), 30);
    assert.equal(ageValue(['age', '-5']), 0);
    assert.equal(ageValue(['age', 'soon']), 0);
  });
  it('corrected initial age: the larger of apparent age and Age + response delay', () => {
    // Date 10 s before the response arrived; Age 3; the exchange took 2 s.
    assert.equal(correctedInitialAge(['age', '3'], NOW - 2000, NOW, NOW - 10_000), 10);
    assert.equal(correctedInitialAge(['age', '30'], NOW - 2000, NOW, NOW - 10_000), 32);
    // A Date in the future gives no negative apparent age.
    assert.equal(correctedInitialAge([], NOW, NOW, NOW + 50_000), 0);
    assert.equal(currentAge(10, NOW, NOW + 5000), 15);
  });
});

describe('reuse (§4, §5.2.1, RFC 5861)', () => {
  const none = cc(undefined);
  const decide = (s: Freshness, request = '', now = NOW, swr = 0) => reuseDecision(s, cc(request), false, now, { staleWhileRevalidate: swr });
  it('fresh, stale, and request max-age / min-fresh / max-stale / no-cache', () => {
    assert.equal(decide(stored(60, 10)), 'fresh');
    assert.equal(decide(stored(60, 70)), 'validate');
    assert.equal(decide(stored(60, 10), 'max-age=5'), 'validate');
    assert.equal(decide(stored(60, 10), 'min-fresh=55'), 'validate');
    assert.equal(decide(stored(60, 10), 'min-fresh=40'), 'fresh');
    assert.equal(decide(stored(60, 70), 'max-stale=20'), 'stale-allowed');
    assert.equal(decide(stored(60, 70), 'max-stale=5'), 'validate');
    assert.equal(decide(stored(60, 70), 'max-stale'), 'stale-allowed');
    assert.equal(decide(stored(60, 10), 'no-cache'), 'validate');
    assert.equal(reuseDecision(stored(60, 10), none, true, NOW, { staleWhileRevalidate: 0 }), 'validate');
  });
  it('response no-cache (unqualified) always validates; qualified does not', () => {
    assert.equal(decide(stored(60, 10, 'no-cache')), 'validate');
    assert.equal(decide(stored(60, 10, 'no-cache="x"')), 'fresh');
  });
  it('must-revalidate, proxy-revalidate and s-maxage forbid stale even with max-stale', () => {
    for (const directive of ['must-revalidate', 'proxy-revalidate', 's-maxage=60']) assert.equal(decide(stored(60, 70, directive), 'max-stale'), 'validate', directive);
  });
  it('stale-while-revalidate within its window; the config override', () => {
    assert.equal(decide(stored(60, 70, 'stale-while-revalidate=30')), 'stale-while-revalidate');
    assert.equal(decide(stored(60, 100, 'stale-while-revalidate=30')), 'validate');
    assert.equal(decide(stored(60, 100), '', NOW, Infinity), 'stale-while-revalidate');
  });
  it('stale-if-error: the response window, the request one, the config override; never with must-revalidate', () => {
    assert.equal(staleIfErrorAllows(stored(60, 70, 'stale-if-error=30'), none, NOW, 0), true);
    assert.equal(staleIfErrorAllows(stored(60, 100, 'stale-if-error=30'), none, NOW, 0), false);
    assert.equal(staleIfErrorAllows(stored(60, 100), cc('stale-if-error=60'), NOW, 0), true);
    assert.equal(staleIfErrorAllows(stored(60, 100), none, NOW, Infinity), true);
    assert.equal(staleIfErrorAllows(stored(60, 70, 'stale-if-error=30, must-revalidate'), none, NOW, Infinity), false);
  });
});

describe('Vary (§4.1)', () => {
  it('names: lower case, sorted, deduplicated, lines combined', () => {
    assert.deepEqual(varyNames(['vary', 'Accept-Encoding, accept-language', 'vary', 'ACCEPT-ENCODING']), ['accept-encoding', 'accept-language']);
    assert.deepEqual(varyNames([]), []);
  });
  it('values: whitespace, line combining, and Accept-Encoding case and order normalised; absent ≠ empty', () => {
    assert.equal(normaliseSelecting('accept-encoding', 'gzip, br'), normaliseSelecting('accept-encoding', ['BR', 'gzip']));
    assert.equal(normaliseSelecting('accept-language', 'en ,  fr;q=0.5'), normaliseSelecting('accept-language', 'en,fr; q=0.5'));
    assert.notEqual(normaliseSelecting('accept-language', 'en, fr'), normaliseSelecting('accept-language', 'fr, en'));
    assert.notEqual(normaliseSelecting('x', undefined), normaliseSelecting('x', ''));
    assert.equal(secondaryKey([], { a: '1' }), '');
    assert.notEqual(secondaryKey(['a'], { a: '1' }), secondaryKey(['a'], { a: '2' }));
  });
});

describe('updating and invalidating (§3.2, §4.4)', () => {
  it('a 304 replaces fields, but never Content-Length', () => {
    assert.deepEqual(updateHeaders(['content-length', '5', 'etag', '"a"', 'x-v', '1'], ['content-length', '0', 'x-v', '2', 'cache-control', 'max-age=9']), ['content-length', '5', 'etag', '"a"', 'x-v', '2', 'cache-control', 'max-age=9']);
  });
  it('targets: the request URI and same-host Location/Content-Location, after non-error statuses only', () => {
    assert.deepEqual(invalidationTargets(201, '/a', ['location', '/b?x=1', 'content-location', 'http://other.example/c'], 'http', 'example.com'), ['/a', '/b?x=1']);
    assert.deepEqual(invalidationTargets(303, '/a', ['location', 'http://example.com/d'], 'http', 'example.com'), ['/a', '/d']);
    assert.deepEqual(invalidationTargets(500, '/a', [], 'http', 'example.com'), []);
  });
});
