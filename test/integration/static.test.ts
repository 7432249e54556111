/**
 * The static file handler against the real built server over loopback sockets: index files,
 * listings, try-files, MIME types, dotfiles, validators and conditional requests (RFC 9110 §13),
 * ranges (RFC 9110 §14), precompressed variants, HEAD/405, caching headers, alias, symlinks and
 * the hot cache's freshness.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { brotliCompressSync, brotliDecompressSync, gunzipSync, gzipSync } from 'node:zlib';
import { freePort, rawRequest, request, startWithConfig, statusOf, tempDir, type RunningPortico, type SimpleResponse } from '../helpers/portico.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function write(path: string, content: string | Buffer): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, content);
}

/** Splits a raw HTTP/1.1 response (one, Connection: close) into head lines and body bytes. */
function splitRaw(raw: Buffer): { head: string; headers: Map<string, string>; body: Buffer } {
  const end = raw.indexOf('\r\n\r\n');
  assert.notEqual(end, -1, `no end of head in ${JSON.stringify(raw.toString('latin1'))}`);
  const head = raw.subarray(0, end).toString('latin1');
  const headers = new Map<string, string>();
  for (const line of head.split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { head, headers, body: raw.subarray(end + 4) };
}

const SMALL = '0123456789'.repeat(10); // 100 bytes, served from the hot cache
const BIG = randomBytes(3 * 1024 * 1024); // larger than hotFileMaxSize (1mb): streamed from disk
const JS = `export const answer = 42;\n${'// padding so that compression pays off\n'.repeat(200)}`;

describe('static files', () => {
  const dir = tempDir('portico-static-');
  const site = dir.path;
  const www = join(site, 'www');
  let portico: RunningPortico;
  let spa: RunningPortico;
  let url: string;

  const get = (path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<SimpleResponse> => request(`${url}${path}`, { path, headers, method });

  before(async () => {
    write(join(www, 'index.html'), '<h1>home</h1>\n');
    write(join(www, 'dir', 'index.html'), '<h1>dir index</h1>\n');
    write(join(www, 'noindex', 'a.txt'), 'a\n');
    write(join(www, 'small.txt'), SMALL);
    write(join(www, 'big.bin'), BIG);
    write(join(www, '.env'), 'SECRET=dotenv\n');
    write(join(www, '.well-known', 'x'), 'well-known file\n');
    // MIME types
    write(join(www, 'types', 'a.html'), '<p>x</p>');
    write(join(www, 'types', 'a.css'), 'p{}');
    write(join(www, 'types', 'a.js'), 'x();');
    write(join(www, 'types', 'a.json'), '{}');
    write(join(www, 'types', 'a.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    write(join(www, 'types', 'a.png'), Buffer.from('89504e470d0a1a0a', 'hex'));
    write(join(www, 'types', 'a.wasm'), Buffer.from('0061736d01000000', 'hex'));
    write(join(www, 'types', 'a.zzunknownext'), 'data');
    // precompressed siblings, really compressed
    write(join(www, 'file.js'), JS);
    write(join(www, 'file.js.br'), brotliCompressSync(JS));
    write(join(www, 'file.js.gz'), gzipSync(JS));
    // two variants of equal size and mtime: their entity tags must still differ (RFC 9110 §8.8.3)
    write(join(www, 'same.js'), 'identity body');
    write(join(www, 'same.js.br'), 'BRBRBRBR');
    write(join(www, 'same.js.gz'), 'GZGZGZGZ');
    const when = new Date('2024-01-02T03:04:05Z');
    for (const name of ['same.js', 'same.js.br', 'same.js.gz']) utimesSync(join(www, name), when, when);
    // listing
    write(join(www, 'listed', '<b>x&y.txt'), 'escaped\n');
    write(join(www, 'listed', 'sub', 'inner.txt'), 'inner\n');
    write(join(www, 'listed', '.hidden'), 'hidden\n');
    write(join(www, 'listed', '<i>d', 'f.txt'), 'f\n');
    // symlinks
    write(join(site, 'outside.txt'), 'OUTSIDE-THE-ROOT\n');
    symlinkSync('small.txt', join(www, 'inside-link.txt'));
    symlinkSync('../outside.txt', join(www, 'outside-link.txt'));
    // alias roots
    write(join(site, 'assets', 'app.css'), 'body{color:red}');
    write(join(site, 'pub', 'index.html'), 'pub index\n');
    write(join(site, 'pub', 'p.txt'), 'pub file\n');
    write(join(site, 'fresh', 'f.txt'), 'version one\n');
    write(join(site, 'fresh100', 'f.txt'), 'version one\n');
    // SPA site
    write(join(site, 'spa', 'index.html'), '<div id="app">spa shell</div>\n');
    write(join(site, 'spa', 'app.js'), 'console.log("app");\n');
    write(join(site, 'spa', 'docs', 'index.html'), 'docs index\n');
    write(join(site, 'spa', 'strict', 'exists.txt'), 'exists\n');

    const alias = (prefix: string, root: string, extra: Record<string, unknown> = {}) => ({ prefix, static: { root, alias: true, ...extra } });
    portico = await startWithConfig(site, {
      log: { access: false },
      servers: [
        {
          listen: `127.0.0.1:${await freePort()}`,
          static: { root: 'www' },
          routes: [
            { prefix: '/' },
            alias('/assets/', 'assets'),
            alias('/pub', 'pub'),
            alias('/list/', 'www/listed', { listing: true }),
            alias('/deny/', 'www', { dotfiles: 'deny' }),
            alias('/allow/', 'www', { dotfiles: 'allow' }),
            alias('/cached/', 'www', { maxAge: '1h', immutable: true }),
            alias('/follow/', 'www', { symlinks: 'follow' }),
            alias('/nolinks/', 'www', { symlinks: 'deny' }),
            alias('/fresh/', 'fresh', { hotCacheValidity: 0 }),
            alias('/fresh100/', 'fresh100', { hotCacheValidity: '100ms' }),
          ],
        },
      ],
    });
    url = portico.url;
    spa = await startWithConfig(join(site, 'spa'), {
      log: { access: false },
      servers: [
        {
          listen: `127.0.0.1:${await freePort()}`,
          static: { root: '.', tryFiles: ['$uri', '$uri/', '/index.html'] },
          routes: [{ prefix: '/' }, { prefix: '/strict/', static: { root: '.', tryFiles: ['$uri', '=404'] } }],
        },
      ],
    });
  });
  after(async () => {
    await portico?.stop();
    await spa?.stop();
    dir.remove();
  });

  describe('index files and directories', () => {
    it('serves index.html for /', async () => {
      const res = await get('/');
      assert.equal(res.status, 200);
      assert.equal(res.text, '<h1>home</h1>\n');
      assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
    });
    it('serves /dir/ from dir/index.html', async () => {
      const res = await get('/dir/');
      assert.equal(res.status, 200);
      assert.equal(res.text, '<h1>dir index</h1>\n');
    });
    it('redirects /dir to /dir/ with 301, keeping the query', async () => {
      const res = await get('/dir');
      assert.equal(res.status, 301);
      assert.equal(res.headers.location, '/dir/');
      const withQuery = await get('/dir?a=1&b=2');
      assert.equal(withQuery.status, 301);
      assert.equal(withQuery.headers.location, '/dir/?a=1&b=2');
    });
    it('absolute-form targets (RFC 9112 §3.2.2) serve the same files, an empty path being "/"', async () => {
      for (const target of ['http://localhost/small.txt', 'http://localhost', 'http://localhost?x=1', 'http://localhost/?x=1']) {
        const raw = await rawRequest(portico.port, `GET ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
        assert.equal(statusOf(raw), 200, target);
        assert.equal(splitRaw(raw).body.toString(), target.endsWith('small.txt') ? SMALL : '<h1>home</h1>\n', target);
      }
    });
    it('answers 403 for a directory without index', async () => {
      assert.equal((await get('/noindex/')).status, 403);
      assert.equal((await get('/noindex/a.txt')).status, 200);
    });
    it('answers 404 for a missing file, and for a file asked for as a directory', async () => {
      assert.equal((await get('/nope.txt')).status, 404);
      assert.equal((await get('/small.txt/')).status, 404);
    });
  });

  describe('listing', () => {
    it('lists entries, directories first, HTML-escaped and percent-encoded, without dotfiles', async () => {
      const res = await get('/list/');
      assert.equal(res.status, 200);
      assert.match(res.headers['content-type'] ?? '', /^text\/html/);
      assert.ok(res.text.includes('<a href="%3Cb%3Ex%26y.txt">&lt;b&gt;x&amp;y.txt</a>'), res.text);
      assert.ok(!res.text.includes('<b>x'), 'the raw name must not appear as markup');
      assert.ok(res.text.includes('<a href="sub/">sub/</a>'), res.text);
      assert.ok(res.text.indexOf('sub/') < res.text.indexOf('x&amp;y'), 'directories first');
      assert.ok(!res.text.includes('.hidden'), 'dotfiles are not listed');
    });
    it('a directory with markup in its name: encoded redirect, escaped title', async () => {
      const redirect = await get('/list/%3Ci%3Ed');
      assert.equal(redirect.status, 301);
      assert.equal(redirect.headers.location, '/list/%3Ci%3Ed/');
      const res = await get('/list/%3Ci%3Ed/');
      assert.equal(res.status, 200);
      assert.ok(res.text.includes('Index of /list/&lt;i&gt;d/'), res.text);
      assert.ok(!res.text.includes('<i>'), res.text);
      assert.ok(res.text.includes('<a href="f.txt">f.txt</a>'), res.text);
    });
    it('serves the listed file through its encoded link', async () => {
      const res = await get('/list/%3Cb%3Ex%26y.txt');
      assert.equal(res.status, 200);
      assert.equal(res.text, 'escaped\n');
    });
  });

  describe('tryFiles', () => {
    const spaGet = (path: string) => request(`${spa.url}${path}`, { path });
    it('SPA fallback: an unknown path serves /index.html', async () => {
      const res = await spaGet('/some/client/route');
      assert.equal(res.status, 200);
      assert.equal(res.text, '<div id="app">spa shell</div>\n');
      assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
    });
    it('an existing asset is served as itself', async () => {
      const res = await spaGet('/app.js');
      assert.equal(res.status, 200);
      assert.equal(res.text, 'console.log("app");\n');
      assert.equal(res.headers['content-type'], 'text/javascript; charset=utf-8');
    });
    it('$uri/ serves a directory index, after redirecting a path without its slash to it (as nginx)', async () => {
      const redirect = await spaGet('/docs');
      assert.equal(redirect.status, 301);
      assert.equal(redirect.headers.location, '/docs/');
      const res = await spaGet('/docs/');
      assert.equal(res.status, 200);
      assert.equal(res.text, 'docs index\n');
    });
    it('=404 fallback answers 404', async () => {
      assert.equal((await spaGet('/strict/missing.txt')).status, 404);
      const ok = await spaGet('/strict/exists.txt');
      assert.equal(ok.status, 200);
      assert.equal(ok.text, 'exists\n');
    });
  });

  describe('MIME types', () => {
    const cases: [string, string][] = [
      ['a.html', 'text/html; charset=utf-8'],
      ['a.css', 'text/css; charset=utf-8'],
      ['a.js', 'text/javascript; charset=utf-8'],
      ['a.json', 'application/json; charset=utf-8'],
      ['a.svg', 'image/svg+xml'],
      ['a.png', 'image/png'],
      ['a.wasm', 'application/wasm'],
      ['a.zzunknownext', 'application/octet-stream'],
    ];
    for (const [name, type] of cases) {
      it(`${name} → ${type}`, async () => {
        const res = await get(`/types/${name}`);
        assert.equal(res.status, 200);
        assert.equal(res.headers['content-type'], type);
      });
    }
  });

  describe('dotfiles', () => {
    it('/.env is 404 by default', async () => {
      const res = await get('/.env');
      assert.equal(res.status, 404);
      assert.ok(!res.text.includes('dotenv'));
    });
    it('/.env is 403 with dotfiles: deny', async () => {
      assert.equal((await get('/deny/.env')).status, 403);
    });
    it('/.env is served with dotfiles: allow', async () => {
      const res = await get('/allow/.env');
      assert.equal(res.status, 200);
      assert.equal(res.text, 'SECRET=dotenv\n');
    });
    it('/.well-known/x is served by default (RFC 8615)', async () => {
      const res = await get('/.well-known/x');
      assert.equal(res.status, 200);
      assert.equal(res.text, 'well-known file\n');
    });
    it('a dotfile below .well-known is still hidden', async () => {
      assert.equal((await get('/.well-known/.env')).status, 404);
    });
  });

  describe('validators and conditional requests', () => {
    let etag: string;
    let lastModified: string;
    before(async () => {
      const res = await get('/small.txt');
      etag = res.headers.etag as string;
      lastModified = res.headers['last-modified'] as string;
    });
    it('ETag (strong) and Last-Modified are present', async () => {
      assert.match(etag, /^"[0-9a-f]+-[0-9a-f]+"$/);
      assert.ok(!Number.isNaN(Date.parse(lastModified)), lastModified);
      assert.match(lastModified, /GMT$/);
    });
    it('If-None-Match with the ETag → 304 with validators and no body', async () => {
      const res = await get('/small.txt', { 'If-None-Match': etag });
      assert.equal(res.status, 304);
      assert.equal(res.body.length, 0);
      assert.equal(res.headers.etag, etag);
      assert.equal(res.headers['last-modified'], lastModified);
    });
    it('If-None-Match with a list containing the ETag → 304', async () => {
      assert.equal((await get('/small.txt', { 'If-None-Match': `"nope", ${etag}, "other"` })).status, 304);
    });
    it('If-None-Match with the weak form W/"…" → 304 (weak comparison)', async () => {
      assert.equal((await get('/small.txt', { 'If-None-Match': `W/${etag}` })).status, 304);
    });
    it('If-None-Match with another tag → 200', async () => {
      const res = await get('/small.txt', { 'If-None-Match': '"something-else"' });
      assert.equal(res.status, 200);
      assert.equal(res.text, SMALL);
    });
    it('If-None-Match with empty list elements still matches (RFC 9110 §5.6.1.2)', async () => {
      assert.equal((await get('/small.txt', { 'If-None-Match': `, "nope",, ${etag}` })).status, 304);
      assert.equal((await get('/small.txt', { 'If-Match': `"nope", ,${etag}` })).status, 200);
    });
    it('If-None-Match * → 304 for an existing file', async () => {
      assert.equal((await get('/small.txt', { 'If-None-Match': '*' })).status, 304);
    });
    it('If-Modified-Since = Last-Modified → 304', async () => {
      assert.equal((await get('/small.txt', { 'If-Modified-Since': lastModified })).status, 304);
    });
    it('If-Modified-Since in the past → 200', async () => {
      assert.equal((await get('/small.txt', { 'If-Modified-Since': 'Thu, 01 Jan 1970 00:00:00 GMT' })).status, 200);
    });
    it('If-Modified-Since with an invalid date is ignored → 200', async () => {
      assert.equal((await get('/small.txt', { 'If-Modified-Since': 'not a date' })).status, 200);
    });
    it('If-None-Match takes precedence over If-Modified-Since (RFC 9110 §13.2.2)', async () => {
      const res = await get('/small.txt', { 'If-None-Match': '"other"', 'If-Modified-Since': lastModified });
      assert.equal(res.status, 200);
    });
    it('If-Match is evaluated before If-None-Match: failing If-Match → 412', async () => {
      assert.equal((await get('/small.txt', { 'If-Match': '"other"', 'If-None-Match': etag })).status, 412);
    });
    it('If-Match with another tag → 412', async () => {
      assert.equal((await get('/small.txt', { 'If-Match': '"not-it"' })).status, 412);
    });
    it('If-Match with the weak form of the ETag → 412 (strong comparison)', async () => {
      assert.equal((await get('/small.txt', { 'If-Match': `W/${etag}` })).status, 412);
    });
    it('If-Match * → 200, If-Match with the ETag → 200', async () => {
      assert.equal((await get('/small.txt', { 'If-Match': '*' })).status, 200);
      assert.equal((await get('/small.txt', { 'If-Match': etag })).status, 200);
    });
    it('If-Unmodified-Since in the past → 412', async () => {
      assert.equal((await get('/small.txt', { 'If-Unmodified-Since': 'Thu, 01 Jan 1970 00:00:00 GMT' })).status, 412);
    });
    it('If-Unmodified-Since = Last-Modified → 200', async () => {
      assert.equal((await get('/small.txt', { 'If-Unmodified-Since': lastModified })).status, 200);
    });
  });

  describe('ranges', () => {
    it('bytes=0-9 → 206 with Content-Range and the exact bytes', async () => {
      const res = await get('/small.txt', { Range: 'bytes=0-9' });
      assert.equal(res.status, 206);
      assert.equal(res.headers['content-range'], 'bytes 0-9/100');
      assert.equal(res.headers['content-length'], '10');
      assert.equal(res.text, SMALL.slice(0, 10));
    });
    it('suffix bytes=-5 → the last 5 bytes', async () => {
      const res = await get('/small.txt', { Range: 'bytes=-5' });
      assert.equal(res.status, 206);
      assert.equal(res.headers['content-range'], 'bytes 95-99/100');
      assert.equal(res.text, SMALL.slice(95));
    });
    it('open bytes=10- → from byte 10 to the end', async () => {
      const res = await get('/small.txt', { Range: 'bytes=10-' });
      assert.equal(res.status, 206);
      assert.equal(res.headers['content-range'], 'bytes 10-99/100');
      assert.equal(res.text, SMALL.slice(10));
    });
    it('unsatisfiable bytes=99999- → 416 with Content-Range: bytes */size', async () => {
      const res = await get('/small.txt', { Range: 'bytes=99999-' });
      assert.equal(res.status, 416);
      assert.equal(res.headers['content-range'], 'bytes */100');
    });
    it('a malformed range or an unknown unit is ignored → 200 with the full body', async () => {
      for (const range of ['bytes=abc', 'bytes=-', 'bytes=1-2x', 'items=0-1']) {
        const res = await get('/small.txt', { Range: range });
        assert.equal(res.status, 200, range);
        assert.equal(res.text, SMALL, range);
      }
    });
    it('If-Range with the current ETag → 206; with an old ETag → 200 full', async () => {
      const { headers } = await get('/small.txt');
      const hit = await get('/small.txt', { Range: 'bytes=0-3', 'If-Range': headers.etag as string });
      assert.equal(hit.status, 206);
      assert.equal(hit.text, '0123');
      const miss = await get('/small.txt', { Range: 'bytes=0-3', 'If-Range': '"1-1"' });
      assert.equal(miss.status, 200);
      assert.equal(miss.text, SMALL);
    });
    it('If-Range with the current Last-Modified date → 206', async () => {
      const { headers } = await get('/small.txt');
      const res = await get('/small.txt', { Range: 'bytes=0-3', 'If-Range': headers['last-modified'] as string });
      assert.equal(res.status, 206);
    });
    it('several ranges → 200 with the full body (RFC 9110 §14.2 lets a server ignore Range)', async () => {
      const res = await get('/small.txt', { Range: 'bytes=0-1,5-6,90-' });
      assert.equal(res.status, 200);
      assert.equal(res.text, SMALL);
    });
    it('a large (streamed) file: a range in the middle gives exactly those bytes', async () => {
      const start = 1_500_000;
      const end = 2_600_123;
      const res = await get('/big.bin', { Range: `bytes=${start}-${end}` });
      assert.equal(res.status, 206);
      assert.equal(res.headers['content-range'], `bytes ${start}-${end}/${BIG.length}`);
      assert.equal(res.headers['content-length'], String(end - start + 1));
      assert.ok(res.body.equals(BIG.subarray(start, end + 1)), 'range bytes differ');
    });
    it('a large file: suffix range and 416', async () => {
      const tail = await get('/big.bin', { Range: 'bytes=-1000' });
      assert.equal(tail.status, 206);
      assert.ok(tail.body.equals(BIG.subarray(BIG.length - 1000)));
      const beyond = await get('/big.bin', { Range: `bytes=${BIG.length}-` });
      assert.equal(beyond.status, 416);
      assert.equal(beyond.headers['content-range'], `bytes */${BIG.length}`);
    });
    it('a large file: a full GET returns identical bytes', async () => {
      const res = await get('/big.bin');
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-length'], String(BIG.length));
      assert.equal(res.headers['content-type'], 'application/octet-stream');
      assert.equal(res.headers['accept-ranges'], 'bytes');
      assert.ok(res.body.equals(BIG), 'body differs from the file');
    });
    it('a large file: downloads aborted mid-stream do not leak file descriptors', { skip: !existsSync('/proc/self/fd') }, async () => {
      const fds = () => readdirSync(`/proc/${portico.pid}/fd`).length;
      // One completed request first, so lazily opened descriptors (log files, caches) are counted.
      await get('/big.bin', { Range: 'bytes=0-0' });
      const before = fds();
      for (let i = 0; i < 20; i++) {
        await new Promise<void>((resolve, reject) => {
          const socket = connect({ port: portico.port, host: '127.0.0.1' }, () => socket.write('GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n'));
          socket.once('data', () => {
            socket.destroy();
            resolve();
          });
          socket.on('error', reject);
        });
      }
      let after = fds();
      for (let i = 0; i < 50 && after > before + 2; i++) {
        await sleep(20);
        after = fds();
      }
      assert.ok(after <= before + 2, `descriptors grew from ${before} to ${after}`);
      // and the server still answers
      assert.equal((await get('/small.txt')).status, 200);
    });
    it('a large file: conditional GET → 304', async () => {
      const first = await get('/big.bin', { Range: 'bytes=0-0' });
      const res = await get('/big.bin', { 'If-None-Match': first.headers.etag as string });
      assert.equal(res.status, 304);
      assert.equal(res.body.length, 0);
    });
  });

  describe('precompressed variants', () => {
    it('Accept-Encoding: br, gzip → the .br file with Content-Encoding: br and Vary', async () => {
      const res = await get('/file.js', { 'Accept-Encoding': 'br, gzip' });
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-encoding'], 'br');
      assert.equal(res.headers.vary, 'Accept-Encoding');
      assert.equal(res.headers['content-type'], 'text/javascript; charset=utf-8');
      assert.equal(brotliDecompressSync(res.body).toString(), JS);
    });
    it('gzip only → the .gz file', async () => {
      const res = await get('/file.js', { 'Accept-Encoding': 'gzip' });
      assert.equal(res.headers['content-encoding'], 'gzip');
      assert.equal(res.headers.vary, 'Accept-Encoding');
      assert.equal(gunzipSync(res.body).toString(), JS);
    });
    it('br;q=0, gzip → gzip (q=0 refuses br)', async () => {
      const res = await get('/file.js', { 'Accept-Encoding': 'br;q=0, gzip' });
      assert.equal(res.headers['content-encoding'], 'gzip');
    });
    it('gzip;q=0.5, br;q=0.9 → br (highest q wins)', async () => {
      const res = await get('/file.js', { 'Accept-Encoding': 'gzip;q=0.5, br;q=0.9' });
      assert.equal(res.headers['content-encoding'], 'br');
    });
    it('no Accept-Encoding → identity, still with Vary', async () => {
      const res = await get('/file.js');
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-encoding'], undefined);
      assert.equal(res.headers.vary, 'Accept-Encoding');
      assert.equal(res.text, JS);
    });
    it('variants of equal size and mtime have distinct entity tags', async () => {
      const br = await get('/same.js', { 'Accept-Encoding': 'br' });
      const gz = await get('/same.js', { 'Accept-Encoding': 'gzip' });
      assert.equal(br.text, 'BRBRBRBR');
      assert.equal(gz.text, 'GZGZGZGZ');
      assert.notEqual(br.headers.etag, gz.headers.etag);
      // A cache revalidating its br copy for a gzip-only client must not be told 304.
      const revalidate = await get('/same.js', { 'Accept-Encoding': 'gzip', 'If-None-Match': br.headers.etag as string });
      assert.equal(revalidate.status, 200);
      assert.equal(revalidate.text, 'GZGZGZGZ');
    });
    it('a sibling that appears later adds Vary to the identity answer', async () => {
      write(join(site, 'fresh', 'late.js'), 'late();');
      const before = await get('/fresh/late.js');
      assert.equal(before.headers.vary, undefined);
      write(join(site, 'fresh', 'late.js.gz'), gzipSync('late();'));
      const res = await get('/fresh/late.js');
      assert.equal(res.headers.vary, 'Accept-Encoding');
      assert.equal((await get('/fresh/late.js', { 'Accept-Encoding': 'gzip' })).headers['content-encoding'], 'gzip');
    });
  });

  describe('methods', () => {
    it('HEAD: the headers of GET, Content-Length, and no body bytes', async () => {
      const raw = await rawRequest(portico.port, 'HEAD /small.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      assert.equal(statusOf(raw), 200);
      const { headers, body } = splitRaw(raw);
      assert.equal(headers.get('content-length'), '100');
      assert.equal(headers.get('content-type'), 'text/plain; charset=utf-8');
      assert.ok(headers.has('etag'));
      assert.equal(body.length, 0, `HEAD sent a body: ${JSON.stringify(body.toString('latin1'))}`);
    });
    it('HEAD on a large file: Content-Length and no body bytes', async () => {
      const raw = await rawRequest(portico.port, 'HEAD /big.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      assert.equal(statusOf(raw), 200);
      const { headers, body } = splitRaw(raw);
      assert.equal(headers.get('content-length'), String(BIG.length));
      assert.equal(body.length, 0);
    });
    it('HEAD with If-None-Match → 304', async () => {
      const { headers } = await get('/small.txt');
      assert.equal((await get('/small.txt', { 'If-None-Match': headers.etag as string }, 'HEAD')).status, 304);
    });
    it('HEAD ignores Range (RFC 9110 §14.2: only GET has range semantics)', async () => {
      const res = await get('/small.txt', { Range: 'bytes=0-9' }, 'HEAD');
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-length'], '100');
    });
    it('POST → 405 with Allow: GET, HEAD', async () => {
      const res = await get('/small.txt', {}, 'POST');
      assert.equal(res.status, 405);
      assert.equal(res.headers.allow, 'GET, HEAD');
    });
    it('DELETE → 405', async () => {
      assert.equal((await get('/small.txt', {}, 'DELETE')).status, 405);
    });
  });

  describe('caching headers', () => {
    it('maxAge + immutable → Cache-Control: public, max-age=N, immutable', async () => {
      const res = await get('/cached/small.txt');
      assert.equal(res.status, 200);
      assert.equal(res.headers['cache-control'], 'public, max-age=3600, immutable');
    });
    it('a 304 repeats Cache-Control', async () => {
      const first = await get('/cached/small.txt');
      const res = await get('/cached/small.txt', { 'If-None-Match': first.headers.etag as string });
      assert.equal(res.status, 304);
      assert.equal(res.headers['cache-control'], 'public, max-age=3600, immutable');
    });
    it('no maxAge → no Cache-Control', async () => {
      assert.equal((await get('/small.txt')).headers['cache-control'], undefined);
    });
  });

  describe('alias', () => {
    it('strips the route prefix before joining the root', async () => {
      const res = await get('/assets/app.css');
      assert.equal(res.status, 200);
      assert.equal(res.text, 'body{color:red}');
      assert.equal((await get('/assets/assets/app.css')).status, 404);
    });
    it('a prefix without a trailing slash: /pub → 301 /pub/, /pub/ → index, /pub/p.txt → file', async () => {
      const redirect = await get('/pub');
      assert.equal(redirect.status, 301);
      assert.equal(redirect.headers.location, '/pub/');
      assert.equal((await get('/pub/')).text, 'pub index\n');
      assert.equal((await get('/pub/p.txt')).text, 'pub file\n');
    });
    it('a prefix without a trailing slash does not map /pubX to a file under the alias', async () => {
      // "/pubp.txt" is not a path below "/pub/": mapping it to pub/p.txt would make the alias
      // reachable by names that are not below the prefix (and "/pub../" to its parent).
      assert.equal((await get('/pubp.txt')).status, 404);
    });
  });

  describe('symlinks', () => {
    it('a link inside the root to a file inside the root is served', async () => {
      const res = await get('/inside-link.txt');
      assert.equal(res.status, 200);
      assert.equal(res.text, SMALL);
    });
    it('a link to a file outside the root → 403 (symlinks: inside)', async () => {
      const res = await get('/outside-link.txt');
      assert.equal(res.status, 403);
      assert.ok(!res.text.includes('OUTSIDE-THE-ROOT'));
    });
    it('with symlinks: follow, the outside link is served', async () => {
      const res = await get('/follow/outside-link.txt');
      assert.equal(res.status, 200);
      assert.equal(res.text, 'OUTSIDE-THE-ROOT\n');
    });
    it('with symlinks: deny, even the inside link is refused but plain files are served', async () => {
      assert.equal((await get('/nolinks/inside-link.txt')).status, 403);
      assert.equal((await get('/nolinks/small.txt')).status, 200);
    });
  });

  describe('freshness', () => {
    it('hotCacheValidity 0: a file changed on disk is seen at once', async () => {
      assert.equal((await get('/fresh/f.txt')).text, 'version one\n');
      write(join(site, 'fresh', 'f.txt'), 'version two, longer\n');
      const res = await get('/fresh/f.txt');
      assert.equal(res.text, 'version two, longer\n');
      assert.equal(res.headers['content-length'], String('version two, longer\n'.length));
    });
    it('hotCacheValidity 100ms: a changed file is seen after the validity', async () => {
      assert.equal((await get('/fresh100/f.txt')).text, 'version one\n');
      write(join(site, 'fresh100', 'f.txt'), 'version 2\n');
      await sleep(250);
      assert.equal((await get('/fresh100/f.txt')).text, 'version 2\n');
    });
    it('concurrent first requests for an uncached file all get its bytes', async () => {
      const body = randomBytes(40_000);
      write(join(site, 'fresh', 'burst.bin'), body);
      const answers = await Promise.all(Array.from({ length: 40 }, () => get('/fresh/burst.bin')));
      for (const res of answers) {
        assert.equal(res.status, 200);
        assert.ok(res.body.equals(body));
      }
    });
    it('a new file appears, a deleted one becomes 404, an empty one is served', async () => {
      write(join(site, 'fresh', 'new.txt'), 'new\n');
      assert.equal((await get('/fresh/new.txt')).status, 200);
      rmSync(join(site, 'fresh', 'new.txt'));
      assert.equal((await get('/fresh/new.txt')).status, 404);
      writeFileSync(join(site, 'fresh', 'new.txt'), '');
      const empty = await get('/fresh/new.txt');
      assert.equal(empty.status, 200);
      assert.equal(empty.headers['content-length'], '0');
    });
  });
});
