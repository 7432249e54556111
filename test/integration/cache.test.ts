/**
 * The response cache (RFC 9111 shared cache, RFC 5861, RFC 9211 Cache-Status) against a
 * scripted upstream that counts what reaches it: one test per directive and per rule, request
 * coalescing (100 concurrent cold requests → 1 upstream request), stale-if-error with the
 * upstream down, purge and its address ACL. The built `bin/portico` runs as a child process.
 * Stale responses are made without sleeping: an upstream `Age` larger than `max-age` stores a
 * response that is already stale (RFC 9111 §4.2.3).
 */
import assert from 'node:assert/strict';
import { Agent, request as httpRequest } from 'node:http';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { freePort, request, startWithConfig, tempDir, type RunningPortico, type SimpleResponse } from '../helpers/portico.js';
import { answer, startScriptedUpstream, type ScriptedUpstream } from '../helpers/scripted-upstream.js';
import { startNodeUpstream, type NodeUpstream } from '../helpers/upstreams.js';

let upstream: ScriptedUpstream;
let down: NodeUpstream;
let portico: RunningPortico;
const dir = tempDir();

before(async () => {
  upstream = await startScriptedUpstream();
  down = await startNodeUpstream((_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=1, stale-if-error=600', age: '5', 'content-type': 'text/plain' });
    res.end('kept while the upstream is down\n');
  });
  const port = await freePort();
  const to = upstream.url;
  portico = await startWithConfig(dir.path, {
    // One process: these tests are about the rules; the memory tier and the lock are per
    // process (cache-disk.test.ts runs several edge workers sharing the disk tier).
    workers: 1,
    log: { access: false, level: 'error' },
    servers: [
      {
        listen: [`127.0.0.1:${port}`, `[::1]:${port}`],
        routes: [
          { prefix: '/', proxy: { to }, cache: { purge: { allow: ['127.0.0.1'] } } },
          { prefix: '/stale/', proxy: { to }, cache: { useStale: ['error', 'timeout', 'http_500', 'http_503'] } },
          { prefix: '/updating/', proxy: { to }, cache: { useStale: ['updating'] } },
          { prefix: '/lock/', proxy: { to }, cache: { lockTimeout: '300ms' } },
          { prefix: '/min/', proxy: { to }, cache: { minUses: 2 } },
          { prefix: '/big/', proxy: { to }, cache: { maxObjectSize: '1kb' } },
          { prefix: '/cookie/', proxy: { to }, cache: { setCookie: 'strip' } },
          { prefix: '/bypass/', proxy: { to }, cache: { bypass: ['$http_x_bypass'], noStore: ['$arg_nostore'] } },
          { prefix: '/key/', proxy: { to }, cache: { key: '$uri' } },
          { prefix: '/off/', proxy: { to }, cache: false },
          { prefix: '/down/', proxy: { to: down.url }, cache: true },
          { prefix: '/enc/', proxy: { to }, cache: true, encode: true },
          { prefix: '/cdn-only/', proxy: { to }, cache: { targeted: ['CDN-Cache-Control'], stripTargeted: [] } },
          { prefix: '/untargeted/', proxy: { to }, cache: { targeted: [] } },
        ],
      },
    ],
  });
});

after(async () => {
  await portico?.stop();
  await upstream?.close();
  await down?.close().catch(() => {});
  dir.remove();
});

