/**
 * Route selection (nginx `location` semantics) and virtual hosts, against the real built server
 * over loopback sockets. `respond` routes are the cheap handlers: each answers its own name.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, rawRequest, request, startWithConfig, statusOf, tempDir, type RunningPortico, type SimpleResponse } from '../helpers/portico.js';

const say = (body: string) => ({ respond: { body } });

/** Starts portico on `makeConfig(listen)` for the tests of one describe block. */
function serve(makeConfig: (listen: string, dir: string) => unknown | Promise<unknown>): { readonly portico: RunningPortico; get(path: string, headers?: Record<string, string>): Promise<SimpleResponse> } {
  const dir = tempDir();
  let portico: RunningPortico | undefined;
  before(async () => {
    portico = await startWithConfig(dir.path, await makeConfig(`127.0.0.1:${await freePort()}`, dir.path));
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
    get(path, headers) {
      return request(`${this.portico.url}${path}`, { headers });
    },
  };
}

async function body(response: Promise<SimpleResponse>): Promise<string> {
  const res = await response;
  assert.equal(res.status, 200, `status of a response with body ${JSON.stringify(res.text)}`);
  return res.text;
}

describe('route selection (nginx location order)', () => {
  const s = serve((listen) => ({
    log: { access: false },
    servers: [
      {
        listen,
        routes: [
          { prefix: '/exact', ...say('prefix-exact') },
          { regex: '^/exact', ...say('regex-exact') },
          { exact: '/exact', ...say('exact') },
          { prefix: '/a', ...say('prefix-a') },
          { prefix: '/a/b', ...say('prefix-ab') },
          { regex: '\\.php$', ...say('regex-php-first') },
          { regex: '^/a/b/.*\\.php$', ...say('regex-php-second') },
          { prefix: '/static/', skipRegex: true, ...say('static-skip') },
          { prefix: '/static/deep/', ...say('static-deep') },
          { regex: '\\.jpg$', caseInsensitive: true, ...say('regex-jpg-i') },
          { regex: '^/CaseSensitive$', ...say('regex-case-sensitive') },
          { regex: '^/user/(\\d+)/(\\w+)$', redirect: { to: '/profile/$2?id=$1', status: 301 } },
          { regex: '^/echo/(?<name>[a-z]+)/(\\d+)$', respond: { body: 'name=$1 n=$2 uri=$uri' } },
          { prefix: '/', ...say('root') },
        ],
      },
    ],
  }));

  it('an exact route wins over a matching prefix and a matching regex', async () => {
    assert.equal(await body(s.get('/exact')), 'exact');
  });
  it('a regex beats the longest prefix when the prefix has no skipRegex', async () => {
    assert.equal(await body(s.get('/exact/more')), 'regex-exact');
    assert.equal(await body(s.get('/exactly')), 'regex-exact');
  });
  it('the longest matching prefix wins, whatever the config order', async () => {
    assert.equal(await body(s.get('/a/b/c')), 'prefix-ab');
    assert.equal(await body(s.get('/a/b')), 'prefix-ab');
    assert.equal(await body(s.get('/a/x')), 'prefix-a');
    assert.equal(await body(s.get('/ab')), 'prefix-a');
    assert.equal(await body(s.get('/zzz')), 'root');
  });
  it('regex routes are tried in config order and the first match wins over a shorter prefix', async () => {
    // Both regexes match; the first in the config answers, not the more specific one.
    assert.equal(await body(s.get('/a/b/page.php')), 'regex-php-first');
    assert.equal(await body(s.get('/a/page.php')), 'regex-php-first');
  });
  it('skipRegex (nginx ^~) on the longest prefix stops the regex search', async () => {
    assert.equal(await body(s.get('/static/x.php')), 'static-skip');
    assert.equal(await body(s.get('/static/pic.JPG')), 'static-skip');
  });
  it('skipRegex only counts when its prefix is the longest match', async () => {
    // "/static/deep/" is longer and has no skipRegex: regexes are tried again.
    assert.equal(await body(s.get('/static/deep/x.php')), 'regex-php-first');
    assert.equal(await body(s.get('/static/deep/x.txt')), 'static-deep');
  });
  it('a case-insensitive regex matches any case; a plain regex does not', async () => {
    assert.equal(await body(s.get('/img/a.jpg')), 'regex-jpg-i');
    assert.equal(await body(s.get('/img/A.JpG')), 'regex-jpg-i');
    assert.equal(await body(s.get('/CaseSensitive')), 'regex-case-sensitive');
    assert.equal(await body(s.get('/casesensitive')), 'root');
  });
  it('regex captures expand in a redirect target ($1, $2)', async () => {
    const res = await s.get('/user/42/settings');
    assert.equal(res.status, 301);
    assert.equal(res.headers.location, '/profile/settings?id=42');
  });
  it('named groups count as numbered captures too, and match the decoded $uri', async () => {
    assert.equal(await body(s.get('/echo/abc/7')), 'name=abc n=7 uri=/echo/abc/7');
    // %61 is "a": routes see the decoded, normalised path.
    assert.equal(await body(s.get('/echo/%61bc/7')), 'name=abc n=7 uri=/echo/abc/7');
    assert.equal(await body(s.get('/x/../exact')), 'exact');
  });
});

describe('a server without a "/" route', () => {
  const s = serve((listen) => ({ log: { access: false }, servers: [{ listen, routes: [{ prefix: '/only/', ...say('only') }] }] }));
  it('answers 404 when no route matches', async () => {
    assert.equal((await s.get('/other')).status, 404);
    assert.equal(await body(s.get('/only/x')), 'only');
  });
});

describe('virtual hosts on one listener', () => {
  const s = serve((listen) => ({
    log: { access: false },
    servers: [
      { listen, names: ['first.test'], routes: [say('first')] },
      { listen, names: ['example.com'], routes: [say('exact-example')] },
      { listen, names: ['*.example.com'], routes: [say('wildcard-example')] },
      { listen, names: ['*.deep.example.com'], routes: [say('wildcard-deep')] },
      { listen, names: ['Mixed.Case.Test'], routes: [say('mixed-case')] },
      { listen, names: ['::1'], routes: [say('ipv6-literal')] },
    ],
  }));
  const host = (name: string) => ({ Host: name });

  it('an exact name selects its server', async () => {
    assert.equal(await body(s.get('/', host('example.com'))), 'exact-example');
    assert.equal(await body(s.get('/', host('first.test'))), 'first');
  });
  it('a wildcard matches one or more labels, never the bare domain', async () => {
    assert.equal(await body(s.get('/', host('a.example.com'))), 'wildcard-example');
    assert.equal(await body(s.get('/', host('a.b.example.com'))), 'wildcard-example');
    assert.equal(await body(s.get('/', host('example.com'))), 'exact-example');
    assert.equal(await body(s.get('/', host('badexample.com'))), 'first');
  });
  it('the longest wildcard wins', async () => {
    assert.equal(await body(s.get('/', host('x.deep.example.com'))), 'wildcard-deep');
    assert.equal(await body(s.get('/', host('deep.example.com'))), 'wildcard-example');
  });
  it('Host is normalised: port, trailing dot and case are ignored', async () => {
    assert.equal(await body(s.get('/', host('example.com:8443'))), 'exact-example');
    assert.equal(await body(s.get('/', host('example.com.'))), 'exact-example');
    assert.equal(await body(s.get('/', host('EXAMPLE.Com.:80'))), 'exact-example');
    assert.equal(await body(s.get('/', host('A.B.Example.COM'))), 'wildcard-example');
    assert.equal(await body(s.get('/', host('mixed.case.test'))), 'mixed-case');
  });
  it('an IPv6 literal Host ([::1]:port) selects the server named "::1"', async () => {
    assert.equal(await body(s.get('/', host('[::1]'))), 'ipv6-literal');
    assert.equal(await body(s.get('/', host(`[::1]:${s.portico.port}`))), 'ipv6-literal');
  });
  it('an unknown Host goes to the first server (the default)', async () => {
    assert.equal(await body(s.get('/', host('unknown.test'))), 'first');
    assert.equal(await body(s.get('/', host(`127.0.0.1:${s.portico.port}`))), 'first');
  });
  it('an HTTP/1.0 request without Host goes to the default server', async () => {
    const raw = (await rawRequest(s.portico.port, 'GET / HTTP/1.0\r\n\r\n')).toString('latin1');
    assert.equal(statusOf(raw), 200);
    assert.match(raw, /\r\n\r\nfirst$/);
  });
});

describe('`default: true`, and two listeners with their own servers', () => {
  let listenA = '';
  let listenB = '';
  const s = serve(async () => {
    listenA = `127.0.0.1:${await freePort()}`;
    listenB = `127.0.0.1:${await freePort()}`;
    return {
      log: { access: false },
      servers: [
        { listen: listenA, names: ['one.test'], routes: [say('a-one')] },
        { listen: listenA, names: ['two.test'], default: true, routes: [say('a-two-default')] },
        { listen: listenB, names: ['one.test'], routes: [say('b-one')] },
        { listen: listenB, names: ['three.test'], routes: [say('b-three')] },
      ],
    };
  });
  const on = (listen: string, path: string, hostName: string) => request(`http://${listen}${path}`, { headers: { Host: hostName } });

  it('prints both listeners', () => {
    assert.deepEqual([...s.portico.urls].sort(), [`http://${listenA}`, `http://${listenB}`].sort());
  });
  it('the server marked default takes unknown hosts, not the first', async () => {
    assert.equal(await body(on(listenA, '/', 'nope.test')), 'a-two-default');
    assert.equal(await body(on(listenA, '/', 'one.test')), 'a-one');
  });
  it('each listener has its own host table', async () => {
    assert.equal(await body(on(listenB, '/', 'one.test')), 'b-one');
    assert.equal(await body(on(listenB, '/', 'three.test')), 'b-three');
    // three.test only listens on B: on A it is an unknown host.
    assert.equal(await body(on(listenA, '/', 'three.test')), 'a-two-default');
    // B has no default marked: its first server is the default.
    assert.equal(await body(on(listenB, '/', 'two.test')), 'b-one');
  });
});

for (const status of [421, 404] as const) {
  describe(`http.unknownHost: ${status}`, () => {
    const s = serve((listen) => ({
      log: { access: false },
      http: { unknownHost: status },
      servers: [{ listen, names: ['known.test'], routes: [say('known')] }],
    }));
    it(`answers ${status} for a Host no server names`, async () => {
      const res = await s.get('/', { Host: 'unknown.test' });
      assert.equal(res.status, status);
      assert.notEqual(res.text, 'known');
    });
    it('still serves the named host', async () => {
      assert.equal(await body(s.get('/', { Host: 'KNOWN.test:1' })), 'known');
    });
  });
}

describe('a server with static.root and no routes', () => {
  const s = serve((listen, dir) => {
    const root = join(dir, 'public');
    mkdirSync(join(root, 'sub'), { recursive: true });
    writeFileSync(join(root, 'index.html'), '<h1>home</h1>');
    writeFileSync(join(root, 'sub', 'file.txt'), 'sub file');
    return { log: { access: false }, servers: [{ listen, static: { root: './public' } }] };
  });
  it('serves files from the root at "/"', async () => {
    assert.equal(await body(s.get('/sub/file.txt')), 'sub file');
    assert.equal(await body(s.get('/')), '<h1>home</h1>');
    assert.equal((await s.get('/missing.txt')).status, 404);
  });
});
