/**
 * The reverse proxy against real node:http upstreams on loopback: methods and bodies (streamed
 * both ways, at flat memory), the headers the upstream sees and the client gets, path mapping,
 * timeouts and failures, Expect: 100-continue, upstream keep-alive, and the `portico proxy` CLI.
 * The built `bin/portico` runs as a child process; nothing is mocked.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { Agent, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { freePort, request, startPortico, startWithConfig, tempDir, type RunningPortico, type SimpleResponse } from '../helpers/portico.js';
import {
  echoHandler,
  headerValues,
  MiB,
  rawHeader,
  rawHttp,
  refusedPort,
  rssBytes,
  sampleRss,
  startHungUpstream,
  startNodeUpstream,
  type EchoedRequest,
  type HungUpstream,
  type NodeUpstream,
} from '../helpers/upstreams.js';

/** Starts portico on `makeConfig(listen)` for one describe block; stops it (by PID) after. */
function serve(makeConfig: (listen: string) => unknown | Promise<unknown>): { readonly portico: RunningPortico } {
  const dir = tempDir();
  let portico: RunningPortico | undefined;
  before(async () => {
    portico = await startWithConfig(dir.path, await makeConfig(`127.0.0.1:${await freePort()}`));
  });
  after(async () => {
    await portico?.stop();
    dir.remove();
  });
  return {
    get portico() {
      if (!portico) throw new Error('portico not started');
      return portico;
    },
  };
}

function echoed(response: SimpleResponse): EchoedRequest {
  assert.equal(response.status, 200, `status from the echo upstream, body ${JSON.stringify(response.text.slice(0, 300))}`);
  return JSON.parse(response.text) as EchoedRequest;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A deferred promise: the upstream waits on it, the test resolves it. */
function signal(): { promise: Promise<void>; release(): void } {
  let release = () => {};
  const promise = new Promise<void>((resolve) => (release = resolve));
  return { promise, release };
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

/** The upstream of most tests: a few endpoints, echo for everything else. */
function appUpstream(state: { streamGate: ReturnType<typeof signal>; streamEnded: boolean }) {
  const echo = echoHandler();
  return (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    if (url.startsWith('/mirror')) {
      // The body back, byte for byte, with the Content-Length it came with.
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length, 'x-request-te': String(req.headers['transfer-encoding'] ?? ''), 'x-request-cl': String(req.headers['content-length'] ?? '') });
        res.end(body);
      });
      return;
    }
    if (url.startsWith('/head')) {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1234', 'x-method': req.method ?? '' });
      res.end(req.method === 'HEAD' ? undefined : 'x'.repeat(1234));
      return;
    }
    if (url.startsWith('/stream')) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first-chunk\n');
      void state.streamGate.promise.then(() => {
        state.streamEnded = true;
        res.end('last-chunk\n');
      });
      return;
    }
    if (url.startsWith('/identity')) {
      req.resume();
      res.writeHead(200, [
        'Server', 'upstream-server/9.9',
        'X-Powered-By', 'upstream-framework',
        'Set-Cookie', 'a=1; Path=/',
        'Set-Cookie', 'b=2; HttpOnly',
        'Set-Cookie', 'c=3; Secure',
        'Keep-Alive', 'timeout=1234, max=7',
        'Connection', 'keep-alive, x-upstream-secret',
        'X-Upstream-Secret', 'should-not-pass',
        'X-Visible', 'passes',
        'Content-Length', '2',
      ]);
      res.end('ok');
      return;
    }
    if (url.startsWith('/closing')) {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '6', connection: 'close' });
      res.end('closed');
      return;
    }
    echo(req, res);
  };
}

