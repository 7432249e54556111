import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HttpError } from '../../core/errors.js';
import { canonicalPath, parseTarget, removeDotSegments } from './target.js';

/** Asserts `fn` throws a 400 HttpError with code ERR_REQUEST_TARGET. */
function assert400(fn: () => unknown, label: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof HttpError, `${label}: expected an HttpError, got ${String(error)}`);
    assert.equal(error.status, 400, label);
    assert.equal(error.code, 'ERR_REQUEST_TARGET', label);
    return true;
  }, label);
}

const path = (raw: string): string => parseTarget(raw, 'GET').path;

describe('removeDotSegments (RFC 3986 §5.2.4 on decoded paths, slashes merged)', () => {
  const cases: [string, string][] = [
    ['/', '/'],
    ['/a/b/c', '/a/b/c'],
    ['/a/./b', '/a/b'],
    ['/a/../b', '/b'],
    ['/a/b/..', '/a/'],
    ['/a/b/.', '/a/b/'],
    ['/a/b/../', '/a/'],
    ['/a/..', '/'],
    ['/./', '/'],
    ['/a//b///c', '/a/b/c'],
    ['//a', '/a'],
    ['/a/', '/a/'],
    ['/a/b/c/./../../g', '/a/g'],
    ['/a/...', '/a/...'],
    ['/a/..b/.c', '/a/..b/.c'],
  ];
  for (const [input, expected] of cases) it(`${input} → ${expected}`, () => assert.equal(removeDotSegments(input), expected));

  it('climbing above the root is a 400, not a clamp', () => {
    for (const input of ['/..', '/../a', '/a/../..', '/a/b/../../../c', '/./../']) assert400(() => removeDotSegments(input), input);
  });
});

describe('parseTarget: origin-form', () => {
  it('a canonical path is kept as is', () => {
    assert.deepEqual(parseTarget('/index.html', 'GET'), { path: '/index.html', query: '', hasQuery: false, authority: null });
  });
  it('splits the query (undecoded) and remembers an empty one', () => {
    assert.deepEqual(parseTarget('/search?q=a%20b&x=1', 'GET'), { path: '/search', query: 'q=a%20b&x=1', hasQuery: true, authority: null });
    assert.deepEqual(parseTarget('/a?', 'GET'), { path: '/a', query: '', hasQuery: true, authority: null });
    assert.equal(parseTarget('/a/../b?c=/../d', 'GET').query, 'c=/../d', 'the query is not normalised');
    assert.equal(parseTarget('/a/../b?c=/../d', 'GET').path, '/b');
  });
  it('percent-decodes once, UTF-8 included', () => {
    assert.equal(path('/a%20b'), '/a b');
    assert.equal(path('/caf%C3%A9'), '/café');
    assert.equal(path('/%E2%82%AC'), '/€');
    assert.equal(path('/%41%42'), '/AB');
  });
  it('normalises dot segments and slashes, encoded dots included', () => {
    assert.equal(path('/a/./b/../c//d'), '/a/c/d');
    assert.equal(path('/a/%2e%2e/b'), '/b');
    assert.equal(path('/a/%2E/b'), '/a/b');
    assert.equal(path('/a%2fb'), '/a/b');
  });
  it('double encoding stays literal: %252e%252e is the name "%2e%2e", never ".."', () => {
    assert.equal(path('/%252e%252e/etc/passwd'), '/%2e%2e/etc/passwd');
    assert.equal(path('/a/%252f'), '/a/%2f');
  });
  it('traversal above the root is a 400, however it is spelled', () => {
    for (const raw of ['/..', '/../etc/passwd', '/a/../../etc', '/%2e%2e/etc', '/%2E%2E%2Fetc', '/.%2e/x', '/a/%2e%2e/%2e%2e/b']) assert400(() => parseTarget(raw, 'GET'), raw);
  });
  it('overlong and invalid UTF-8 are a 400 (%C0%AE is not ".")', () => {
    for (const raw of ['/%C0%AE%C0%AE/etc', '/%C0%AF', '/%E0%80%AE', '/%C3', '/%FF', '/%ED%A0%80']) assert400(() => parseTarget(raw, 'GET'), raw);
  });
  it('malformed escapes, an encoded NUL and raw control characters in the query are a 400', () => {
    for (const raw of ['/%', '/%2', '/%zz', '/a%00b', '/%00', '/a?b\x01', '/a?b\x7f']) assert400(() => parseTarget(raw, 'GET'), JSON.stringify(raw));
  });

  it('percent-encoded control bytes other than NUL are data (#20: nginx, Caddy and HAProxy serve them)', () => {
    assert.equal(path('/a%09b'), '/a\tb');
    assert.equal(path('/a%0Ab'), '/a\nb');
    assert.equal(path('/a%0D%0Ab'), '/a\r\nb');
    assert.equal(path('/%7f'), '/\x7f');
    assert.equal(path('/a%0a/../b'), '/b', 'dot segments are still removed');
    assert400(() => parseTarget('/%0a/../../etc/passwd', 'GET'), 'and climbing out is still refused');
  });
  it('raw spaces, non-ASCII bytes and fragments are a 400', () => {
    for (const raw of ['/a b', '/café', '/a\tb', '/a#frag', '/a?b#c']) assert400(() => parseTarget(raw, 'GET'), JSON.stringify(raw));
  });
  it('canonicalPath is the same slow path', () => {
    assert.equal(canonicalPath('/a/./%62'), '/a/b');
    assert400(() => canonicalPath('/..'), '/..');
  });
});

describe('parseTarget: absolute-form, asterisk-form and others', () => {
  it('absolute-form gives the authority and the path', () => {
    assert.deepEqual(parseTarget('http://example.com/a/../b?x=1', 'GET'), { path: '/b', query: 'x=1', hasQuery: true, authority: 'example.com' });
    assert.deepEqual(parseTarget('https://Example.com:8443/', 'GET'), { path: '/', query: '', hasQuery: false, authority: 'Example.com:8443' });
  });
  it('absolute-form without a path is "/"', () => {
    assert.equal(parseTarget('http://example.com', 'GET').path, '/');
  });
  it('absolute-form without a path but with a query is "/" with that query', () => {
    assert.deepEqual(parseTarget('http://example.com?x=1', 'GET'), { path: '/', query: 'x=1', hasQuery: true, authority: 'example.com' });
  });
  it('absolute-form without a usable authority is a 400', () => {
    for (const raw of ['http:///a', 'http://user@example.com/', 'http://user:pw@example.com/']) assert400(() => parseTarget(raw, 'GET'), raw);
  });
  it('absolute-form paths are checked like any other', () => {
    assert400(() => parseTarget('http://example.com/../etc', 'GET'), 'traversal');
  });
  it('"*" only for OPTIONS', () => {
    assert.deepEqual(parseTarget('*', 'OPTIONS'), { path: '*', query: '', hasQuery: false, authority: null });
    assert400(() => parseTarget('*', 'GET'), '* with GET');
  });
  it('anything else is a 400', () => {
    for (const raw of ['', 'index.html', 'example.com:443', '?x', './a']) assert400(() => parseTarget(raw, 'GET'), JSON.stringify(raw));
  });
});
