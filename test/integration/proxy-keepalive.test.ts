/**
 * Requests without a body to a plain-HTTP upstream go on kept-alive raw sockets
 * (handlers/proxy/raw-exchange.ts, #19). The upstream here is a raw `net` server, so the test
 * controls each connection: which connection answered (X-Conn), answers framed by length, by
 * chunks or by the close, a pooled connection closed by the server without an answer, bytes sent
 * on an idle connection, a field value node refuses to write, a head that never comes. Real
 * portico on loopback, fetch as the client.
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { freePort, processAlive, startWithConfig, tempDir, type RunningPortico } from '../helpers/portico.js';

interface Answer {
  readonly status: number;
  readonly conn: string | null;
  readonly body: string;
}

describe('proxy on kept-alive raw connections (requests without a body)', () => {
  const dir = tempDir();
  let portico: RunningPortico;
  let upstream: Server;
  let base = '';
  let connections = 0;
  const sockets = new Set<Socket>();

  /** One answer per request head; the paths say how. Requests here have no body. */
  const answer = (socket: Socket, id: number, nth: number, head: string): void => {
    const [method, path] = head.split(' ');
    const ok = (body: string, extra = ''): string => `HTTP/1.1 200 OK\r\nX-Conn: ${id}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;
    switch (path) {
      case '/chunked':
        socket.write(`HTTP/1.1 200 OK\r\nX-Conn: ${id}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n`);
        setTimeout(() => socket.write('6\r\n world\r\n0\r\n\r\n'), 20);
        return;
      case '/until-close':
        socket.end(`HTTP/1.1 200 OK\r\nX-Conn: ${id}\r\n\r\nthe body ends with the connection`);
        return;
      case '/drop-second':
        // A keep-alive server closing an idle connection just as a request arrives on it.
        if (nth > 1) return void socket.destroy();
        socket.write(ok(`first on ${method}`));
        return;
      case '/unsolicited':
        socket.write(ok('ok'));
        setTimeout(() => socket.writable && socket.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'), 30);
        return;
      case '/bad-value':
        socket.write(ok('never relayed', 'X-Bad: a\x01b\r\n'));
        return;
      case '/silent':
        return;
      default:
        socket.write(ok('hello'));
    }
  };

  before(async () => {
    upstream = createServer((socket) => {
      const id = ++connections;
      let nth = 0;
      let buffered = '';
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => socket.destroy());
      socket.setEncoding('latin1').on('data', (chunk: string) => {
        buffered += chunk;
        for (let end = buffered.indexOf('\r\n\r\n'); end !== -1; end = buffered.indexOf('\r\n\r\n')) {
          const head = buffered.slice(0, end);
          buffered = buffered.slice(end + 4);
          answer(socket, id, ++nth, head);
        }
      });
    });
    const upstreamPort = await freePort();
    await new Promise<void>((resolve) => upstream.listen(upstreamPort, '127.0.0.1', resolve));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    portico = await startWithConfig(dir.path, {
      workers: 1,
      log: { level: 'warn' },
      upstreams: { raw: { servers: [`http://127.0.0.1:${upstreamPort}`], headerTimeout: '400ms' } },
      servers: [{ listen: `127.0.0.1:${port}`, routes: [{ prefix: '/', proxy: { to: 'http://raw' } }] }],
    });
  });

  after(async () => {
    await portico?.stop();
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => upstream?.close(resolve));
    dir.remove();
  });

  const get = async (path: string, method = 'GET'): Promise<Answer> => {
    const res = await fetch(`${base}${path}`, { method });
    return { status: res.status, conn: res.headers.get('x-conn'), body: await res.text() };
  };

  it('sequential requests share one upstream connection', async () => {
    const answers = [];
    for (let i = 0; i < 5; i++) answers.push(await get('/hello'));
    for (const a of answers) assert.deepEqual([a.status, a.body], [200, 'hello']);
    assert.equal(new Set(answers.map((a) => a.conn)).size, 1, `connections used: ${answers.map((a) => a.conn).join(', ')}`);
  });

  it('a chunked answer arrives whole, and its connection carries the next request', async () => {
    const chunked = await get('/chunked');
    assert.deepEqual([chunked.status, chunked.body], [200, 'hello world']);
    const next = await get('/hello');
    assert.equal(next.conn, chunked.conn);
  });

  it('a body that ends with the connection arrives whole; that connection is not used again', async () => {
    const closing = await get('/until-close');
    assert.deepEqual([closing.status, closing.body], [200, 'the body ends with the connection']);
    const next = await get('/hello');
    assert.equal(next.status, 200);
    assert.notEqual(next.conn, closing.conn);
  });

  it('a pooled connection closed without an answer: a GET goes again on a new connection, a POST gets 502', async () => {
    const first = await get('/hello');
    const retried = await get('/drop-second');
    assert.deepEqual([retried.status, retried.body], [200, 'first on GET']);
    assert.notEqual(retried.conn, first.conn);
    // The retried request's connection is pooled again; a POST on it is not sent a second time.
    const before = connections;
    const post = await get('/drop-second', 'POST');
    assert.equal(post.status, 502);
    assert.equal(connections, before, 'no new connection for the POST');
    assert.equal((await get('/hello')).status, 200);
  });

  it('bytes sent on an idle connection retire it', async () => {
    const first = await get('/unsolicited');
    assert.equal(first.body, 'ok');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const next = await get('/hello');
    assert.equal(next.status, 200);
    assert.notEqual(next.conn, first.conn);
  });

  it('a field value node refuses to write is a 502, and the process serves on', async () => {
    const bad = await get('/bad-value');
    assert.equal(bad.status, 502);
    assert.equal((await get('/hello')).status, 200);
    assert.ok(processAlive(portico.pid), 'portico is still running');
  });

  it('the head timeout holds on a pooled connection (504), and that connection is not reused', async () => {
    const pooled = await get('/hello');
    const started = Date.now();
    const silent = await get('/silent');
    assert.equal(silent.status, 504);
    assert.ok(Date.now() - started >= 350, `answered after ${Date.now() - started} ms`);
    const next = await get('/hello');
    assert.equal(next.status, 200);
    assert.notEqual(next.conn, pooled.conn);
  });
});