describe('proxy: methods, bodies, streaming', () => {
  const state = { streamGate: signal(), streamEnded: false };
  let upstream: NodeUpstream;
  before(async () => {
    upstream = await startNodeUpstream(appUpstream(state));
  });
  after(async () => {
    state.streamGate.release();
    await upstream?.close();
  });
  const s = serve((listen) => ({
    log: { access: false },
    upstreams: { app: { servers: [upstream.url] } },
    servers: [{ listen, routes: [{ prefix: '/', proxy: { to: 'app' } }] }],
  }));

  it('GET reaches the upstream with the method, URI and query as sent', async () => {
    const e = echoed(await request(`${s.portico.url}/echo/a?b=1&c=%20`));
    assert.equal(e.method, 'GET');
    assert.equal(e.url, '/echo/a?b=1&c=%20');
    assert.equal(e.remoteAddress, '127.0.0.1');
  });

  it('HEAD reaches the upstream as HEAD: headers (Content-Length) come back, no body', async () => {
    const res = await rawHttp(s.portico.port, 'HEAD /head HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n', '', 3_000);
    assert.equal(res.status, 200);
    assert.deepEqual(rawHeader(res, 'x-method'), ['HEAD']);
    assert.deepEqual(rawHeader(res, 'content-length'), ['1234']);
    assert.equal(res.body.length, 0, 'a HEAD response has no body');
    // And GET of the same resource has the body.
    const get = await request(`${s.portico.url}/head`);
    assert.equal(get.headers['x-method'], 'GET');
    assert.equal(get.body.length, 1234);
  });

  it('POST with Content-Length: the body arrives byte-identical and the echo comes back identical', async () => {
    const body = randomBytes(300_000);
    const res = await request(`${s.portico.url}/mirror`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-request-cl'], String(body.length), 'the upstream saw the Content-Length');
    assert.equal(res.body.length, body.length);
    assert.ok(res.body.equals(body), 'the echoed body is byte-identical');
  });

  it('a chunked upload (Transfer-Encoding: chunked from the client) arrives complete', async () => {
    const parts = Array.from({ length: 8 }, (_, i) => randomBytes(10_000 + i * 997));
    const whole = Buffer.concat(parts);
    const res = await new Promise<{ status: number; headers: IncomingMessage['headers']; body: Buffer }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: s.portico.port, method: 'POST', path: '/mirror', agent: false }, (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, headers: r.headers, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      let i = 0;
      const next = () => {
        const part = parts[i++];
        if (!part) return req.end();
        req.write(part);
        setTimeout(next, 20);
      };
      next();
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-request-te'], 'chunked', 'the upstream got a chunked body (the length was not known)');
    assert.equal(res.headers['x-request-cl'], '');
    assert.equal(sha256(res.body), sha256(whole), `the upstream got all ${whole.length} bytes in order`);
  });

  it('a raw chunked request (chunk extensions, several chunks) arrives complete', async () => {
    const head = 'POST /mirror HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n';
    const body = '5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n';
    const res = await rawHttp(s.portico.port, head, body, 3_000);
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'hello world');
  });

  it('a streaming response reaches the client before the upstream ends it', async () => {
    const firstChunk = signal();
    let firstText = '';
    let endedBeforeFirst: boolean | null = null;
    const whole = new Promise<string>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: s.portico.port, path: '/stream', agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (text === '') {
            firstText = chunk;
            endedBeforeFirst = state.streamEnded;
            firstChunk.release();
          }
          text += chunk;
        });
        res.on('end', () => resolve(text));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    await withTimeout(firstChunk.promise, 5_000, 'the first chunk of a response the upstream holds open (a buffering proxy never delivers it)');
    assert.equal(endedBeforeFirst, false, 'the upstream had not ended when the first chunk arrived');
    assert.match(firstText, /^first-chunk\n/);
    state.streamGate.release();
    assert.equal(await withTimeout(whole, 5_000, 'the rest of the stream'), 'first-chunk\nlast-chunk\n');
  });

  it('Expect: 100-continue: the client gets 100 Continue, sends the body, the upstream gets it', async () => {
    const body = randomBytes(50_000);
    const result = await withTimeout(
      new Promise<{ continued: boolean; status: number; body: Buffer }>((resolve, reject) => {
        let continued = false;
        const req = httpRequest({
          host: '127.0.0.1',
          port: s.portico.port,
          method: 'PUT',
          path: '/mirror',
          agent: false,
          headers: { expect: '100-continue', 'content-length': String(body.length) },
        });
        req.on('continue', () => {
          continued = true;
          req.end(body);
        });
        req.on('response', (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ continued, status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        });
        req.on('error', reject);
        req.flushHeaders();
      }),
      5_000,
      'an Expect: 100-continue upload',
    );
    assert.equal(result.continued, true, 'the client got 100 Continue before sending the body');
    assert.equal(result.status, 200);
    assert.ok(result.body.equals(body), 'the upstream got the body');
  });

  it('the upstream does not see the client Expect header (the proxy answered it)', async () => {
    const res = await rawHttp(s.portico.port, 'POST /echo HTTP/1.1\r\nHost: example.test\r\nExpect: 100-continue\r\nContent-Length: 4\r\nConnection: close\r\n\r\n', 'ping', 3_000);
    assert.deepEqual(res.interim, [100], 'one 100 Continue to the client');
    assert.equal(res.status, 200);
    const e = JSON.parse(res.body.toString()) as EchoedRequest;
    assert.deepEqual(headerValues(e, 'expect'), []);
    assert.equal(e.body, 'ping');
  });

  it('response headers: Server and X-Powered-By hidden, every Set-Cookie kept, hop-by-hop and Connection-listed ones dropped', async () => {
    const res = await rawHttp(s.portico.port, 'GET /identity HTTP/1.1\r\nHost: example.test\r\n\r\n', '', 3_000);
    assert.equal(res.status, 200);
    assert.deepEqual(rawHeader(res, 'server'), ['Portico'], "portico's own Server, not the upstream's");
    assert.deepEqual(rawHeader(res, 'x-powered-by'), []);
    assert.deepEqual(rawHeader(res, 'set-cookie'), ['a=1; Path=/', 'b=2; HttpOnly', 'c=3; Secure']);
    assert.deepEqual(rawHeader(res, 'x-upstream-secret'), [], 'a header the upstream listed in Connection is not passed');
    assert.deepEqual(rawHeader(res, 'x-visible'), ['passes']);
    for (const value of rawHeader(res, 'keep-alive')) assert.doesNotMatch(value, /1234|max=7/, "the upstream's Keep-Alive is not passed");
    for (const value of rawHeader(res, 'connection')) assert.doesNotMatch(value, /x-upstream-secret/i);
    assert.equal(res.body.toString(), 'ok');
  });

  it("the upstream's Connection: close does not close the client connection", async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const sockets = new Set<unknown>();
      for (let i = 0; i < 3; i++) {
        const res = await new Promise<IncomingMessage & { text?: string }>((resolve, reject) => {
          const req = httpRequest({ host: '127.0.0.1', port: s.portico.port, path: '/closing', agent }, (r) => {
            sockets.add(r.socket);
            let text = '';
            r.setEncoding('utf8');
            r.on('data', (c: string) => (text += c));
            r.on('end', () => resolve(Object.assign(r, { text })));
          });
          req.on('error', reject);
          req.end();
        });
        assert.equal(res.statusCode, 200);
        assert.equal(res.text, 'closed');
        assert.notEqual(res.headers.connection, 'close', "the upstream's Connection: close is not passed");
      }
      assert.equal(sockets.size, 1, 'the client kept one connection across the three requests');
    } finally {
      agent.destroy();
    }
  });
});

