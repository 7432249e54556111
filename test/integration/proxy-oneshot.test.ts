/**
 * HTTP to an upstream that closes every connection (gunicorn's sync workers do; #19): once an
 * answer says `Connection: close`, Portico sends each request, bodies included, on a raw
 * connection of its own (handlers/proxy/raw-exchange.ts) instead of through undici's pool, and
 * sends bodies through that pool again when the server keeps a connection. What the client sees must not change: chunked answers,
 * chunked and sized request bodies, 103 Early Hints, HEAD and 204, a truncated answer cut, a bad
 * one a 502. A real node:http upstream on loopback, real portico, fetch and raw sockets.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { freePort, rawRequest, startWithConfig, tempDir, type RunningPortico } from '../helpers/portico.js';
import { startNodeUpstream, type NodeUpstream } from '../helpers/upstreams.js';

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

describe('proxy to an upstream that closes every connection', () => {
  const dir = tempDir();
  let portico: RunningPortico;
  let upstream: NodeUpstream;
  /** Whether the upstream closes its connections (the test switches it). */
  let closing = true;
  /** The Connection field of each request the upstream got. */
  const seen: (string | undefined)[] = [];
  const big = randomBytes(300_000);
  let raw: { port: number; close(): void };

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    seen.push(req.headers.connection);
    if (closing) res.setHeader('connection', 'close');
    const path = req.url ?? '/';
    if (path === '/chunked') {
      // No Content-Length: node sends it chunked, in several writes.
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      let at = 0;
      const next = (): void => {
        if (at >= big.length) return void res.end();
        res.write(big.subarray(at, at + 70_000));
        at += 70_000;
        setTimeout(next, 2);
      };
      return next();
    }
    if (path === '/echo') {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => res.end(`${req.headers['transfer-encoding'] ?? 'sized'} ${sha(Buffer.concat(chunks))}`));
      return;
    }
    if (path === '/hints') {
      res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
      setTimeout(() => res.end('after hints'), 20);
      return;
    }
    if (path === '/empty') {
      res.writeHead(204);
      return void res.end();
    }
    res.end(`hello ${path}`);
  };

  before(async () => {
    upstream = await startNodeUpstream(handler);
    // A raw upstream for answers node:http would never send: a cut body, a broken head.
    const { createServer } = await import('node:net');
    const server = createServer((socket) => {
      socket.once('data', (data) => {
        const line = data.toString('latin1').split('\r\n')[0] ?? '';
        if (line.includes('/cut')) socket.end('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 100\r\n\r\nonly this');
        else if (line.includes('/badchunk')) socket.end('HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX\r\n0\r\n\r\n');
        else if (line.includes('/badhead')) socket.end('HTTP/1.1 200 OK\r\nConnection: close\r\nbad header\r\n\r\n');
        else socket.end('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok');
      });
    });
    server.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    raw = { port: (server.address() as { port: number }).port, close: () => server.close() };
    portico = await startWithConfig(dir.path, {
      workers: 1,
      log: { access: false },
      servers: [
        {
          listen: `127.0.0.1:${await freePort()}`,
          routes: [
            { prefix: '/raw/', proxy: { to: `http://127.0.0.1:${raw.port}` } },
            { prefix: '/', proxy: { to: upstream.url } },
          ],
        },
      ],
    });
  });
  after(async () => {
    await portico?.stop();
    await upstream?.close();
    raw?.close();
    dir.remove();
  });

  const get = (path: string, init?: RequestInit) => fetch(`http://127.0.0.1:${portico.port}${path}`, init);

  it('after the first answer says close, each request has a connection of its own', async () => {
    const before = upstream.connections();
    for (let i = 0; i < 5; i++) assert.equal(await (await get(`/n${i}`)).text(), `hello /n${i}`);
    assert.equal(upstream.connections() - before, 5);
    // undici's pool sends `connection: keep-alive`; the one-connection path sends no Connection field.
    assert.equal(seen.at(-1), undefined, `the last request's Connection field: ${String(seen.at(-1))}`);
  });

  it('a chunked answer arrives whole', async () => {
    const res = await get('/chunked');
    assert.equal(res.status, 200);
    assert.equal(sha(Buffer.from(await res.arrayBuffer())), sha(big));
  });

  it('request bodies: sized as received, chunked chunked again', async () => {
    const body = randomBytes(200_000);
    assert.equal(await (await get('/echo', { method: 'POST', body })).text(), `sized ${sha(body)}`);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(body.subarray(0, 100_000));
        controller.enqueue(body.subarray(100_000));
        controller.close();
      },
    });
    const chunked = await get('/echo', { method: 'POST', body: stream, duplex: 'half' } as RequestInit);
    assert.equal(await chunked.text(), `chunked ${sha(body)}`);
  });

  it('103 Early Hints pass on; HEAD and 204 have no body', async () => {
    const answer = (await rawRequest(portico.port, 'GET /hints HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n')).toString('latin1');
    assert.match(answer, /^HTTP\/1\.1 103 Early Hints\r\n[\s\S]*link: <\/style\.css>; rel=preload; as=style\r\n[\s\S]*HTTP\/1\.1 200 OK[\s\S]*after hints$/i);
    const head = (await rawRequest(portico.port, 'HEAD /x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n')).toString('latin1');
    // The head and nothing after it (node's upstream sends no Content-Length for a HEAD).
    assert.match(head, /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\n$/i);
    assert.doesNotMatch(head, /hello/);
    assert.equal((await get('/empty')).status, 204);
  });

  it('a cut body is cut for the client, a bad chunk too; a bad head is a 502', async () => {
    assert.equal(await (await get('/raw/first')).text(), 'ok');
    const cut = (await rawRequest(portico.port, 'GET /raw/cut HTTP/1.1\r\nHost: a.test\r\n\r\n')).toString('latin1');
    assert.match(cut, /^HTTP\/1\.1 200 OK\r\n/);
    assert.ok(!cut.endsWith('0\r\n\r\n') && cut.length < cut.indexOf('\r\n\r\n') + 4 + 100, `the client saw a complete answer:\n${cut}`);
    const badChunk = (await rawRequest(portico.port, 'GET /raw/badchunk HTTP/1.1\r\nHost: a.test\r\n\r\n')).toString('latin1');
    assert.ok(!/\r\n0\r\n\r\n$/.test(badChunk), `a broken chunked body was ended cleanly:\n${badChunk}`);
    assert.equal((await get('/raw/badhead')).status, 502);
  });

  it('a server that keeps its connections again goes back to the pool', async () => {
    closing = false;
    await get('/flip');
    const before = upstream.connections();
    for (let i = 0; i < 5; i++) assert.equal(await (await get(`/k${i}`)).text(), `hello /k${i}`);
    assert.ok(upstream.connections() - before <= 1, `${upstream.connections() - before} new connections for 5 sequential requests`);
    closing = true;
  });

  it('the client leaving mid-answer stops the upstream request', async () => {
    await get('/again');
    const socket = connect({ port: portico.port, host: '127.0.0.1' });
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('GET /chunked HTTP/1.1\r\nHost: a.test\r\n\r\n');
    await new Promise((resolve) => socket.once('data', resolve));
    socket.destroy();
    // Portico still serves.
    assert.equal(await (await get('/after')).text(), 'hello /after');
  });
});
