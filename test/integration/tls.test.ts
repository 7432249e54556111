/**
 * HTTPS and HTTP/2 with real clients (curl, openssl s_client, node's https and http2 clients)
 * against `portico up`, with certificates the test makes with openssl (test/helpers/tls.ts):
 * h2 and http/1.1 on one port, SNI across key types, strict SNI, TLS 1.1 refused, the pipeline
 * over h2 (static ranges, the proxy to an HTTP/1.1 upstream, body limits on one stream), HSTS,
 * `$scheme`/`$https`/X-Forwarded-Proto, canonical https redirects, the access log, a certificate
 * swap by reload under load, and config checks on certificate files.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { request as httpsRequest, Agent } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, request, runCli, startWithConfig, tempDir, writeConfig, type RunningPortico } from '../helpers/portico.js';
import { makeCa, makeCert, type TestCa, type TestCert } from '../helpers/tls.js';

function run(command: string, args: string[], input = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(command, args, { timeout: 10_000, maxBuffer: 8 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = (error as { code?: unknown } | null)?.code;
      resolve({ code: error ? (typeof code === 'number' ? code : 1) : 0, stdout, stderr });
    });
    child.stdin?.end(input);
  });
}

function curl(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return run('curl', ['-sS', '--max-time', '8', ...args]);
}

/** The certificate a handshake with `servername` gets: its subject CN and serial (upper-case hex), or the error. */
function peerCertificate(port: number, servername: string | null, ca: string): Promise<{ cn: string; serial: string } | { error: string }> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ...(servername ? { servername } : {}), ca: readFileSync(ca), rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
      const cert = socket.getPeerCertificate();
      resolve({ cn: String(cert.subject?.CN ?? ''), serial: String(cert.serialNumber ?? '').toUpperCase() });
      socket.end();
    });
    socket.on('error', (error) => resolve({ error: error.message }));
  });
}

function h2get(session: ClientHttp2Session, path: string, headers: Record<string, string> = {}, body?: Buffer): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path, ':method': body ? 'POST' : 'GET', ...headers }, { endStream: !body });
    const chunks: Buffer[] = [];
    let head: Record<string, unknown> = {};
    stream.on('response', (h) => (head = h as Record<string, unknown>));
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve({ status: Number(head[':status']), headers: head, body: Buffer.concat(chunks) }));
    stream.on('error', reject);
    if (body) stream.end(body);
  });
}

