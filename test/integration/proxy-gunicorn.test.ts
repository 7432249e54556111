/**
 * The reverse proxy in front of a real WSGI server: gunicorn running the Flask app in
 * test/fixtures/apps/flask_app.py on loopback. gunicorn is required (CI installs it from Debian):
 * without it these tests fail with an install hint, they are never skipped.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { freePort, request, startWithConfig, tempDir, type RunningPortico } from '../helpers/portico.js';
import { assertFlaskInstalled, gunicornCommand, MiB, rawHttp, startGunicorn, type Gunicorn } from '../helpers/upstreams.js';

interface FlaskEcho {
  method: string;
  path: string;
  query: string;
  raw_uri: string;
  remote_addr: string;
  headers: [string, string][];
}

interface FlaskUpload {
  length: number;
  sha256: string;
  reads: number;
  content_length: string | null;
  transfer_encoding: string | null;
}

function header(echo: FlaskEcho, name: string): string[] {
  return echo.headers.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

// Counted as a failed test of its own when they are missing (a failed `before` hook alone shows "fail 0").
it('gunicorn and Flask are installed (required: CI installs them in .ci/run)', () => {
  gunicornCommand();
  assertFlaskInstalled();
});

describe('proxy in front of gunicorn + Flask', () => {
  const dir = tempDir();
  let gunicorn: Gunicorn | undefined;
  let portico: RunningPortico | undefined;

  before(async () => {
    gunicorn = await startGunicorn({ workers: 2 });
    portico = await startWithConfig(dir.path, {
      log: { access: false },
      // The upload tests send up to 32 MiB (http.maxBodySize is 1 MiB by default).
      http: { maxBodySize: '64mb' },
      upstreams: { flask: { servers: [gunicorn.url] } },
      servers: [{ listen: `127.0.0.1:${await freePort()}`, routes: [{ prefix: '/', proxy: { to: 'flask' } }] }],
    });
  });
  after(async () => {
    await portico?.stop();
    await gunicorn?.stop();
    dir.remove();
  });
  const base = () => (portico as RunningPortico).url;
  const port = () => (portico as RunningPortico).port;

  async function echo(path: string, headerLines: string[] = ['Host: app.example']): Promise<FlaskEcho> {
    const res = await rawHttp(port(), `GET ${path} HTTP/1.1\r\n${headerLines.map((l) => `${l}\r\n`).join('')}Connection: close\r\n\r\n`, '', 10_000);
    assert.equal(res.status, 200, `GET ${path}: ${res.body.toString().slice(0, 300)}`);
    return JSON.parse(res.body.toString()) as FlaskEcho;
  }

  it('GET: the app sees the path, query and raw URI as sent', async () => {
    const e = await echo('/echo/a%2Fb/c?x=1&y=%20');
    assert.equal(e.method, 'GET');
    assert.equal(e.raw_uri, '/echo/a%2Fb/c?x=1&y=%20');
    assert.equal(e.path, '/echo/a/b/c');
    assert.equal(e.query, 'x=1&y=%20');
  });

  it('the app sees the client in X-Forwarded-For/-Proto/-Host, the Host the client sent, no hop-by-hop headers', async () => {
    const e = await echo('/echo/who', ['Host: app.example:8080', 'Connection: keep-alive, X-Secret', 'X-Secret: hidden', 'Keep-Alive: timeout=5', 'Proxy-Connection: keep-alive', 'X-App: visible']);
    assert.equal(e.remote_addr, '127.0.0.1', "the app's peer is portico on loopback");
    assert.deepEqual(header(e, 'x-forwarded-for'), ['127.0.0.1'], 'the client address');
    assert.deepEqual(header(e, 'x-forwarded-proto'), ['http']);
    assert.deepEqual(header(e, 'x-forwarded-host'), ['app.example:8080']);
    assert.deepEqual(header(e, 'host'), ['app.example:8080']);
    assert.deepEqual(header(e, 'x-app'), ['visible']);
    assert.deepEqual(header(e, 'x-secret'), []);
    assert.deepEqual(header(e, 'keep-alive'), []);
    assert.deepEqual(header(e, 'proxy-connection'), []);
  });

  it('an X-Forwarded-For chain from the client is kept and the client address appended', async () => {
    const e = await echo('/echo/chain', ['Host: app.example', 'X-Forwarded-For: 203.0.113.5']);
    assert.deepEqual(header(e, 'x-forwarded-for'), ['203.0.113.5, 127.0.0.1']);
  });

  it('POST with Content-Length: the app reads every byte (length and sha256 match)', async () => {
    const body = randomBytes(2 * MiB + 123);
    const res = await request(`${base()}/upload`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(res.status, 200, res.text.slice(0, 300));
    const u = JSON.parse(res.text) as FlaskUpload;
    assert.equal(u.length, body.length);
    assert.equal(u.sha256, sha256(body));
    assert.equal(u.content_length, String(body.length));
  });

  it('a chunked upload: request.stream reads it all, framed as chunked', async () => {
    const parts = Array.from({ length: 12 }, (_, i) => randomBytes(30_000 + i * 1_001));
    const whole = Buffer.concat(parts);
    const res = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: port(), method: 'POST', path: '/upload', agent: false }, (r) => {
        let text = '';
        r.setEncoding('utf8');
        r.on('data', (c: string) => (text += c));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, text }));
      });
      req.on('error', reject);
      const timer = setTimeout(() => req.destroy(new Error('chunked upload took over 15 s')), 15_000);
      req.on('close', () => clearTimeout(timer));
      let i = 0;
      const next = () => {
        const part = parts[i++];
        if (!part) return req.end();
        req.write(part);
        setTimeout(next, 10);
      };
      next();
    });
    assert.equal(res.status, 200, res.text.slice(0, 300));
    const u = JSON.parse(res.text) as FlaskUpload;
    assert.equal(u.transfer_encoding, 'chunked', 'the app got a chunked body');
    assert.equal(u.content_length, null);
    assert.equal(u.length, whole.length);
    assert.equal(u.sha256, sha256(whole));
  });

  it('a 32 MiB upload reaches the app intact', { timeout: 60_000 }, async () => {
    const body = randomBytes(32 * MiB);
    const res = await request(`${base()}/upload`, { method: 'PUT', body });
    assert.equal(res.status, 200, res.text.slice(0, 300));
    const u = JSON.parse(res.text) as FlaskUpload;
    assert.equal(u.length, body.length);
    assert.equal(u.sha256, sha256(body));
  });

  it('a streaming (generator) response reaches the client line by line, not at the end', async () => {
    const lines = 5;
    const delay = 0.3;
    const arrivals = await new Promise<{ at: number; text: string }[]>((resolve, reject) => {
      const got: { at: number; text: string }[] = [];
      const req = httpRequest({ host: '127.0.0.1', port: port(), path: `/stream?n=${lines}&delay=${delay}`, agent: false }, (res) => {
        res.setEncoding('utf8');
        res.on('data', (text: string) => got.push({ at: performance.now(), text }));
        res.on('end', () => resolve(got));
        res.on('error', reject);
      });
      req.on('error', reject);
      const timer = setTimeout(() => req.destroy(new Error('the stream took over 10 s')), 10_000);
      req.on('close', () => clearTimeout(timer));
      req.end();
    });
    const text = arrivals.map((a) => a.text).join('');
    assert.equal(text.split('\n').filter(Boolean).length, lines, text);
    assert.match(text, /^line 0 at [\d.]+\nline 1 at/);
    const first = arrivals[0] as { at: number };
    const last = arrivals.at(-1) as { at: number };
    const spread = last.at - first.at;
    // A buffering proxy would deliver everything at once; streamed, the first line comes ~1.2 s before the last.
    assert.ok(spread > (lines - 1) * delay * 1000 * 0.6, `all lines arrived within ${spread.toFixed(0)} ms: the response was buffered`);
    assert.ok(arrivals.length >= 3, `the response came in ${arrivals.length} pieces`);
  });

  it('20 concurrent requests are all answered (gunicorn closes every connection)', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => request(`${base()}/echo/n${i}`)));
    results.forEach((res, i) => {
      assert.equal(res.status, 200, `request ${i}: ${res.text.slice(0, 200)}`);
      assert.equal((JSON.parse(res.text) as FlaskEcho).path, `/echo/n${i}`);
    });
  });

  it("the upstream's Server header is hidden", async () => {
    const res = await request(`${base()}/health`);
    assert.equal(res.status, 200);
    assert.equal(res.text, 'ok');
    assert.equal(res.headers.server, 'Portico', `Server: ${String(res.headers.server)}`);
  });
});
