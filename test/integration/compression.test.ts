/**
 * On-the-fly compression (route `encode`, edge/middleware/encode.ts) on a real Portico: static
 * files (from memory and streamed from disk), a reverse-proxied node:http upstream and an app on
 * Portico's own workers. Bodies are decompressed with node:zlib and compared byte for byte; the
 * negative rules (ranges, already encoded, no-transform, small, non-compressible, HEAD, off) each
 * get their own request; an event stream is read incrementally through the compressor. The
 * client is node:http, which never decompresses on its own.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as zlib from 'node:zlib';
import { brotliDecompressSync, createBrotliDecompress, createGunzip, gunzipSync, gzipSync } from 'node:zlib';
import { APPS } from '../helpers/app.js';
import { freePort, rawRequest, request, runCli, startPortico, startWithConfig, tempDir, writeConfig, type RunningPortico, type SimpleResponse } from '../helpers/portico.js';
import { startNodeUpstream, type NodeUpstream } from '../helpers/upstreams.js';

/** The same deterministic text as the app fixture's `text(size)`. */
function text(size: number): string {
  let out = '';
  for (let i = 0; out.length < size; i++) out += `line ${i}: the quick brown fox jumps over the lazy dog ${i % 97}\n`;
  return out.slice(0, size);
}

function decode(response: SimpleResponse): Buffer {
  const coding = response.headers['content-encoding'];
  if (coding === 'gzip') return gunzipSync(response.body);
  if (coding === 'br') return brotliDecompressSync(response.body);
  assert.equal(coding, undefined, 'no other coding is configured');
  return response.body;
}