describe('HTTPS and HTTP/2', () => {
  const dir = tempDir();
  let ca: TestCa;
  let siteA: TestCert;
  let siteB: TestCert;
  let upstream: Server;
  let upstreamPort: number;
  let portico: RunningPortico;
  let port: number;
  let plainPort: number;
  const accessLog = join(dir.path, 'access.log');

  const config = (certA: { cert: string; key: string }): unknown => ({
    workers: 1,
    log: { access: { format: 'json', path: accessLog } },
    http: { maxBodySize: '64kb' },
    apps: { web: { module: './app.mjs', workers: 1 } },
    servers: [
      {
        listen: `127.0.0.1:${port}`,
        names: ['a.test', 'localhost'],
        tls: { cert: certA.cert, key: certA.key, hsts: { maxAge: '1d', includeSubDomains: true } },
        static: { root: join(dir.path, 'public') },
        routes: [
          { prefix: '/api/', proxy: { to: `http://127.0.0.1:${upstreamPort}` } },
          { exact: '/scheme', respond: { status: 200, body: '$scheme $https' } },
          { prefix: '/app/', app: 'web' },
          { prefix: '/' },
        ],
      },
      { listen: `127.0.0.1:${port}`, names: ['b.test'], tls: { cert: siteB.cert, key: siteB.key }, routes: [{ respond: { status: 200, body: 'b\n' } }] },
      { listen: `127.0.0.1:${plainPort}`, names: ['a.test'], canonical: { https: true } },
    ],
  });

  before(async () => {
    ca = makeCa(dir.path);
    siteA = makeCert(dir.path, ca, 'a', ['a.test', 'localhost', '127.0.0.1']);
    // Another key type on the same address: SNI must switch to it (node's own SNICallback cannot under TLS 1.3).
    siteB = makeCert(dir.path, ca, 'b', ['b.test'], { algorithm: 'rsa' });
    mkdirSync(join(dir.path, 'public'));
    writeFileSync(join(dir.path, 'public', 'index.html'), 'hello over tls\n');
    writeFileSync(join(dir.path, 'public', 'data.bin'), Buffer.alloc(200_000, 7));
    writeFileSync(join(dir.path, 'app.mjs'), 'export default { fetch: (request) => new Response(request.url) };\n');
    upstream = createServer((req, res) => {
      let bytes = 0;
      req.on('data', (chunk: Buffer) => (bytes += chunk.length));
      req.on('end', () => {
        // Connection-specific fields from an HTTP/1.1 upstream must never reach an h2 client (RFC 9113 §8.2.2).
        res.writeHead(200, { 'Content-Type': 'text/plain', Connection: 'keep-alive', 'Keep-Alive': 'timeout=5' });
        res.end(JSON.stringify({ method: req.method, url: req.url, host: req.headers.host, proto: req.headers['x-forwarded-proto'], cookie: req.headers.cookie ?? null, bytes }));
      });
    }).listen(0, '127.0.0.1');
    // A WebSocket-like upgrade: 101, then every byte echoed back.
    upstream.on('upgrade', (_req, socket: Socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      socket.on('data', (chunk: Buffer) => socket.write(chunk));
    });
    await once(upstream, 'listening');
    upstreamPort = (upstream.address() as { port: number }).port;
    port = await freePort();
    plainPort = await freePort();
    portico = await startWithConfig(dir.path, config(siteA));
  });

  after(async () => {
    await portico?.stop();
    upstream?.close();
    dir.remove();
  });

  it('serves h2 and http/1.1 on one port (ALPN), with the same body', async () => {
    const h2 = await curl(['--http2', '--cacert', ca.cert, '-w', '\n%{http_version}', `https://localhost:${port}/`]);
    const h1 = await curl(['--http1.1', '--cacert', ca.cert, '-w', '\n%{http_version}', `https://localhost:${port}/`]);
    assert.equal(h2.stdout, 'hello over tls\n\n2', h2.stderr);
    assert.equal(h1.stdout, 'hello over tls\n\n1.1', h1.stderr);
    assert.match(portico.stdout(), new RegExp(`listening on https://127\\.0\\.0\\.1:${port}`));
  });

  it('SNI picks each server certificate, across key types; an unknown or missing name gets the default server', async () => {
    assert.deepEqual(await peerCertificate(port, 'a.test', ca.cert), { cn: 'a.test', serial: siteA.serial });
    assert.deepEqual(await peerCertificate(port, 'b.test', ca.cert), { cn: 'b.test', serial: siteB.serial });
    assert.deepEqual(await peerCertificate(port, 'unknown.test', ca.cert), { cn: 'a.test', serial: siteA.serial });
    assert.deepEqual(await peerCertificate(port, null, ca.cert), { cn: 'a.test', serial: siteA.serial });
    for (const name of ['a.test', 'b.test']) {
      const shown = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', name, '-CAfile', ca.cert, '-verify_return_error'], '');
      assert.match(shown.stdout, new RegExp(`subject=CN ?= ?${name.replace('.', '\\.')}`), shown.stdout + shown.stderr);
      assert.match(shown.stdout, /Verify return code: 0 \(ok\)/);
    }
    const viaCurl = await curl(['--http2', '--cacert', ca.cert, '--resolve', `b.test:${port}:127.0.0.1`, `https://b.test:${port}/`]);
    assert.equal(viaCurl.stdout, 'b\n', viaCurl.stderr);
  });

  it('refuses TLS 1.1 and below (TLS 1.2 and 1.3 only)', async () => {
    const old = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-tls1_1', '-servername', 'a.test'], '');
    assert.notEqual(old.code, 0);
    assert.doesNotMatch(old.stdout, /subject=/);
    const twelve = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-tls1_2', '-servername', 'a.test'], '');
    assert.match(twelve.stdout, /Protocol *: TLSv1\.2/);
  });

  it('over h2: static ranges and conditionals, HSTS, the scheme variables and an app’s request.url, no connection-specific fields', async () => {
    const session = h2connect(`https://localhost:${port}`, { ca: readFileSync(ca.cert) });
    try {
      const range = await h2get(session, '/data.bin', { range: 'bytes=100-199' });
      assert.equal(range.status, 206);
      assert.equal(range.body.length, 100);
      const whole = await h2get(session, '/data.bin');
      assert.equal(whole.body.length, 200_000);
      const etag = whole.headers.etag as string;
      assert.equal((await h2get(session, '/data.bin', { 'if-none-match': etag })).status, 304);
      assert.equal(whole.headers['strict-transport-security'], 'max-age=86400; includeSubDomains');
      const scheme = await h2get(session, '/scheme');
      assert.equal(scheme.body.toString(), 'https on');
      // An app behind the edge sees the scheme the client used in its request.url.
      const app = await h2get(session, '/app/where?q=1');
      assert.equal(app.body.toString(), `https://localhost:${port}/app/where?q=1`);
      const proxied = await h2get(session, '/api/x?y=1', { cookie: 'a=1' });
      assert.equal(proxied.status, 200);
      for (const name of ['connection', 'keep-alive', 'transfer-encoding']) assert.equal(proxied.headers[name], undefined, `${name} on an h2 response`);
    } finally {
      session.close();
    }
  });

  it('over h2: the proxy to an HTTP/1.1 upstream streams a body, joins cookie crumbs, sends Host and X-Forwarded-Proto', async () => {
    const session = h2connect(`https://localhost:${port}`, { ca: readFileSync(ca.cert) });
    try {
      // Two cookie fields, as h2 clients split them (RFC 9113 §8.2.3).
      const stream = session.request({ ':path': '/api/upload', ':method': 'POST', cookie: ['a=1', 'b=2'] });
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      for (let i = 0; i < 6; i++) stream.write(Buffer.alloc(10_000, i));
      stream.end();
      await once(stream, 'end');
      const seen = JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>;
      assert.deepEqual(seen, { method: 'POST', url: '/api/upload', host: `localhost:${port}`, proto: 'https', cookie: 'a=1; b=2', bytes: 60_000 });
    } finally {
      session.close();
    }
  });

  it('over h2: a body over the limit is refused on its stream (413) and the session serves on', async () => {
    const session = h2connect(`https://localhost:${port}`, { ca: readFileSync(ca.cert) });
    try {
      const declared = await h2get(session, '/api/big', { 'content-length': '100000' }, Buffer.alloc(100_000));
      assert.equal(declared.status, 413);
      // No declared length: counted as it arrives.
      const stream = session.request({ ':path': '/api/big', ':method': 'POST' });
      let status = 0;
      stream.on('response', (h) => (status = Number(h[':status'])));
      stream.on('error', () => {});
      stream.resume();
      for (let i = 0; i < 10; i++) stream.write(Buffer.alloc(10_000));
      stream.end();
      await once(stream, 'close');
      assert.equal(status, 413);
      assert.equal((await h2get(session, '/')).status, 200, 'the same session still serves');
    } finally {
      session.close();
    }
  });

  it('an Upgrade (WebSocket, wss://) over TLS on HTTP/1.1 is tunnelled to the upstream', async () => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(ca.cert), ALPNProtocols: ['http/1.1'] });
    await once(socket, 'secureConnect');
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.write('GET /api/ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    for (let i = 0; i < 100 && !received.includes('\r\n\r\n'); i++) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.match(received, /^HTTP\/1\.1 101 /);
    received = '';
    socket.write('ping over tls');
    for (let i = 0; i < 100 && received !== 'ping over tls'; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(received, 'ping over tls');
    socket.destroy();
  });

  it('canonical https on the plain listener redirects to the TLS listener’s port', async () => {
    const response = await request(`http://127.0.0.1:${plainPort}/some/path?q=1`, { headers: { Host: 'a.test' } });
    assert.equal(response.status, 301);
    assert.equal(response.headers.location, `https://a.test:${port}/some/path?q=1`);
  });

  it('the access log records HTTP/2.0 with the TLS version and cipher', async () => {
    await curl(['--http2', '--cacert', ca.cert, `https://localhost:${port}/?logged=h2`]);
    let line: Record<string, unknown> | undefined;
    for (let i = 0; i < 50 && !line; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      line = readFileSync(accessLog, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((text) => JSON.parse(text) as Record<string, unknown>)
        .find((entry) => entry.uri === '/?logged=h2');
    }
    assert.ok(line, 'an access log line for the request');
    assert.equal(line.protocol, 'HTTP/2.0');
    assert.match(String(line.tls_version), /^TLSv1\.[23]$/);
    assert.ok(typeof line.tls_cipher === 'string' && line.tls_cipher.length > 0);
  });

  it('a reload swaps the certificate under 10 s of load over TLS: no request fails, new handshakes see the new serial', async () => {
    const renewed = makeCert(dir.path, ca, 'a-renewed', ['a.test', 'localhost', '127.0.0.1']);
    assert.notEqual(renewed.serial, siteA.serial);
    const agent = new Agent({ keepAlive: false, ca: readFileSync(ca.cert) });
    let ok = 0;
    const failures: string[] = [];
    const until = Date.now() + 10_000;
    const client = async (): Promise<void> => {
      while (Date.now() < until) {
        await new Promise<void>((resolve) => {
          const req = httpsRequest({ host: '127.0.0.1', port, path: '/', servername: 'a.test', agent, headers: { host: 'a.test' } }, (res) => {
            res.resume();
            res.on('end', () => {
              if (res.statusCode === 200) ok++;
              else failures.push(`status ${res.statusCode}`);
              resolve();
            });
          });
          req.on('error', (error) => {
            failures.push(error.message);
            resolve();
          });
          req.end();
        });
      }
    };
    const load = Promise.all([client(), client(), client(), client()]);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    writeConfig(dir.path, config(renewed));
    process.kill(portico.pid, 'SIGHUP');
    let seen = '';
    for (let i = 0; i < 60 && seen !== renewed.serial; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const cert = await peerCertificate(port, 'a.test', ca.cert);
      seen = 'serial' in cert ? cert.serial : '';
    }
    await load;
    agent.destroy();
    assert.equal(seen, renewed.serial, 'new handshakes see the renewed certificate');
    assert.deepEqual(failures, [], `${failures.length} failed of ${ok + failures.length}`);
    assert.ok(ok > 100, `only ${ok} requests in 10 s`);
  });

  it('a reload with a broken certificate is refused and the running one keeps serving', async () => {
    const before = await peerCertificate(port, 'a.test', ca.cert);
    const broken = join(dir.path, 'broken.crt');
    writeFileSync(broken, 'not a certificate\n');
    writeConfig(dir.path, config({ cert: broken, key: siteA.key }));
    process.kill(portico.pid, 'SIGHUP');
    for (let i = 0; i < 50 && !/reload refused/.test(portico.stderr()); i++) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.match(portico.stderr(), /reload refused/);
    assert.match(portico.stderr(), /servers\[0\]\.tls\.cert: expected a PEM certificate file/);
    assert.deepEqual(await peerCertificate(port, 'a.test', ca.cert), before);
    const still = await curl(['--http2', '--cacert', ca.cert, `https://localhost:${port}/`]);
    assert.equal(still.stdout, 'hello over tls\n');
  });
});

