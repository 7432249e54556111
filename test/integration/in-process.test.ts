/**
 * `createTestServer` (portico/testing, issue #22): one suite of behaviours, each a request and
 * what its answer must be, run twice in order: through `createTestServer(config).fetch` (no port)
 * and over a real socket to `portico up` on the same config, with the same client code
 * (testing/client.ts). Each answer must meet the behaviour's expectations both ways, and the two
 * answers must be equal (status, the headers that carry meaning, the body), so the in-process
 * path is the listening server's path, not a simulation. The upstream (a real server on
 * loopback) counts its requests and is reset between the two runs, as the state of limits and
 * cache starts empty in each.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { createTestServer, type TestServer } from '../../src/testing/index.js';
import { sendRequest } from '../../src/testing/client.js';
import type { UserConfig } from '../../src/config/schema.js';
import { ROOT, freePort, startWithConfig, tempDir, type RunningPortico } from '../helpers/portico.js';
import { startNodeUpstream, type NodeUpstream } from '../helpers/upstreams.js';

const WWW = join(ROOT, 'test', 'fixtures', 'nginx', 'www');
const APPS = join(ROOT, 'test', 'fixtures', 'apps');

interface Behaviour {
  name: string;
  path: string;
  host?: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  /** Assertions on the answer (its body as text, decoded when gzip). */
  expect: (res: Response, body: string) => void;
}

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