describe('proxy: request headers as the upstream sees them', () => {
  let upstream: NodeUpstream;
  before(async () => {
    upstream = await startNodeUpstream(echoHandler());
  });
  after(async () => {
    await upstream?.close();
  });
  const s = serve((listen) => ({
    log: { access: false },
    upstreams: { app: { servers: [upstream.url] } },
    servers: [
      {
        listen,
        routes: [
          { prefix: '/', proxy: { to: 'app' } },
          { prefix: '/fwd/', proxy: { to: 'app', forwarded: true, via: true } },
          { prefix: '/host-upstream/', proxy: { to: 'app', host: 'upstream' } },
          { prefix: '/host-fixed/', proxy: { to: 'app', host: 'backend.internal' } },
          { prefix: '/host-template/', proxy: { to: 'app', host: 'tpl-$host' } },
          { prefix: '/no-xf/', proxy: { to: 'app', xForwarded: false } },
          {
            prefix: '/ops/',
            proxy: { to: 'app', requestHeaders: { set: { 'X-Replace': 'new', 'X-Forwarded-Proto': 'https' }, add: { 'X-Added': 'added' }, remove: ['X-Remove-Me', 'X-Forwarded-Host'] } },
          },
          { exact: '/whoami', respond: { body: '$remote_addr' } },
        ],
      },
    ],
  }));

  async function raw(path: string, headerLines: string[]): Promise<EchoedRequest> {
    const res = await rawHttp(s.portico.port, `GET ${path} HTTP/1.1\r\n${headerLines.map((l) => `${l}\r\n`).join('')}\r\n`, '', 3_000);
    assert.equal(res.status, 200, `status, body ${res.body.toString().slice(0, 200)}`);
    return JSON.parse(res.body.toString()) as EchoedRequest;
  }

  it('hop-by-hop headers are removed: Connection, Keep-Alive, TE, Upgrade, Proxy-Connection and the names Connection lists', async () => {
    const e = await raw('/hop', [
      'Host: example.test',
      'Connection: keep-alive, X-Secret',
      'Keep-Alive: timeout=5, max=100',
      'TE: trailers',
      'Upgrade: h2c',
      'Proxy-Connection: keep-alive',
      'X-Secret: s3cr3t',
      'X-Visible: yes',
    ]);
    assert.deepEqual(headerValues(e, 'x-secret'), [], 'a header named in Connection is not forwarded');
    assert.deepEqual(headerValues(e, 'keep-alive'), []);
    assert.deepEqual(headerValues(e, 'te'), []);
    assert.deepEqual(headerValues(e, 'upgrade'), [], 'Upgrade on a request that is not an upgrade is not forwarded');
    assert.deepEqual(headerValues(e, 'proxy-connection'), []);
    // The proxy's own connection to the upstream may say keep-alive; the client's list must not appear.
    for (const value of headerValues(e, 'connection')) assert.doesNotMatch(value, /secret/i);
    assert.deepEqual(headerValues(e, 'x-visible'), ['yes'], 'end-to-end headers pass');
    assert.deepEqual(headerValues(e, 'host'), ['example.test'], 'one Host, the client one');
  });

  it('X-Forwarded-For is appended to the chain; X-Forwarded-Proto and X-Forwarded-Host are set', async () => {
    const e = await raw('/xff', ['Host: example.test:8080', 'X-Forwarded-For: 203.0.113.7, 198.51.100.2', 'X-Forwarded-Proto: gopher', 'X-Forwarded-Host: forged.example']);
    assert.deepEqual(headerValues(e, 'x-forwarded-for'), ['203.0.113.7, 198.51.100.2, 127.0.0.1']);
    assert.deepEqual(headerValues(e, 'x-forwarded-proto'), ['http'], "the client's X-Forwarded-Proto is replaced");
    assert.deepEqual(headerValues(e, 'x-forwarded-host'), ['example.test:8080'], "the client's X-Forwarded-Host is replaced");
    const fresh = await raw('/xff', ['Host: example.test']);
    assert.deepEqual(headerValues(fresh, 'x-forwarded-for'), ['127.0.0.1']);
  });

  it('xForwarded: false sends none of the X-Forwarded headers', async () => {
    const e = await raw('/no-xf/x', ['Host: example.test', 'X-Forwarded-For: 203.0.113.7']);
    assert.deepEqual(headerValues(e, 'x-forwarded-proto'), []);
    assert.deepEqual(headerValues(e, 'x-forwarded-host'), []);
    // Not adding is not the same as stripping: with xForwarded off the client's value is dropped too.
    assert.deepEqual(headerValues(e, 'x-forwarded-for'), []);
  });

  it('forwarded: true adds an RFC 7239 Forwarded element; via: true adds Via (appended to existing ones)', async () => {
    const e = await raw('/fwd/x', ['Host: example.test']);
    assert.deepEqual(headerValues(e, 'forwarded'), ['for=127.0.0.1;proto=http;host="example.test"']);
    assert.deepEqual(headerValues(e, 'via'), ['1.1 portico']);
    const chained = await raw('/fwd/x', ['Host: example.test', 'Forwarded: for=192.0.2.60;proto=https', 'Via: 1.0 fred']);
    assert.deepEqual(headerValues(chained, 'forwarded'), ['for=192.0.2.60;proto=https, for=127.0.0.1;proto=http;host="example.test"']);
    assert.deepEqual(headerValues(chained, 'via'), ['1.0 fred, 1.1 portico']);
    const plain = await raw('/x', ['Host: example.test']);
    assert.deepEqual(headerValues(plain, 'forwarded'), [], 'off by default');
    assert.deepEqual(headerValues(plain, 'via'), [], 'off by default');
  });

  it("Host: the client's by default, the server's host:port with host: 'upstream', a fixed name, a template", async () => {
    assert.deepEqual(headerValues(await raw('/x', ['Host: client.example']), 'host'), ['client.example']);
    assert.deepEqual(headerValues(await raw('/host-upstream/x', ['Host: client.example']), 'host'), [`127.0.0.1:${upstream.port}`]);
    assert.deepEqual(headerValues(await raw('/host-fixed/x', ['Host: client.example']), 'host'), ['backend.internal']);
    assert.deepEqual(headerValues(await raw('/host-template/x', ['Host: client.example']), 'host'), ['tpl-client.example']);
    const fixed = await raw('/host-fixed/x', ['Host: client.example']);
    assert.deepEqual(headerValues(fixed, 'x-forwarded-host'), ['client.example'], 'X-Forwarded-Host keeps the client Host');
  });

  it('HTTP/1.0 without Host: the upstream gets its own host:port as Host, never an empty one', async () => {
    const res = await rawHttp(s.portico.port, 'GET /old-client HTTP/1.0\r\n\r\n', '', 3_000);
    assert.equal(res.status, 200);
    const e = JSON.parse(res.body.toString()) as EchoedRequest;
    assert.deepEqual(headerValues(e, 'host'), [`127.0.0.1:${upstream.port}`]);
    assert.deepEqual(headerValues(e, 'x-forwarded-host'), [], 'no client Host to report');
  });

  it('an absolute-form target: its authority is the Host (RFC 9112 §3.2.2), not the Host header', async () => {
    const e = await raw('http://target.example:8443/abs?x=1', ['Host: header.example']);
    assert.equal(e.url, '/abs?x=1');
    assert.deepEqual(headerValues(e, 'host'), ['target.example:8443']);
    assert.deepEqual(headerValues(e, 'x-forwarded-host'), ['target.example:8443']);
  });

  it('requestHeaders: set replaces (client and proxy values alike), add appends, remove drops', async () => {
    const e = await raw('/ops/x', ['Host: example.test', 'X-Replace: old', 'X-Remove-Me: gone', 'X-Added: from-client', 'X-Keep: kept']);
    assert.deepEqual(headerValues(e, 'x-replace'), ['new'], 'set replaces the client value (not a second line)');
    assert.deepEqual(headerValues(e, 'x-forwarded-proto'), ['https'], 'set replaces a forwarding header the proxy adds');
    assert.deepEqual(headerValues(e, 'x-remove-me'), []);
    assert.deepEqual(headerValues(e, 'x-forwarded-host'), [], 'remove drops a forwarding header the proxy adds');
    assert.deepEqual(headerValues(e, 'x-added'), ['from-client', 'added']);
    assert.deepEqual(headerValues(e, 'x-keep'), ['kept']);
    assert.deepEqual(headerValues(e, 'x-forwarded-for'), ['127.0.0.1'], 'other forwarding headers stay');
  });

  it('without trustedProxies a forged X-Forwarded-For is not taken as the client', async () => {
    const who = await request(`${s.portico.url}/whoami`, { headers: { 'x-forwarded-for': '6.6.6.6' } });
    assert.equal(who.text, '127.0.0.1');
    const e = await raw('/x', ['Host: example.test', 'X-Forwarded-For: 6.6.6.6']);
    assert.deepEqual(headerValues(e, 'x-forwarded-for'), ['6.6.6.6, 127.0.0.1'], 'the peer is appended, the forged hop stays a claim');
  });
});