describe('tls.strictSni', () => {
  const dir = tempDir();
  after(() => dir.remove());

  it('refuses a handshake for an unknown name or none, and serves the known ones', async () => {
    const ca = makeCa(dir.path);
    const site = makeCert(dir.path, ca, 'site', ['known.test']);
    const port = await freePort();
    const portico = await startWithConfig(dir.path, { workers: 1, servers: [{ listen: `127.0.0.1:${port}`, names: ['known.test'], tls: { cert: site.cert, key: site.key, strictSni: true }, routes: [{ respond: { status: 200, body: 'known\n' } }] }] });
    try {
      assert.deepEqual(await peerCertificate(port, 'known.test', ca.cert), { cn: 'known.test', serial: site.serial });
      assert.ok('error' in (await peerCertificate(port, 'other.test', ca.cert)), 'an unknown name is refused');
      assert.ok('error' in (await peerCertificate(port, null, ca.cert)), 'no SNI is refused');
      const ok = await curl(['--cacert', ca.cert, '--resolve', `known.test:${port}:127.0.0.1`, `https://known.test:${port}/`]);
      assert.equal(ok.stdout, 'known\n', ok.stderr);
    } finally {
      await portico.stop();
    }
  });
});

describe('tls config checks (portico check: exit 2 with the field path; warnings on stderr)', () => {
  const dir = tempDir();
  let ca: TestCa;
  let good: TestCert;
  let other: TestCert;
  before(() => {
    ca = makeCa(dir.path);
    good = makeCert(dir.path, ca, 'good', ['good.test']);
    other = makeCert(dir.path, ca, 'other', ['other.test']);
  });
  after(() => dir.remove());

  const check = async (server: Record<string, unknown>, more: unknown[] = []): Promise<{ code: number | null; stdout: string; stderr: string }> => {
    const path = writeConfig(dir.path, { servers: [{ listen: '127.0.0.1:0', names: ['good.test'], ...server }, ...more] }, `c${Math.random().toString(36).slice(2)}.json`);
    return runCli(['check', '--config', path]);
  };

  it('a missing file, a file that is not PEM, a key of another certificate', async () => {
    const missing = await check({ tls: { cert: './nope.crt', key: good.key } });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /servers\[0\]\.tls\.cert: expected a PEM certificate file, got "\.\/nope\.crt" \(.*nope\.crt: no such file\)/);
    writeFileSync(join(dir.path, 'text.crt'), 'hello\n');
    const notPem = await check({ tls: { cert: './text.crt', key: good.key } });
    assert.match(notPem.stderr, /servers\[0\]\.tls\.cert: expected a PEM certificate file \(-----BEGIN CERTIFICATE-----\)/);
    const mismatch = await check({ tls: { cert: good.cert, key: other.key } });
    assert.equal(mismatch.code, 2);
    assert.match(mismatch.stderr, /servers\[0\]\.tls\.key: expected the private key of .*good\.crt", got a key that does not match it/);
    const neither = await check({ tls: { hsts: true } });
    assert.match(neither.stderr, /servers\[0\]\.tls: expected "cert" and "key" \(PEM files\), or "certs"/);
  });

  it('all servers of an address have tls, or none', async () => {
    const mixed = await check({ tls: { cert: good.cert, key: good.key } }, [{ listen: '127.0.0.1:0', names: ['plain.test'] }]);
    assert.equal(mixed.code, 2);
    assert.match(mixed.stderr, /servers\[1\]\.listen: expected every server on "127\.0\.0\.1:0" to have "tls" or none, but servers\[0\] has it and servers\[1\] does not/);
  });

  it('warns (exit 0) about an expired certificate and one that covers none of the names; certs takes several pairs', async () => {
    const expired = makeCert(dir.path, ca, 'expired', ['good.test'], { expired: true });
    const result = await check({ tls: { certs: [{ cert: expired.cert, key: expired.key }, { cert: other.cert, key: other.key }] } });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /portico: warning: servers\[0\]\.tls\.certs\[0\]\.cert: the certificate expired on /);
    assert.match(result.stderr, /portico: warning: servers\[0\]\.tls\.certs\[1\]\.cert: the certificate \(DNS:other\.test\) covers none of the server's names \(good\.test\)/);
    const resolved = JSON.parse(result.stdout) as { servers: { tls: { certs: unknown[]; strictSni: boolean; hsts: null } }[] };
    assert.equal(resolved.servers[0]?.tls.certs.length, 2);
  });
});