const BEHAVIOURS: Behaviour[] = [
  { name: 'serves the index of /', path: '/', expect: (r, b) => (assert.equal(r.status, 200), assert.match(b, /<h1>Home<\/h1>/), assert.equal(r.headers.get('content-type'), 'text/html; charset=utf-8')) },
  { name: 'HEAD has the length and no body', path: '/about.html', method: 'HEAD', expect: (r, b) => (assert.equal(r.status, 200), assert.equal(b, ''), assert.ok(Number(r.headers.get('content-length')) > 0)) },
  { name: 'serves a file', path: '/about.html', expect: (r, b) => (assert.equal(r.status, 200), assert.match(b, /About us/)) },
  { name: 'a missing file is 404', path: '/missing.html', expect: (r) => assert.equal(r.status, 404) },
  { name: 'a directory without its slash is redirected to it', path: '/docs', expect: (r) => (assert.equal(r.status, 301), assert.equal(r.headers.get('location'), '/docs/')) },
  { name: 'a dotfile is not served', path: '/.git/config', expect: (r) => assert.equal(r.status, 404) },
  { name: 'a Range request gets 206 and the range', path: '/notes.txt', headers: { range: 'bytes=0-9' }, expect: (r, b) => (assert.equal(r.status, 206), assert.equal(r.headers.get('content-range')?.startsWith('bytes 0-9/'), true), assert.equal(b, 'A plain te')) },
  { name: 'a conditional GET for an unchanged file is 304', path: '/about.html', headers: { 'if-modified-since': new Date(Date.now() + 86_400_000).toUTCString() }, expect: (r, b) => (assert.equal(r.status, 304), assert.equal(b, '')) },
  { name: 'a route redirect', path: '/old', expect: (r) => (assert.equal(r.status, 301), assert.equal(r.headers.get('location'), '/new')) },
  { name: 'a server rewrite with the permanent flag redirects with the capture', path: '/legacy/guide.html', expect: (r) => (assert.equal(r.status, 301), assert.equal(r.headers.get('location'), '/docs/guide.html')) },
  { name: 'a rewrite with "last" serves the rewritten URI', path: '/2024/hello', expect: (r, b) => (assert.equal(r.status, 200), assert.match(b, /Hello, blog/)) },
  { name: 'a respond body expands $remote_addr and $host', path: '/hello', host: 'site.test', expect: (r, b) => (assert.equal(r.status, 200), assert.equal(b, 'hello 127.0.0.1 at site.test\n')) },
  { name: 'the Host picks the server', path: '/', host: 'other.test', expect: (r, b) => (assert.equal(r.status, 200), assert.equal(b, 'the other site\n')) },
  { name: 'an unknown Host gets the default server', path: '/hello', host: 'unknown.test', expect: (r, b) => (assert.equal(r.status, 200), assert.equal(b, 'hello 127.0.0.1 at unknown.test\n')) },
  { name: 'canonical www removal redirects to the bare name', path: '/a?b=1', host: 'www.site.test', expect: (r) => (assert.equal(r.status, 301), assert.equal(r.headers.get('location'), 'http://site.test/a?b=1')) },
  { name: 'a regex route gives CSS a lifetime', path: '/css/site.css', expect: (r) => (assert.equal(r.status, 200), assert.match(r.headers.get('cache-control') ?? '', /max-age=3600/)) },
  { name: 'text is gzip-compressed when asked', path: '/css/site.css', headers: { 'accept-encoding': 'gzip' }, expect: (r, b) => (assert.equal(r.headers.get('content-encoding'), 'gzip'), assert.match(b, /font-family/)) },
  { name: 'a server header operation applies to every answer', path: '/about.html', expect: (r) => assert.equal(r.headers.get('x-frame-options'), 'DENY') },
  { name: 'a proxy route replaces its prefix with the target path', path: '/api/users?page=2', expect: (r, b) => (assert.equal(r.status, 200), assert.equal(JSON.parse(b).uri, '/v2/users?page=2')) },
  { name: 'the proxy passes X-Forwarded-For', path: '/api/who', expect: (r, b) => assert.equal(JSON.parse(b).xForwardedFor, '127.0.0.1') },
  { name: 'the proxy hides the upstream\'s X-Powered-By', path: '/api/who', expect: (r) => assert.equal(r.headers.get('x-powered-by'), null) },
  { name: 'a cacheable answer is stored (a miss first)', path: '/api/cached', expect: (r, b) => (assert.equal(JSON.parse(b).count, 1), assert.match(r.headers.get('cache-status') ?? '', /fwd=miss; fwd-status=200; stored/)) },
  { name: 'the same request is a cache hit', path: '/api/cached', expect: (r, b) => (assert.equal(JSON.parse(b).count, 1), assert.match(r.headers.get('cache-status') ?? '', /; hit/)) },
  { name: 'a small body is proxied', path: '/api/upload', method: 'POST', body: 'x'.repeat(100), expect: (r, b) => (assert.equal(r.status, 200), assert.equal(JSON.parse(b).bodyLength, 100)) },
  { name: 'a body over maxBodySize is 413', path: '/api/upload', method: 'POST', body: 'x'.repeat(4096), expect: (r) => assert.equal(r.status, 413) },
  { name: 'basic auth asks for credentials', path: '/private/secret.txt', expect: (r) => (assert.equal(r.status, 401), assert.match(r.headers.get('www-authenticate') ?? '', /^Basic realm="Staff"/)) },
  { name: 'basic auth refuses a wrong password', path: '/private/secret.txt', headers: { authorization: basic('alice', 'wrong') }, expect: (r) => assert.equal(r.status, 401) },
  { name: 'basic auth lets the right password in', path: '/private/secret.txt', headers: { authorization: basic('alice', 'wonderland') }, expect: (r, b) => (assert.equal(r.status, 200), assert.equal(b, 'the private file\n')) },
  { name: 'an access rule denies the client address', path: '/blocked/x', expect: (r) => assert.equal(r.status, 403) },
  { name: 'a rate limit passes the first request', path: '/limited/1', expect: (r) => assert.equal(r.status, 200) },
  { name: 'a rate limit passes the burst', path: '/limited/2', expect: (r) => assert.equal(r.status, 200) },
  { name: 'a rate limit refuses past the burst with 429 and Retry-After', path: '/limited/3', expect: (r) => (assert.equal(r.status, 429), assert.ok(Number(r.headers.get('retry-after')) >= 1)) },
  { name: 'a SPA path falls back to its index', path: '/app/deep/link', expect: (r, b) => (assert.equal(r.status, 200), assert.match(b, /<title>SPA<\/title>/)) },
  { name: 'a Fetch app of `apps` answers its route', path: '/app-js/x', expect: (r, b) => (assert.equal(r.status, 200), assert.equal(b, 'fetch function /app-js/x')) },
  { name: 'an app learns the client address from the edge', path: '/app-ctx/', expect: (r, b) => (assert.equal(r.status, 200), assert.equal(b, 'fetch with context from 127.0.0.1')) },
  { name: 'a URI over maxUriLength is 414', path: `/${'a'.repeat(9000)}`, expect: (r) => assert.equal(r.status, 414) },
  { name: 'a header section over maxHeaderSize is 431', path: '/', headers: { 'x-big': 'b'.repeat(20_000) }, expect: (r) => assert.equal(r.status, 431) },
];

/** What is compared between the two runs: what carries meaning (not Date, not the cache's ttl). */
function observed(res: Response, body: string): Record<string, string | number | null> {
  const headers = ['location', 'content-type', 'content-encoding', 'cache-control', 'content-range', 'www-authenticate', 'retry-after', 'x-frame-options', 'x-powered-by'];
  const out: Record<string, string | number | null> = { status: res.status, body: createHash('sha256').update(body).digest('hex') };
  for (const name of headers) out[name] = res.headers.get(name);
  // A stored answer with no freshness of its own has a negative ttl (its age), which moves with the clock.
  out['cache-status'] = (res.headers.get('cache-status') ?? '').replace(/; ttl=-?\d+/, '');
  return out;
}

async function bodyOf(res: Response): Promise<string> {
  const bytes = Buffer.from(await res.arrayBuffer());
  return (res.headers.get('content-encoding') === 'gzip' ? gunzipSync(bytes) : bytes).toString('utf8');
}

