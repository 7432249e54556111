/**
 * Protocol limits and slow clients, on a real Portico process over raw loopback sockets:
 * 414 for a long URI, 431 for large or too many headers, 413 for a body over the limit (declared
 * or chunked, through a proxy route to a real upstream that counts the bytes it receives), 408 or
 * a close for a head or a body trickled too slowly, the keep-alive idle timeout and the request
 * count per connection. The slowhttptest attack runs apart, in slow-clients.test.ts.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, startWithConfig, statusOf, tempDir, writeConfig, type RunningPortico } from '../helpers/portico.js';
import { startNodeUpstream, type NodeUpstream } from '../helpers/upstreams.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One raw connection: bytes in, everything received, when and how it closed. */
class RawClient {
  readonly socket: Socket;
  readonly opened = Date.now();
  received = Buffer.alloc(0);
  closedAt: number | null = null;
  error: string | null = null;
  readonly closed: Promise<void>;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => (this.received = Buffer.concat([this.received, chunk])));
    socket.on('error', (error: NodeJS.ErrnoException) => (this.error = error.code ?? error.message));
    // Not events.once: it rejects on 'error', and a write after the server closed is expected here.
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.closedAt = Date.now();
        resolve();
      }),
    );
  }

  static async open(port: number): Promise<RawClient> {
    const socket = connect({ port, host: '127.0.0.1' });
    await once(socket, 'connect');
    return new RawClient(socket);
  }

  /** Writes unless the connection is gone (a server that refused may close while we send). */
  write(data: string | Buffer): boolean {
    if (this.socket.destroyed || !this.socket.writable) return false;
    this.socket.write(data);
    return true;
  }

  text(): string {
    return this.received.toString('latin1');
  }

  /** Waits until the connection closes, at most `ms` (then the socket is destroyed and false returned). */
  async closedWithin(ms: number): Promise<boolean> {
    const timer = sleep(ms).then(() => false);
    const ok = await Promise.race([this.closed.then(() => true), timer]);
    if (!ok) this.socket.destroy();
    return ok;
  }

  async until(predicate: (text: string) => boolean, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!predicate(this.text())) {
      if (Date.now() > deadline || this.closedAt !== null) return predicate(this.text());
      await sleep(10);
    }
    return true;
  }
}