describe('proxy: trusted proxies (real client IP)', () => {
  let upstream: NodeUpstream;
  before(async () => {
    upstream = await startNodeUpstream(echoHandler());
  });
  after(async () => {
    await upstream?.close();
  });
  const s = serve((listen) => ({
    log: { access: false },
    http: { trustedProxies: ['127.0.0.1', '10.0.0.0/8'] },
    upstreams: { app: { servers: [upstream.url] } },
    servers: [{ listen, routes: [{ prefix: '/', proxy: { to: 'app', forwarded: true } }, { exact: '/whoami', respond: { body: '$remote_addr' } }] }],
  }));

  it("$remote_addr is X-Forwarded-For's last untrusted hop when the peer is trusted", async () => {
    const cases: [string, string][] = [
      ['203.0.113.7', '203.0.113.7'],
      ['203.0.113.7, 198.51.100.9', '198.51.100.9'],
      ['203.0.113.7, 198.51.100.9, 10.1.2.3', '198.51.100.9'],
      ['203.0.113.7, 10.1.2.3, 127.0.0.1', '203.0.113.7'],
    ];
    for (const [xff, client] of cases) {
      const who = await request(`${s.portico.url}/whoami`, { headers: { 'x-forwarded-for': xff } });
      assert.equal(who.text, client, `X-Forwarded-For: ${xff}`);
    }
    const none = await request(`${s.portico.url}/whoami`);
    assert.equal(none.text, '127.0.0.1', 'no X-Forwarded-For: the peer');
  });

  it('the upstream sees the chain with the real client appended, and Forwarded for= the real client', async () => {
    const res = await rawHttp(s.portico.port, 'GET /x HTTP/1.1\r\nHost: example.test\r\nX-Forwarded-For: 203.0.113.7, 198.51.100.9, 10.1.2.3\r\nConnection: close\r\n\r\n', '', 3_000);
    const e = JSON.parse(res.body.toString()) as EchoedRequest;
    const chain = headerValues(e, 'x-forwarded-for');
    assert.equal(chain.length, 1);
    const hops = (chain[0] as string).split(',').map((h) => h.trim());
    assert.deepEqual(hops.slice(0, 3), ['203.0.113.7', '198.51.100.9', '10.1.2.3'], 'the received chain is kept, in order');
    // nginx $proxy_add_x_forwarded_for: the chain plus $remote_addr (the real client after realip).
    assert.equal(hops.at(-1), '198.51.100.9', 'the appended hop is the real client address');
    assert.deepEqual(headerValues(e, 'forwarded'), ['for=198.51.100.9;proto=http;host="example.test"']);
  });
});