describe('TLS session tickets are the node’s: a ticket from one edge worker resumes on another', () => {
  const dir = tempDir();
  after(() => dir.remove());

  /** One request on a fresh TLS connection (offering `session`): which worker answered, whether the session was resumed, and the ticket it got. */
  function pidOver(port: number, ca: string, session: Buffer | undefined): Promise<{ pid: string; reused: boolean; ticket: Buffer | undefined }> {
    return new Promise((resolve, reject) => {
      let ticket: Buffer | undefined;
      let body = '';
      const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(ca), ALPNProtocols: ['http/1.1'], ...(session ? { session } : {}) }, () => {
        socket.write('GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      });
      socket.on('session', (data: Buffer) => (ticket = data));
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (body += chunk));
      socket.on('end', () => resolve({ pid: body.split('\r\n\r\n')[1] ?? '', reused: socket.isSessionReused(), ticket }));
      socket.on('error', reject);
    });
  }

  it('with 2 edge workers, every resumption succeeds whichever worker takes the connection', async () => {
    const ca = makeCa(dir.path);
    const site = makeCert(dir.path, ca, 'site', ['localhost']);
    const port = await freePort();
    const portico = await startWithConfig(dir.path, { workers: 2, servers: [{ listen: `127.0.0.1:${port}`, names: ['localhost'], tls: { cert: site.cert, key: site.key }, routes: [{ respond: { status: 200, body: '$pid' } }] }] });
    try {
      const first = await pidOver(port, ca.cert, undefined);
      assert.ok(first.ticket, 'a session ticket was issued');
      const pids = new Set<string>([first.pid]);
      const notReused: string[] = [];
      for (let i = 0; i < 40 && pids.size < 2; i++) {
        const next = await pidOver(port, ca.cert, first.ticket);
        pids.add(next.pid);
        if (!next.reused) notReused.push(next.pid);
      }
      assert.equal(pids.size, 2, `connections reached ${pids.size} worker(s) in 40 tries`);
      assert.deepEqual(notReused, [], 'every connection resumed the first session');
    } finally {
      await portico.stop();
    }
  });
});

