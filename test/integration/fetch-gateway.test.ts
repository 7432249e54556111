/**
 * The Fetch gateway's fast path (lazy Request, string/bytes bodies written in one go) against a
 * real `portico app` worker: every Response shape is written as undici's Response would be,
 * raw bytes checked where framing matters.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { APPS, get, startApp, type RunningApp } from '../helpers/app.js';
import { rawHeader, rawHttp } from '../helpers/upstreams.js';

describe('fetch gateway: response shapes and the lazy request', () => {
  let app: RunningApp;
  before(async () => {
    app = await startApp(['app', join(APPS, 'fetch-shapes.mjs'), '--workers', '1', '--bind', '127.0.0.1:0']);
  });
  after(async () => {
    await app.stop();
  });
  const raw = (path: string, method = 'GET', extra = '') => rawHttp(app.port, `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}Connection: close\r\n\r\n`);

  it('a string body: Content-Length in bytes and the default text/plain type', async () => {
    const res = await raw('/string');
    assert.equal(res.status, 200);
    assert.deepEqual(rawHeader(res, 'content-length'), ['6']);
    assert.deepEqual(rawHeader(res, 'content-type'), ['text/plain;charset=UTF-8']);
    assert.deepEqual(rawHeader(res, 'transfer-encoding'), []);
    assert.equal(res.body.toString('utf8'), 'héllo');
  });

  it('Uint8Array and ArrayBuffer bodies: no invented type; status text and header pairs as given', async () => {
    const bytes = await raw('/bytes');
    assert.equal(bytes.body.toString(), 'bytes');
    assert.deepEqual(rawHeader(bytes, 'content-type'), []);
    assert.deepEqual(rawHeader(bytes, 'x-kind'), ['uint8array']);
    assert.deepEqual(rawHeader(bytes, 'content-length'), ['5']);
    const ab = await rawHttp(app.port, 'GET /arraybuffer HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    assert.equal(ab.status, 201);
    assert.equal(ab.body.toString(), 'ab');
    assert.deepEqual(rawHeader(ab, 'x-kind'), ['arraybuffer']);
  });

  it('two Set-Cookie fields stay two lines (RFC 6265 §3)', async () => {
    const res = await raw('/cookies');
    assert.deepEqual(rawHeader(res, 'set-cookie'), ['a=1', 'b=2']);
    assert.equal(res.body.toString(), 'cookies');
  });

  it('headers changed through response.headers after construction are the ones sent', async () => {
    const res = await raw('/mutated');
    assert.deepEqual(rawHeader(res, 'x-after'), ['2']);
    assert.deepEqual(rawHeader(res, 'x-before'), []);
    assert.deepEqual(rawHeader(res, 'content-type'), ['text/plain;charset=UTF-8']);
  });

  it('204 has no Content-Length; a null body is an empty 200 with Content-Length 0', async () => {
    const empty = await raw('/empty');
    assert.equal(empty.status, 204);
    assert.deepEqual(rawHeader(empty, 'content-length'), []);
    const nul = await raw('/null');
    assert.equal(nul.status, 200);
    assert.deepEqual(rawHeader(nul, 'content-length'), ['0']);
    assert.equal(nul.body.length, 0);
  });

  it('HEAD gets the GET headers (Content-Length included) and no body (RFC 9110 §9.3.2)', async () => {
    const res = await raw('/string', 'HEAD');
    assert.equal(res.status, 200);
    assert.deepEqual(rawHeader(res, 'content-length'), ['6']);
    // Pipelined behind a GET: the 6 bytes after the HEAD answer's head are the next answer's status line, not a body.
    const both = await rawHttp(app.port, 'HEAD /string HTTP/1.1\r\nHost: a\r\n\r\nGET /bytes HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    assert.equal(both.status, 200);
    assert.equal(both.body.toString('latin1'), 'HTTP/1');
  });

  it('Response.json, streamed bodies and an app-set Content-Length still work', async () => {
    const json = await get(`${app.url}/json`);
    assert.equal(json.headers['content-type'], 'application/json');
    assert.equal(json.headers['content-length'], '11');
    assert.deepEqual(JSON.parse(json.text), { ok: true });
    const stream = await get(`${app.url}/stream`);
    assert.equal(stream.text, 'stream');
    const length = await raw('/length');
    assert.deepEqual(rawHeader(length, 'content-length'), ['3']);
    assert.equal(length.body.toString(), 'abc');
    const reuse = await get(`${app.url}/reuse`);
    assert.equal(reuse.text, 'reused:200:true:false');
  });

  it('a header value with CR/LF is a 500, never a header injection, and the worker serves on', async () => {
    const res = await raw('/bad-header');
    assert.equal(res.status, 500);
    assert.deepEqual(rawHeader(res, 'injected'), []);
    assert.equal((await get(`${app.url}/string`)).status, 200);
  });

  it('the lazy request: URL as undici serialises it, headers, body, instanceof, new Request(request)', async () => {
    const res = await get(`${app.url}/echo`, { method: 'POST', body: 'payload', headers: { 'content-type': 'text/plain' } });
    const echo = JSON.parse(res.text) as Record<string, unknown>;
    assert.equal(echo.method, 'POST');
    assert.equal(echo.url, `http://127.0.0.1:${app.port}/echo`);
    assert.equal(echo.host, `127.0.0.1:${app.port}`);
    assert.equal(echo.body, 'payload');
    assert.equal(echo.isRequest, true);
    assert.equal(echo.responseIsResponse, true);
    assert.equal(echo.copyMethod, 'POST');
    assert.equal(echo.copyHeader, '1');
    assert.equal(echo.signalAborted, false);
    assert.equal(echo.tag, '[object Request]');
    // Dot segments, upper-case host names and the default port are normalised as URL parsing does.
    const odd = JSON.parse((await rawHttp(app.port, 'GET /a/../echo?q=%2e HTTP/1.1\r\nHost: EXAMPLE.com:80\r\nConnection: close\r\n\r\n')).body.toString()) as Record<string, unknown>;
    assert.equal(odd.url, 'http://example.com/echo?q=%2e');
    assert.equal(odd.copyUrl, 'http://example.com/echo?q=%2e');
  });
});

describe('app worker: tsx only when needed', () => {
  it('a JavaScript app that imports a TypeScript file still loads (tsx registered on the retry)', async () => {
    const app = await startApp(['app', join(APPS, 'js-imports-ts.mjs'), '--workers', '1', '--bind', '127.0.0.1:0']);
    try {
      assert.equal((await get(`${app.url}/`)).text, 'hello from ts, js');
    } finally {
      await app.stop();
    }
  });
});