/** Header lines of the first final response in `text`, names lower-cased. */
function headersOf(text: string): Record<string, string> {
  const final = text.replace(/^(HTTP\/1\.1 1\d\d [^\r\n]*\r\n\r\n)+/, '');
  const head = final.slice(0, final.indexOf('\r\n\r\n'));
  const headers: Record<string, string> = {};
  for (const line of head.split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  return headers;
}

const finalStatus = (text: string): number => statusOf(text.replace(/^(HTTP\/1\.1 1\d\d [^\r\n]*\r\n\r\n)+/, ''));

/** Sends `data`, waits for the server to close (it must: every answer here closes), returns what came back. */
async function exchange(port: number, data: string | Buffer, closeWithinMs = 5_000): Promise<{ text: string; closed: boolean }> {
  const client = await RawClient.open(port);
  client.write(data);
  const closed = await client.closedWithin(closeWithinMs);
  return { text: client.text(), closed };
}

interface Received {
  bytes: number;
  complete: boolean;
  aborted: boolean;
}

const URI_LIMIT = 1024;
const HEADER_LIMIT = 2048;
const BODY_LIMIT = 64 * 1024;
const BIG_ROUTE_LIMIT = 256 * 1024;
const HEAD_TIMEOUT_MS = 1_500;
const BODY_TIMEOUT_MS = 1_500;

describe('protocol limits and slow clients (real server, raw sockets)', () => {
  const dir = tempDir();
  const accessLog = join(dir.path, 'access.log');
  let portico: RunningPortico;
  let port = 0;
  let upstream: NodeUpstream;
  // What the upstream received per request, by the X-Test header the client sets.
  const received = new Map<string, Received>();

  before(async () => {
    upstream = await startNodeUpstream((req: IncomingMessage, res: ServerResponse) => {
      const id = String(req.headers['x-test'] ?? '-');
      const entry: Received = { bytes: 0, complete: false, aborted: false };
      received.set(id, entry);
      req.on('data', (chunk: Buffer) => (entry.bytes += chunk.length));
      req.on('error', () => (entry.aborted = true));
      req.on('aborted', () => (entry.aborted = true));
      req.on('end', () => {
        entry.complete = true;
        res.end(`received ${entry.bytes}`);
      });
    });
    port = await freePort();
    portico = await startWithConfig(dir.path, {
      log: { access: { path: accessLog } },
      http: {
        serverHeader: 'LimitTest/1',
        maxUriLength: URI_LIMIT,
        maxHeaderSize: HEADER_LIMIT,
        maxHeaders: 20,
        maxBodySize: BODY_LIMIT,
        headersTimeout: HEAD_TIMEOUT_MS,
        bodyTimeout: BODY_TIMEOUT_MS,
        keepAliveTimeout: '1s',
        maxRequestsPerConnection: 3,
      },
      servers: [
        {
          listen: `127.0.0.1:${port}`,
          routes: [
            { prefix: '/upload/', proxy: { to: upstream.url } },
            { prefix: '/big/', maxBodySize: BIG_ROUTE_LIMIT, proxy: { to: upstream.url } },
            { prefix: '/', respond: { body: 'ok' } },
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

  const get = (target: string, extra = '') => `GET ${target} HTTP/1.1\r\nHost: limits.test\r\n${extra}Connection: close\r\n\r\n`;

  describe('request line and head', () => {
    it('a URI longer than http.maxUriLength → 414, Server header, Connection: close, access-logged', async () => {
      const target = `/long-${'a'.repeat(URI_LIMIT + 10)}`;
      const { text, closed } = await exchange(port, get(target));
      assert.equal(statusOf(text), 414, text.slice(0, 200));
      assert.equal(headersOf(text).connection, 'close');
      assert.equal(headersOf(text).server, 'LimitTest/1');
      assert.ok(closed, 'the connection closes after the 414');
      await sleep(300);
      assert.match(readFileSync(accessLog, 'utf8'), /"GET \/long-a+ HTTP\/1\.1" 414 /);
    });
    it('a URI just within the limit is served', async () => {
      const { text } = await exchange(port, get(`/${'b'.repeat(URI_LIMIT - 1)}`));
      assert.equal(statusOf(text), 200);
    });
    it("a URI far over node's parser limit (64 KiB in one write) → 414, not 431", async () => {
      const { text, closed } = await exchange(port, get(`/${'c'.repeat(64 * 1024)}`));
      assert.equal(statusOf(text), 414, text.slice(0, 200));
      assert.equal(headersOf(text).server, 'LimitTest/1');
      assert.equal(headersOf(text).connection, 'close');
      assert.ok(closed);
    });
    it('a header section over http.maxHeaderSize → 431 and close; one within is served', async () => {
      const big = await exchange(port, get('/', `X-Big: ${'x'.repeat(HEADER_LIMIT)}\r\n`));
      assert.equal(statusOf(big.text), 431);
      assert.equal(headersOf(big.text).connection, 'close');
      assert.equal(headersOf(big.text).server, 'LimitTest/1');
      assert.ok(big.closed);
      const within = await exchange(port, get('/', `X-Big: ${'x'.repeat(HEADER_LIMIT - 200)}\r\n`));
      assert.equal(statusOf(within.text), 200);
    });
    it("headers far over node's parser limit → 431 (with the Server header)", async () => {
      const { text, closed } = await exchange(port, get('/', `X-Huge: ${'x'.repeat(40 * 1024)}\r\n`));
      assert.equal(statusOf(text), 431, text.slice(0, 200));
      assert.equal(headersOf(text).server, 'LimitTest/1');
      assert.ok(closed);
    });
    it('more header fields than http.maxHeaders → 431 (not silently dropped); exactly the limit is served', async () => {
      // Host + Connection + 18 = 20 fields: the limit.
      const fields = (n: number) => Array.from({ length: n }, (_, i) => `X-F${i}: ${i}\r\n`).join('');
      assert.equal(statusOf((await exchange(port, get('/', fields(18)))).text), 200);
      const over = await exchange(port, get('/', fields(19)));
      assert.equal(statusOf(over.text), 431);
      assert.equal(headersOf(over.text).connection, 'close');
      assert.ok(over.closed);
      const many = await exchange(port, get('/', fields(500)));
      assert.equal(statusOf(many.text), 431);
    });
  });

  describe('request body size (maxBodySize, through a proxy route)', () => {
    it('a Content-Length over the limit → 413 before any of the body is read; the upstream gets nothing', async () => {
      const client = await RawClient.open(port);
      client.write(`POST /upload/ HTTP/1.1\r\nHost: limits.test\r\nX-Test: fixed-over\r\nContent-Length: ${BODY_LIMIT + 1}\r\n\r\n`);
      // No body sent at all: the answer must come without it.
      assert.ok(await client.until((text) => text.includes('\r\n\r\n'), 5_000), 'an answer before the body');
      assert.equal(statusOf(client.text()), 413);
      assert.equal(headersOf(client.text()).connection, 'close');
      assert.equal(headersOf(client.text()).server, 'LimitTest/1');
      assert.ok(await client.closedWithin(5_000), 'the connection closes after the 413');
      assert.equal(received.has('fixed-over'), false, 'the upstream never saw the request');
    });
    it('a client that sends a 16 MiB body anyway still reads the 413, and the connection is not reset (lingering close)', async () => {
      for (let i = 0; i < 5; i++) {
        const client = await RawClient.open(port);
        const size = 16 * 1024 * 1024;
        client.write(Buffer.concat([Buffer.from(`POST /upload/ HTTP/1.1\r\nHost: limits.test\r\nX-Test: fixed-sent-${i}\r\nContent-Length: ${size}\r\n\r\n`), Buffer.alloc(size, 'q')]));
        assert.ok(await client.closedWithin(8_000), 'closed');
        assert.equal(statusOf(client.text()), 413, `round ${i}: ${JSON.stringify(client.text().slice(0, 80))} (socket error: ${client.error})`);
        assert.equal(client.error, null, `round ${i}: the connection was reset`);
        assert.equal(received.has(`fixed-sent-${i}`), false);
      }
    });
    it('Expect: 100-continue with a Content-Length over the limit → 413 and no 100 Continue', async () => {
      const client = await RawClient.open(port);
      client.write(`POST /upload/ HTTP/1.1\r\nHost: limits.test\r\nX-Test: expect-over\r\nExpect: 100-continue\r\nContent-Length: ${BODY_LIMIT * 4}\r\n\r\n`);
      assert.ok(await client.until((text) => text.includes('\r\n\r\n'), 5_000));
      assert.equal(statusOf(client.text()), 413, client.text());
      assert.ok(await client.closedWithin(5_000));
      assert.equal(received.has('expect-over'), false);
    });
    it('Expect: 100-continue within the limit → 100 Continue, then the body goes through', async () => {
      const client = await RawClient.open(port);
      client.write(`POST /upload/ HTTP/1.1\r\nHost: limits.test\r\nX-Test: expect-ok\r\nExpect: 100-continue\r\nConnection: close\r\nContent-Length: 1000\r\n\r\n`);
      assert.ok(await client.until((text) => text.startsWith('HTTP/1.1 100 Continue\r\n\r\n'), 5_000), client.text());
      client.write('z'.repeat(1000));
      await client.closedWithin(5_000);
      assert.equal(finalStatus(client.text()), 200, client.text());
      assert.match(client.text(), /received 1000$/);
    });
    it('an Expect other than 100-continue → 417 with the Server header and Connection: close (not node\'s own bare answer)', async () => {
      const { text, closed } = await exchange(port, `POST /upload/ HTTP/1.1\r\nHost: limits.test\r\nX-Test: expect-other\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\nhi`);
      assert.equal(statusOf(text), 417, text);
      assert.equal(headersOf(text).server, 'LimitTest/1');
      assert.equal(headersOf(text).connection, 'close');
      assert.ok(closed);
      assert.equal(received.has('expect-other'), false);
    });
    it('a chunked body over the limit → 413 while streaming; the upstream receives at most the limit and never a complete body', async () => {
      const client = await RawClient.open(port);
      client.write(`POST /upload/ HTTP/1.1\r\nHost: limits.test\r\nX-Test: chunked-over\r\nTransfer-Encoding: chunked\r\n\r\n`);
      const chunk = `${(4096).toString(16)}\r\n${'y'.repeat(4096)}\r\n`;
      let sent = 0;
      // Four times the limit, in 4 KiB chunks, paced so the proxy is streaming when the limit hits.
      for (let i = 0; i < (4 * BODY_LIMIT) / 4096 && client.write(chunk); i++) {
        sent += 4096;
        if (i % 8 === 7) await sleep(5);
        if (client.text().includes('\r\n\r\n')) break;
      }
      client.write('0\r\n\r\n');
      assert.ok(await client.until((text) => text.includes('\r\n\r\n'), 5_000), 'an answer');
      assert.equal(statusOf(client.text()), 413, client.text());
      assert.equal(headersOf(client.text()).connection, 'close');
      assert.ok(await client.closedWithin(5_000), 'the connection closes after the 413 (the rest of the body is unread)');
      await sleep(200);
      const got = received.get('chunked-over');
      assert.ok(got, 'the upstream saw the request start (the body streams)');
      assert.ok(got.bytes <= BODY_LIMIT, `the upstream received ${got.bytes} bytes, limit ${BODY_LIMIT} (client sent ${sent})`);
      assert.equal(got.complete, false, 'the upstream never received a complete (truncated) body');
      assert.ok(sent > BODY_LIMIT);
    });
    it('a chunked body within the limit goes through whole', async () => {
      const client = await RawClient.open(port);
      const chunk = `${(1000).toString(16)}\r\n${'w'.repeat(1000)}\r\n`;
      client.write(`POST /upload/ HTTP/1.1\r\nHost: limits.test\r\nX-Test: chunked-ok\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunk.repeat(60)}0\r\n\r\n`);
      await client.closedWithin(5_000);
      assert.equal(statusOf(client.text()), 200, client.text());
      assert.match(client.text(), /received 60000$/);
    });
    it("a route's maxBodySize replaces http.maxBodySize (larger here), for fixed and chunked bodies", async () => {
      const fixed = await exchange(port, Buffer.concat([Buffer.from(`POST /big/ HTTP/1.1\r\nHost: limits.test\r\nX-Test: big-fixed\r\nConnection: close\r\nContent-Length: ${200 * 1024}\r\n\r\n`), Buffer.alloc(200 * 1024, 'v')]));
      assert.equal(statusOf(fixed.text), 200, fixed.text.slice(0, 200));
      assert.match(fixed.text, new RegExp(`received ${200 * 1024}$`));
      const over = await exchange(port, `POST /big/ HTTP/1.1\r\nHost: limits.test\r\nX-Test: big-over\r\nContent-Length: ${BIG_ROUTE_LIMIT + 1}\r\n\r\n`);
      assert.equal(statusOf(over.text), 413);

      const client = await RawClient.open(port);
      client.write(`POST /big/ HTTP/1.1\r\nHost: limits.test\r\nX-Test: big-chunked\r\nTransfer-Encoding: chunked\r\n\r\n`);
      const chunk = `${(16384).toString(16)}\r\n${'u'.repeat(16384)}\r\n`;
      for (let i = 0; i < (2 * BIG_ROUTE_LIMIT) / 16384 && client.write(chunk); i++) if (i % 4 === 3) await sleep(5);
      client.write('0\r\n\r\n');
      assert.ok(await client.until((text) => text.includes('\r\n\r\n'), 5_000));
      assert.equal(statusOf(client.text()), 413);
      await client.closedWithin(5_000);
      await sleep(200);
      const got = received.get('big-chunked');
      assert.ok(got && got.bytes > BODY_LIMIT && got.bytes <= BIG_ROUTE_LIMIT, `upstream received ${got?.bytes} bytes: more than the http limit (the route's applies), at most the route's`);
      assert.equal(got.complete, false);
    });
  });

  describe('slow clients and connection limits', () => {
    it('a head trickled byte by byte (slowloris) → 408 or close at http.headersTimeout, a total deadline', async () => {
      const client = await RawClient.open(port);
      client.write('GET / HTTP/1.1\r\nHost: limits.test\r\n');
      // A byte every 100 ms: each one would reset an idle timer; the head deadline must hold anyway.
      const timer = setInterval(() => client.write('X'), 100);
      const closed = await client.closedWithin(HEAD_TIMEOUT_MS + 5_000);
      clearInterval(timer);
      assert.ok(closed, 'closed by the server');
      const elapsed = (client.closedAt ?? 0) - client.opened;
      assert.ok(elapsed >= HEAD_TIMEOUT_MS - 100, `not before the deadline (${elapsed} ms)`);
      const status = statusOf(client.text());
      assert.ok(status === 408 || client.text() === '', `408 or a silent close, got ${JSON.stringify(client.text().slice(0, 80))}`);
      if (status === 408) assert.equal(headersOf(client.text()).server, 'LimitTest/1');
    });
    it('a connection that sends nothing is closed at http.headersTimeout', async () => {
      const client = await RawClient.open(port);
      assert.ok(await client.closedWithin(HEAD_TIMEOUT_MS + 5_000), 'closed by the server');
      assert.ok((client.closedAt ?? 0) - client.opened >= HEAD_TIMEOUT_MS - 100);
      assert.ok(statusOf(client.text()) === 408 || client.text() === '');
    });
    it('a body that pauses longer than http.bodyTimeout → 408 and close; the upstream request is cut, not completed', async () => {
      const client = await RawClient.open(port);
      client.write(`POST /upload/ HTTP/1.1\r\nHost: limits.test\r\nX-Test: slow-body\r\nContent-Length: 1000\r\n\r\n${'s'.repeat(100)}`);
      assert.ok(await client.closedWithin(BODY_TIMEOUT_MS + 5_000), 'closed by the server');
      const elapsed = (client.closedAt ?? 0) - client.opened;
      assert.ok(elapsed >= BODY_TIMEOUT_MS - 100, `not before the body timeout (${elapsed} ms)`);
      assert.equal(statusOf(client.text()), 408, client.text());
      assert.equal(headersOf(client.text()).connection, 'close');
      assert.equal(headersOf(client.text()).server, 'LimitTest/1');
      await sleep(200);
      const got = received.get('slow-body');
      assert.ok(got, 'the upstream saw the request start');
      assert.equal(got.complete, false);
      assert.ok(got.bytes <= 100);
    });
    it('a body trickled faster than http.bodyTimeout between reads is waited for', async () => {
      const client = await RawClient.open(port);
      client.write(`POST /upload/ HTTP/1.1\r\nHost: limits.test\r\nX-Test: steady-body\r\nConnection: close\r\nContent-Length: 5\r\n\r\n`);
      for (let i = 0; i < 5; i++) {
        await sleep(BODY_TIMEOUT_MS / 3);
        client.write('t');
      }
      await client.closedWithin(5_000);
      assert.equal(statusOf(client.text()), 200, client.text());
      assert.match(client.text(), /received 5$/);
    });
    it('http.maxRequestsPerConnection: the last allowed answer says Connection: close; pipelined requests after it are not served', async () => {
      const client = await RawClient.open(port);
      const one = (n: number) => `GET /n${n} HTTP/1.1\r\nHost: limits.test\r\n\r\n`;
      client.write(one(1) + one(2) + one(3) + one(4) + one(5));
      assert.ok(await client.closedWithin(5_000), 'closed after the third answer');
      const statuses = [...client.text().matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
      assert.deepEqual(statuses, [200, 200, 200]);
      const heads = client.text().split('HTTP/1.1 ').slice(1);
      assert.doesNotMatch(heads[1] ?? '', /Connection: close/i);
      assert.match(heads[2] ?? '', /Connection: close/i);
    });
    it('an idle keep-alive connection is closed after http.keepAliveTimeout', async () => {
      const client = await RawClient.open(port);
      client.write('GET / HTTP/1.1\r\nHost: limits.test\r\n\r\n');
      assert.ok(await client.until((text) => text.endsWith('ok'), 5_000));
      const answered = Date.now();
      assert.ok(await client.closedWithin(6_000), 'closed while idle');
      assert.ok((client.closedAt ?? 0) - answered >= 900, 'not before the keep-alive timeout');
    });
  });

  describe('reload', () => {
    it("a reload applies new limits to the listener that stays open, node's parser limit included", async () => {
      const reloadDir = tempDir();
      const reloadPort = await freePort();
      const config = (maxHeaderSize: string) => ({
        workers: 1,
        log: { access: false },
        http: { maxUriLength: '1kb', maxHeaderSize },
        servers: [{ listen: `127.0.0.1:${reloadPort}`, routes: [{ respond: { body: 'ok' } }] }],
      });
      const running = await startWithConfig(reloadDir.path, config('2kb'));
      try {
        // 5 KiB of headers: over node's parser limit of this config (1 KiB + 2 KiB + the request line).
        const big = get('/', `X-Big: ${'x'.repeat(5 * 1024)}\r\n`);
        assert.equal(statusOf((await exchange(reloadPort, big)).text), 431);
        writeConfig(reloadDir.path, config('8kb'));
        process.kill(running.pid, 'SIGHUP');
        const deadline = Date.now() + 15_000;
        while (!/reloaded: new config serving/.test(running.stderr()) && Date.now() < deadline) await sleep(50);
        assert.match(running.stderr(), /reloaded: new config serving/);
        assert.equal(statusOf((await exchange(reloadPort, big)).text), 200, 'a new connection gets the new limit');
      } finally {
        await running.stop();
        reloadDir.remove();
      }
    });
  });
});