describe('createTestServer: the same behaviours in-process and over a socket', () => {
  const work = tempDir();
  let upstream: NodeUpstream;
  let count = 0;
  let port: number;
  let config: UserConfig;
  const answers: { inProcess: Record<string, string | number | null>[]; socket: Record<string, string | number | null>[] } = { inProcess: [], socket: [] };

  before(async () => {
    upstream = await startNodeUpstream((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const cached = (req.url ?? '').startsWith('/v2/cached');
        if (cached) count++;
        res.writeHead(200, { 'content-type': 'application/json', 'x-powered-by': 'framework', ...(cached ? { 'cache-control': 'max-age=60' } : {}) });
        res.end(JSON.stringify({ uri: req.url, xForwardedFor: req.headers['x-forwarded-for'] ?? null, bodyLength: Buffer.concat(chunks).length, count }));
      });
    });
    writeFileSync(join(work.path, 'htpasswd'), `alice:{SHA}${createHash('sha1').update('wonderland').digest('base64')}\n`);
    port = await freePort();
    const listen = `127.0.0.1:${port}`;
    config = {
      log: { access: false },
      http: { maxUriLength: '8kb', maxHeaderSize: '16kb' },
      limits: { rateZones: { tight: { key: '$remote_addr', rate: '1r/m' } } },
      upstreams: { api: { servers: [upstream.url] } },
      apps: { fn: { module: join(APPS, 'fetch-function.mjs'), workers: 1 }, ctx: { module: join(APPS, 'fetch-context.mjs'), workers: 1 } },
      servers: [
        {
          listen,
          names: ['site.test'],
          default: true,
          static: { root: WWW },
          headers: { set: { 'X-Frame-Options': 'DENY' } },
          maxBodySize: '1kb',
          encode: { types: ['text/css'], minLength: 100 },
          rewrite: [
            { from: '^/legacy/(.*)$', to: '/docs/$1', flag: 'permanent' },
            { from: '^/(\\d{4})/([a-z]+)$', to: '/blog/$1/$2.html', flag: 'last' },
          ],
          routes: [
            { exact: '/old', redirect: { to: '/new', status: 301 } },
            { exact: '/hello', respond: { body: 'hello $remote_addr at $host\n' } },
            { prefix: '/api/', proxy: { to: 'http://api/v2/' }, cache: true },
            { prefix: '/app-js/', app: 'fn' },
            { prefix: '/app-ctx/', app: 'ctx' },
            { prefix: '/private/', basicAuth: { realm: 'Staff', htpasswd: join(work.path, 'htpasswd') } },
            { prefix: '/blocked/', access: [{ deny: '127.0.0.1' }, { allow: 'all' }], respond: { body: 'never\n' } },
            { prefix: '/limited/', rateLimit: { zone: 'tight', burst: 1, nodelay: true }, respond: { body: 'ok\n' } },
            { prefix: '/app/', static: { root: join(WWW, 'spa'), alias: true, tryFiles: ['$uri', '/app/index.html'] } },
            { regex: '\\.css$', static: { maxAge: '1h' } },
            { prefix: '/' },
          ],
        },
        { listen, names: ['other.test'], routes: [{ respond: { body: 'the other site\n' } }] },
        { listen, names: ['www.site.test'], canonical: { www: 'remove' }, routes: [{ respond: { body: 'not reached\n' } }] },
      ],
    };
  });
  after(async () => {
    await upstream?.close();
    work.remove();
  });

  it(`has at least 30 behaviours (${BEHAVIOURS.length})`, () => assert.ok(BEHAVIOURS.length >= 30));

  const run = async (mode: 'inProcess' | 'socket', send: (request: Request) => Promise<Response>) => {
    count = 0;
    const failures: string[] = [];
    for (const behaviour of BEHAVIOURS) {
      const url = `http://${behaviour.host ?? `127.0.0.1:${port}`}${behaviour.path}`;
      const res = await send(new Request(url, { method: behaviour.method ?? 'GET', headers: behaviour.headers, body: behaviour.body }));
      const body = await bodyOf(res);
      answers[mode].push(observed(res, body));
      try {
        behaviour.expect(res, body);
      } catch (error) {
        failures.push(`${behaviour.name}: ${(error as Error).message.split('\n')[0]}`);
      }
    }
    assert.deepEqual(failures, [], `${mode}: behaviours not met:\n${failures.join('\n')}`);
  };

  it('in-process: createTestServer(config).fetch meets every behaviour', async () => {
    const edge: TestServer = await createTestServer(config);
    try {
      await run('inProcess', (request) => edge.fetch(request));
    } finally {
      await edge.close();
    }
  });

  it('over a socket: portico up on the same config meets every behaviour', async () => {
    const portico: RunningPortico = await startWithConfig(work.path, config);
    try {
      await run('socket', (request) => sendRequest(() => connect(port, '127.0.0.1'), request));
    } finally {
      await portico.stop();
    }
  });

  it('the answers are equal both ways, behaviour by behaviour', () => {
    assert.equal(answers.inProcess.length, BEHAVIOURS.length);
    assert.equal(answers.socket.length, BEHAVIOURS.length);
    BEHAVIOURS.forEach((behaviour, i) => assert.deepEqual(answers.inProcess[i], answers.socket[i], behaviour.name));
  });
});
