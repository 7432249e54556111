/**
 * The wire: request-target and Host validation, absolute-form, OPTIONS *, HEAD, the Server
 * header, head-size limit, keep-alive, methods, and the 500 on a failing handler. Raw bytes go
 * over real loopback sockets (rawRequest), so nothing is normalised by a client library.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { validateConfig } from '../../src/config/load.js';
import { log, setLogger, type Logger } from '../../src/core/log.js';
import { HttpError, ErrorCodes } from '../../src/core/errors.js';
import { createEdgeEnvironment } from '../../src/edge/environment.js';
import { buildGeneration, type Generation } from '../../src/edge/generation.js';
import { createHandler, type Handler } from '../../src/edge/handlers/index.js';
import { handleRequest } from '../../src/edge/pipeline.js';
import { HostTable } from '../../src/edge/route/hosts.js';
import { Router, type CompiledRoute, type CompiledServer } from '../../src/edge/route/router.js';
import { freePort, rawRequest, request, startWithConfig, statusOf, tempDir, type RunningPortico } from '../helpers/portico.js';

interface RawResponse {
  status: number;
  /** Header names lower-cased; repeated names joined with ", ". */
  headers: Record<string, string>;
  /** Every header line as sent, for counting repeats. */
  lines: string[];
  body: string;
}

/** Splits raw bytes into responses, by Content-Length (HEAD responses: pass `noBody`). */
function parseResponses(raw: Buffer | string, noBody: readonly boolean[] = []): RawResponse[] {
  let text = typeof raw === 'string' ? raw : raw.toString('latin1');
  const out: RawResponse[] = [];
  while (text.length > 0) {
    const end = text.indexOf('\r\n\r\n');
    assert.notEqual(end, -1, `incomplete response head in ${JSON.stringify(text)}`);
    const [statusLine = '', ...lines] = text.slice(0, end).split('\r\n');
    const status = statusOf(statusLine);
    assert.notEqual(status, 0, `not a status line: ${JSON.stringify(statusLine)}`);
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    const length = noBody[out.length] || status === 204 || status === 304 ? 0 : Number(headers['content-length'] ?? text.length - end - 4);
    out.push({ status, headers, lines, body: text.slice(end + 4, end + 4 + length) });
    text = text.slice(end + 4 + length);
  }
  return out;
}

async function one(port: number, data: string | Buffer): Promise<RawResponse> {
  const responses = parseResponses(await rawRequest(port, data));
  assert.equal(responses.length, 1, 'exactly one response');
  return responses[0] as RawResponse;
}

const get = (target: string, headers = 'Host: default.test\r\n') => `GET ${target} HTTP/1.1\r\n${headers}Connection: close\r\n\r\n`;

