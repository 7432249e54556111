/**
 * Rewrite (internal), redirect actions, canonical redirects, fixed responses and variables,
 * against the real built server over loopback sockets. Redirects are never followed: the status
 * and Location of the first response are what is checked.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, rawRequest, request, startWithConfig, statusOf, tempDir, type RunningPortico, type SimpleResponse } from '../helpers/portico.js';

const say = (body: string) => ({ respond: { body } });
/** A route answering with the URI and args it finally sees (after rewrites). */
const TARGET = { prefix: '/target/', respond: { body: 'target uri=$uri args=$args' } };

describe('rewrite, redirect and respond', () => {
  const dir = tempDir();
  let portico: RunningPortico;
  let port = 0;
  let port2 = 0;
  const get = (path: string, options: { method?: string; headers?: Record<string, string> } = {}): Promise<SimpleResponse> =>
    request(`${portico.url}${path}`, options);

  before(async () => {
    port = await freePort();
    port2 = await freePort();
    const listen = `127.0.0.1:${port}`;
    mkdirSync(join(dir.path, 'public', 'files'), { recursive: true });
    writeFileSync(join(dir.path, 'public', 'files', 'real.txt'), 'the real file');
    portico = await startWithConfig(dir.path, {
      log: { access: false },
      servers: [
        {
          listen,
          names: ['main.test'],
          routes: [
            TARGET,
            { prefix: '/last/', rewrite: [{ from: '^/last/(.*)$', to: '/target/$1', flag: 'last' }], ...say('last route itself (wrong)') },
            {
              prefix: '/noflag/',
              rewrite: [
                { from: '^/noflag/(.*)$', to: '/middle/$1' },
                // Rules without a flag go on: the second rule sees the first one's result.
                { from: '^/middle/(.*)$', to: '/target/$1' },
              ],
              ...say('noflag route itself (wrong)'),
            },
            { prefix: '/nochange/', rewrite: [{ from: '^/nomatch/', to: '/target/never' }], ...say('nochange route') },
            { prefix: '/ping/', rewrite: [{ from: '^/ping/(.*)$', to: '/pong/$1', flag: 'last' }], ...say('ping (wrong)') },
            { prefix: '/pong/', rewrite: [{ from: '^/pong/(.*)$', to: '/ping/$1', flag: 'last' }], ...say('pong (wrong)') },
            {
              prefix: '/files/',
              static: { root: './public' },
              rewrite: [{ from: '^/files/alias$', to: '/files/real.txt', flag: 'break' }],
            },
            // If `break` searched the routes again, this route would answer instead of the file.
            { exact: '/files/real.txt', ...say('exact route (break must not re-match)') },
            { exact: '/r301', redirect: { to: '/dest?s=301', status: 301 } },
            { exact: '/r302', redirect: { to: '/dest?s=302', status: 302 } },
            { exact: '/r303', redirect: { to: '/dest?s=303', status: 303 } },
            { exact: '/r307', redirect: { to: '/dest?s=307', status: 307 } },
            { exact: '/r308', redirect: { to: 'https://other.test/dest?s=308', status: 308 } },
            { exact: '/rdefault', redirect: { to: 'http://$host/dest$request_uri' } },
            { prefix: '/abs/', rewrite: [{ from: '^/abs/(.*)$', to: 'https://elsewhere.test/$1' }], ...say('abs (wrong)') },
            { prefix: '/perm/', rewrite: [{ from: '^/perm/(.*)$', to: '/moved/$1', flag: 'permanent' }], ...say('perm (wrong)') },
            { prefix: '/temp/', rewrite: [{ from: '^/temp/(.*)$', to: '/moved/$1', flag: 'redirect' }], ...say('temp (wrong)') },
            { prefix: '/ci/', rewrite: [{ from: '^/CI/(.*)$', to: '/target/ci-$1', caseInsensitive: true, flag: 'last' }], ...say('ci (wrong)') },
            // Arguments: kept, merged with the replacement's own, or dropped by a trailing "?".
            { prefix: '/args-keep/', rewrite: [{ from: '^/args-keep/(.*)$', to: '/target/$1', flag: 'last' }] },
            { prefix: '/args-own/', rewrite: [{ from: '^/args-own/(.*)$', to: '/target/$1?a=b', flag: 'last' }] },
            { prefix: '/args-drop/', rewrite: [{ from: '^/args-drop/(.*)$', to: '/target/$1?', flag: 'last' }] },
            { prefix: '/redir-keep/', rewrite: [{ from: '^/redir-keep/(.*)$', to: '/dest/$1', flag: 'redirect' }] },
            { prefix: '/redir-own/', rewrite: [{ from: '^/redir-own/(.*)$', to: '/dest/$1?a=b', flag: 'redirect' }] },
            { prefix: '/redir-drop/', rewrite: [{ from: '^/redir-drop/(.*)$', to: '/dest/$1?', flag: 'permanent' }] },
            {
              exact: '/vars',
              respond: {
                body: 'host=$host|uri=$uri|request_uri=$request_uri|scheme=$scheme|args=$args|is_args=$is_args|name=$arg_name|userId=$arg_userId|ua=$http_user_agent|x=$http_x_custom_thing|method=$request_method|port=$server_port|server=$server_name',
              },
            },
            { exact: '/teapot', respond: { status: 418, body: 'short and stout', headers: { 'X-Kind': 'teapot' }, contentType: 'text/x-tea' } },
            { exact: '/empty', respond: { status: 204 } },
            { exact: '/gone', respond: { status: 410 } },
          ],
        },
        { listen, names: ['secure.test'], canonical: { https: true }, routes: [say('secure (wrong)')] },
        { listen, names: ['add.test', 'www.add.test'], canonical: { www: 'add' }, routes: [say('www.add')] },
        { listen, names: ['remove.test', 'www.remove.test'], canonical: { www: 'remove' }, routes: [say('remove')] },
        { listen, names: ['slash-add.test'], canonical: { trailingSlash: 'add' }, routes: [say('slash-add: $uri')] },
        { listen, names: ['slash-remove.test'], canonical: { trailingSlash: 'remove', status: 302 }, routes: [say('slash-remove: $uri')] },
        // The default (and only) server of a second listener: it also gets requests by IP address.
        { listen: `127.0.0.1:${port2}`, canonical: { www: 'add' }, routes: [say('www-add default')] },
        {
          listen,
          names: ['server-rewrite.test'],
          rewrite: [
            { from: '^/old/(.*)$', to: '/new/$1' },
            { from: '^/gone-away$', to: '/new/elsewhere', flag: 'permanent' },
          ],
          routes: [
            { prefix: '/old/', ...say('old route (server rewrite must run first)') },
            { prefix: '/new/', respond: { body: 'new route uri=$uri request_uri=$request_uri' } },
            { prefix: '/', ...say('server-rewrite root') },
          ],
        },
      ],
    });
  });
  after(async () => {
    await portico.stop();
    dir.remove();
  });

  describe('internal rewrite', () => {
    it('`last` searches the routes again: the target route answers', async () => {
      const res = await get('/last/a/b');
      assert.equal(res.status, 200);
      assert.equal(res.text, 'target uri=/target/a/b args=');
    });
    it('without a flag, rules chain and a changed URI searches the routes again', async () => {
      assert.equal((await get('/noflag/x')).text, 'target uri=/target/x args=');
    });
    it('a rule that does not match leaves the route in charge', async () => {
      assert.equal((await get('/nochange/x')).text, 'nochange route');
    });
    it('`break` stays in the route: a static route serves the rewritten file', async () => {
      const res = await get('/files/alias');
      assert.equal(res.status, 200);
      assert.equal(res.text, 'the real file');
    });
    it('a `last` loop ends with 500 after 10 internal redirects', async () => {
      const res = await get('/ping/x');
      assert.equal(res.status, 500);
      assert.doesNotMatch(res.text, /ping|pong/);
    });
    it('caseInsensitive rules match any case', async () => {
      assert.equal((await get('/ci/Thing')).text, 'target uri=/target/ci-Thing args=');
    });
    it('original arguments are kept', async () => {
      assert.equal((await get('/args-keep/x?q=1&r=2')).text, 'target uri=/target/x args=q=1&r=2');
    });
    it('a replacement with its own "?a=b" gets the original arguments appended with "&"', async () => {
      assert.equal((await get('/args-own/x?q=1')).text, 'target uri=/target/x args=a=b&q=1');
      assert.equal((await get('/args-own/x')).text, 'target uri=/target/x args=a=b');
    });
    it('a replacement ending in "?" drops the arguments', async () => {
      assert.equal((await get('/args-drop/x?q=1')).text, 'target uri=/target/x args=');
    });
  });

  describe('redirects', () => {
    for (const status of [301, 302, 303, 307] as const) {
      it(`a redirect action with status ${status}`, async () => {
        const res = await get(`/r${status}`);
        assert.equal(res.status, status);
        assert.equal(res.headers.location, `/dest?s=${status}`);
      });
    }
    it('a redirect action with status 308 to an absolute URL', async () => {
      const res = await get('/r308', { method: 'POST' });
      assert.equal(res.status, 308);
      assert.equal(res.headers.location, 'https://other.test/dest?s=308');
    });
    it('a redirect action defaults to 302 and expands variables', async () => {
      const res = await get('/rdefault?x=1', { headers: { Host: 'Main.Test:9' } });
      assert.equal(res.status, 302);
      assert.equal(res.headers.location, 'http://main.test/dest/rdefault?x=1');
    });
    it('a rewrite to an absolute https:// URL answers 302, with the arguments', async () => {
      const res = await get('/abs/page?q=1');
      assert.equal(res.status, 302);
      assert.equal(res.headers.location, 'https://elsewhere.test/page?q=1');
    });
    it('flag `permanent` answers 301, flag `redirect` 302', async () => {
      const perm = await get('/perm/p');
      assert.equal(perm.status, 301);
      assert.equal(perm.headers.location, '/moved/p');
      const temp = await get('/temp/p');
      assert.equal(temp.status, 302);
      assert.equal(temp.headers.location, '/moved/p');
    });
    it('redirect arguments: kept, appended after the own query, or dropped', async () => {
      assert.equal((await get('/redir-keep/x?q=1')).headers.location, '/dest/x?q=1');
      assert.equal((await get('/redir-own/x?q=1')).headers.location, '/dest/x?a=b&q=1');
      assert.equal((await get('/redir-own/x')).headers.location, '/dest/x?a=b');
      const drop = await get('/redir-drop/x?q=1');
      assert.equal(drop.status, 301);
      assert.equal(drop.headers.location, '/dest/x');
    });
  });

  describe('respond and variables', () => {
    it('expands request variables in a respond body', async () => {
      const res = await get('/vars?name=Ann&userId=7&empty', {
        method: 'PUT',
        headers: { Host: 'MAIN.test:9999', 'User-Agent': 'tester/1.0', 'X-Custom-Thing': 'yes' },
      });
      assert.equal(res.status, 200);
      const vars = Object.fromEntries(res.text.split('|').map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]));
      assert.deepEqual(vars, {
        host: 'main.test',
        uri: '/vars',
        request_uri: '/vars?name=Ann&userId=7&empty',
        scheme: 'http',
        args: 'name=Ann&userId=7&empty',
        is_args: '?',
        name: 'Ann',
        // nginx compares argument names case-insensitively ($arg_userId is $arg_userid, and finds "userId=").
        userId: '7',
        ua: 'tester/1.0',
        x: 'yes',
        method: 'PUT',
        port: String(port),
        server: 'main.test',
      });
    });
    it('$uri is decoded and normalised, $request_uri is as sent', async () => {
      const raw = await rawRequest(port, 'GET /a/../vars?x=%41 HTTP/1.1\r\nHost: main.test\r\nConnection: close\r\n\r\n');
      const text = raw.toString('latin1');
      assert.equal(statusOf(text), 200);
      assert.match(text, /\|uri=\/vars\|request_uri=\/a\/\.\.\/vars\?x=%41\|/);
    });
    it('a respond action sends its status, headers, content type and Content-Length', async () => {
      const res = await get('/teapot');
      assert.equal(res.status, 418);
      assert.equal(res.text, 'short and stout');
      assert.equal(res.headers['x-kind'], 'teapot');
      assert.equal(res.headers['content-type'], 'text/x-tea');
      assert.equal(res.headers['content-length'], String('short and stout'.length));
    });
    it('a respond action without a body: 204 has no Content-Length, others have 0', async () => {
      const empty = await get('/empty');
      assert.equal(empty.status, 204);
      assert.equal(empty.headers['content-length'], undefined);
      const gone = await get('/gone');
      assert.equal(gone.status, 410);
      assert.equal(gone.headers['content-length'], '0');
      assert.equal(gone.text, '');
    });
  });

  describe('canonical redirects', () => {
    it('https: true → 301 to https://host/path?q (the port of the plain listener dropped)', async () => {
      const res = await get('/p/a?q=1', { headers: { Host: `secure.test:${port}` } });
      assert.equal(res.status, 301);
      assert.equal(res.headers.location, 'https://secure.test/p/a?q=1');
    });
    it('https: true → 308 for POST, so the method and body survive', async () => {
      const res = await get('/form', { method: 'POST', headers: { Host: 'secure.test' } });
      assert.equal(res.status, 308);
      assert.equal(res.headers.location, 'https://secure.test/form');
    });
    it('https: true with an absolute-form target redirects to the path, not the whole target', async () => {
      const raw = (await rawRequest(port, 'GET http://secure.test/p?q=1 HTTP/1.1\r\nHost: secure.test\r\nConnection: close\r\n\r\n')).toString('latin1');
      assert.equal(statusOf(raw), 301);
      assert.match(raw, /\r\nLocation: https:\/\/secure\.test\/p\?q=1\r\n/i);
    });
    it("www: 'add' → www. host, port kept", async () => {
      const res = await get('/x?y=1', { headers: { Host: `add.test:${port}` } });
      assert.equal(res.status, 301);
      assert.equal(res.headers.location, `http://www.add.test:${port}/x?y=1`);
      assert.equal((await get('/x', { headers: { Host: 'www.add.test' } })).text, 'www.add');
    });
    it("www: 'add' leaves a request by IP address alone", async () => {
      const byName = await request(`http://127.0.0.1:${port2}/x`, { headers: { Host: 'site.test' } });
      assert.equal(byName.status, 301);
      assert.equal(byName.headers.location, 'http://www.site.test/x');
      for (const address of [`127.0.0.1:${port2}`, '10.0.0.1', '[::1]:80']) {
        const res = await request(`http://127.0.0.1:${port2}/x`, { headers: { Host: address } });
        assert.equal(res.status, 200, `Host: ${address} → ${res.headers.location}`);
        assert.equal(res.text, 'www-add default');
      }
    });
    it("www: 'remove' → bare host", async () => {
      const res = await get('/x', { headers: { Host: `www.remove.test:${port}` } });
      assert.equal(res.status, 301);
      assert.equal(res.headers.location, `http://remove.test:${port}/x`);
      assert.equal((await get('/x', { headers: { Host: 'remove.test' } })).text, 'remove');
    });
    it("trailingSlash: 'add' → /docs/ for paths without an extension, query kept", async () => {
      const h = { headers: { Host: 'slash-add.test' } };
      const docs = await get('/docs?v=2', h);
      assert.equal(docs.status, 301);
      assert.equal(docs.headers.location, '/docs/?v=2');
      assert.equal((await get('/docs/', h)).text, 'slash-add: /docs/');
      assert.equal((await get('/file.txt', h)).text, 'slash-add: /file.txt');
      assert.equal((await get('/v1.2/docs', h)).headers.location, '/v1.2/docs/');
      assert.equal((await get('/', h)).text, 'slash-add: /');
    });
    it('a trailing-slash redirect never becomes a network-path ("//host") Location', async () => {
      for (const [name, target, location] of [
        ['slash-add.test', '//evil.test/x', '/evil.test/x/'],
        ['slash-add.test', '///evil.test/x?y', '/evil.test/x/?y'],
        ['slash-remove.test', '//evil.test/', '/evil.test'],
      ] as const) {
        const raw = (await rawRequest(port, `GET ${target} HTTP/1.1\r\nHost: ${name}\r\nConnection: close\r\n\r\n`)).toString('latin1');
        assert.ok([301, 302].includes(statusOf(raw)), raw);
        assert.equal(/\r\nLocation: ([^\r]*)\r\n/i.exec(raw)?.[1], location, `${name} ${target}`);
      }
    });
    it('an absolute-form target keeps its own port in a www redirect', async () => {
      const raw = (await rawRequest(port, 'GET http://add.test:8080/x HTTP/1.1\r\nHost: add.test:1\r\nConnection: close\r\n\r\n')).toString('latin1');
      assert.equal(statusOf(raw), 301);
      assert.match(raw, /\r\nLocation: http:\/\/www\.add\.test:8080\/x\r\n/i);
    });
    it("trailingSlash: 'remove' → /docs, with the configured status", async () => {
      const h = { headers: { Host: 'slash-remove.test' } };
      const docs = await get('/docs/?v=2', h);
      assert.equal(docs.status, 302);
      assert.equal(docs.headers.location, '/docs?v=2');
      assert.equal((await get('/docs', h)).text, 'slash-remove: /docs');
      assert.equal((await get('/', h)).text, 'slash-remove: /');
    });
  });

  describe('server-level rewrite', () => {
    it('runs before route selection', async () => {
      const res = await get('/old/page?k=v', { headers: { Host: 'server-rewrite.test' } });
      assert.equal(res.status, 200);
      assert.equal(res.text, 'new route uri=/new/page request_uri=/old/page?k=v');
    });
    it('a server-level rule with a redirect flag answers before any route', async () => {
      const res = await get('/gone-away?k=v', { headers: { Host: 'server-rewrite.test' } });
      assert.equal(res.status, 301);
      assert.equal(res.headers.location, '/new/elsewhere?k=v');
    });
    it('leaves other paths alone', async () => {
      assert.equal((await get('/other', { headers: { Host: 'server-rewrite.test' } })).text, 'server-rewrite root');
    });
  });
});