/** A deferred the upstream waits on. */
function gate(): { promise: Promise<void>; open(): void } {
  let open = () => {};
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

const dir = tempDir('portico-compress-');
const site = join(dir.path, 'site');
const PAGE = text(20_000);
const BIG = text(3_000_000);
const PRE_PLAIN = `/* the plain file */\n${text(5_000)}`;
const PRE_GZ = gzipSync(`/* the precompressed sibling */\n${text(5_000)}`);
const PNG = randomBytes(10_000);
const UP_TEXT = text(200_000);
const UP_STREAM = text(5_000_000);
let portico: RunningPortico;
let upstream: NodeUpstream;
let base = '';
let sseGate = gate();
/** Upstream streams that ended because the other side went away. */
let streamsCut = 0;

before(async () => {
  mkdirSync(site);
  writeFileSync(join(site, 'page.html'), PAGE);
  writeFileSync(join(site, 'big.txt'), BIG);
  writeFileSync(join(site, 'small.txt'), 'tiny\n');
  writeFileSync(join(site, 'pre.js'), PRE_PLAIN);
  writeFileSync(join(site, 'pre.js.gz'), PRE_GZ);
  writeFileSync(join(site, 'image.png'), PNG);
  upstream = await startNodeUpstream((req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '/';
    if (path === '/up/text' && /^(W\/)?"v1"$/.test(String(req.headers['if-none-match']))) {
      // Weak comparison, as RFC 9110 §13.1.2 prescribes for If-None-Match.
      res.writeHead(304, { etag: '"v1"', vary: 'Origin' });
      res.end();
    } else if (path === '/up/text') {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(UP_TEXT), etag: '"v1"', vary: 'Origin' });
      res.end(UP_TEXT);
    } else if (path === '/up/endless') {
      // Hex text (it compresses only about 2:1), up to 200 MB, written only as fast as it is taken:
      // a client that leaves must stop it long before the end.
      res.on('close', () => {
        if (!res.writableFinished) streamsCut++;
      });
      res.writeHead(200, { 'content-type': 'text/plain' });
      let left = 200 * 1024 * 1024;
      const pump = () => {
        while (left > 0 && !res.destroyed) {
          left -= 65_536;
          if (!res.write(randomBytes(32_768).toString('hex'))) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    } else if (path === '/up/stream') {
      // Chunked, written with back-pressure, 5 MB: the filter must stream, not buffer.
      res.writeHead(200, { 'content-type': 'text/plain' });
      let at = 0;
      const pump = () => {
        while (at < UP_STREAM.length) {
          const chunk = UP_STREAM.slice(at, at + 32_768);
          at += 32_768;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    } else if (path === '/up/encoded') {
      res.writeHead(200, { 'content-type': 'text/html', 'content-encoding': 'gzip' });
      res.end(gzipSync(UP_TEXT));
    } else if (path === '/up/no-transform') {
      res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'public, no-transform', 'content-length': Buffer.byteLength(UP_TEXT) });
      res.end(UP_TEXT);
    } else if (path === '/up/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write('data: first\n\n');
      void sseGate.promise.then(() => res.end('data: second\n\n'));
    } else if (path === '/up/empty') {
      res.writeHead(204);
      res.end();
    } else {
      res.writeHead(404, { 'content-type': 'text/plain', 'content-length': 2 });
      res.end('no');
    }
  });
  const listen = `127.0.0.1:${await freePort()}`;
  base = `http://${listen}`;
  portico = await startWithConfig(dir.path, {
    log: { level: 'warn', access: false },
    apps: { web: { module: join(APPS, 'compress-app.mjs'), workers: 1 } },
    servers: [
      {
        listen,
        encode: true,
        routes: [
          { prefix: '/static/', static: { root: site, alias: true } },
          { prefix: '/up/', proxy: { to: upstream.url } },
          { prefix: '/app/', app: 'web' },
          { prefix: '/off/', encode: false, static: { root: site, alias: true } },
          { prefix: '/gzip-only/', encode: { encodings: ['gzip'], level: { gzip: 1 }, minLength: 2 }, static: { root: site, alias: true } },
          { prefix: '/nt/', headers: { set: { 'Cache-Control': 'no-transform' } }, static: { root: site, alias: true } },
        ],
      },
    ],
  });
});

after(async () => {
  await portico?.stop();
  await upstream?.close();
  dir.remove();
});

const get = (path: string, headers: Record<string, string> = {}, method = 'GET') => request(`${base}${path}`, { headers, method });

describe('content negotiation and headers', () => {
  it('gzip: Content-Encoding, Vary, weak ETag, no Accept-Ranges; streamed bodies chunked, a hot static file with its compressed length', async () => {
    const streamed = await get('/up/text', { 'accept-encoding': 'gzip' });
    assert.equal(streamed.headers['content-encoding'], 'gzip');
    assert.equal(streamed.headers['content-length'], undefined, 'the upstream\'s length is the identity length: dropped');
    assert.equal(streamed.headers['transfer-encoding'], 'chunked');
    assert.equal(decode(streamed).toString(), UP_TEXT);
    const res = await get('/static/page.html', { 'accept-encoding': 'gzip' });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-encoding'], 'gzip');
    assert.equal(res.headers.vary, 'Accept-Encoding');
    // A file of the hot cache is compressed once and kept: sent with the compressed length.
    assert.equal(res.headers['content-length'], String(res.body.length));
    assert.equal(res.headers['accept-ranges'], undefined);
    assert.match(String(res.headers.etag), /^W\/"/, 'a strong ETag becomes weak (RFC 9110 §8.8.3)');
    assert.equal(decode(res).toString(), PAGE);
    assert.ok(res.body.length < PAGE.length / 4, `compressed ${res.body.length} < ${PAGE.length}/4`);
  });

  it('br preferred over gzip on a tie; q-values override the server preference', async () => {
    const tie = await get('/static/page.html', { 'accept-encoding': 'gzip, deflate, br' });
    assert.equal(tie.headers['content-encoding'], 'br');
    assert.equal(decode(tie).toString(), PAGE);
    const rated = await get('/static/page.html', { 'accept-encoding': 'br;q=0.5, gzip;q=0.9' });
    assert.equal(rated.headers['content-encoding'], 'gzip');
    assert.equal(decode(rated).toString(), PAGE);
    const refused = await get('/static/page.html', { 'accept-encoding': 'br;q=0, gzip' });
    assert.equal(refused.headers['content-encoding'], 'gzip');
    // "*" accepts every coding: the server's first preference wins, which is zstd where the
    // runtime has it (the documented default ["zstd", "br", "gzip"]; Node >= 22.15), else br.
    const star = await get('/static/page.html', { 'accept-encoding': '*' });
    assert.equal(star.headers['content-encoding'], typeof (zlib as unknown as { createZstdCompress?: unknown }).createZstdCompress === 'function' ? 'zstd' : 'br');
  });

  it('identity: no Accept-Encoding, an unknown coding, all refused, identity rated higher — with Vary and the original length', async () => {
    for (const headers of [{} as Record<string, string>, { 'accept-encoding': 'deflate' }, { 'accept-encoding': 'gzip;q=0, br;q=0' }, { 'accept-encoding': 'identity' }, { 'accept-encoding': 'gzip;q=0.3, identity;q=0.8' }]) {
      const res = await get('/static/page.html', headers);
      assert.equal(res.headers['content-encoding'], undefined, JSON.stringify(headers));
      assert.equal(res.headers.vary, 'Accept-Encoding', `Vary on the identity answer too (${JSON.stringify(headers)})`);
      assert.equal(res.headers['content-length'], String(PAGE.length));
      assert.match(String(res.headers.etag), /^"/, 'the identity answer keeps its strong ETag');
      assert.equal(res.text, PAGE);
    }
  });

  it('Vary is merged with the upstream\'s own Vary', async () => {
    const res = await get('/up/text', { 'accept-encoding': 'gzip' });
    assert.equal(res.headers['content-encoding'], 'gzip');
    assert.equal(res.headers.vary, 'Origin, Accept-Encoding');
    assert.equal(res.headers.etag, 'W/"v1"');
    const plain = await get('/up/text');
    assert.equal(plain.headers.vary, 'Origin, Accept-Encoding');
    assert.equal(plain.headers.etag, '"v1"');
  });

  it('the weak ETag still revalidates, at the static handler and at the upstream, and the 304 carries the weak tag and Vary', async () => {
    const first = await get('/static/page.html', { 'accept-encoding': 'gzip' });
    const again = await get('/static/page.html', { 'accept-encoding': 'gzip', 'if-none-match': String(first.headers.etag) });
    assert.equal(again.status, 304);
    assert.equal(again.body.length, 0);
    // The 304 names the copy the client holds (RFC 9111 §4.3.4 selects stored responses by it).
    assert.equal(again.headers.etag, first.headers.etag);
    assert.equal(again.headers.vary, 'Accept-Encoding');
    const strong = String(first.headers.etag).slice(2);
    const identity = await get('/static/page.html', { 'if-none-match': strong });
    assert.equal(identity.status, 304);
    assert.equal(identity.headers.etag, strong, 'an identity copy revalidates with the strong tag');
    // Through the proxy: the upstream sees W/"v1", matches it weakly (RFC 9110 §13.1.2) and its 304 goes back weak.
    const proxied = await get('/up/text', { 'accept-encoding': 'gzip', 'if-none-match': 'W/"v1"' });
    assert.equal(proxied.status, 304);
    assert.equal(proxied.headers.etag, 'W/"v1"');
    assert.equal(proxied.headers.vary, 'Origin, Accept-Encoding');
  });

  it('a hot static file edited: the kept compressed bytes follow the new content', async () => {
    writeFileSync(join(site, 'edited.html'), PAGE);
    for (const coding of ['gzip', 'br']) {
      const first = await get('/static/edited.html', { 'accept-encoding': coding });
      assert.equal(decode(first).toString(), PAGE);
    }
    const edited = `${PAGE}<p>edited</p>\n`;
    writeFileSync(join(site, 'edited.html'), edited);
    // hotCacheValidity (1 s by default): then the file is checked again and reloaded.
    await new Promise((resolve) => setTimeout(resolve, 1_300));
    for (const coding of ['gzip', 'br']) {
      const again = await get('/static/edited.html', { 'accept-encoding': coding });
      assert.equal(again.headers['content-encoding'], coding);
      assert.equal(decode(again).toString(), edited, `${coding}: the new content, not the kept bytes of the old`);
    }
  });

  it('HEAD: the head a GET gets, without a body', async () => {
    const res = await get('/static/page.html', { 'accept-encoding': 'br' }, 'HEAD');
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-encoding'], 'br');
    assert.equal(res.headers.vary, 'Accept-Encoding');
    assert.equal(res.headers['content-length'], undefined);
    assert.equal(res.body.length, 0);
  });

  it('per-route settings: a gzip-only route with its own minLength and level; a route with encode: false', async () => {
    const gz = await get('/gzip-only/small.txt', { 'accept-encoding': 'br, gzip' });
    assert.equal(gz.headers['content-encoding'], 'gzip');
    assert.equal(decode(gz).toString(), 'tiny\n');
    const off = await get('/off/page.html', { 'accept-encoding': 'br, gzip' });
    assert.equal(off.headers['content-encoding'], undefined);
    assert.equal(off.headers.vary, undefined, 'a route with compression off adds nothing');
    assert.equal(off.text, PAGE);
  });
});

describe('byte-identical after decompression', () => {
  for (const coding of ['gzip', 'br'] as const) {
    it(`${coding}: static from memory, static streamed from disk (3 MB), proxy (200 KB and 5 MB chunked), app (300 KB and 3 MB streamed)`, async () => {
      const cases: [string, string][] = [
        ['/static/page.html', PAGE],
        ['/static/big.txt', BIG],
        ['/up/text', UP_TEXT],
        ['/up/stream', UP_STREAM],
        ['/app/data', text(300_000)],
        ['/app/stream', text(3_000_000)],
      ];
      for (const [path, expected] of cases) {
        const res = await get(path, { 'accept-encoding': coding });
        assert.equal(res.status, 200, path);
        assert.equal(res.headers['content-encoding'], coding, path);
        assert.equal(res.headers.vary, path.startsWith('/up/text') ? 'Origin, Accept-Encoding' : 'Accept-Encoding', path);
        const body = decode(res);
        assert.equal(body.length, Buffer.byteLength(expected), `${path}: decoded length`);
        assert.ok(body.equals(Buffer.from(expected)), `${path}: decoded bytes equal the original`);
        assert.ok(res.body.length < body.length / 3, `${path}: ${res.body.length} compressed bytes for ${body.length}`);
      }
    });
  }
});

describe('a client that leaves mid-stream', () => {
  it('stops the compressor and the upstream request (nothing keeps streaming into the void)', async () => {
    const before = streamsCut;
    const req = httpRequest(`${base}/up/endless`, { headers: { 'accept-encoding': 'gzip' }, agent: false });
    req.end();
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    assert.equal(res.headers['content-encoding'], 'gzip');
    // Read a little (not the 200 MB), then go away.
    await once(res, 'data');
    req.destroy();
    const deadline = Date.now() + 10_000;
    while (streamsCut === before && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(streamsCut, before + 1, 'the upstream response was cut when the client left');
    const after = await get('/static/page.html', { 'accept-encoding': 'gzip' });
    assert.equal(decode(after).toString(), PAGE, 'and Portico serves on');
  });
});

describe('HTTP/1.0 clients (no chunked framing)', () => {
  it('a compressed stream of unknown length ends with the connection, and decompresses whole', async () => {
    const port = Number(new URL(base).port);
    const raw = await rawRequest(port, 'GET /up/stream HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n', { idleMs: 5_000 });
    const split = raw.indexOf('\r\n\r\n');
    const head = raw.subarray(0, split).toString('latin1');
    assert.match(head, /^HTTP\/1\.1 200/);
    assert.match(head, /\r\nContent-Encoding: gzip\r\n/i);
    assert.doesNotMatch(head, /Transfer-Encoding|Content-Length/i, 'an HTTP/1.0 client reads to the close (RFC 9112 §6.3)');
    assert.equal(gunzipSync(raw.subarray(split + 4)).toString(), UP_STREAM);
  });
});

describe('never compressed', () => {
  const accept = { 'accept-encoding': 'br, gzip' };

  it('a Range request: 206 of the identity bytes', async () => {
    const res = await get('/static/page.html', { ...accept, range: 'bytes=100-199' });
    assert.equal(res.status, 206);
    assert.equal(res.headers['content-encoding'], undefined);
    assert.equal(res.headers['content-range'], `bytes 100-199/${PAGE.length}`);
    assert.equal(res.text, PAGE.slice(100, 200));
    const big = await get('/static/big.txt', { ...accept, range: 'bytes=0-9' });
    assert.equal(big.status, 206);
    assert.equal(big.headers['content-encoding'], undefined);
    assert.equal(big.text, BIG.slice(0, 10));
  });

  it('already encoded: a precompressed static sibling is sent as it is, never recompressed', async () => {
    const res = await get('/static/pre.js', { 'accept-encoding': 'gzip' });
    assert.equal(res.headers['content-encoding'], 'gzip');
    assert.ok(res.body.equals(PRE_GZ), 'the .gz file, byte for byte');
    // br is preferred, but pre.js.br does not exist: the gz sibling or on-the-fly br? Precompressed
    // siblings only answer a coding the client accepts; here the plain file is compressed on the fly.
    const onTheFly = await get('/static/pre.js', { 'accept-encoding': 'br' });
    assert.equal(onTheFly.headers['content-encoding'], 'br');
    assert.equal(decode(onTheFly).toString(), PRE_PLAIN);
  });

  it('already encoded: an upstream\'s gzip body passes through untouched', async () => {
    const res = await get('/up/encoded', accept);
    assert.equal(res.headers['content-encoding'], 'gzip');
    assert.equal(gunzipSync(res.body).toString(), UP_TEXT);
  });

  it('Cache-Control: no-transform from the upstream, from a route header, or in the request', async () => {
    const upstreamSays = await get('/up/no-transform', accept);
    assert.equal(upstreamSays.headers['content-encoding'], undefined);
    assert.equal(upstreamSays.text, UP_TEXT);
    const routeSays = await get('/nt/page.html', accept);
    assert.equal(routeSays.headers['content-encoding'], undefined);
    assert.equal(routeSays.text, PAGE);
    const clientSays = await get('/static/page.html', { ...accept, 'cache-control': 'no-transform' });
    assert.equal(clientSays.headers['content-encoding'], undefined);
    assert.equal(clientSays.text, PAGE);
  });

  it('small bodies (below minLength, default 512) and non-compressible types, without Vary', async () => {
    const small = await get('/static/small.txt', accept);
    assert.equal(small.headers['content-encoding'], undefined);
    assert.equal(small.headers.vary, undefined);
    assert.equal(small.text, 'tiny\n');
    const png = await get('/static/image.png', accept);
    assert.equal(png.headers['content-encoding'], undefined);
    assert.equal(png.headers.vary, undefined);
    assert.ok(png.body.equals(PNG));
    const notFound = await get('/up/nothing', accept);
    assert.equal(notFound.status, 404);
    assert.equal(notFound.headers['content-encoding'], undefined, 'a 2-byte error page (Content-Length: 2)');
  });

  it('204 from the upstream', async () => {
    const res = await get('/up/empty', accept);
    assert.equal(res.status, 204);
    assert.equal(res.headers['content-encoding'], undefined);
  });
});

/**
 * Opens an event stream with `coding`, decompressing as bytes arrive; resolves with a reader that
 * waits for a string to appear in the decoded text.
 */
async function openEvents(path: string, coding: 'gzip' | 'br'): Promise<{ headers: IncomingMessage['headers']; waitFor(needle: string): Promise<string>; done: Promise<string> }> {
  const req = httpRequest(`${base}${path}`, { headers: { 'accept-encoding': coding }, agent: false });
  req.end();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  const decoder = coding === 'gzip' ? createGunzip() : createBrotliDecompress();
  res.pipe(decoder);
  let decoded = '';
  const waiters: { needle: string; resolve: (text: string) => void }[] = [];
  decoder.on('data', (chunk: Buffer) => {
    decoded += chunk.toString();
    for (const waiter of waiters.splice(0)) {
      if (decoded.includes(waiter.needle)) waiter.resolve(decoded);
      else waiters.push(waiter);
    }
  });
  const done = new Promise<string>((resolve, reject) => {
    decoder.on('end', () => resolve(decoded));
    decoder.on('error', reject);
  });
  return {
    headers: res.headers,
    done,
    waitFor(needle) {
      if (decoded.includes(needle)) return Promise.resolve(decoded);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`"${needle}" not decoded within 10 s; got ${JSON.stringify(decoded)}`)), 10_000);
        waiters.push({ needle, resolve: (t) => (clearTimeout(timer), resolve(t)) });
      });
    },
  };
}