describe('proxy: the URI sent upstream', () => {
  let upstream: NodeUpstream;
  before(async () => {
    upstream = await startNodeUpstream(echoHandler());
  });
  after(async () => {
    await upstream?.close();
  });
  const s = serve((listen) => ({
    log: { access: false },
    upstreams: { app: { servers: [upstream.url] } },
    servers: [
      {
        listen,
        routes: [
          { prefix: '/', proxy: { to: 'app' } },
          { prefix: '/api/', proxy: { to: `${upstream.url}/v2/` } },
          { prefix: '/api2/', rewrite: [{ from: '^/api2/(.*)$', to: '/internal/$1', flag: 'break' }], proxy: { to: `${upstream.url}/v2/` } },
          { prefix: '/api3/', rewrite: [{ from: '^/api3/old/(.*)$', to: '/api3/new/$1', flag: 'break' }], proxy: { to: `${upstream.url}/v3/` } },
          { prefix: '/old/', rewrite: [{ from: '^/old/(.*)$', to: '/new/$1', flag: 'break' }], proxy: { to: 'app' } },
          { prefix: '/moved/', rewrite: [{ from: '^/moved/(.*)$', to: '/landed/$1', flag: 'last' }] },
          { prefix: '/landed/', proxy: { to: 'app' } },
        ],
      },
    ],
  }));

  async function sentPath(path: string): Promise<string> {
    const res = await rawHttp(s.portico.port, `GET ${path} HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n`, '', 3_000);
    assert.equal(res.status, 200, `GET ${path}: ${res.body.toString().slice(0, 200)}`);
    return (JSON.parse(res.body.toString()) as EchoedRequest).url;
  }

  it("a target with a path replaces the route's prefix: /api/x?q=1 → /v2/x?q=1", async () => {
    assert.equal(await sentPath('/api/x?q=1'), '/v2/x?q=1');
    assert.equal(await sentPath('/api/'), '/v2/');
    assert.equal(await sentPath('/api/deep/er/path'), '/v2/deep/er/path');
  });

  it('with a path, characters that would change the URI stay encoded (%3F, %23, %25)', async () => {
    assert.equal(await sentPath('/api/a%3Fb?q=1'), '/v2/a%3Fb?q=1', 'an encoded "?" must not become the query');
    assert.equal(await sentPath('/api/a%23b'), '/v2/a%23b', 'an encoded "#" must not become a fragment');
    assert.equal(await sentPath('/api/100%2541'), '/v2/100%2541', 'an encoded "%" must stay encoded ("%41" would be "A")');
    assert.equal(await sentPath('/api/sp%20ace'), '/v2/sp%20ace');
  });

  it('with a path and a rewrite: the prefix is still replaced, or, moved out of the prefix, the whole rewritten URI goes (nginx)', async () => {
    assert.equal(await sentPath('/api3/old/x?k=v'), '/v3/new/x?k=v');
    assert.equal(await sentPath('/api2/x?k=v'), '/internal/x?k=v', 'not just "/v2/": the path would be lost');
  });

  it('without a path the URI goes exactly as received, encoded characters included', async () => {
    for (const path of ['/a%2Fb/c%20d?x=%2F&y', '/UPPER/%7Euser', '/x?', '/q?a=1&a=2&b=%26']) {
      assert.equal(await sentPath(path), path);
    }
  });

  it('after a rewrite the rewritten URI is sent (break and last), with the query', async () => {
    assert.equal(await sentPath('/old/thing?z=1'), '/new/thing?z=1');
    assert.equal(await sentPath('/moved/x/y'), '/landed/x/y');
    assert.equal(await sentPath('/old/with%20space'), '/new/with%20space', 'the rewritten URI is encoded again');
  });
});