describe('cleartext h2c (http2: "h2c"): HTTP/2 with prior knowledge and HTTP/1.1 on one port', () => {
  const dir = tempDir();
  after(() => dir.remove());

  it('an h2 prior-knowledge client and pipelined HTTP/1.1 requests are both served; h2c with tls is refused', async () => {
    const port = await freePort();
    const portico = await startWithConfig(dir.path, { workers: 1, servers: [{ listen: `127.0.0.1:${port}`, http2: 'h2c', routes: [{ respond: { status: 200, body: '$scheme $request_uri\n' } }] }] });
    try {
      const session = h2connect(`http://127.0.0.1:${port}`);
      try {
        const answer = await h2get(session, '/over-h2c');
        assert.equal(answer.status, 200);
        assert.equal(answer.body.toString(), 'http /over-h2c\n');
      } finally {
        session.close();
      }
      const curlH2c = await curl(['--http2-prior-knowledge', '-w', ' %{http_version}', `http://127.0.0.1:${port}/curl`]);
      assert.equal(curlH2c.stdout, 'http /curl\n 2', curlH2c.stderr);
      // Two pipelined HTTP/1.1 requests in one write: the first bytes decide the protocol, and none are lost.
      const raw = await new Promise<string>((resolve, reject) => {
        const socket = plainConnect(port);
        let text = '';
        socket.setEncoding('utf8');
        socket.on('data', (chunk: string) => (text += chunk));
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
        socket.write('GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
      });
      assert.equal(raw.match(/HTTP\/1\.1 200 OK/g)?.length, 2, raw);
      assert.match(raw, /http \/one\n[\s\S]*http \/two\n/);
    } finally {
      await portico.stop();
    }
    const path = writeConfig(dir.path, { servers: [{ listen: '127.0.0.1:0', http2: 'h2c', tls: { cert: './x.crt', key: './x.key' } }] }, 'h2c-tls.json');
    const refused = await runCli(['check', '--config', path]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /servers\[0\]\.http2: expected only without "tls" \(over TLS, HTTP\/2 is negotiated by ALPN\)/);
  });
});

/** A plain TCP connection to a loopback port. */
function plainConnect(port: number): Socket {
  return netConnect({ host: '127.0.0.1', port });
}

describe('a stop sends HTTP/2 sessions GOAWAY and lets their streams finish', () => {
  const dir = tempDir();
  after(() => dir.remove());

  it('SIGTERM: the session gets GOAWAY, the stream in flight completes, no new stream starts, exit 0', async () => {
    const ca = makeCa(dir.path);
    const site = makeCert(dir.path, ca, 'site', ['localhost']);
    const slow = createServer((_req, res) => setTimeout(() => res.end('slow answer\n'), 1500)).listen(0, '127.0.0.1');
    await once(slow, 'listening');
    const port = await freePort();
    const portico = await startWithConfig(dir.path, { workers: 1, servers: [{ listen: `127.0.0.1:${port}`, names: ['localhost'], tls: { cert: site.cert, key: site.key }, routes: [{ proxy: { to: `http://127.0.0.1:${(slow.address() as { port: number }).port}` } }] }] });
    const session = h2connect(`https://localhost:${port}`, { ca: readFileSync(ca.cert) });
    session.on('error', () => {});
    try {
      let goaway = false;
      session.on('goaway', () => (goaway = true));
      const inFlight = h2get(session, '/slow');
      // Settled here too, so a failure below reports itself rather than this stream's cancellation.
      inFlight.catch(() => {});
      await new Promise((resolve) => setTimeout(resolve, 300));
      const exited = once(portico.child, 'exit');
      process.kill(portico.pid, 'SIGTERM');
      for (let i = 0; i < 250 && !goaway; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.ok(goaway, 'the session received GOAWAY');
      const answer = await inFlight;
      assert.equal(answer.status, 200);
      assert.equal(answer.body.toString(), 'slow answer\n');
      // A stream opened after the GOAWAY is never answered: node refuses it at once (20) or
      // errors it when the session ends (24, 26).
      const late = new Promise<string>((resolve) => {
        try {
          const stream = session.request({ ':path': '/' });
          stream.on('response', () => resolve('answered'));
          stream.on('error', (error: NodeJS.ErrnoException) => resolve(`refused (${error.code})`));
          stream.on('close', () => resolve('closed unanswered'));
        } catch (error) {
          resolve(`refused (${(error as NodeJS.ErrnoException).code})`);
        }
      });
      const [code] = (await exited) as [number | null];
      assert.equal(code, 0);
      const outcome = await Promise.race([late, new Promise<string>((resolve) => setTimeout(() => resolve('no answer'), 3000))]);
      assert.notEqual(outcome, 'answered', 'no new stream after GOAWAY');
    } finally {
      session.destroy();
      slow.close();
      await portico.stop();
    }
  });
});
