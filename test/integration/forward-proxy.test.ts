/**
 * The forward proxy with real clients and servers on loopback: curl -x (http:// and CONNECT to a
 * local HTTPS site with an openssl-made certificate), raw requests and tunnels, the ACLs (client
 * addresses, CONNECT ports, destinations and names resolving into denied ranges, with the
 * destination server recording that nothing reached it), proxy authentication, tunnel
 * half-close, idle timeout and cap, access-log lines, and the forward section inside
 * `portico up`. The built `bin/portico` runs as a child process; nothing is mocked.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { freePort, rawRequest, runCli, statusOf, tempDir, writeConfig } from '../helpers/portico.js';
import {
  curl,
  digestAfterEnd,
  echo,
  eventually,
  openTunnel,
  readToEnd,
  selfSignedCert,
  startForward,
  startForwardConfig,
  startHttpsSite,
  startTcpServer,
  type RunningForward,
  type TcpServer,
} from '../helpers/forward.js';
import { echoHandler, startNodeUpstream, type EchoedRequest, type NodeUpstream } from '../helpers/upstreams.js';

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

describe('forward proxy: curl -x, http:// and CONNECT', () => {
  const dir = tempDir();
  let site: NodeUpstream;
  let https: Awaited<ReturnType<typeof startHttpsSite>>;
  let certPath: string;
  let proxy: RunningForward;
  let sink: TcpServer;
  before(async () => {
    site = await startNodeUpstream((req, res) => {
      if (req.url === '/hello.txt') {
        res.writeHead(200, { 'content-type': 'text/plain', via: '1.0 origin-cache' });
        res.end('hello through the proxy\n');
      } else echoHandler()(req, res);
    });
    const tls = await selfSignedCert(dir.path);
    certPath = tls.certPath;
    https = await startHttpsSite(tls, (req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`secret page ${req.url}\n`);
    });
    sink = await startTcpServer(digestAfterEnd);
    proxy = await startForward(['--port', '0', '--allow-dest', '127.0.0.1', '--connect-port', String(https.port), '--connect-port', String(sink.port)]);
  });
  after(async () => {
    await proxy?.stop();
    await site?.close();
    await https?.close();
    await sink?.close();
    dir.remove();
  });

  it('forwards an http:// request (curl -x): 200, the body, Via both ways', async () => {
    const result = await curl(['-x', proxy.url, '-D', '-', `${site.url}/hello.txt`]);
    assert.equal(result.status, 200, result.stderr);
    assert.match(result.body, /hello through the proxy\n$/);
    // RFC 9110 §7.6.3: the proxy appends itself to the response's Via.
    assert.match(result.body, /^via: 1\.0 origin-cache, 1\.1 portico\r$/im);
  });

  it('tunnels to an HTTPS site with CONNECT (curl -x, --cacert): 200 and the body', async () => {
    const result = await curl(['-x', proxy.url, '--cacert', certPath, `https://127.0.0.1:${https.port}/inside`]);
    assert.equal(result.status, 200, result.stderr);
    assert.equal(result.body, 'secret page /inside\n');
    await eventually(() => proxy.logLines(`CONNECT 127.0.0.1:${https.port}`).length > 0, 5000, 'CONNECT access-log line');
    const line = proxy.logLines(`CONNECT 127.0.0.1:${https.port}`)[0] as string;
    // The tunnel's line: status 200, the destination, bytes each way (a TLS handshake both ways) and the duration.
    const fields = /" 200 (\d+) .* dest=127\.0\.0\.1:(\d+) up=(\d+) down=(\d+) ms=(\d+)$/.exec(line);
    assert.ok(fields, line);
    assert.equal(Number(fields[2]), https.port);
    assert.ok(Number(fields[3]) > 200 && Number(fields[4]) > 200, line);
    assert.equal(fields[1], fields[4]);
  });

  it('rewrites the request for the origin: hop-by-hop and proxy fields removed, Host from the URL, Via added', async () => {
    const raw = await rawRequest(
      proxy.port,
      `GET ${site.url}/echo?q=1 HTTP/1.1\r\nHost: wrong.example\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic dTpw\r\nConnection: close, X-Drop\r\nX-Drop: 1\r\nKeep-Alive: timeout=5\r\nX-Keep: yes\r\nVia: 1.0 client-side\r\n\r\n`,
    );
    assert.equal(statusOf(raw), 200, raw.toString());
    const echoed = JSON.parse(raw.toString('utf8').slice(raw.indexOf('\r\n\r\n') + 4)) as EchoedRequest;
    assert.equal(echoed.url, '/echo?q=1');
    const names = echoed.rawHeaders.map(([name]) => name.toLowerCase());
    for (const gone of ['proxy-connection', 'proxy-authorization', 'x-drop', 'keep-alive']) assert.ok(!names.includes(gone), `${gone} was forwarded`);
    assert.equal(echoed.headers.host, `127.0.0.1:${site.port}`);
    assert.equal(echoed.headers['x-keep'], 'yes');
    assert.equal(echoed.headers.via, '1.0 client-side, 1.1 portico');
    assert.equal(echoed.headers['x-forwarded-for'], undefined);
  });

  it('Max-Forwards: OPTIONS counts it down, at 0 the proxy answers; TRACE is refused', async () => {
    const options = await rawRequest(proxy.port, `OPTIONS ${site.url}/echo HTTP/1.1\r\nHost: x\r\nMax-Forwards: 3\r\nConnection: close\r\n\r\n`);
    assert.equal(statusOf(options), 200);
    const echoed = JSON.parse(options.toString('utf8').slice(options.indexOf('\r\n\r\n') + 4)) as EchoedRequest;
    assert.equal(echoed.headers['max-forwards'], '2');
    const before = site.connections();
    const last = (await rawRequest(proxy.port, `OPTIONS ${site.url}/echo HTTP/1.1\r\nHost: x\r\nMax-Forwards: 0\r\nConnection: close\r\n\r\n`)).toString();
    assert.equal(statusOf(last), 200);
    assert.match(last, /\r\nAllow: /i);
    const trace = (await rawRequest(proxy.port, `TRACE ${site.url}/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)).toString();
    assert.equal(statusOf(trace), 405);
    assert.equal(site.connections(), before);
    const get = await rawRequest(proxy.port, `GET ${site.url}/echo HTTP/1.1\r\nHost: x\r\nMax-Forwards: 5\r\nConnection: close\r\n\r\n`);
    assert.equal((JSON.parse(get.toString('utf8').slice(get.indexOf('\r\n\r\n') + 4)) as EchoedRequest).headers['max-forwards'], '5');
  });

  it('keeps one connection to the origin for sequential requests (keep-alive pool)', async () => {
    const before = site.connections();
    for (let i = 0; i < 5; i++) assert.equal((await curl(['-x', proxy.url, `${site.url}/hello.txt`])).status, 200);
    assert.ok(site.connections() - before <= 1, `${site.connections() - before} new origin connections for 5 requests`);
  });

  it('streams a request body to the origin and counts it in the access log', async () => {
    const body = randomBytes(256 * 1024);
    const file = join(dir.path, 'body.bin');
    writeFileSync(file, body);
    const result = await curl(['-x', proxy.url, '--data-binary', `@${file}`, '-H', 'content-type: application/octet-stream', `${site.url}/upload`]);
    assert.equal(result.status, 200, result.stderr);
    const echoed = JSON.parse(result.body) as EchoedRequest;
    assert.equal(echoed.bodyLength, body.length);
    assert.equal(sha256(Buffer.from(echoed.body, 'latin1')), sha256(body));
    await eventually(() => proxy.logLines(`POST ${site.url}/upload`).length > 0, 5000, 'POST access-log line');
    assert.match(proxy.logLines(`POST ${site.url}/upload`)[0] as string, new RegExp(` up=${body.length} `));
  });

  it('answers an origin-form request with 400 and says why', async () => {
    const raw = (await rawRequest(proxy.port, 'GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')).toString();
    assert.equal(statusOf(raw), 400);
    assert.match(raw, /absolute URL/);
  });

  it('refuses https:// in absolute form (that is what CONNECT is for)', async () => {
    const raw = (await rawRequest(proxy.port, `GET https://127.0.0.1:${https.port}/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`)).toString();
    assert.equal(statusOf(raw), 400);
  });

  it('a tunnel passes half-closes: the client ends its side and still gets the answer', async () => {
    const tunnel = await openTunnel(proxy.port, `127.0.0.1:${sink.port}`);
    assert.equal(tunnel.status, 200, tunnel.head);
    assert.match(tunnel.head, /^HTTP\/1\.1 200 [^\r]*\r\n\r\n$/);
    const data = randomBytes(300 * 1024);
    tunnel.socket.end(data);
    const answer = (await readToEnd(tunnel.socket, 10_000, tunnel.rest)).toString();
    assert.equal(answer, `${data.length} ${sha256(data)}\n`);
  });

  it('502 when the destination refuses the connection', async () => {
    const closed = await startTcpServer(() => {});
    const port = closed.port;
    await closed.close();
    const result = await curl(['-x', proxy.url, `http://127.0.0.1:${port}/`]);
    assert.equal(result.status, 502);
    assert.match(result.body, /ECONNREFUSED/);
  });

  it('refuses a request to the proxy itself (a loop) with 403', async () => {
    const result = await curl(['-x', proxy.url, `http://127.0.0.1:${proxy.port}/`]);
    assert.equal(result.status, 403);
    assert.match(result.body, /this proxy/);
  });
});

describe('forward proxy: denials reach nothing', () => {
  let proxy: RunningForward;
  let guarded: TcpServer;
  let guardedOther: TcpServer;
  before(async () => {
    // Destinations that must never see a connection: on 127.0.0.1 (loopback, denied by default)
    // and on 127.0.0.3 (denied explicitly although 127.0.0.0/8 is allowed).
    guarded = await startTcpServer(echo);
    guardedOther = await startTcpServer(echo, '127.0.0.3');
    proxy = await startForward(['--port', '0', '--allow-dest', '127.0.0.3', '--deny-dest', '127.0.0.3', '--connect-port', String(guarded.port), '--connect-port', String(guardedOther.port)]);
  });
  after(async () => {
    await proxy?.stop();
    await guarded?.close();
    await guardedOther?.close();
  });

  it('a loopback destination (denied by default): 403 for http:// and CONNECT, with the reason', async () => {
    const http = await curl(['-x', proxy.url, `http://127.0.0.1:${guarded.port}/`]);
    assert.equal(http.status, 403);
    assert.match(http.body, /^403 Forbidden: destination 127\.0\.0\.1 is in a denied range \(loopback\)/);
    const tunnel = await openTunnel(proxy.port, `127.0.0.1:${guarded.port}`);
    assert.equal(tunnel.status, 403);
    tunnel.socket.destroy();
  });

  it('a name that resolves to a denied range (localhost): 403', async () => {
    const http = await curl(['-x', proxy.url, `http://localhost:${guarded.port}/`]);
    assert.equal(http.status, 403);
    assert.match(http.body, /localhost resolves to a refused address/);
    const tunnel = await openTunnel(proxy.port, `localhost:${guarded.port}`);
    assert.equal(tunnel.status, 403);
    tunnel.socket.destroy();
  });

  it('numeric spellings of a loopback address are refused too', async () => {
    for (const host of ['2130706433', '0x7f000001', '127.1', '[::ffff:127.0.0.1]', '0.0.0.0']) {
      const raw = (await rawRequest(proxy.port, `GET http://${host}:${guarded.port}/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)).toString();
      assert.equal(statusOf(raw), 403, `${host}: ${raw}`);
    }
    const tunnel = await openTunnel(proxy.port, `2130706433:${guarded.port}`);
    assert.equal(tunnel.status, 403, tunnel.head);
    tunnel.socket.destroy();
  });

  it('denyDest wins over allowDest: 403', async () => {
    const http = await curl(['-x', proxy.url, `http://127.0.0.3:${guardedOther.port}/`]);
    assert.equal(http.status, 403);
    assert.match(http.body, /destination 127\.0\.0\.3 is denied/);
  });

  it('CONNECT to port 25 (not an allowed CONNECT port): 403', async () => {
    const tunnel = await openTunnel(proxy.port, 'mail.example.com:25');
    assert.equal(tunnel.status, 403);
    const body = await readToEnd(tunnel.socket, 5000, tunnel.rest);
    assert.match(body.toString(), /CONNECT to port 25 is not allowed/);
  });

  it('http:// to a port outside the HTTP ports (25): 403', async () => {
    const raw = (await rawRequest(proxy.port, 'GET http://mail.example.com:25/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).toString();
    assert.equal(statusOf(raw), 403);
    assert.match(raw, /port 25 is not allowed/);
  });

  it('cloud metadata (169.254.169.254, fd00:ec2::254): 403 without a connection attempt', async () => {
    for (const url of ['http://169.254.169.254/latest/meta-data/', 'http://[fd00:ec2::254]/latest/meta-data/']) {
      const result = await curl(['-x', proxy.url, url]);
      assert.equal(result.status, 403, url);
      assert.match(result.body, /cloud metadata/);
    }
  });

  it('the guarded destinations received no connection at all', () => {
    assert.equal(guarded.connections(), 0);
    assert.equal(guardedOther.connections(), 0);
  });

  it('every refusal has an access-log line with its status', () => {
    assert.ok(proxy.logLines(`"CONNECT 127.0.0.1:${guarded.port} HTTP/1.1" 403`).length >= 1, proxy.out());
    assert.ok(proxy.logLines('"CONNECT mail.example.com:25 HTTP/1.1" 403').length === 1, proxy.out());
  });
});

describe('forward proxy: client allow list', () => {
  let proxy: RunningForward;
  let site: NodeUpstream;
  before(async () => {
    site = await startNodeUpstream(echoHandler());
    // Listening on 127.0.0.1 only, serving only 127.0.0.2: a connection from 127.0.0.1 is outside the list.
    proxy = await startForward(['--port', '0', '--allow', '127.0.0.2/32', '--allow-dest', '127.0.0.1']);
  });
  after(async () => {
    await proxy?.stop();
    await site?.close();
  });

  it('a client outside the allow list gets 403 and the destination sees nothing', async () => {
    const before = site.connections();
    const http = await curl(['-x', proxy.url, `${site.url}/`]);
    assert.equal(http.status, 403);
    assert.match(http.body, /client 127\.0\.0\.1 may not use this proxy/);
    const tunnel = await openTunnel(proxy.port, `127.0.0.1:${site.port}`);
    assert.equal(tunnel.status, 403);
    tunnel.socket.destroy();
    assert.equal(site.connections(), before);
  });

  it('an allowed client (from 127.0.0.2) is served', async () => {
    const result = await curl(['--interface', '127.0.0.2', '-x', proxy.url, `${site.url}/from-2`]);
    assert.equal(result.status, 200, result.stderr);
    assert.equal((JSON.parse(result.body) as EchoedRequest).url, '/from-2');
  });
});

describe('forward proxy: authentication (Basic, htpasswd)', () => {
  const dir = tempDir();
  let proxy: RunningForward;
  let site: NodeUpstream;
  before(async () => {
    site = await startNodeUpstream(echoHandler());
    const htpasswd = join(dir.path, 'users.htpasswd');
    writeFileSync(htpasswd, `alice:${bcrypt.hashSync('wonder land', 5)}\nbob:{SHA}${createHash('sha1').update('builder').digest('base64')}\n`);
    proxy = await startForward(['--port', '0', '--allow-dest', '127.0.0.1', '--connect-port', String(site.port), '--htpasswd', htpasswd, '--realm', 'test proxy']);
  });
  after(async () => {
    await proxy?.stop();
    await site?.close();
    dir.remove();
  });

  it('no credentials: 407 with Proxy-Authenticate, for http:// and CONNECT', async () => {
    const raw = (await rawRequest(proxy.port, `GET ${site.url}/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)).toString();
    assert.equal(statusOf(raw), 407);
    assert.match(raw, /\r\nProxy-Authenticate: Basic realm="test proxy", charset="UTF-8"\r\n/i);
    const tunnel = await openTunnel(proxy.port, `127.0.0.1:${site.port}`);
    assert.equal(tunnel.status, 407);
    assert.match(tunnel.head, /Proxy-Authenticate: Basic realm="test proxy"/i);
    tunnel.socket.destroy();
  });

  it('wrong password, unknown user, another scheme: 407', async () => {
    for (const credentials of ['alice:wrong', 'mallory:wonder land', 'alice:']) {
      const result = await curl(['-x', proxy.url, '-U', credentials, `${site.url}/`]);
      assert.equal(result.status, 407, credentials);
    }
    const b64 = (text: string) => Buffer.from(text).toString('base64');
    for (const value of ['Bearer abc', `Basic ${b64('alice')}`, `Basic ${b64('alice:wonder land')}!`, `Digest ${b64('alice:wonder land')}`]) {
      const raw = (await rawRequest(proxy.port, `GET ${site.url}/ HTTP/1.1\r\nHost: x\r\nProxy-Authorization: ${value}\r\nConnection: close\r\n\r\n`)).toString();
      assert.equal(statusOf(raw), 407, value);
    }
  });

  it('right credentials (bcrypt and {SHA} users): served; the origin never sees them; the user is logged', async () => {
    const result = await curl(['-x', proxy.url, '-U', 'alice:wonder land', `${site.url}/who`]);
    assert.equal(result.status, 200, result.body);
    const echoed = JSON.parse(result.body) as EchoedRequest;
    assert.equal(echoed.headers['proxy-authorization'], undefined);
    assert.equal((await curl(['-x', proxy.url, '-U', 'bob:builder', `${site.url}/who`])).status, 200);
    await eventually(() => proxy.logLines(' - alice [').length > 0, 5000, 'a line with the user');
    const tunnel = await openTunnel(proxy.port, `127.0.0.1:${site.port}`, { headers: { 'Proxy-Authorization': `Basic ${Buffer.from('bob:builder').toString('base64')}` } });
    assert.equal(tunnel.status, 200, tunnel.head);
    tunnel.socket.destroy();
  });
});

describe('forward proxy in `portico up`: with servers, idle timeout, tunnel cap', () => {
  const dir = tempDir();
  let proxy: RunningForward;
  let serverPort: number;
  let echoServer: TcpServer;
  before(async () => {
    echoServer = await startTcpServer(echo);
    serverPort = await freePort();
    proxy = await startForwardConfig(dir.path, {
      // One edge process: maxTunnels is a cap per process, and this test counts against it.
      workers: 1,
      servers: [{ listen: `127.0.0.1:${serverPort}`, routes: [{ respond: { body: 'from the virtual server\n' } }] }],
      forward: { listen: '127.0.0.1:0', allowDest: ['127.0.0.1'], connectPorts: [echoServer.port], idleTimeout: '600ms', maxTunnels: 2 },
    });
  });
  after(async () => {
    await proxy?.stop();
    await echoServer?.close();
    dir.remove();
  });

  it('serves the virtual server and the forward proxy side by side (and forwards to it)', async () => {
    const direct = await curl([`http://127.0.0.1:${serverPort}/`]);
    assert.equal(direct.body, 'from the virtual server\n');
    const through = await curl(['-x', proxy.url, `http://127.0.0.1:${serverPort}/`]);
    assert.equal(through.status, 200);
    assert.equal(through.body, 'from the virtual server\n');
    // The virtual server's listener is not a proxy: CONNECT there is still 501.
    assert.equal(statusOf(await rawRequest(serverPort, `CONNECT 127.0.0.1:${echoServer.port} HTTP/1.1\r\nHost: x\r\n\r\n`)), 501);
  });

  it('a silent tunnel is closed after idleTimeout; a busy one is not', async () => {
    // Measured from before the CONNECT: the proxy's idle timer starts later, when the tunnel opens.
    const started = Date.now();
    const idle = await openTunnel(proxy.port, `127.0.0.1:${echoServer.port}`);
    assert.equal(idle.status, 200);
    const busy = await openTunnel(proxy.port, `127.0.0.1:${echoServer.port}`);
    assert.equal(busy.status, 200);
    busy.socket.resume();
    const ticker = setInterval(() => busy.socket.write('tick'), 150);
    try {
      await readToEnd(idle.socket, 10_000, idle.rest);
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 590, `closed after ${elapsed} ms`);
      assert.ok(!busy.socket.destroyed && !busy.socket.readableEnded, 'the busy tunnel was closed');
    } finally {
      clearInterval(ticker);
      busy.socket.destroy();
      idle.socket.destroy();
    }
  });

  it('over maxTunnels: 503; once one closes, a new tunnel opens', async () => {
    await eventually(() => proxy.logLines(`CONNECT 127.0.0.1:${echoServer.port}`).length >= 2, 5000, 'the earlier tunnels closed');
    const first = await openTunnel(proxy.port, `127.0.0.1:${echoServer.port}`);
    const second = await openTunnel(proxy.port, `127.0.0.1:${echoServer.port}`);
    assert.deepEqual([first.status, second.status], [200, 200]);
    const third = await openTunnel(proxy.port, `127.0.0.1:${echoServer.port}`);
    assert.equal(third.status, 503);
    assert.match(third.head, /Retry-After: 1/i);
    third.socket.destroy();
    first.socket.destroy();
    let fourth = await openTunnel(proxy.port, `127.0.0.1:${echoServer.port}`);
    // The proxy sees the close of `first` a moment later: try again briefly (bounded).
    for (let i = 0; i < 40 && fourth.status === 503; i++) {
      fourth.socket.destroy();
      await new Promise((resolve) => setTimeout(resolve, 50));
      fourth = await openTunnel(proxy.port, `127.0.0.1:${echoServer.port}`);
    }
    assert.equal(fourth.status, 200);
    fourth.socket.destroy();
    second.socket.destroy();
  });
});

describe('forward proxy on 2 edge workers (node:cluster, shared listening socket)', () => {
  const dir = tempDir();
  let proxy: RunningForward;
  let site: NodeUpstream;
  before(async () => {
    site = await startNodeUpstream(echoHandler());
    proxy = await startForwardConfig(dir.path, { workers: 2, forward: { listen: '127.0.0.1:0', allowDest: ['127.0.0.1'], connectPorts: [site.port] } });
  });
  after(async () => {
    await proxy?.stop();
    await site?.close();
    dir.remove();
  });

  it('serves http:// and CONNECT from every worker, with the same ACLs', async () => {
    assert.match(proxy.out(), /edge workers 2/);
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => curl(['-x', proxy.url, `${site.url}/w${i}`])));
    assert.deepEqual(
      results.map((r) => r.status),
      results.map(() => 200),
    );
    assert.equal((await curl(['-x', proxy.url, 'http://169.254.169.254/'])).status, 403);
    const tunnel = await openTunnel(proxy.port, `127.0.0.1:${site.port}`);
    assert.equal(tunnel.status, 200);
    tunnel.socket.destroy();
  });
});

describe('forward proxy config', () => {
  const dir = tempDir();
  after(() => dir.remove());

  it('bad forward settings are refused with their field paths', async () => {
    const path = writeConfig(dir.path, {
      forward: { listen: 'unix:/tmp/x.sock', allow: ['10.0.0.0/33'], allowDest: ['bad host!'], connectPorts: [0, '9-1'], auth: { htpasswd: './missing' }, tunnels: 3 },
    });
    const result = await runCli(['check', '--config', path]);
    assert.equal(result.code, 2);
    for (const field of ['forward.listen', 'forward.allow[0]', 'forward.allowDest[0]', 'forward.connectPorts[0]', 'forward.connectPorts[1]', 'forward.tunnels: unknown key']) assert.match(result.stderr, new RegExp(field.replace(/[[\].]/g, '\\$&')), result.stderr);
  });

  it('a config with only `forward` is valid and resolves its defaults', async () => {
    const path = writeConfig(dir.path, { forward: {} }, 'only-forward.json');
    const result = await runCli(['check', '--config', path]);
    assert.equal(result.code, 0, result.stderr);
    const forward = (JSON.parse(result.stdout) as { forward: Record<string, unknown> }).forward;
    assert.deepEqual(forward.allow, ['127.0.0.0/8', '::1']);
    assert.deepEqual(forward.connectPorts, [[443, 443]]);
    assert.deepEqual(forward.listen, [{ kind: 'tcp', host: '127.0.0.1', port: 3128 }]);
  });

  it('a config with neither servers nor forward says servers is required', async () => {
    const path = writeConfig(dir.path, { http: {} }, 'empty.json');
    const result = await runCli(['check', '--config', path]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /servers: is required/);
  });

  it('portico forward refuses a bad flag value naming the flag', async () => {
    const result = await runCli(['forward', '--port', '0', '--allow', 'not-an-address']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--allow/);
  });

  it('a virtual server and the forward proxy cannot share a listen address', async () => {
    const port = await freePort();
    const path = writeConfig(dir.path, { servers: [{ listen: `127.0.0.1:${port}` }], forward: { listen: `127.0.0.1:${port}` } }, 'clash.json');
    const result = await runCli(['check', '--config', path]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /forward\.listen: .*servers\[0\]\.listen/);
  });
});
