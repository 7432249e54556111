/**
 * WebSocket through the proxy (Upgrade tunnels), with the `ws` package as the client and as the
 * upstream server, over loopback: echo (text and binary), closes from either side, an upstream
 * that refuses the upgrade, and the idle timeout of a tunnel.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { freePort, startWithConfig, tempDir, type RunningPortico } from '../helpers/portico.js';
import { refusedPort, startNodeUpstream, type NodeUpstream } from '../helpers/upstreams.js';

interface ServerSide {
  readonly ws: WebSocket;
  readonly req: IncomingMessage;
  readonly closed: Promise<{ code: number; reason: string }>;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
    }),
  ]);
}

function closeOf(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() })));
}

/** Opens a client; resolves once it is open (or rejects with the handshake failure). */
function connectClient(url: string, protocols?: string[]): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { handshakeTimeout: 5_000 });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
  });
}

/** The next `count` messages of a client, with their binary flag. */
function nextMessages(ws: WebSocket, count: number): Promise<{ data: Buffer; isBinary: boolean }[]> {
  return new Promise((resolve) => {
    const got: { data: Buffer; isBinary: boolean }[] = [];
    const onMessage = (data: WebSocket.RawData, isBinary: boolean) => {
      got.push({ data: Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]), isBinary });
      if (got.length === count) {
        ws.off('message', onMessage);
        resolve(got);
      }
    };
    ws.on('message', onMessage);
  });
}