describe('proxy: failures', () => {
  let hung: HungUpstream;
  let refused: number;
  let down: number[];
  let canary: NodeUpstream;
  before(async () => {
    hung = await startHungUpstream();
    refused = await refusedPort();
    down = [await refusedPort(), await refusedPort(), await refusedPort()];
    canary = await startNodeUpstream(echoHandler());
  });
  after(async () => {
    await hung?.close();
    await canary?.close();
  });
  const s = serve((listen) => ({
    log: { access: false },
    upstreams: {
      refused: { servers: [`http://127.0.0.1:${refused}`] },
      hung: { servers: [hung.url], headerTimeout: '500ms' },
      down: { servers: down.map((port) => `http://127.0.0.1:${port}`) },
    },
    servers: [
      {
        listen,
        routes: [
          { prefix: '/refused/', proxy: { to: 'refused' } },
          { prefix: '/hung/', proxy: { to: 'hung' } },
          { prefix: '/down/', proxy: { to: 'down' } },
          { prefix: '/', proxy: { to: canary.url } },
        ],
      },
    ],
  }));

  function assertNoUpstreamDetails(res: SimpleResponse, ports: number[]): void {
    const everything = `${res.text}\n${JSON.stringify(res.headers)}`;
    for (const port of ports) assert.ok(!everything.includes(String(port)), `the answer names the upstream port ${port}: ${everything}`);
    assert.ok(!everything.includes('127.0.0.1'), `the answer names the upstream address: ${everything}`);
    assert.doesNotMatch(everything, /ECONNREFUSED|UND_ERR|at .*\.js/, 'no error code or stack');
  }

  it('a refused connection answers 502 quickly, without the upstream address', async () => {
    const started = performance.now();
    const res = await request(`${s.portico.url}/refused/x`);
    const ms = performance.now() - started;
    assert.equal(res.status, 502);
    assert.ok(ms < 1_000, `502 took ${ms.toFixed(0)} ms`);
    assertNoUpstreamDetails(res, [refused]);
  });

  it('a hung upstream (accepts, never answers) with headerTimeout 500ms answers 504 within the timeout (0.45–0.9 s)', async () => {
    const started = performance.now();
    const res = await request(`${s.portico.url}/hung/x`);
    const ms = performance.now() - started;
    assert.equal(res.status, 504);
    assert.ok(ms >= 450 && ms < 900, `504 after ${ms.toFixed(0)} ms`);
    assert.ok(hung.connections() >= 1, 'the hung upstream was really connected to');
    assertNoUpstreamDetails(res, [hung.port]);
  });

  it('a group with every server down answers 502 at once (well under a second), every time', async () => {
    const timings: number[] = [];
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      const res = await request(`${s.portico.url}/down/x`);
      timings.push(performance.now() - started);
      assert.equal(res.status, 502);
      assertNoUpstreamDetails(res, down);
    }
    // The bound tells "answered at once" from "waited on a timeout or a retry delay" (those are
    // seconds); it is not a speed target: 100 ms failed once at load average 15 (101.9 ms).
    assert.ok(Math.max(...timings) < 1_000, `all-down answers took ${timings.map((t) => t.toFixed(1)).join(', ')} ms`);
  });

  it('a working route next to the failing ones still answers (the process is fine)', async () => {
    assert.equal(echoed(await request(`${s.portico.url}/fine`)).url, '/fine');
  });
});

describe('proxy: connections that end early', () => {
  const events = { holdClosed: signal(), streamClosed: signal() };
  let upstream: NodeUpstream;
  before(async () => {
    upstream = await startNodeUpstream((req, res) => {
      if (req.url === '/hold') {
        // Never answers; reports when the proxy gives up on it.
        res.on('close', () => events.holdClosed.release());
        return;
      }
      if (req.url === '/endless') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const block = Buffer.alloc(64 * 1024, 1);
        const timer = setInterval(() => res.write(block), 5);
        res.on('close', () => {
          clearInterval(timer);
          events.streamClosed.release();
        });
        return;
      }
      if (req.url === '/dies') {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '100000' });
        res.write(Buffer.alloc(1000, 2));
        setTimeout(() => req.socket.destroy(), 50);
        return;
      }
      if (req.url === '/not-modified') {
        res.writeHead(304, { etag: '"v1"' });
        res.end();
        return;
      }
      if (req.url === '/no-content') {
        res.writeHead(204, { 'x-done': 'yes' });
        res.end();
        return;
      }
      res.end('ok');
    });
  });
  after(async () => {
    events.holdClosed.release();
    events.streamClosed.release();
    await upstream?.close();
  });
  const s = serve((listen) => ({
    log: { access: false },
    upstreams: { app: { servers: [upstream.url], maxFails: 0 } },
    servers: [{ listen, routes: [{ prefix: '/', proxy: { to: 'app' } }] }],
  }));

  it('a client that leaves while the upstream has not answered: the upstream request is closed too', async () => {
    const req = httpRequest({ host: '127.0.0.1', port: s.portico.port, path: '/hold', agent: false });
    req.on('error', () => {});
    req.end();
    await new Promise((resolve) => setTimeout(resolve, 300));
    req.destroy();
    await withTimeout(events.holdClosed.promise, 3_000, 'the upstream request being closed after the client left');
  });

  it('a client that leaves mid-download: the upstream response is stopped', async () => {
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: s.portico.port, path: '/endless', agent: false }, resolve);
      req.on('error', reject);
      req.end();
    });
    res.on('error', () => {});
    await once(res, 'data');
    res.destroy();
    await withTimeout(events.streamClosed.promise, 3_000, 'the upstream stream being closed after the client left');
  });

  it('an upstream that dies mid-response: the client sees a cut response, not a complete one', async () => {
    const outcome = await withTimeout(
      new Promise<{ complete: boolean; bytes: number }>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port: s.portico.port, path: '/dies', agent: false }, (res) => {
          let bytes = 0;
          res.on('data', (c: Buffer) => (bytes += c.length));
          res.on('error', () => {});
          res.on('close', () => resolve({ complete: res.complete, bytes }));
        });
        req.on('error', reject);
        req.end();
      }),
      5_000,
      'the cut response',
    );
    assert.equal(outcome.complete, false, `the response looked complete with ${outcome.bytes} of 100000 bytes`);
    assert.ok(outcome.bytes < 100_000);
  });

  it('304 and 204 from the upstream pass with no body', async () => {
    const notModified = await rawHttp(s.portico.port, 'GET /not-modified HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', '', 3_000);
    assert.equal(notModified.status, 304);
    assert.deepEqual(rawHeader(notModified, 'etag'), ['"v1"']);
    assert.equal(notModified.body.length, 0);
    const noContent = await rawHttp(s.portico.port, 'GET /no-content HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', '', 3_000);
    assert.equal(noContent.status, 204);
    assert.deepEqual(rawHeader(noContent, 'x-done'), ['yes']);
    assert.deepEqual(rawHeader(noContent, 'transfer-encoding'), []);
    assert.equal(noContent.body.length, 0);
  });
});