describe('event streams are flushed per write', () => {
  for (const coding of ['gzip', 'br'] as const) {
    it(`${coding}, proxy: the first event is decoded before the upstream sends the second`, async () => {
      sseGate = gate();
      const events = await openEvents('/up/events', coding);
      assert.equal(events.headers['content-encoding'], coding);
      const first = await events.waitFor('data: first\n\n');
      assert.equal(first, 'data: first\n\n', 'only the first event so far');
      sseGate.open();
      assert.equal(await events.done, 'data: first\n\ndata: second\n\n');
    });

    it(`${coding}, app: the first event is decoded before the app sends the second`, async () => {
      const events = await openEvents('/app/events', coding);
      assert.equal(events.headers['content-encoding'], coding);
      assert.equal(await events.waitFor('data: first\n\n'), 'data: first\n\n');
      const released = await get('/app/release');
      assert.equal(released.text, 'released');
      assert.equal(await events.done, 'data: first\n\ndata: second\n\n');
    });
  }
});

describe('zstd', () => {
  const available = typeof (zlib as unknown as { createZstdCompress?: unknown }).createZstdCompress === 'function';
  it(available ? 'this runtime has it: a config asking for it is accepted' : `this runtime (${process.version}) has no zstd: a config asking for it is refused with the field path`, async () => {
    const path = writeConfig(dir.path, { servers: [{ listen: '127.0.0.1:0', encode: { encodings: ['zstd', 'gzip'] }, routes: [{ respond: { body: 'x' } }] }] }, 'zstd.config.json');
    const result = await runCli(['check', '--config', path]);
    if (available) assert.equal(result.code, 0, result.stderr);
    else {
      assert.equal(result.code, 2);
      assert.match(result.stderr, /servers\[0\]\.encode\.encodings: expected codings this runtime can produce \("br", "gzip"; zstd needs Node\.js 22\.15 or later/);
    }
  });
});

describe('the CLI: --compress', () => {
  it('portico serve DIR --compress and portico proxy URL --compress compress; without the flag they do not', async () => {
    for (const [args, path, expected] of [
      [['serve', site], '/page.html', PAGE],
      [['proxy', upstream.url], '/up/text', UP_TEXT],
    ] as const) {
      for (const flag of [true, false]) {
        const port = await freePort();
        const p = await startPortico([...args, '--port', String(port), '--no-access-log', ...(flag ? ['--compress'] : [])]);
        try {
          const res = await request(`http://127.0.0.1:${port}${path}`, { headers: { 'accept-encoding': 'br, gzip' } });
          assert.equal(res.status, 200);
          assert.equal(res.headers['content-encoding'], flag ? 'br' : undefined, `${args[0]} ${flag ? 'with' : 'without'} --compress`);
          assert.equal(decode(res).toString(), expected);
        } finally {
          await p.stop();
        }
      }
    }
  });
});
