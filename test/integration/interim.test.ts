/**
 * Issue #20 item 3: an upstream's 1xx that the client did not ask for is passed on (RFC 9110
 * §15.2) and never cached. A real node:http upstream sends 103 Early Hints (writeEarlyHints) and
 * 102 Processing before its final answer; the client reads the raw bytes over HTTP/1.1, and an
 * HTTP/2 client (node:http2 over TLS) sees the 103 as an informational HEADERS frame.
 */
import assert from 'node:assert/strict';
import { connect as connectH2 } from 'node:http2';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { freePort, rawRequest, startWithConfig, tempDir, type RunningPortico } from '../helpers/portico.js';
import { makeCa, makeCert } from '../helpers/tls.js';
import { startNodeUpstream, type NodeUpstream } from '../helpers/upstreams.js';

const LINKS = ['</style.css>; rel=preload; as=style', '</app.js>; rel=preload; as=script'];

/** Each response head in the raw bytes, in order: its status line and its fields. */
function heads(raw: Buffer): { status: number; fields: string[] }[] {
  const text = raw.toString('latin1');
  const out: { status: number; fields: string[] }[] = [];
  const re = /HTTP\/1\.1 (\d{3})[^\r\n]*\r\n((?:[^\r\n]+\r\n)*)\r\n/g;
  for (let match = re.exec(text); match !== null; match = re.exec(text)) out.push({ status: Number(match[1]), fields: (match[2] as string).split('\r\n').filter((line) => line !== '') });
  return out;
}

describe('interim responses from an upstream (#20: 103 Early Hints, 102)', () => {
  const dir = tempDir();
  let upstream: NodeUpstream;
  let portico: RunningPortico;
  let port = 0;
  let tlsPort = 0;
  let caCert = '';

  before(async () => {
    upstream = await startNodeUpstream((req, res) => {
      if (req.url?.includes('processing')) res.writeProcessing();
      else res.writeEarlyHints({ link: LINKS, 'x-hint': 'early', server: 'upstream-identity' });
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' });
        res.end(`final ${req.url}\n`);
      }, 30);
    });
    port = await freePort();
    tlsPort = await freePort();
    const ca = makeCa(dir.path);
    caCert = readFileSync(ca.cert, 'utf8');
    const site = makeCert(dir.path, ca, 'site', ['localhost']);
    const routes = [
      { prefix: '/cached/', proxy: { to: upstream.url }, cache: true },
      { prefix: '/', proxy: { to: upstream.url } },
    ];
    portico = await startWithConfig(dir.path, {
      workers: 1,
      log: { access: false },
      servers: [
        { listen: `127.0.0.1:${port}`, routes },
        { listen: `127.0.0.1:${tlsPort}`, names: ['localhost'], tls: { cert: site.cert, key: site.key }, routes },
      ],
    });
  });
  after(async () => {
    await portico?.stop();
    await upstream?.close();
    dir.remove();
  });

  const get = (path: string) => rawRequest(port, `GET ${path} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n`, { idleMs: 2000 });

  it('HTTP/1.1: the 103 and its Link fields arrive before the final answer; hidden fields stay hidden', async () => {
    const received = heads(await get('/hints'));
    assert.deepEqual(received.map((head) => head.status), [103, 200]);
    const hints = (received[0] as { fields: string[] }).fields.map((line) => line.toLowerCase());
    for (const link of LINKS) assert.ok(hints.some((line) => line === `link: ${link}`.toLowerCase()) || hints.some((line) => line.startsWith('link:') && line.includes(link.toLowerCase())), `${link} in ${JSON.stringify(hints)}`);
    assert.ok(hints.includes('x-hint: early'), JSON.stringify(hints));
    assert.ok(!hints.some((line) => line.includes('upstream-identity')), 'the upstream Server is hidden in the 103 as in the final answer');
  });

  it('HTTP/1.1: a 102 is passed on too', async () => {
    assert.deepEqual(heads(await get('/processing')).map((head) => head.status), [102, 200]);
  });

  it('a cached answer is served without the 103: interim responses are never stored', async () => {
    assert.deepEqual(heads(await get('/cached/x')).map((head) => head.status), [103, 200]);
    const second = heads(await get('/cached/x'));
    assert.deepEqual(second.map((head) => head.status), [200]);
    assert.ok((second[0] as { fields: string[] }).fields.some((line) => /^cache-status:.*hit/i.test(line)), JSON.stringify(second[0]));
  });

  it('HTTP/2: the 103 is an informational HEADERS frame before the response', async () => {
    const session = connectH2(`https://localhost:${tlsPort}`, { ca: caCert, servername: 'localhost' });
    try {
      const statuses: number[] = [];
      const links: unknown[] = [];
      await new Promise<void>((resolve, reject) => {
        const stream = session.request({ ':path': '/hints-h2' });
        stream.on('headers', (headers) => {
          statuses.push(Number(headers[':status']));
          links.push(headers.link);
        });
        stream.on('response', (headers) => statuses.push(Number(headers[':status'])));
        stream.resume();
        stream.on('end', resolve);
        stream.on('error', reject);
      });
      assert.deepEqual(statuses, [103, 200]);
      assert.match(String(links[0]), /style\.css/);
    } finally {
      session.close();
    }
  });
});