describe('WebSocket through the proxy', () => {
  const dir = tempDir();
  let portico: RunningPortico | undefined;
  let upstream: NodeUpstream;
  let refusing: NodeUpstream;
  let silent: NodeUpstream;
  /** Released when the upstream side of a handshake that got no answer is closed. */
  let silentClosed: () => void = () => {};
  const wss = new WebSocketServer({ noServer: true, handleProtocols: (protocols) => (protocols.has('chat') ? 'chat' : false) });
  const connections: ServerSide[] = [];
  const connected: ((side: ServerSide) => void)[] = [];
  /** The server side of the next connection. */
  const nextServerSide = () => new Promise<ServerSide>((resolve) => connected.push(resolve));

  before(async () => {
    wss.on('connection', (ws: WebSocket, req: IncomingMessage) => {
      const side: ServerSide = { ws, req, closed: closeOf(ws) };
      connections.push(side);
      if (req.url?.startsWith('/ws/greet')) ws.send('welcome');
      ws.on('message', (data, isBinary) => {
        const text = isBinary ? '' : data.toString();
        if (text === 'please-close') return ws.close(4001, 'server bye');
        ws.send(data, { binary: isBinary });
      });
      connected.shift()?.(side);
    });
    upstream = await startNodeUpstream(
      (_req, res) => {
        res.end('plain http');
      },
      {
        onUpgrade: (req, socket, head) => {
          const accept = () => wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
          // A slow handshake: the client's first frame reaches the proxy before the 101 does.
          if (req.url?.startsWith('/ws/slow')) setTimeout(accept, 300);
          else accept();
        },
      },
    );
    refusing = await startNodeUpstream(
      (_req, res) => {
        res.end('plain http');
      },
      {
        onUpgrade: (_req, socket) => {
          socket.end('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 15\r\nX-Refused: yes\r\nConnection: close\r\n\r\nno sockets here');
        },
      },
    );
    silent = await startNodeUpstream(
      (_req, res) => {
        res.end('plain http');
      },
      // Takes the handshake and never answers it.
      // node:http hands an upgraded socket over paused (read it, or its FIN goes unseen) and
      // half-open (a FIN is 'end', not 'close').
      { onUpgrade: (_req, socket) => socket.on('end', () => silentClosed()).on('close', () => silentClosed()).resume() },
    );
    portico = await startWithConfig(dir.path, {
      log: { access: false },
      upstreams: {
        ws: { servers: [upstream.url] },
        idle: { servers: [upstream.url], idleTimeout: '500ms' },
        refusing: { servers: [refusing.url] },
        silent: { servers: [silent.url] },
        dead: { servers: [`http://127.0.0.1:${await refusedPort()}`] },
      },
      servers: [
        {
          listen: `127.0.0.1:${await freePort()}`,
          routes: [
            { prefix: '/ws/', proxy: { to: 'ws' } },
            { prefix: '/idle/', proxy: { to: 'idle' } },
            { prefix: '/refuse/', proxy: { to: 'refusing' } },
            { prefix: '/dead/', proxy: { to: 'dead' } },
            { prefix: '/silent/', proxy: { to: 'silent' } },
            { prefix: '/static-answer', respond: { body: 'no upgrade here' } },
          ],
        },
      ],
    });
  });
  after(async () => {
    for (const side of connections) side.ws.terminate();
    wss.close();
    await portico?.stop();
    await upstream?.close();
    await refusing?.close();
    await silent?.close();
    dir.remove();
  });
  const wsUrl = (path: string) => `ws://127.0.0.1:${(portico as RunningPortico).port}${path}`;

  it('echoes text and binary messages, several in a row, in order', async () => {
    const serverSide = nextServerSide();
    const client = await connectClient(wsUrl('/ws/echo?room=1'), ['chat', 'superchat']);
    try {
      assert.equal(client.protocol, 'chat', "the upstream's Sec-WebSocket-Protocol came back through the 101");
      const side = await withTimeout(serverSide, 3_000, 'the upstream connection');
      assert.equal(side.req.url, '/ws/echo?room=1');
      assert.equal(side.req.headers['x-forwarded-for'], '127.0.0.1');
      assert.equal(side.req.headers.upgrade?.toLowerCase(), 'websocket');

      const big = randomBytes(1024 * 1024);
      const sent: { data: Buffer; isBinary: boolean }[] = [
        { data: Buffer.from('hello'), isBinary: false },
        { data: randomBytes(100), isBinary: true },
        { data: Buffer.from('ünïcødé ✓'), isBinary: false },
        ...Array.from({ length: 10 }, (_, i) => ({ data: Buffer.from(`message ${i}`), isBinary: i % 2 === 1 })),
        { data: big, isBinary: true },
      ];
      const received = nextMessages(client, sent.length);
      for (const message of sent) client.send(message.data, { binary: message.isBinary });
      const got = await withTimeout(received, 5_000, 'the echoes');
      assert.equal(got.length, sent.length);
      got.forEach((message, i) => {
        assert.equal(message.isBinary, sent[i]?.isBinary, `message ${i} binary flag`);
        assert.ok(message.data.equals(sent[i]?.data as Buffer), `message ${i} content`);
      });
    } finally {
      client.terminate();
    }
  });

  it('a message the upstream sends right after the 101 (before the client speaks) arrives', async () => {
    const client = new WebSocket(wsUrl('/ws/greet'));
    try {
      const greeting = nextMessages(client, 1);
      client.once('error', () => {});
      const [got] = await withTimeout(greeting, 3_000, 'the greeting');
      assert.equal(got?.data.toString(), 'welcome');
      assert.equal(got?.isBinary, false);
    } finally {
      client.terminate();
    }
  });

  it('frames the client sends before the 101 (with the request, or while the upstream is slow) are delivered', async () => {
    for (const [path, delayMs] of [['/ws/echo-head', 0], ['/ws/slow', 100]] as const) {
      const key = randomBytes(16).toString('base64');
      const mask = randomBytes(4);
      const payload = Buffer.from(`early ${path}`);
      const frame = Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, Buffer.from(payload.map((b, i) => b ^ (mask[i % 4] as number)))]);
      const head = `GET ${path} HTTP/1.1\r\nHost: example.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
      const received = await withTimeout(
        new Promise<Buffer>((resolve, reject) => {
          const socket = connect({ host: '127.0.0.1', port: (portico as RunningPortico).port });
          let data = Buffer.alloc(0);
          socket.on('connect', () => {
            if (delayMs === 0) socket.write(Buffer.concat([Buffer.from(head), frame]));
            else {
              socket.write(head);
              setTimeout(() => socket.write(frame), delayMs);
            }
          });
          socket.on('data', (chunk: Buffer) => {
            data = Buffer.concat([data, chunk]);
            const end = data.indexOf('\r\n\r\n');
            if (end !== -1 && data.length >= end + 4 + 2 + payload.length) {
              socket.destroy();
              resolve(data);
            }
          });
          socket.on('error', reject);
        }),
        5_000,
        `the echo of an early frame on ${path}`,
      );
      const end = received.indexOf('\r\n\r\n');
      assert.match(received.subarray(0, end).toString('latin1'), /^HTTP\/1\.1 101 /);
      const echo = received.subarray(end + 4);
      assert.equal(echo[0], 0x81, 'a final text frame');
      assert.equal(echo[1], payload.length, 'unmasked, the payload length');
      assert.equal(echo.subarray(2, 2 + payload.length).toString(), payload.toString());
    }
  });

  it('a close started by the client reaches the upstream; both sides see it', async () => {
    const serverSide = nextServerSide();
    const client = await connectClient(wsUrl('/ws/client-close'));
    const side = await withTimeout(serverSide, 3_000, 'the upstream connection');
    const clientClosed = closeOf(client);
    client.close(1000, 'client bye');
    const atServer = await withTimeout(side.closed, 3_000, 'the upstream seeing the close');
    assert.equal(atServer.code, 1000);
    assert.equal(atServer.reason, 'client bye');
    const atClient = await withTimeout(clientClosed, 3_000, 'the client seeing the close complete');
    assert.equal(atClient.code, 1000);
  });

  it('a close started by the upstream reaches the client; both sides see it', async () => {
    const serverSide = nextServerSide();
    const client = await connectClient(wsUrl('/ws/server-close'));
    const side = await withTimeout(serverSide, 3_000, 'the upstream connection');
    const clientClosed = closeOf(client);
    client.send('please-close');
    const atClient = await withTimeout(clientClosed, 3_000, 'the client seeing the close');
    assert.equal(atClient.code, 4001);
    assert.equal(atClient.reason, 'server bye');
    const atServer = await withTimeout(side.closed, 3_000, 'the upstream seeing the close complete');
    assert.equal(atServer.code, 4001);
  });

  it('an upstream that refuses the upgrade (403, no 101): the client gets that 403', async () => {
    const outcome = await withTimeout(
      new Promise<{ status: number; body: string; refused: string | undefined }>((resolve, reject) => {
        const ws = new WebSocket(wsUrl('/refuse/x'));
        ws.once('open', () => reject(new Error('the upgrade succeeded')));
        ws.once('unexpected-response', (_req, res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => {
            resolve({ status: res.statusCode ?? 0, body, refused: res.headers['x-refused'] as string | undefined });
            ws.terminate();
          });
        });
        ws.once('error', (error) => reject(error));
      }),
      5_000,
      'the refused upgrade',
    );
    assert.equal(outcome.status, 403);
    assert.equal(outcome.body, 'no sockets here');
    assert.equal(outcome.refused, 'yes');
  });

  it('an Upgrade request that is not a GET is refused with 400, never tunnelled (RFC 6455 §4.1)', async () => {
    const port = (portico as RunningPortico).port;
    const socket = connect({ port, host: '127.0.0.1' });
    let received = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (received += chunk));
    await once(socket, 'connect');
    socket.write('POST /ws/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    await withTimeout(once(socket, 'close'), 3_000, 'the connection closing after the refusal');
    assert.match(received, /^HTTP\/1\.1 400 /);
  });

  /** The status of a handshake that is answered without 101. */
  function refusedStatus(path: string): Promise<number> {
    return withTimeout(
      new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(wsUrl(path));
        ws.once('open', () => reject(new Error('the upgrade succeeded')));
        ws.once('unexpected-response', (_req, res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
          ws.terminate();
        });
        ws.once('error', reject);
      }),
      5_000,
      `the answer to an upgrade of ${path}`,
    );
  }

  it('an upgrade to an upstream that refuses connections gets 502', async () => {
    assert.equal(await refusedStatus('/dead/x'), 502);
    assert.equal(await refusedStatus('/dead/x'), 502, 'again, with the server marked down');
  });

  it('a client that leaves before the upstream answers the handshake: the upstream connection is closed too', async () => {
    const upstreamClosed = new Promise<void>((resolve) => (silentClosed = resolve));
    const connectionsBefore = silent.connections();
    const ws = new WebSocket(wsUrl('/silent/x'));
    ws.on('error', () => {});
    const deadline = Date.now() + 3_000;
    while (silent.connections() === connectionsBefore && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(silent.connections(), connectionsBefore + 1, 'the handshake reached the upstream');
    ws.terminate();
    await withTimeout(upstreamClosed, 3_000, 'the upstream side of an abandoned handshake being closed');
  });

  it('an upgrade on a route that does not proxy gets a normal answer', async () => {
    assert.equal(await refusedStatus('/static-answer'), 200);
  });

  it("idleTimeout: '500ms' closes a tunnel with no traffic, and not one with traffic", async () => {
    // Traffic every 150 ms for 1.5 s: never idle for 500 ms, so it stays open.
    const busy = await connectClient(wsUrl('/idle/busy'));
    try {
      let closedEarly = false;
      busy.once('close', () => (closedEarly = true));
      for (let i = 0; i < 10; i++) {
        const echo = nextMessages(busy, 1);
        busy.send(`tick ${i}`);
        const [got] = await withTimeout(echo, 2_000, `echo of tick ${i}`);
        assert.equal(got?.data.toString(), `tick ${i}`);
        await new Promise((resolve) => setTimeout(resolve, 150));
      }
      assert.equal(closedEarly, false, 'a busy tunnel was closed');
    } finally {
      busy.terminate();
    }

    const idle = await connectClient(wsUrl('/idle/quiet'));
    const started = performance.now();
    await withTimeout(closeOf(idle), 4_000, 'the idle tunnel being closed');
    const ms = performance.now() - started;
    assert.ok(ms >= 400 && ms < 3_000, `the idle tunnel closed after ${ms.toFixed(0)} ms`);
  });

  it('after all that, the proxy still tunnels', async () => {
    const client = await connectClient(wsUrl('/ws/again'));
    try {
      const echo = nextMessages(client, 1);
      client.send('still here');
      const [got] = await withTimeout(echo, 3_000, 'the echo');
      assert.equal(got?.data.toString(), 'still here');
    } finally {
      client.terminate();
    }
    await once(client, 'close');
  });
});