describe('proxy: an HTTP/1.0-style upstream (body ends with the connection)', () => {
  let server: ReturnType<typeof createNetServer>;
  let port = 0;
  before(async () => {
    server = createNetServer((socket) => {
      socket.on('error', () => socket.destroy());
      socket.once('data', () => {
        socket.write('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nServer: old/1.0\r\n\r\n');
        let n = 0;
        const timer = setInterval(() => {
          socket.write(`line ${n}\n`);
          if (++n === 5) {
            clearInterval(timer);
            socket.end();
          }
        }, 20);
        socket.on('close', () => clearInterval(timer));
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const s = serve((listen) => ({
    log: { access: false },
    servers: [{ listen, routes: [{ prefix: '/', proxy: { to: `http://127.0.0.1:${port}` } }] }],
  }));

  it('the whole close-delimited body reaches the client, re-framed', async () => {
    const res = await request(`${s.portico.url}/old`);
    assert.equal(res.status, 200);
    assert.equal(res.text, 'line 0\nline 1\nline 2\nline 3\nline 4\n');
    assert.equal(res.headers.server, 'Portico');
  });
});

describe('proxy: upstream keep-alive', () => {
  let upstream: NodeUpstream;
  before(async () => {
    upstream = await startNodeUpstream(echoHandler());
  });
  after(async () => {
    await upstream?.close();
  });
  const s = serve((listen) => ({
    log: { access: false },
    upstreams: { app: { servers: [upstream.url] } },
    servers: [{ listen, routes: [{ prefix: '/', proxy: { to: 'app' } }] }],
  }));

  it('50 sequential requests use at most 2 upstream connections', async () => {
    const before = upstream.connections();
    for (let i = 0; i < 50; i++) {
      const res = await request(`${s.portico.url}/n/${i}`);
      assert.equal(res.status, 200);
    }
    const used = upstream.connections() - before;
    assert.ok(used >= 1 && used <= 2, `50 requests opened ${used} upstream connections`);
  });
});

describe('proxy: large bodies stream at flat memory', () => {
  const SIZE = 512 * MiB;
  const LIMIT = 150 * MiB;
  const block = Buffer.alloc(MiB, 'portico-streaming-test ');
  let upstream: NodeUpstream;
  before(async () => {
    upstream = await startNodeUpstream((req, res) => {
      if (req.url === '/count') {
        let bytes = 0;
        req.on('data', (c: Buffer) => (bytes += c.length));
        req.on('end', () => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ bytes }));
        });
        return;
      }
      if (req.url === '/generate') {
        req.resume();
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(SIZE) });
        let sent = 0;
        const pump = () => {
          while (sent < SIZE) {
            sent += block.length;
            if (!res.write(block)) return void res.once('drain', pump);
          }
          res.end();
        };
        res.on('close', () => (sent = SIZE));
        pump();
        return;
      }
      req.resume();
      res.end('ok');
    });
  });
  after(async () => {
    await upstream?.close();
  });
  const s = serve((listen) => ({
    log: { access: false },
    upstreams: { app: { servers: [upstream.url] } },
    // 512 MiB bodies: no body limit (http.maxBodySize is 1 MiB by default, as nginx's).
    servers: [{ listen, maxBodySize: 0, routes: [{ prefix: '/', proxy: { to: 'app' } }] }],
  }));

  async function baseline(): Promise<number> {
    for (let i = 0; i < 5; i++) await request(`${s.portico.url}/warm`);
    const rss = rssBytes(s.portico.pid);
    if (rss === null) throw new Error('cannot read /proc/<pid>/status of portico');
    return rss;
  }

  it('uploads 512 MiB through the proxy with RSS growth under 150 MiB', { timeout: 120_000 }, async (t) => {
    const base = await baseline();
    const sampler = sampleRss(s.portico.pid);
    const started = performance.now();
    let measured: { peak: number; samples: number } | undefined;
    let result: { status: number; text: string };
    try {
      result = await withTimeout(
        new Promise<{ status: number; text: string }>((resolve, reject) => {
          const req = httpRequest({ host: '127.0.0.1', port: s.portico.port, method: 'POST', path: '/count', agent: false, headers: { 'content-length': String(SIZE) } }, (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (text += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
          });
          req.on('error', reject);
          let written = 0;
          const pump = () => {
            while (written < SIZE) {
              written += block.length;
              if (!req.write(block)) return void req.once('drain', pump);
            }
            req.end();
          };
          pump();
        }),
        90_000,
        'uploading 512 MiB',
      );
    } finally {
      measured = sampler.stop();
    }
    const { peak, samples } = measured as { peak: number; samples: number };
    const seconds = (performance.now() - started) / 1000;
    const growth = peak - base;
    t.diagnostic(`upload 512 MiB: ${seconds.toFixed(1)} s, RSS baseline ${(base / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} MiB, growth ${(growth / MiB).toFixed(1)} MiB (${samples} samples)`);
    assert.equal(result.status, 200);
    assert.equal((JSON.parse(result.text) as { bytes: number }).bytes, SIZE, 'the upstream counted every byte');
    assert.ok(growth < LIMIT, `portico RSS grew ${(growth / MiB).toFixed(1)} MiB while uploading 512 MiB (limit ${LIMIT / MiB} MiB): the body was buffered`);
  });

  it('downloads 512 MiB through the proxy with RSS growth under 150 MiB', { timeout: 120_000 }, async (t) => {
    const base = await baseline();
    const sampler = sampleRss(s.portico.pid);
    const started = performance.now();
    let measured: { peak: number; samples: number } | undefined;
    let result: { status: number; bytes: number; length: string | undefined };
    try {
      result = await withTimeout(
        new Promise<{ status: number; bytes: number; length: string | undefined }>((resolve, reject) => {
          const req = httpRequest({ host: '127.0.0.1', port: s.portico.port, path: '/generate', agent: false }, (res) => {
            let bytes = 0;
            res.on('data', (c: Buffer) => (bytes += c.length));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, length: res.headers['content-length'] }));
            res.on('error', reject);
          });
          req.on('error', reject);
          req.end();
        }),
        90_000,
        'downloading 512 MiB',
      );
    } finally {
      measured = sampler.stop();
    }
    const { peak, samples } = measured as { peak: number; samples: number };
    const seconds = (performance.now() - started) / 1000;
    const growth = peak - base;
    t.diagnostic(`download 512 MiB: ${seconds.toFixed(1)} s, RSS baseline ${(base / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} MiB, growth ${(growth / MiB).toFixed(1)} MiB (${samples} samples)`);
    assert.equal(result.status, 200);
    assert.equal(result.length, String(SIZE), 'the Content-Length came through');
    assert.equal(result.bytes, SIZE, 'every byte arrived');
    assert.ok(growth < LIMIT, `portico RSS grew ${(growth / MiB).toFixed(1)} MiB while downloading 512 MiB (limit ${LIMIT / MiB} MiB): the body was buffered`);
  });

  it('a slow reader: the upstream is paused (back-pressure), not buffered in portico', { timeout: 60_000 }, async (t) => {
    const base = await baseline();
    const sampler = sampleRss(s.portico.pid);
    // Read the first bytes, then stop reading for a while: portico must stop reading the upstream.
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: s.portico.port, path: '/generate', agent: false }, resolve);
      req.on('error', reject);
      req.end();
    });
    let bytes = 0;
    res.on('data', (c: Buffer) => (bytes += c.length));
    await once(res, 'data');
    res.pause();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const { peak } = sampler.stop();
    res.destroy();
    const growth = peak - base;
    t.diagnostic(`paused reader: ${(bytes / MiB).toFixed(1)} MiB read, RSS growth ${(growth / MiB).toFixed(1)} MiB`);
    assert.ok(growth < LIMIT, `portico RSS grew ${(growth / MiB).toFixed(1)} MiB while the client was not reading`);
  });
});

describe('portico proxy CLI', () => {
  let upstream: NodeUpstream;
  let portico: RunningPortico | undefined;
  before(async () => {
    upstream = await startNodeUpstream(echoHandler());
  });
  after(async () => {
    await portico?.stop();
    await upstream?.close();
  });

  it('`portico proxy UPSTREAM --port N --host 127.0.0.1` forwards requests', async () => {
    const port = await freePort();
    portico = await startPortico(['proxy', upstream.url, '--port', String(port), '--host', '127.0.0.1']);
    assert.equal(portico.port, port);
    const e = echoed(await request(`http://127.0.0.1:${port}/via/cli?x=1`, { headers: { 'x-test': 'cli' } }));
    assert.equal(e.url, '/via/cli?x=1');
    assert.deepEqual(headerValues(e, 'x-test'), ['cli']);
    assert.deepEqual(headerValues(e, 'x-forwarded-for'), ['127.0.0.1']);
    const posted = echoed(await request(`http://127.0.0.1:${port}/post`, { method: 'POST', body: 'hello' }));
    assert.equal(posted.body, 'hello');
  });
});
