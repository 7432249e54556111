/**
 * Concurrency limits over real sockets: nginx `limit_conn` semantics per client IP on a route
 * proxied to an upstream that holds every request until the test lets it go, and the node-wide
 * cap on open connections (`http.maxConnections`) with raw TCP connections.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { freePort, request, startWithConfig, tempDir, type RunningPortico, type SimpleResponse } from '../helpers/portico.js';
import { startNodeUpstream, type NodeUpstream } from '../helpers/upstreams.js';

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('limit_conn: requests in flight per client IP', () => {
  const dir = tempDir('portico-conn-');
  let portico: RunningPortico;
  let upstream: NodeUpstream;
  let v4 = '';
  let v6 = '';
  const held: (() => void)[] = [];

  before(async () => {
    upstream = await startNodeUpstream((_req, res) => {
      held.push(() => res.end('done\n'));
    });
    const port = await freePort();
    portico = await startWithConfig(dir.path, {
      log: { access: false },
      limits: { connZones: { perip: { key: '$remote_addr' } } },
      servers: [
        {
          listen: [`127.0.0.1:${port}`, `[::1]:${port}`],
          routes: [
            { prefix: '/slow/', connLimit: { zone: 'perip', max: 2 }, proxy: { to: upstream.url } },
            { prefix: '/custom/', connLimit: { zone: 'perip', max: 1, status: 429 }, proxy: { to: upstream.url } },
            { prefix: '/free/', respond: { body: 'free\n' } },
          ],
        },
      ],
    });
    v4 = `http://127.0.0.1:${port}`;
    v6 = `http://[::1]:${port}`;
  });
  after(async () => {
    for (const release of held.splice(0)) release();
    await portico?.stop();
    await upstream?.close();
    dir.remove();
  });

  it('the 3rd concurrent request of one IP gets 503 with Retry-After; another IP is not affected; slots come back', async () => {
    const first = [request(`${v4}/slow/1`), request(`${v4}/slow/2`)];
    await until(() => held.length === 2, 'two requests at the upstream');
    const third = await request(`${v4}/slow/3`);
    assert.equal(third.status, 503);
    assert.equal(third.headers['retry-after'], '1');
    // Not a route without the limit, and not another client address.
    assert.equal((await request(`${v4}/free/`)).status, 200);
    const other = request(`${v6}/slow/4`);
    await until(() => held.length === 3, 'the ::1 request at the upstream');
    for (const release of held.splice(0)) release();
    const answered: SimpleResponse[] = await Promise.all([...first, other]);
    assert.deepEqual(answered.map((r) => r.status), [200, 200, 200]);
    // The slots were given back when the responses closed.
    const again = [request(`${v4}/slow/5`), request(`${v4}/slow/6`)];
    await until(() => held.length === 2, 'two requests at the upstream again');
    assert.equal((await request(`${v4}/slow/7`)).status, 503);
    for (const release of held.splice(0)) release();
    assert.deepEqual((await Promise.all(again)).map((r) => r.status), [200, 200]);
  });

  it('the status is configurable; a client that leaves frees its slot', async () => {
    const socket = connect({ port: Number(new URL(v4).port), host: '127.0.0.1' });
    socket.write('GET /custom/a HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => held.length === 1, 'one request at the upstream');
    const over = await request(`${v4}/custom/b`);
    assert.equal(over.status, 429);
    assert.equal(over.headers['retry-after'], '1');
    socket.destroy(); // the client goes away mid-request
    await new Promise((resolve) => setTimeout(resolve, 100));
    const next = request(`${v4}/custom/c`);
    await until(() => held.length === 2, 'the next request at the upstream');
    for (const release of held.splice(0)) release();
    assert.equal((await next).status, 200);
  });
});

/** Opens a raw TCP connection and collects what it receives until it closes. */
function open(port: number): Promise<{ socket: Socket; received: () => string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let data = '';
    socket.setEncoding('latin1').on('data', (chunk: string) => (data += chunk));
    const closed = new Promise<void>((done) => socket.once('close', () => done()));
    socket.once('error', () => undefined);
    socket.once('connect', () => resolve({ socket, received: () => data, closed }));
    socket.once('error', reject);
  });
}

describe('http.maxConnections: the cap on open connections of the node', () => {
  const dir = tempDir('portico-maxconn-');
  let portico: RunningPortico;
  let port = 0;

  before(async () => {
    port = await freePort();
    portico = await startWithConfig(dir.path, {
      log: { access: false },
      http: { maxConnections: 3 },
      servers: [{ listen: `127.0.0.1:${port}`, routes: [{ respond: { body: 'ok\n' } }] }],
    });
  });
  after(async () => {
    await portico?.stop();
    dir.remove();
  });

  it('a connection over the cap is answered 503 + Retry-After and closed unread; a closed one frees its place', async () => {
    const idle = await Promise.all([open(port), open(port), open(port)]);
    // Let the server account for the three before the fourth arrives.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const over = await open(port);
    await over.closed;
    assert.match(over.received(), /^HTTP\/1\.1 503 Service Unavailable\r\n/);
    assert.match(over.received(), /\r\nRetry-After: 1\r\n/);
    assert.match(over.received(), /\r\nConnection: close\r\n/);
    // The three open connections still work (keep-alive requests on them).
    for (const conn of idle) conn.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => idle.every((conn) => conn.received().includes('\r\n\r\nok\n')), 'answers on the three open connections');
    assert.ok(idle.every((conn) => conn.received().startsWith('HTTP/1.1 200 ')));
    // One closes: a new connection is served (the slot is released when the server sees the close).
    idle[0]?.socket.destroy();
    let served = false;
    for (let attempt = 0; attempt < 50 && !served; attempt++) {
      const conn = await open(port);
      conn.socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      await conn.closed;
      served = conn.received().startsWith('HTTP/1.1 200 ');
      if (!served) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.ok(served, 'a new connection is served once one of the three closed');
    for (const conn of idle) conn.socket.destroy();
  });
});