describe('protocol (real server)', () => {
  const dir = tempDir();
  let portico: RunningPortico;
  let port = 0;
  before(async () => {
    port = await freePort();
    const listen = `127.0.0.1:${port}`;
    portico = await startWithConfig(dir.path, {
      log: { access: false },
      http: { serverHeader: 'Custom/1.0', maxHeaderSize: '2kb' },
      servers: [
        {
          listen,
          names: ['default.test'],
          routes: [
            { exact: '/server-set', headers: { set: { Server: 'RouteServer' } }, respond: { body: 'set' } },
            { exact: '/server-removed', headers: { remove: ['server'] }, respond: { body: 'removed' } },
            { respond: { body: 'default uri=$uri host=$host' } },
          ],
        },
        { listen, names: ['other.test'], routes: [{ respond: { body: 'other uri=$uri request_uri=$request_uri' } }] },
      ],
    });
  });
  after(async () => {
    await portico.stop();
    dir.remove();
  });

  describe('request target', () => {
    const bad: [string, string][] = [
      ['no leading slash', 'x'],
      ['query only', '?a=1'],
      ['"*" for GET', '*'],
      ['bad escape %zz', '/a%zzb'],
      ['truncated escape', '/a%4'],
      ['invalid UTF-8 after decoding', '/a%ff'],
      ['overlong UTF-8 dot', '/%c0%ae%c0%ae/x'],
      ['encoded NUL', '/a%00b'],
      ['dot segments above the root', '/../x'],
      ['dot segments above the root, deeper', '/a/../../x'],
      ['encoded dot segments above the root', '/%2e%2e/x'],
      ['fragment', '/a#b'],
      ['fragment in the query', '/a?x=1#b'],
    ];
    for (const [why, target] of bad) {
      it(`400 for ${why}: ${target}`, async () => {
        assert.equal((await one(port, get(target))).status, 400);
      });
    }
    it('400 for a raw non-ASCII byte in the target', async () => {
      const data = Buffer.concat([Buffer.from('GET /caf'), Buffer.from([0xc3, 0xa9]), Buffer.from(' HTTP/1.1\r\nHost: default.test\r\nConnection: close\r\n\r\n')]);
      assert.equal((await one(port, data)).status, 400);
    });
    it('a well-formed percent-encoded UTF-8 path is served, decoded', async () => {
      const res = await one(port, get('/caf%C3%A9/./x//y/../z'));
      assert.equal(res.status, 200);
      assert.equal(Buffer.from(res.body, 'latin1').toString('utf8'), 'default uri=/café/x/z host=default.test');
    });
    it('an encoded control byte is data (#20): the route answers, $uri holds it decoded', async () => {
      const res = await one(port, get('/a%09b'));
      assert.equal(res.status, 200);
      assert.equal(res.body, 'default uri=/a\tb host=default.test');
    });
    it('the 400 for a bad target carries the configured Server header', async () => {
      const res = await one(port, get('/%zz'));
      assert.equal(res.status, 400);
      assert.equal(res.headers.server, 'Custom/1.0');
    });
  });

  describe('Host', () => {
    it('400 for HTTP/1.1 without Host', async () => {
      const res = await one(port, 'GET / HTTP/1.1\r\nConnection: close\r\n\r\n');
      assert.equal(res.status, 400);
      assert.equal(res.headers.server, 'Custom/1.0');
      assert.equal(res.body, '400 Bad Request\n');
    });
    it('400 for two Host headers, even when they agree', async () => {
      assert.equal((await one(port, get('/', 'Host: default.test\r\nHost: other.test\r\n'))).status, 400);
      assert.equal((await one(port, get('/', 'Host: default.test\r\nhost: default.test\r\n'))).status, 400);
    });
    it('400 for a malformed Host', async () => {
      for (const value of ['a/b', 'a b', 'a..b', 'x:port', '[::1', 'a@b']) {
        assert.equal((await one(port, get('/', `Host: ${value}\r\n`))).status, 400, `Host: ${value}`);
      }
    });
    it('absolute-form routes by the target host, not the Host header (RFC 9112 §3.2.2)', async () => {
      const res = await one(port, get('http://OTHER.test:8080/x/../y?q=1', 'Host: default.test\r\n'));
      assert.equal(res.status, 200);
      assert.equal(res.body, 'other uri=/y request_uri=/x/../y?q=1');
    });
    // RFC 3986 §6.2.3: an empty path in an http URI is "/", also when a query follows.
    it('absolute-form without a path is "/"', async () => {
      const res = await one(port, get('http://other.test?q=1', 'Host: other.test\r\n'));
      assert.equal(res.body, 'other uri=/ request_uri=/?q=1');
    });
    it('absolute-form still needs exactly one valid Host header (RFC 9112 §3.2)', async () => {
      assert.equal((await one(port, get('http://other.test/x', 'Host: other.test\r\nHost: default.test\r\n'))).status, 400);
      assert.equal((await one(port, get('http://other.test/x', 'Host: a/b\r\n'))).status, 400);
    });
  });

  describe('methods', () => {
    it('OPTIONS * → 204 with Allow', async () => {
      const res = await one(port, 'OPTIONS * HTTP/1.1\r\nHost: default.test\r\nConnection: close\r\n\r\n');
      assert.equal(res.status, 204);
      assert.match(res.headers.allow ?? '', /\bGET\b/);
      assert.match(res.headers.allow ?? '', /\bHEAD\b/);
      assert.equal(res.body, '');
    });
    it('CONNECT (a tunnel request) → 501 and close, not a silently dropped connection', async () => {
      const res = await one(port, 'CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n');
      assert.equal(res.status, 501);
    });
    it('HEAD on a respond route: the GET headers, Content-Length included, and no body bytes', async () => {
      const full = await one(port, get('/head'));
      const raw = await rawRequest(port, 'HEAD /head HTTP/1.1\r\nHost: default.test\r\nConnection: close\r\n\r\n');
      const text = raw.toString('latin1');
      assert.equal(statusOf(text), 200);
      assert.ok(text.endsWith('\r\n\r\n'), `bytes after the head: ${JSON.stringify(text)}`);
      const [head] = parseResponses(raw, [true]);
      assert.equal(head?.headers['content-length'], String(full.body.length));
      assert.equal(head?.headers['content-type'], full.headers['content-type']);
    });
    it('HEAD then GET on one connection: the HEAD response has no body to desync the next', async () => {
      const raw = await rawRequest(port, 'HEAD /one HTTP/1.1\r\nHost: default.test\r\n\r\nGET /two HTTP/1.1\r\nHost: default.test\r\nConnection: close\r\n\r\n');
      const [head, second] = parseResponses(raw, [true, false]);
      assert.equal(head?.status, 200);
      assert.equal(second?.status, 200);
      assert.equal(second?.body, 'default uri=/two host=default.test');
    });
    for (const method of ['POST', 'DELETE', 'PROPFIND', 'PURGE']) {
      it(`${method} on a respond route is answered like GET`, async () => {
        const res = await one(port, `${method} /m HTTP/1.1\r\nHost: default.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
        assert.equal(res.status, 200);
        assert.equal(res.body, 'default uri=/m host=default.test');
      });
    }
    it('a method token node:http does not know is refused by its parser with 400', async () => {
      // nginx would answer; llhttp only takes the methods it knows. Documented, not hidden.
      assert.equal((await one(port, 'FROB / HTTP/1.1\r\nHost: default.test\r\nConnection: close\r\n\r\n')).status, 400);
    });
  });

  describe('Server header, limits, keep-alive', () => {
    it('a custom http.serverHeader is sent once', async () => {
      const res = await one(port, get('/'));
      assert.equal(res.headers.server, 'Custom/1.0');
      assert.equal(res.lines.filter((line) => /^server:/i.test(line)).length, 1);
    });
    it("a route's headers.set.Server replaces the Server header, headers.remove drops it", async () => {
      const set = await one(port, get('/server-set'));
      assert.deepEqual(set.lines.filter((line) => /^server:/i.test(line)), ['Server: RouteServer']);
      const removed = await one(port, get('/server-removed'));
      assert.equal(removed.body, 'removed');
      assert.equal(removed.headers.server, undefined);
    });
    it('a head larger than http.maxHeaderSize → 431 and the connection closes', async () => {
      const res = await one(port, get('/', `Host: default.test\r\nX-Big: ${'a'.repeat(4096)}\r\n`));
      assert.equal(res.status, 431);
      assert.equal(res.headers.connection, 'close');
      assert.equal(res.headers.server, 'Custom/1.0');
    });
    it('a head just under the limit is served', async () => {
      assert.equal((await one(port, get('/', `Host: default.test\r\nX-Big: ${'a'.repeat(1024)}\r\n`))).status, 200);
    });
    it('keep-alive: two pipelined requests on one socket are both answered, in order', async () => {
      const raw = await rawRequest(port, `GET /first HTTP/1.1\r\nHost: default.test\r\n\r\nGET /second HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n`);
      const responses = parseResponses(raw);
      assert.deepEqual(
        responses.map((r) => [r.status, r.body]),
        [
          [200, 'default uri=/first host=default.test'],
          [200, 'other uri=/second request_uri=/second'],
        ],
      );
      assert.notEqual(responses[0]?.headers.connection, 'close');
    });
    it('keep-alive: a request body the route ignores does not leak into the next request', async () => {
      const raw = await rawRequest(port, `POST /post HTTP/1.1\r\nHost: default.test\r\nContent-Length: 22\r\n\r\nGET /smuggled HTTP/1.1\r\nGET /next HTTP/1.1\r\nHost: default.test\r\nConnection: close\r\n\r\n`);
      const responses = parseResponses(raw);
      assert.deepEqual(
        responses.map((r) => r.body),
        ['default uri=/post host=default.test', 'default uri=/next host=default.test'],
      );
    });
    it('keep-alive: a second request sent after the first answer, on the same socket', async () => {
      const { connect } = await import('node:net');
      const socket = connect({ port, host: '127.0.0.1' });
      await once(socket, 'connect');
      let received = '';
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => (received += chunk));
      const waitFor = async (pattern: RegExp) => {
        const deadline = Date.now() + 3000;
        while (!pattern.test(received)) {
          assert.ok(Date.now() < deadline, `timed out waiting for ${pattern} in ${JSON.stringify(received)}`);
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      };
      socket.write('GET /a HTTP/1.1\r\nHost: default.test\r\n\r\n');
      await waitFor(/uri=\/a host/);
      socket.write('GET /b HTTP/1.1\r\nHost: default.test\r\n\r\n');
      await waitFor(/uri=\/b host/);
      socket.destroy();
      assert.equal(parseResponses(received).length, 2);
    });
    it('an error response (400 target) keeps the framing: the next request is answered', async () => {
      const raw = await rawRequest(port, `GET /%zz HTTP/1.1\r\nHost: default.test\r\n\r\nGET /ok HTTP/1.1\r\nHost: default.test\r\nConnection: close\r\n\r\n`);
      const responses = parseResponses(raw);
      assert.equal(responses[0]?.status, 400);
      // The second either gets its answer or the server closed after the 400; never a wrong answer.
      if (responses.length > 1) assert.equal(responses[1]?.body, 'default uri=/ok host=default.test');
    });
  });
});

describe('http.serverHeader false, and the default', () => {
  const dir = tempDir();
  let hidden: RunningPortico;
  let plain: RunningPortico;
  before(async () => {
    const servers = (port: number) => [{ listen: `127.0.0.1:${port}`, routes: [{ respond: { body: 'x' } }] }];
    hidden = await startWithConfig(dir.path, { log: { access: false }, http: { serverHeader: false }, servers: servers(await freePort()) });
    const other = tempDir();
    try {
      plain = await startWithConfig(other.path, { log: { access: false }, servers: servers(await freePort()) });
    } finally {
      other.remove();
    }
  });
  after(async () => {
    await hidden.stop();
    await plain.stop();
    dir.remove();
  });
  it('serverHeader: false sends no Server header, on answers and errors', async () => {
    const ok = await request(`${hidden.url}/`);
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.server, undefined);
    const bad = await one(hidden.port, get('/%zz'));
    assert.equal(bad.status, 400);
    assert.equal(bad.headers.server, undefined);
    // Answered by onClientError (the parser), not the pipeline.
    const unparsable = await one(hidden.port, 'GET x HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal(unparsable.status, 400);
    assert.equal(unparsable.headers.server, undefined);
  });
  it('without the option the Server header is "Portico", on parser errors too', async () => {
    assert.equal((await request(`${plain.url}/`)).headers.server, 'Portico');
    assert.equal((await one(plain.port, 'GET x HTTP/1.1\r\nHost: a\r\n\r\n')).headers.server, 'Portico');
  });
});

describe('an exception inside a handler (in-process pipeline)', () => {
  let server: Server;
  let base = '';
  let saved: Logger;
  const logged: string[] = [];

  before(async () => {
    saved = log();
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        logged.push(chunk.toString('utf8'));
        done();
      },
    });
    setLogger(pino({ level: 'error' }, sink));
    const config = validateConfig(
      {
        log: { access: false },
        servers: [
          {
            listen: '127.0.0.1:0',
            routes: [
              { exact: '/sync-throw', respond: {} },
              { exact: '/async-reject', respond: {} },
              { exact: '/after-headers', respond: {} },
              { exact: '/http-error', respond: {} },
              { prefix: '/', respond: { body: 'still serving' } },
            ],
          },
        ],
      },
      process.cwd(),
      null,
    );
    const environment = createEdgeEnvironment();
    const generation0 = buildGeneration(config, environment);
    const resolved = config.servers[0];
    assert.ok(resolved);
    const failing: Record<string, Handler> = {
      '/sync-throw': () => {
        throw new Error('sync boom');
      },
      '/async-reject': () => Promise.reject(new Error('async boom')),
      '/after-headers': (ctx) => {
        ctx.res.writeHead(200, { 'Content-Length': '100' });
        ctx.res.write('partial');
        throw new Error('boom after the head');
      },
      '/http-error': async () => {
        await new Promise((resolve) => setImmediate(resolve));
        throw new HttpError(503, ErrorCodes.ERR_HANDLER, 'busy', { headers: { 'Retry-After': '7' } });
      },
    };
    const routes: CompiledRoute[] = resolved.routes.map((route) => ({
      id: route.id,
      config: route,
      rewrite: [],
      headers: null,
      encode: null,
      accessLog: false,
      access: null,
      handler: (route.match.kind === 'exact' ? failing[route.match.path] : undefined) ?? createHandler(route, { upstreams: new Map(), cacheZones: config.cache.zones, cacheStores: environment.cacheZones }),
    }));
    const compiled: CompiledServer = { id: resolved.id, config: resolved, primaryName: '', canonical: null, rewrite: [], router: new Router(routes) };
    const [key] = [...generation0.hosts.keys()];
    assert.ok(key);
    const generation: Generation = { ...generation0, hosts: new Map([[key, new HostTable([compiled])]]) };
    server = createServer((req, res) => handleRequest(generation, { scheme: 'http', port: 0, key }, req, res));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    setLogger(saved);
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });

  it('a synchronous throw becomes a 500 with a generic body, and is logged', async () => {
    const res = await request(`${base}/sync-throw`);
    assert.equal(res.status, 500);
    assert.doesNotMatch(res.text, /boom/);
    assert.ok(logged.some((line) => line.includes('sync boom') && line.includes('servers[0].routes[0]')), logged.join(''));
  });
  it('a rejected promise becomes a 500', async () => {
    const res = await request(`${base}/async-reject`);
    assert.equal(res.status, 500);
    assert.doesNotMatch(res.text, /boom/);
    assert.ok(logged.some((line) => line.includes('async boom')));
  });
  it('an HttpError thrown asynchronously answers its own status and headers', async () => {
    const res = await request(`${base}/http-error`);
    assert.equal(res.status, 503);
    assert.equal(res.headers['retry-after'], '7');
  });
  it('a throw after the head was sent cuts the connection instead of sending a wrong answer', async () => {
    await assert.rejects(request(`${base}/after-headers`));
  });
  it('the server keeps serving afterwards', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await request(`${base}/fine`);
      assert.equal(res.status, 200);
      assert.equal(res.text, 'still serving');
    }
  });
});