const get = (path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<SimpleResponse> => request(portico.url + path, { headers, method });
const status = (response: SimpleResponse): string => String(response.headers['cache-status'] ?? '');

/** Polls until `check` holds (bounded): for background work such as a revalidation. */
async function eventually(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A request from ::1 (the ACL of `/` allows only 127.0.0.1). */
function fromIpv6(path: string, method: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '::1', port: portico.port, path, method, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('storing and reusing (RFC 9111 §3, §4)', () => {
  it('max-age: the second request is a hit, with Age and Cache-Status; the upstream sees one request', async () => {
    upstream.on('/max-age', answer({ 'cache-control': 'max-age=60' }));
    const first = await get('/max-age');
    assert.equal(first.text, 'body 1\n');
    // ttl = max-age − apparent age (RFC 9111 §4.2.3), and Date has one-second resolution: the
    // age is up to 1 s plus the response's delay, so 58 is right when the answer crossed a second
    // boundary late in it (seen on a loaded machine); 59 and 60 otherwise.
    assert.match(status(first), /^portico; fwd=miss; fwd-status=200; stored; ttl=(58|59|60)$/);
    const second = await get('/max-age');
    assert.equal(second.text, 'body 1\n');
    assert.match(status(second), /^portico; hit; ttl=\d+$/);
    assert.match(String(second.headers.age), /^\d+$/);
    assert.equal(second.headers['content-length'], '7');
    assert.equal(upstream.count('/max-age'), 1);
  });

  it('s-maxage wins over max-age for a shared cache (§5.2.2.10)', async () => {
    upstream.on('/s-maxage', answer({ 'cache-control': 'max-age=0, s-maxage=60' }));
    await get('/s-maxage');
    assert.match(status(await get('/s-maxage')), /hit/);
    assert.equal(upstream.count('/s-maxage'), 1);
  });

  it('Expires in the future makes a response fresh; an invalid Expires ("0") means already expired (§5.3)', async () => {
    upstream.on('/expires', answer({ expires: new Date(Date.now() + 3_600_000).toUTCString(), date: new Date().toUTCString() }));
    upstream.on('/expires-0', answer({ expires: '0' }));
    await get('/expires');
    assert.match(status(await get('/expires')), /hit/);
    assert.equal(upstream.count('/expires'), 1);
    await get('/expires-0');
    assert.doesNotMatch(status(await get('/expires-0')), /hit/);
    assert.equal(upstream.count('/expires-0'), 2);
  });

  it('an Expires outside the three HTTP-date forms is invalid, so already expired (RFC 9110 §5.6.7, RFC 9111 §5.3)', async () => {
    // Each of these Date.parse reads as a date decades ahead; none is an HTTP-date.
    const lookalikes = ['Fri, 01 Jan 2100 00:00:00 UTC', 'Fri 01 Jan 2100 00:00:00 GMT', 'Fri, 01 Jan 2100 0:00:00 GMT', 'Fri, 01-Jan-2100 00:00:00 GMT', '2100-01-01T00:00:00Z'];
    for (const [index, expires] of lookalikes.entries()) {
      const path = `/expires-lookalike-${index}`;
      upstream.on(path, answer({ expires, date: new Date().toUTCString() }));
      await get(path);
      assert.doesNotMatch(status(await get(path)), /hit/, expires);
      assert.equal(upstream.count(path), 2, `${expires}: both requests reach the origin`);
    }
    // RFC 850's two-digit year "50" is 2050 (within 50 years), so fresh.
    upstream.on('/expires-rfc850', answer({ expires: 'Friday, 18-Aug-50 00:00:00 GMT', date: new Date().toUTCString() }));
    await get('/expires-rfc850');
    assert.match(status(await get('/expires-rfc850')), /hit/);
  });

  it('conflicting max-age values make the response stale (§4.2.1)', async () => {
    upstream.on('/conflict', answer({ 'cache-control': 'max-age=60, max-age=120' }));
    await get('/conflict');
    await get('/conflict');
    assert.equal(upstream.count('/conflict'), 2);
  });

  it('heuristic freshness from Last-Modified for a 200 without explicit lifetime (§4.2.2)', async () => {
    upstream.on('/heuristic', answer({ 'last-modified': new Date(Date.now() - 10 * 86_400_000).toUTCString(), date: new Date().toUTCString() }));
    await get('/heuristic');
    assert.match(status(await get('/heuristic')), /hit/);
    assert.equal(upstream.count('/heuristic'), 1);
  });

  it('no freshness information and no validator: not reused', async () => {
    upstream.on('/plain', answer({}));
    await get('/plain');
    await get('/plain');
    assert.equal(upstream.count('/plain'), 2);
  });

  it('a status that is not heuristically cacheable needs explicit freshness (§3)', async () => {
    upstream.on('/302-plain', answer({ location: '/elsewhere' }, 302));
    upstream.on('/500-max-age', answer({ 'cache-control': 'max-age=60' }, 500));
    await get('/302-plain');
    await get('/302-plain');
    assert.equal(upstream.count('/302-plain'), 2);
    await get('/500-max-age');
    const second = await get('/500-max-age');
    assert.equal(second.status, 500);
    assert.match(status(second), /hit/);
    assert.equal(upstream.count('/500-max-age'), 1);
  });

  it('no-store: never stored (§5.2.2.5)', async () => {
    upstream.on('/no-store', answer({ 'cache-control': 'no-store, max-age=60' }));
    const first = await get('/no-store');
    assert.match(status(first), /fwd=miss; fwd-status=200; detail=no-store/);
    await get('/no-store');
    assert.equal(upstream.count('/no-store'), 2);
  });

  it('must-understand with an understood status overrides no-store (§5.2.2.3)', async () => {
    upstream.on('/must-understand', answer({ 'cache-control': 'no-store, must-understand, max-age=60' }));
    await get('/must-understand');
    assert.match(status(await get('/must-understand')), /hit/);
    assert.equal(upstream.count('/must-understand'), 1);
  });

  it('private: not stored by a shared cache; private="field" stores the response without that field (§5.2.2.7)', async () => {
    upstream.on('/private', answer({ 'cache-control': 'private, max-age=60' }));
    await get('/private');
    await get('/private');
    assert.equal(upstream.count('/private'), 2);
    upstream.on('/private-field', answer({ 'cache-control': 'private="x-user", max-age=60', 'x-user': 'alice' }));
    const first = await get('/private-field');
    assert.equal(first.headers['x-user'], 'alice');
    const second = await get('/private-field');
    assert.match(status(second), /hit/);
    assert.equal(second.headers['x-user'], undefined);
  });

  it('public allows storing a response to a request with Authorization; without it, not stored (§3.5)', async () => {
    upstream.on('/auth', answer({ 'cache-control': 'max-age=60' }));
    upstream.on('/auth-public', answer({ 'cache-control': 'public, max-age=60' }));
    await get('/auth', { authorization: 'Basic YTpi' });
    await get('/auth', { authorization: 'Basic YTpi' });
    assert.equal(upstream.count('/auth'), 2);
    await get('/auth-public', { authorization: 'Basic YTpi' });
    assert.match(status(await get('/auth-public', { authorization: 'Basic YTpi' })), /hit/);
    assert.equal(upstream.count('/auth-public'), 1);
  });

  it('Set-Cookie: never stored by default; the strip policy stores the response without it', async () => {
    upstream.on('/cookie', answer({ 'cache-control': 'max-age=60', 'set-cookie': 'sid=1' }));
    assert.match(status(await get('/cookie')), /detail=set-cookie/);
    await get('/cookie');
    assert.equal(upstream.count('/cookie'), 2);
    upstream.on('/cookie/strip', answer({ 'cache-control': 'max-age=60', 'set-cookie': 'sid=1' }));
    const first = await get('/cookie/strip');
    assert.deepEqual(first.headers['set-cookie'], ['sid=1']);
    const second = await get('/cookie/strip');
    assert.match(status(second), /hit/);
    assert.equal(second.headers['set-cookie'], undefined);
  });

  it('a HEAD miss is fetched as GET and stored; the following GET is a hit', async () => {
    upstream.on('/head', answer({ 'cache-control': 'max-age=60' }));
    const head = await get('/head', {}, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    const body = await get('/head');
    assert.match(status(body), /hit/);
    assert.equal(body.text, 'body 1\n');
    assert.equal(upstream.received('/head')[0]?.method, 'GET');
  });

  it('Range is not forwarded; the whole stored response answers (RFC 9110 §14.2 allows ignoring Range)', async () => {
    upstream.on('/range', answer({ 'cache-control': 'max-age=60' }));
    const first = await get('/range', { range: 'bytes=0-1' });
    assert.equal(first.status, 200);
    assert.equal(upstream.received('/range')[0]?.headers.range, undefined);
    assert.match(status(await get('/range', { range: 'bytes=0-1' })), /hit/);
  });
});

describe('request directives (§5.2.1)', () => {
  it('no-cache and Pragma: no-cache make the cache validate first', async () => {
    upstream.on('/req-no-cache', answer({ 'cache-control': 'max-age=60' }));
    await get('/req-no-cache');
    const forced = await get('/req-no-cache', { 'cache-control': 'no-cache' });
    assert.match(status(forced), /fwd=stale/);
    await get('/req-no-cache', { pragma: 'no-cache' });
    assert.equal(upstream.count('/req-no-cache'), 3);
    // Pragma is ignored when Cache-Control is present (§5.4).
    assert.match(status(await get('/req-no-cache', { pragma: 'no-cache', 'cache-control': 'max-stale=1' })), /hit/);
  });

  it('max-age=0 validates; max-age larger than the age is a hit', async () => {
    upstream.on('/req-max-age', answer({ 'cache-control': 'max-age=60', age: '10' }));
    await get('/req-max-age');
    assert.match(status(await get('/req-max-age', { 'cache-control': 'max-age=30' })), /hit/);
    await get('/req-max-age', { 'cache-control': 'max-age=5' });
    assert.equal(upstream.count('/req-max-age'), 2);
  });

  it('min-fresh: a response fresh for less than asked is not used', async () => {
    upstream.on('/min-fresh', answer({ 'cache-control': 'max-age=30' }));
    await get('/min-fresh');
    assert.match(status(await get('/min-fresh', { 'cache-control': 'min-fresh=10' })), /hit/);
    await get('/min-fresh', { 'cache-control': 'min-fresh=100' });
    assert.equal(upstream.count('/min-fresh'), 2);
  });

  it('max-stale accepts a stale response (within its value); without it the stale one is validated', async () => {
    upstream.on('/max-stale', answer({ 'cache-control': 'max-age=10', age: '20' }));
    await get('/max-stale');
    const stale = await get('/max-stale', { 'cache-control': 'max-stale=60' });
    assert.match(status(stale), /hit; ttl=-\d+; detail=stale/);
    assert.match(status(await get('/max-stale', { 'cache-control': 'max-stale' })), /hit/);
    assert.equal(upstream.count('/max-stale'), 1);
    await get('/max-stale', { 'cache-control': 'max-stale=1' });
    assert.equal(upstream.count('/max-stale'), 2);
  });

  it('must-revalidate: never served stale, not even with max-stale (§5.2.2.2)', async () => {
    upstream.on('/must-revalidate', answer({ 'cache-control': 'max-age=10, must-revalidate', age: '20' }));
    await get('/must-revalidate');
    await get('/must-revalidate', { 'cache-control': 'max-stale=600' });
    assert.equal(upstream.count('/must-revalidate'), 2);
  });

  it('proxy-revalidate: the same for a shared cache (§5.2.2.8)', async () => {
    upstream.on('/proxy-revalidate', answer({ 'cache-control': 'max-age=10, proxy-revalidate', age: '20' }));
    await get('/proxy-revalidate');
    await get('/proxy-revalidate', { 'cache-control': 'max-stale=600' });
    assert.equal(upstream.count('/proxy-revalidate'), 2);
  });

  it('only-if-cached: a stored response answers, else 504 without contacting the upstream (§5.2.1.7)', async () => {
    upstream.on('/only-if-cached', answer({ 'cache-control': 'max-age=60' }));
    const miss = await get('/only-if-cached', { 'cache-control': 'only-if-cached' });
    assert.equal(miss.status, 504);
    assert.equal(upstream.count('/only-if-cached'), 0);
    await get('/only-if-cached');
    const hit = await get('/only-if-cached', { 'cache-control': 'only-if-cached' });
    assert.equal(hit.status, 200);
    assert.equal(upstream.count('/only-if-cached'), 1);
  });

  it('a request no-store: its response is not stored (§5.2.1.5)', async () => {
    upstream.on('/req-no-store', answer({ 'cache-control': 'max-age=60' }));
    await get('/req-no-store', { 'cache-control': 'no-store' });
    await get('/req-no-store');
    assert.equal(upstream.count('/req-no-store'), 2);
  });
});

describe('validation (§4.3)', () => {
  it('a stale response is validated with If-None-Match / If-Modified-Since; a 304 freshens it and updates its headers (§3.2, §4.3.4)', async () => {
    const lastModified = new Date(Date.now() - 86_400_000).toUTCString();
    upstream.on('/validate', (req, res, n) => {
      if (n === 1) {
        res.writeHead(200, { 'cache-control': 'max-age=0', etag: '"v1"', 'last-modified': lastModified, 'x-version': '1' });
        res.end('original\n');
        return;
      }
      assert.equal(req.headers['if-none-match'], '"v1"');
      assert.equal(req.headers['if-modified-since'], lastModified);
      res.writeHead(304, { 'cache-control': 'max-age=60', etag: '"v1"', 'x-version': '2' });
      res.end();
    });
    await get('/validate');
    const validated = await get('/validate');
    assert.equal(validated.status, 200);
    assert.equal(validated.text, 'original\n');
    assert.equal(validated.headers['x-version'], '2');
    assert.match(status(validated), /^portico; fwd=stale; fwd-status=304/);
    const hit = await get('/validate');
    assert.match(status(hit), /hit/);
    assert.equal(hit.headers['x-version'], '2');
    assert.equal(hit.text, 'original\n');
    assert.equal(upstream.count('/validate'), 2);
  });

  it('a changed response (200) replaces the stored one', async () => {
    upstream.on('/changed', (_req, res, n) => {
      res.writeHead(200, { 'cache-control': n === 1 ? 'max-age=0' : 'max-age=60', etag: `"v${n}"` });
      res.end(`version ${n}\n`);
    });
    await get('/changed');
    const second = await get('/changed');
    assert.equal(second.text, 'version 2\n');
    assert.match(status(second), /fwd=stale; fwd-status=200; stored/);
    assert.equal((await get('/changed')).text, 'version 2\n');
    assert.equal(upstream.count('/changed'), 2);
  });

  it('no-cache in the response: stored, but validated before every reuse (§5.2.2.4)', async () => {
    upstream.on('/resp-no-cache', (req, res, n) => {
      if (n > 1 && req.headers['if-none-match'] === '"nc"') {
        res.writeHead(304, { etag: '"nc"' }).end();
        return;
      }
      res.writeHead(200, { 'cache-control': 'no-cache, max-age=60', etag: '"nc"' }).end('nc body\n');
    });
    await get('/resp-no-cache');
    const second = await get('/resp-no-cache');
    assert.equal(second.text, 'nc body\n');
    assert.match(status(second), /fwd=stale; fwd-status=304/);
    assert.equal(upstream.count('/resp-no-cache'), 2);
  });

  it('no-cache="field": reused without validation, but without that field (§5.2.2.4)', async () => {
    upstream.on('/no-cache-field', answer({ 'cache-control': 'no-cache="x-secret", max-age=60', 'x-secret': 's', 'x-open': 'o' }));
    await get('/no-cache-field');
    const hit = await get('/no-cache-field');
    assert.match(status(hit), /hit/);
    assert.equal(hit.headers['x-secret'], undefined);
    assert.equal(hit.headers['x-open'], 'o');
  });

  it("the client's If-None-Match against a fresh stored response: 304 from the cache (§4.3.2)", async () => {
    upstream.on('/client-inm', answer({ 'cache-control': 'max-age=60', etag: '"c1"' }));
    await get('/client-inm');
    const notModified = await get('/client-inm', { 'if-none-match': '"c1"' });
    assert.equal(notModified.status, 304);
    assert.equal(notModified.headers.etag, '"c1"');
    assert.match(status(notModified), /hit/);
    const modified = await get('/client-inm', { 'if-none-match': '"other"' });
    assert.equal(modified.status, 200);
    const since = await get('/client-inm', { 'if-modified-since': new Date(Date.now() + 60_000).toUTCString() });
    assert.equal(since.status, 304);
    assert.equal(upstream.count('/client-inm'), 1);
  });

  it('If-Match is not evaluated by the cache: the request goes to the origin as it is (§4.3.2)', async () => {
    upstream.on('/if-match', answer({ 'cache-control': 'max-age=60', etag: '"m1"' }));
    await get('/if-match');
    const passed = await get('/if-match', { 'if-match': '"m1"' });
    assert.match(status(passed), /fwd=request/);
    assert.equal(upstream.received('/if-match')[1]?.headers['if-match'], '"m1"');
  });
});

describe('Vary (§4.1)', () => {
  it('one stored response per normalised value of the selecting fields', async () => {
    upstream.on('/vary', (req, res) => {
      res.writeHead(200, { 'cache-control': 'max-age=60', vary: 'Accept-Encoding' });
      res.end(`for ${String(req.headers['accept-encoding'])}\n`);
    });
    assert.equal((await get('/vary', { 'accept-encoding': 'gzip, br' })).text, 'for gzip, br\n');
    assert.equal((await get('/vary', { 'accept-encoding': 'identity' })).text, 'for identity\n');
    assert.equal(upstream.count('/vary'), 2);
    const normalised = await get('/vary', { 'accept-encoding': 'BR,gzip' });
    assert.match(status(normalised), /hit/);
    assert.equal(normalised.text, 'for gzip, br\n');
    const other = await get('/vary', { 'accept-encoding': 'zstd' });
    assert.match(status(other), /fwd=vary-miss/);
    assert.equal(upstream.count('/vary'), 3);
  });

  it('a selecting field absent and present do not match', async () => {
    upstream.on('/vary-absent', answer({ 'cache-control': 'max-age=60', vary: 'x-mode' }));
    await get('/vary-absent');
    assert.match(status(await get('/vary-absent')), /hit/);
    await get('/vary-absent', { 'x-mode': '' });
    assert.equal(upstream.count('/vary-absent'), 2);
  });

  it('Vary: * is never reused', async () => {
    upstream.on('/vary-star', answer({ 'cache-control': 'max-age=60', vary: '*' }));
    await get('/vary-star');
    await get('/vary-star');
    assert.equal(upstream.count('/vary-star'), 2);
  });
});

describe('invalidation (§4.4)', () => {
  it('a non-error answer to an unsafe method invalidates the target and same-host Location/Content-Location', async () => {
    for (const path of ['/inv/a', '/inv/b', '/inv/c']) upstream.on(path, answer({ 'cache-control': 'max-age=60' }));
    upstream.on('/inv/post', (_req, res) => res.writeHead(201, { location: '/inv/b', 'content-location': 'http://elsewhere.example/inv/c' }).end());
    for (const path of ['/inv/a', '/inv/b', '/inv/c', '/inv/post']) await get(path);
    const post = await get('/inv/a', {}, 'POST');
    assert.match(status(post), /fwd=method/);
    assert.equal(upstream.count('/inv/a'), 2);
    await get('/inv/a');
    assert.equal(upstream.count('/inv/a'), 3, 'the target was invalidated');
    await get('/inv/post', {}, 'POST');
    await get('/inv/b');
    assert.equal(upstream.count('/inv/b'), 2, 'the Location target was invalidated');
    await get('/inv/c');
    assert.equal(upstream.count('/inv/c'), 1, 'another host is not invalidated');
  });

  it('an error answer invalidates nothing', async () => {
    upstream.on('/inv/err', (req, res) => {
      if (req.method === 'DELETE') res.writeHead(500).end();
      else answer({ 'cache-control': 'max-age=60' })(req, res, 1);
    });
    await get('/inv/err');
    await get('/inv/err', {}, 'DELETE');
    assert.match(status(await get('/inv/err')), /hit/);
  });
});

describe('stale content (RFC 5861)', () => {
  it('stale-while-revalidate: the stale response is served at once and refreshed in the background, once', async () => {
    // The revalidation answers slowly, so that all three stale hits come before it.
    upstream.on('/swr', (_req, res, n) => {
      setTimeout(() => {
        res.writeHead(200, { 'cache-control': 'max-age=1, stale-while-revalidate=60', ...(n === 1 ? { age: '5' } : {}) });
        res.end(`swr ${n}\n`);
      }, n === 1 ? 0 : 500);
    });
    await get('/swr');
    const stale = await Promise.all([get('/swr'), get('/swr'), get('/swr')]);
    for (const response of stale) {
      assert.equal(response.text, 'swr 1\n');
      assert.match(status(response), /hit; ttl=-\d+; detail=stale-while-revalidate/);
    }
    await eventually(() => upstream.count('/swr') === 2, 'the background revalidation');
    let fresh = await get('/swr');
    for (let i = 0; i < 50 && fresh.text !== 'swr 2\n'; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      fresh = await get('/swr');
    }
    assert.equal(fresh.text, 'swr 2\n');
    assert.equal(upstream.count('/swr'), 2, 'one background revalidation for the three stale hits');
  });

  it('stale-if-error: an error status from the upstream serves the stale response', async () => {
    upstream.on('/sie', (_req, res, n) => {
      if (n === 1) res.writeHead(200, { 'cache-control': 'max-age=1, stale-if-error=600', age: '5' }).end('good\n');
      else res.writeHead(503).end('down\n');
    });
    await get('/sie');
    const served = await get('/sie');
    assert.equal(served.status, 200);
    assert.equal(served.text, 'good\n');
    assert.match(status(served), /fwd=stale; fwd-status=503; ttl=-\d+; detail=stale-if-error/);
  });

  it('stale-if-error: the upstream taken down, the stale response is served', async () => {
    const first = await get('/down/page');
    assert.equal(first.text, 'kept while the upstream is down\n');
    await down.close();
    const served = await get('/down/page');
    assert.equal(served.status, 200);
    assert.equal(served.text, 'kept while the upstream is down\n');
    assert.match(status(served), /detail=stale-if-error/);
  });

  it('without stale-if-error, an error goes through; must-revalidate forbids stale even with it', async () => {
    upstream.on('/no-sie', (_req, res, n) => {
      if (n === 1) res.writeHead(200, { 'cache-control': 'max-age=1', age: '5' }).end('good\n');
      else res.writeHead(500).end('broken\n');
    });
    await get('/no-sie');
    assert.equal((await get('/no-sie')).status, 500);
    upstream.on('/sie-must', (_req, res, n) => {
      if (n === 1) res.writeHead(200, { 'cache-control': 'max-age=1, stale-if-error=600, must-revalidate', age: '5' }).end('good\n');
      else res.writeHead(500).end('broken\n');
    });
    await get('/sie-must');
    assert.equal((await get('/sie-must')).status, 500);
  });

  it('useStale (nginx proxy_cache_use_stale): the route serves stale on error statuses without the directive', async () => {
    upstream.on('/stale/x', (_req, res, n) => {
      if (n === 1) res.writeHead(200, { 'cache-control': 'max-age=1', age: '5' }).end('good\n');
      else res.writeHead(500).end('broken\n');
    });
    await get('/stale/x');
    const served = await get('/stale/x');
    assert.equal(served.status, 200);
    assert.equal(served.text, 'good\n');
  });

  it('useStale "updating": stale served while one background revalidation runs', async () => {
    upstream.on('/updating/x', (_req, res, n) => res.writeHead(200, { 'cache-control': 'max-age=1', ...(n === 1 ? { age: '5' } : {}) }).end(`u ${n}\n`));
    await get('/updating/x');
    const stale = await get('/updating/x');
    assert.equal(stale.text, 'u 1\n');
    assert.match(status(stale), /stale-while-revalidate/);
    await eventually(() => upstream.count('/updating/x') === 2, 'the background revalidation');
  });
});

describe('request coalescing (nginx proxy_cache_lock)', () => {
  it('100 concurrent requests for a cold key make exactly 1 upstream request', async () => {
    upstream.on('/cold', (_req, res) => {
      setTimeout(() => res.writeHead(200, { 'cache-control': 'max-age=60' }).end('cold body\n'), 300);
    });
    const agent = new Agent({ keepAlive: false, maxSockets: 100 });
    try {
      const responses = await Promise.all(
        Array.from(
          { length: 100 },
          () =>
            new Promise<{ status: number; body: string; cacheStatus: string }>((resolve, reject) => {
              const req = httpRequest(`${portico.url}/cold`, { agent }, (res) => {
                let body = '';
                res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
                res.on('end', () => resolve({ status: res.statusCode ?? 0, body, cacheStatus: String(res.headers['cache-status']) }));
              });
              req.on('error', reject);
              req.end();
            }),
        ),
      );
      assert.equal(upstream.count('/cold'), 1);
      for (const response of responses) {
        assert.equal(response.status, 200);
        assert.equal(response.body, 'cold body\n');
      }
      assert.equal(responses.filter((r) => r.cacheStatus.includes('stored')).length, 1);
      assert.ok(responses.filter((r) => r.cacheStatus.includes('collapsed')).length > 0);
    } finally {
      agent.destroy();
    }
  });

  it('after lockTimeout a waiting request goes upstream itself (its response is not stored)', async () => {
    upstream.on('/lock/slow', (_req, res) => {
      setTimeout(() => res.writeHead(200, { 'cache-control': 'max-age=60' }).end('slow\n'), 1200);
    });
    const results = await Promise.all([get('/lock/slow'), new Promise((resolve) => setTimeout(resolve, 50)).then(() => get('/lock/slow'))]);
    assert.equal(upstream.count('/lock/slow'), 2);
    for (const result of results) assert.equal(result.text, 'slow\n');
  });
});

describe('control', () => {
  it('minUses: stored only from the second request on', async () => {
    upstream.on('/min/x', answer({ 'cache-control': 'max-age=60' }));
    assert.match(status(await get('/min/x')), /detail=min-uses/);
    assert.match(status(await get('/min/x')), /stored/);
    assert.match(status(await get('/min/x')), /hit/);
    assert.equal(upstream.count('/min/x'), 2);
  });

  it('maxObjectSize: a larger response is passed on whole, not stored (known length, and streamed without one)', async () => {
    upstream.on('/big/known', answer({ 'cache-control': 'max-age=60', 'x-pad': 'x' }));
    upstream.on('/big/x', (_req, res) => {
      res.writeHead(200, { 'cache-control': 'max-age=60' });
      res.write(Buffer.alloc(800, 97));
      setTimeout(() => res.end(Buffer.alloc(800, 98)), 20);
    });
    const first = await get('/big/x');
    assert.equal(first.body.length, 1600);
    await get('/big/x');
    assert.equal(upstream.count('/big/x'), 2);
    await get('/big/known');
    assert.match(status(await get('/big/known')), /hit/);
  });

  it('bypass: the cache is not read when a bypass template is set (the response is still stored); noStore: not stored', async () => {
    upstream.on('/bypass/x', answer({ 'cache-control': 'max-age=60' }));
    await get('/bypass/x');
    const bypassed = await get('/bypass/x', { 'x-bypass': '1' });
    assert.match(status(bypassed), /fwd=bypass/);
    assert.equal(bypassed.text, 'body 2\n');
    assert.equal((await get('/bypass/x')).text, 'body 2\n');
    assert.equal(upstream.count('/bypass/x'), 2);
    upstream.on('/bypass/y', answer({ 'cache-control': 'max-age=60' }));
    await get('/bypass/y?nostore=1');
    await get('/bypass/y?nostore=1');
    assert.equal(upstream.count('/bypass/y'), 2);
  });

  it('a key template: "$uri" shares one entry across query strings', async () => {
    upstream.on('/key/x', answer({ 'cache-control': 'max-age=60' }));
    await get('/key/x?a=1');
    assert.match(status(await get('/key/x?b=2')), /hit/);
    assert.equal(upstream.count('/key/x'), 1);
  });

  it('cache: false turns it off (no Cache-Status)', async () => {
    upstream.on('/off/x', answer({ 'cache-control': 'max-age=60' }));
    const response = await get('/off/x');
    assert.equal(response.headers['cache-status'], undefined);
    await get('/off/x');
    assert.equal(upstream.count('/off/x'), 2);
  });
});

describe('purge', () => {
  it('PURGE removes an entry; a prefix ending in "*" removes every key under it', async () => {
    for (const path of ['/p/one', '/p/two', '/q/three']) upstream.on(path, answer({ 'cache-control': 'max-age=60' }));
    for (const path of ['/p/one', '/p/two', '/q/three']) await get(path);
    const purged = await get('/p/one', {}, 'PURGE');
    assert.equal(purged.status, 200);
    assert.equal((JSON.parse(purged.text) as { purged: number }).purged, 1);
    assert.match(status(await get('/p/one')), /fwd=miss/);
    assert.equal((await get('/p/nothing-here', {}, 'PURGE')).status, 404);
    const prefix = await get('/p/*', {}, 'PURGE');
    assert.equal(prefix.status, 200);
    assert.equal((JSON.parse(prefix.text) as { purged: number }).purged, 2);
    assert.match(status(await get('/p/two')), /fwd=miss/);
    assert.match(status(await get('/q/three')), /hit/);
  });

  it('PURGE from an address the ACL does not allow is refused with 403 and removes nothing', async () => {
    upstream.on('/acl', answer({ 'cache-control': 'max-age=60' }));
    await get('/acl');
    assert.equal(await fromIpv6('/acl', 'PURGE'), 403);
    assert.match(status(await get('/acl')), /hit/);
    assert.equal(upstream.count('/acl'), 1);
  });
});

describe('with compression (encode)', () => {
  it('hits are served from a stored compressed copy per coding: byte-identical after decompression, not compressed again', async () => {
    const text = 'cached and compressed '.repeat(200);
    upstream.on('/enc/x', (_req, res) => res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain', etag: '"e1"' }).end(text));
    const miss = await get('/enc/x', { 'accept-encoding': 'gzip' });
    assert.equal(miss.headers['content-encoding'], 'gzip');
    assert.equal(gunzipSync(miss.body).toString(), text);
    // A hit makes the gzip copy once; later hits carry its length (no compression per request).
    let hit = await get('/enc/x', { 'accept-encoding': 'gzip' });
    for (let i = 0; i < 100 && hit.headers['content-length'] === undefined; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      hit = await get('/enc/x', { 'accept-encoding': 'gzip' });
    }
    assert.match(status(hit), /^portico; hit/);
    assert.equal(hit.headers['content-encoding'], 'gzip');
    assert.equal(Number(hit.headers['content-length']), hit.body.length);
    assert.match(String(hit.headers.vary), /accept-encoding/i);
    assert.equal(hit.headers.etag, 'W/"e1"');
    assert.equal(gunzipSync(hit.body).toString(), text);
    const br = await get('/enc/x', { 'accept-encoding': 'br' });
    assert.equal(br.headers['content-encoding'], 'br');
    assert.equal(brotliDecompressSync(br.body).toString(), text);
    const identity = await get('/enc/x');
    assert.equal(identity.headers['content-encoding'], undefined);
    assert.equal(identity.text, text);
    const ranged = await get('/enc/x', { 'accept-encoding': 'gzip', range: 'bytes=0-9' });
    assert.equal(ranged.headers['content-encoding'], undefined);
    assert.equal(upstream.count('/enc/x'), 1);
  });
});

describe('targeted cache control (RFC 9213, #20)', () => {
  const twice = async (path: string): Promise<[SimpleResponse, SimpleResponse]> => [await get(path), await get(path)];

  it('CDN-Cache-Control overrides Cache-Control for this cache, and reaches the client', async () => {
    upstream.on('/t/cdn', answer({ 'cache-control': 'no-store', 'cdn-cache-control': 'max-age=60' }));
    const [first, second] = await twice('/t/cdn');
    assert.match(status(first), /stored/);
    assert.match(status(second), /hit/);
    assert.equal(upstream.count('/t/cdn'), 1);
    assert.equal(second.headers['cdn-cache-control'], 'max-age=60', 'meant for caches further down too');
    assert.equal(second.headers['cache-control'], 'no-store', 'Cache-Control is passed on untouched, for the browser');
  });

  it('Portico-Cache-Control comes first, and is removed before the client (miss and hit)', async () => {
    upstream.on('/t/portico', answer({ 'cache-control': 'no-store', 'cdn-cache-control': 'no-store', 'portico-cache-control': 'max-age=60' }));
    const [first, second] = await twice('/t/portico');
    assert.match(status(second), /hit/);
    assert.equal(upstream.count('/t/portico'), 1);
    for (const response of [first, second]) assert.equal(response.headers['portico-cache-control'], undefined);
    upstream.on('/t/portico-no', answer({ 'cache-control': 'max-age=60', 'portico-cache-control': 'no-store' }));
    const [, again] = await twice('/t/portico-no');
    assert.doesNotMatch(status(again), /hit/);
    assert.equal(upstream.count('/t/portico-no'), 2, 'a targeted no-store keeps it out of the cache whatever Cache-Control says');
  });

  it('a targeted field that is not a valid Structured Fields Dictionary is ignored (Cache-Control decides)', async () => {
    for (const [index, value] of ['Max-Age=60', 'max-age=60,', '"max-age=60"', 'max-age=(60)x'].entries()) {
      const path = `/t/invalid-${index}`;
      upstream.on(path, answer({ 'cache-control': 'no-store', 'cdn-cache-control': value }));
      await twice(path);
      assert.equal(upstream.count(path), 2, `${value}: invalid, so no-store applies`);
    }
  });

  it('with a targeted field, Expires is ignored too (RFC 9213 §2.1)', async () => {
    upstream.on('/t/expires', answer({ expires: new Date(Date.now() + 3_600_000).toUTCString(), date: new Date().toUTCString(), 'cdn-cache-control': 'public' }));
    await twice('/t/expires');
    assert.equal(upstream.count('/t/expires'), 2, 'no lifetime from the targeted field, and Expires does not count');
  });

  it('the list is configurable: a route obeying only CDN-Cache-Control ignores and passes Portico-Cache-Control', async () => {
    upstream.on('/cdn-only/a', answer({ 'cache-control': 'max-age=60', 'portico-cache-control': 'no-store' }));
    const [, second] = await twice('/cdn-only/a');
    assert.match(status(second), /hit/);
    assert.equal(second.headers['portico-cache-control'], 'no-store');
    upstream.on('/untargeted/a', answer({ 'cache-control': 'max-age=60', 'cdn-cache-control': 'no-store' }));
    const [, again] = await twice('/untargeted/a');
    assert.match(status(again), /hit/, 'targeted: [] means Cache-Control alone');
  });
});
