/**
 * The proxy's uwsgi transport (nginx `uwsgi_pass`) in front of a real uWSGI running the Flask app
 * of test/fixtures/apps/flask_app.py, over TCP and over a unix socket. uWSGI is required (CI
 * installs it in .ci/run): without it these tests fail with an install hint, never skip.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, request, startWithConfig, tempDir, type RunningPortico } from '../helpers/portico.js';
import { assertFlaskInstalled, MiB, rawHttp, refusedPort, startHungUpstream, type HungUpstream } from '../helpers/upstreams.js';
import { startUwsgi, uwsgiCommand, type Uwsgi } from '../helpers/uwsgi.js';

interface FlaskEcho {
  method: string;
  path: string;
  query: string;
  raw_uri: string;
  remote_addr: string;
  headers: [string, string][];
}

const header = (echo: FlaskEcho, name: string): string[] => echo.headers.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

// A failed test of its own when they are missing (a failed `before` hook alone shows "fail 0").
it('uWSGI, its Python 3 plugin and Flask are installed (required: CI installs them in .ci/run)', () => {
  uwsgiCommand();
  assertFlaskInstalled();
});

describe('proxy to uWSGI over the uwsgi protocol', () => {
  const dir = tempDir('portico-uwsgi-');
  let tcp: Uwsgi | undefined;
  let unix: Uwsgi | undefined;
  let portico: RunningPortico | undefined;
  let hung: HungUpstream | undefined;
  let garbage: NetServer | undefined;

  before(async () => {
    [tcp, unix] = await Promise.all([startUwsgi(), startUwsgi({ unixPath: join(dir.path, 'u.sock'), processes: 1 })]);
    hung = await startHungUpstream();
    // Answers every request with a head no HTTP/1.x parser should take (obs-fold), then closes.
    garbage = createNetServer((socket) => {
      socket.on('error', () => socket.destroy());
      socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nX-A: 1\r\n folded: yes\r\n\r\nbody'));
    });
    garbage.listen(0, '127.0.0.1');
    await new Promise((resolve) => garbage?.once('listening', resolve));
    const garbagePort = (garbage.address() as { port: number }).port;
    portico = await startWithConfig(dir.path, {
      log: { access: false },
      // The upload test sends 3 MiB (http.maxBodySize is 1 MiB by default).
      http: { maxBodySize: '8mb' },
      upstreams: {
        py: { servers: [tcp.url] },
        // A refused server first (round robin starts there): a GET moves on to uWSGI.
        failover: { servers: [`uwsgi://127.0.0.1:${await refusedPort()}`, tcp.url], maxFails: 0 },
        slow: { servers: [`uwsgi://127.0.0.1:${hung.port}`], headerTimeout: '300ms' },
        bad: { servers: [`uwsgi://127.0.0.1:${garbagePort}`] },
      },
      servers: [
        {
          listen: `127.0.0.1:${await freePort()}`,
          routes: [
            { prefix: '/', proxy: { to: 'py' } },
            { prefix: '/unix/', rewrite: [{ from: '^/unix(/.*)$', to: '$1', flag: 'break' }], proxy: { to: unix.url } },
            { prefix: '/refused/', proxy: { to: `uwsgi://127.0.0.1:${await refusedPort()}` } },
            { prefix: '/failover/', rewrite: [{ from: '^/failover(/.*)$', to: '$1', flag: 'break' }], proxy: { to: 'failover' } },
            { prefix: '/slow/', proxy: { to: 'slow' } },
            { prefix: '/bad/', proxy: { to: 'bad' } },
          ],
        },
      ],
    });
  });
  after(async () => {
    await portico?.stop();
    await Promise.all([tcp?.stop(), unix?.stop(), hung?.close(), new Promise((resolve) => (garbage ? garbage.close(resolve) : resolve(undefined)))]);
    dir.remove();
  });
  const port = () => (portico as RunningPortico).port;
  const base = () => (portico as RunningPortico).url;

  async function echo(path: string, lines: string[] = ['Host: app.example']): Promise<FlaskEcho> {
    const res = await rawHttp(port(), `GET ${path} HTTP/1.1\r\n${lines.map((l) => `${l}\r\n`).join('')}Connection: close\r\n\r\n`, '', 10_000);
    assert.equal(res.status, 200, `GET ${path}: ${res.body.toString().slice(0, 300)}`);
    return JSON.parse(res.body.toString()) as FlaskEcho;
  }

  it('GET: the app sees the decoded path, the query and the request URI as sent', async () => {
    const e = await echo('/echo/a%2Fb/c%C3%A9?x=1&y=%20');
    assert.equal(e.method, 'GET');
    assert.equal(e.path, '/echo/a/b/cé');
    assert.equal(e.query, 'x=1&y=%20');
    assert.equal(e.raw_uri, '/echo/a%2Fb/c%C3%A9?x=1&y=%20');
  });

  it('the app sees REMOTE_ADDR, Host, X-Forwarded-*, its own headers, and no hop-by-hop or underscored ones', async () => {
    const e = await echo('/echo/who', ['Host: app.example:8080', 'X-Forwarded-For: 203.0.113.5', 'Connection: keep-alive, X-Secret', 'X-Secret: hidden', 'X-Forwarded_For: 6.6.6.6', 'X-App: one', 'X-App: two', 'Cookie: a=1', 'Cookie: b=2']);
    assert.equal(e.remote_addr, '127.0.0.1', 'REMOTE_ADDR is the client');
    assert.deepEqual(header(e, 'x-forwarded-for'), ['203.0.113.5, 127.0.0.1']);
    assert.deepEqual(header(e, 'x-forwarded-proto'), ['http']);
    assert.deepEqual(header(e, 'x-forwarded-host'), ['app.example:8080']);
    assert.deepEqual(header(e, 'host'), ['app.example:8080']);
    assert.deepEqual(header(e, 'x-app'), ['one, two']);
    assert.deepEqual(header(e, 'cookie'), ['a=1; b=2']);
    assert.deepEqual(header(e, 'x-secret'), []);
  });

  it('POST with Content-Length: the app reads every byte (length and sha256 match)', { timeout: 30_000 }, async () => {
    const body = randomBytes(3 * MiB + 17);
    const res = await request(`${base()}/upload`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(res.status, 200, res.text.slice(0, 300));
    const u = JSON.parse(res.text) as { length: number; sha256: string; content_length: string };
    assert.equal(u.length, body.length);
    assert.equal(u.sha256, sha256(body));
    assert.equal(u.content_length, String(body.length));
  });

  it('a chunked request body is read whole by the edge and sent with its CONTENT_LENGTH (issue #18; it was 411 before), in memory and past 1 MiB in a file', { timeout: 30_000 }, async () => {
    const small = await rawHttp(port(), 'POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
    assert.equal(small.status, 200, small.body.toString().slice(0, 300));
    const echoed = JSON.parse(small.body.toString()) as { length: number; sha256: string; content_length: string; transfer_encoding: string | null };
    assert.deepEqual([echoed.length, echoed.sha256, echoed.content_length, echoed.transfer_encoding], [5, sha256(Buffer.from('hello')), '5', null]);
    // 3 MiB in uneven chunks: past the memory buffer, so through a temporary file.
    const body = randomBytes(3 * MiB + 5);
    const res = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: port(), path: '/upload', method: 'POST', agent: false, headers: { 'transfer-encoding': 'chunked' } }, (response) => {
        const parts: Buffer[] = [];
        response.on('data', (part: Buffer) => parts.push(part));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(parts).toString() }));
      });
      req.on('error', reject);
      for (let at = 0; at < body.length; at += 100_003) req.write(body.subarray(at, at + 100_003));
      req.end();
    });
    assert.equal(res.status, 200, res.text.slice(0, 300));
    const u = JSON.parse(res.text) as { length: number; sha256: string; content_length: string };
    assert.equal(u.length, body.length);
    assert.equal(u.sha256, sha256(body));
    assert.equal(u.content_length, String(body.length));
  });

  it('a chunked body over maxBodySize is refused with 413', async () => {
    const chunk = 'a'.repeat(1024 * 1024);
    const over = Array.from({ length: 9 }, () => `${(chunk.length).toString(16)}\r\n${chunk}\r\n`).join('');
    const res = await rawHttp(port(), `POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${over}0\r\n\r\n`);
    assert.equal(res.status, 413);
  });

  it('a streaming (generator) response reaches the client line by line', async () => {
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
      req.setTimeout(10_000, () => req.destroy(new Error('the stream took over 10 s')));
      req.end();
    });
    const text = arrivals.map((a) => a.text).join('');
    assert.equal(text.split('\n').filter(Boolean).length, lines, text);
    const spread = (arrivals.at(-1) as { at: number }).at - (arrivals[0] as { at: number }).at;
    assert.ok(spread > (lines - 1) * delay * 1000 * 0.6, `all lines arrived within ${spread.toFixed(0)} ms: the response was buffered`);
  });

  it("HEAD has no body; the upstream's Server is hidden; 20 concurrent requests are all answered", async () => {
    const head = await request(`${base()}/health`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    assert.equal(head.headers.server, 'Portico');
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => request(`${base()}/echo/n${i}`)));
    results.forEach((res, i) => {
      assert.equal(res.status, 200, `request ${i}: ${res.text.slice(0, 200)}`);
      assert.equal((JSON.parse(res.text) as FlaskEcho).path, `/echo/n${i}`);
    });
  });

  it('over a unix socket (uwsgi+unix:), after a rewrite: PATH_INFO and REQUEST_URI are the rewritten URI', async () => {
    const e = await echo('/unix/echo/sock?q=1');
    assert.equal(e.path, '/echo/sock');
    assert.equal(e.query, 'q=1');
    assert.equal(e.raw_uri, '/echo/sock?q=1');
  });

  it('a refused uwsgi port is a 502 with no upstream detail', async () => {
    const res = await request(`${base()}/refused/x`);
    assert.equal(res.status, 502);
    assert.doesNotMatch(res.text, /127\.0\.0\.1|ECONNREFUSED|uwsgi/i);
  });

  it('a refused server is skipped: the request is retried on the next one', async () => {
    for (let i = 0; i < 4; i++) {
      const e = await echo(`/failover/echo/f${i}`);
      assert.equal(e.path, `/echo/f${i}`);
    }
  });

  it('a uwsgi server that never answers is a 504 after headerTimeout', async () => {
    const started = Date.now();
    const res = await request(`${base()}/slow/x`);
    assert.equal(res.status, 504);
    assert.ok(Date.now() - started < 3_000, `took ${Date.now() - started} ms`);
  });

  it('an invalid response head (obs-fold) is a 502, nothing of it reaches the client', async () => {
    const res = await request(`${base()}/bad/x`);
    assert.equal(res.status, 502);
    assert.equal(res.headers['x-a'], undefined);
    assert.doesNotMatch(res.text, /body/);
  });
});
