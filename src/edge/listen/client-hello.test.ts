/**
 * readClientHello on real ClientHellos (node's TLS client, captured by a TCP server on loopback):
 * the name found whole, byte by byte, and across handshake records; the ALPN protocols; none for
 * a hello without SNI; "done, no name" for bytes that are not TLS or a hello that never fits.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { connect } from 'node:tls';
import { describe, it } from 'node:test';
import { CLIENT_HELLO_MAX, readClientHello } from './client-hello.js';

/** The first bytes a TLS client sends: its ClientHello record(s). */
async function captureHello(servername: string | undefined, ALPNProtocols?: string[]): Promise<Buffer> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const captured = new Promise<Buffer>((resolve) => {
    server.once('connection', (socket) => {
      socket.once('data', (chunk: Buffer) => {
        resolve(chunk);
        socket.destroy();
      });
    });
  });
  const client = connect({ host: '127.0.0.1', port, ...(servername ? { servername } : {}), ...(ALPNProtocols ? { ALPNProtocols } : {}), rejectUnauthorized: false });
  client.on('error', () => {});
  const hello = await captured;
  client.destroy();
  server.close();
  return hello;
}

/** The same handshake message re-framed as records of at most `size` bytes of fragment each. */
function reframe(hello: Buffer, size: number): Buffer {
  const body = hello.subarray(5, 5 + hello.readUInt16BE(3));
  const records: Buffer[] = [];
  for (let at = 0; at < body.length; at += size) {
    const fragment = body.subarray(at, at + size);
    const head = Buffer.from([22, 3, 1, 0, 0]);
    head.writeUInt16BE(fragment.length, 3);
    records.push(head, fragment);
  }
  return Buffer.concat(records);
}

describe('readClientHello', () => {
  it('reads the server name of a whole ClientHello', async () => {
    const hello = await captureHello('www.example.test');
    assert.deepEqual(readClientHello(hello), { done: true, servername: 'www.example.test', alpn: [] });
  });

  it('waits for more until the hello is complete, byte by byte', async () => {
    const hello = await captureHello('a.test');
    for (let length = 0; length < hello.length; length++) assert.deepEqual(readClientHello(hello.subarray(0, length)), { done: false }, `at ${length} bytes`);
    assert.deepEqual(readClientHello(hello), { done: true, servername: 'a.test', alpn: [] });
  });

  it('joins a hello split across several handshake records (RFC 8446 §5.1)', async () => {
    const hello = await captureHello('split.example.test');
    const split = reframe(hello, 100);
    assert.ok(split.length > hello.length, 'several records');
    assert.deepEqual(readClientHello(split.subarray(0, split.length - 1)), { done: false });
    assert.deepEqual(readClientHello(split), { done: true, servername: 'split.example.test', alpn: [] });
  });

  it('reads the ALPN protocols offered (RFC 7301), e.g. the acme-tls/1 of a TLS-ALPN-01 validation', async () => {
    assert.deepEqual(readClientHello(await captureHello('h.test', ['h2', 'http/1.1'])), { done: true, servername: 'h.test', alpn: ['h2', 'http/1.1'] });
    assert.deepEqual(readClientHello(await captureHello('v.test', ['acme-tls/1'])), { done: true, servername: 'v.test', alpn: ['acme-tls/1'] });
  });

  it('no SNI, not TLS, or a hello that never fits: done with no name', async () => {
    assert.deepEqual(readClientHello(await captureHello(undefined)), { done: true, servername: null, alpn: [] });
    assert.deepEqual(readClientHello(Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n')), { done: true, servername: null, alpn: [] });
    const endless = Buffer.from([22, 3, 1, 0xff, 0xff, 1, 0xff, 0xff, 0xff, ...Buffer.alloc(CLIENT_HELLO_MAX)]);
    assert.deepEqual(readClientHello(endless), { done: true, servername: null, alpn: [] });
  });
});
