/**
 * Issue #20 items 6, 7 and 9 on the wire, raw bytes over loopback to a real portico and a real
 * node:http upstream that echoes what reached it:
 *   6. lookalikes of framing fields and names with underscores or other characters are dropped
 *      before forwarding (nginx `underscores_in_headers off`, `ignore_invalid_headers on`);
 *   7. percent-encoded control bytes are data (404 from static, forwarded as received by the
 *      proxy, encoded again in a redirect), and the raw characters " < > { } | ^ ` are accepted;
 *   9. the forward proxy checks the Host field (400 for "a b") and replaces it by the URI's authority.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, startWithConfig, tempDir, type RunningPortico } from '../helpers/portico.js';
import { echoHandler, headerValues, rawHeader, rawHttp, startNodeUpstream, type EchoedRequest, type NodeUpstream } from '../helpers/upstreams.js';

const LOOKALIKES = ['Transfer_Encoding', 'Content_Length', 'Transfer--Encoding', '-Content-Length', 'Content-Length-', 'content.length'];

function head(target: string, fields: [string, string][] = [], method = 'GET'): string {
  return `${method} ${target} HTTP/1.1\r\nHost: site.test\r\n${fields.map(([name, value]) => `${name}: ${value}\r\n`).join('')}Connection: close\r\n\r\n`;
}

const echoed = (body: Buffer): EchoedRequest => JSON.parse(body.toString('utf8')) as EchoedRequest;
const names = (request: EchoedRequest): string[] => request.rawHeaders.map(([name]) => name);

describe('wire hardening (#20: header names, request targets, forward Host)', () => {
  const dir = tempDir();
  let upstream: NodeUpstream;
  let strict: RunningPortico;
  let underscores: RunningPortico;
  let lenient: RunningPortico;
  let forwardPort = 0;

  before(async () => {
    upstream = await startNodeUpstream(echoHandler());
    mkdirSync(join(dir.path, 'public'));
    writeFileSync(join(dir.path, 'public', 'a.txt'), 'a\n');
    const site = (port: number) => ({
      listen: `127.0.0.1:${port}`,
      routes: [
        { prefix: '/', static: { root: join(dir.path, 'public') } },
        { prefix: '/p/', proxy: { to: upstream.url } },
        { prefix: '/r/', redirect: { to: '/moved$uri' } },
        { prefix: '/rw/', rewrite: [{ from: '^/rw/(.*)$', to: '/p/$1', flag: 'last' }] },
      ],
    });
    forwardPort = await freePort();
    const [a, b, c] = [await freePort(), await freePort(), await freePort()];
    const strictDir = join(dir.path, 'strict');
    const underscoresDir = join(dir.path, 'underscores');
    const lenientDir = join(dir.path, 'lenient');
    for (const folder of [strictDir, underscoresDir, lenientDir]) mkdirSync(folder);
    const base = { workers: 1, log: { access: false } };
    [strict, underscores, lenient] = await Promise.all([
      startWithConfig(strictDir, { ...base, servers: [site(a)], forward: { listen: `127.0.0.1:${forwardPort}`, allowDest: ['127.0.0.1'], httpPorts: [upstream.port] } }),
      startWithConfig(underscoresDir, { ...base, http: { underscoresInHeaders: true }, servers: [site(b)] }),
      startWithConfig(lenientDir, { ...base, http: { underscoresInHeaders: true, ignoreInvalidHeaders: false }, servers: [site(c)] }),
    ]);
  });
  after(async () => {
    await Promise.all([strict?.stop(), underscores?.stop(), lenient?.stop()]);
    await upstream?.close();
    dir.remove();
  });

  describe('6. header names', () => {
    it('by default, lookalikes of framing fields and names with "_" or "." never reach the upstream', async () => {
      const fields: [string, string][] = [...LOOKALIKES.map((name): [string, string] => [name, name.toLowerCase().includes('length') ? '0' : 'chunked']), ['X_Real_IP', '6.6.6.6'], ['X.Dotted', '1'], ['Good-Name', 'kept']];
      const res = await rawHttp(strict.port, head('/p/names', fields, 'POST').replace('Connection: close', 'Content-Length: 5\r\nConnection: close'), 'hello');
      assert.equal(res.status, 200);
      const request = echoed(res.body);
      for (const name of [...LOOKALIKES, 'X_Real_IP', 'X.Dotted']) assert.ok(!names(request).includes(name), `${name} reached the upstream: ${JSON.stringify(names(request))}`);
      assert.deepEqual(headerValues(request, 'good-name'), ['kept']);
      assert.deepEqual(headerValues(request, 'content-length'), ['5'], 'one Content-Length, the real one');
      assert.deepEqual(headerValues(request, 'transfer-encoding'), []);
      assert.equal(request.body, 'hello');
    });

    it('the dropped fields are gone for every phase: a rewrite to the proxy does not bring them back', async () => {
      const res = await rawHttp(strict.port, head('/rw/again', [['Content_Length', '0'], ['X_Forwarded_For', '6.6.6.6']]));
      assert.equal(res.status, 200);
      const request = echoed(res.body);
      assert.equal(request.url, '/p/again');
      assert.ok(!names(request).some((name) => name.includes('_')), JSON.stringify(names(request)));
      assert.deepEqual(headerValues(request, 'x-forwarded-for'), ['127.0.0.1']);
    });

    it('underscoresInHeaders: true passes names with "_", but still not framing lookalikes', async () => {
      const res = await rawHttp(underscores.port, head('/p/u', [['X_Real_IP', '6.6.6.6'], ['Content_Length', '0'], ['Transfer--Encoding', 'chunked'], ['X.Dotted', '1']]));
      assert.equal(res.status, 200);
      const request = echoed(res.body);
      assert.deepEqual(headerValues(request, 'x_real_ip'), ['6.6.6.6']);
      for (const name of ['Content_Length', 'Transfer--Encoding', 'X.Dotted']) assert.ok(!names(request).includes(name), `${name} reached the upstream`);
    });

    it('ignoreInvalidHeaders: false with underscoresInHeaders: true passes every name on', async () => {
      const res = await rawHttp(lenient.port, head('/p/l', [['Content_Length', '0'], ['Transfer--Encoding', 'chunked'], ['X.Dotted', '1']]));
      assert.equal(res.status, 200);
      const request = echoed(res.body);
      for (const name of ['Content_Length', 'Transfer--Encoding', 'X.Dotted']) assert.ok(names(request).includes(name), `${name} was dropped`);
    });
  });

  describe('7. request targets', () => {
    for (const target of ['/a%09b', '/a%0Ab', '/a%0D%0Ab', '/a.txt%0A', '/%7F']) {
      it(`${target}: a static lookup finds no such file (404, not 400)`, async () => {
        assert.equal((await rawHttp(strict.port, head(target))).status, 404);
      });
    }

    it('the file itself is still served, and an encoded NUL is still a 400', async () => {
      assert.equal((await rawHttp(strict.port, head('/a.txt'))).status, 200);
      assert.equal((await rawHttp(strict.port, head('/a.txt%00.html'))).status, 400);
    });

    it('the proxy forwards a target with encoded control bytes as received', async () => {
      const res = await rawHttp(strict.port, head('/p/x%0d%0aSet-Cookie:%20a%09b'));
      assert.equal(res.status, 200);
      assert.equal(echoed(res.body).url, '/p/x%0d%0aSet-Cookie:%20a%09b');
    });

    it('a rewrite re-encodes them before they go upstream', async () => {
      // (A tab: a regex's "." does not match a line feed, in PCRE as here.)
      const res = await rawHttp(strict.port, head('/rw/x%09y'));
      assert.equal(res.status, 200);
      assert.equal(echoed(res.body).url, '/p/x%09y');
    });

    it('a redirect built from the decoded URI encodes them again: no header is split', async () => {
      const res = await rawHttp(strict.port, head('/r/x%0d%0aSet-Cookie:%20a'));
      assert.equal(res.status, 302);
      assert.deepEqual(rawHeader(res, 'location'), ['/moved/r/x%0D%0ASet-Cookie:%20a']);
      assert.deepEqual(rawHeader(res, 'set-cookie'), []);
      const utf8 = await rawHttp(strict.port, head('/r/caf%C3%A9'));
      assert.deepEqual(rawHeader(utf8, 'location'), ['/moved/r/caf%C3%A9']);
    });

    for (const char of ['"', '<', '>', '{', '}', '|', '^', '`']) {
      it(`the raw character ${char} in a target is accepted: 404 from static, forwarded as received`, async () => {
        assert.equal((await rawHttp(strict.port, head(`/a${char}b`))).status, 404);
        const res = await rawHttp(strict.port, head(`/p/a${char}b?q=${char}`));
        assert.equal(res.status, 200);
        assert.equal(echoed(res.body).url, `/p/a${char}b?q=${char}`);
      });
    }
  });

  describe('9. forward proxy Host', () => {
    const forwardHead = (host: string | null, extra = '') => `GET http://127.0.0.1:${upstream.port}/f HTTP/1.1\r\n${host === null ? '' : `Host: ${host}\r\n`}${extra}Connection: close\r\n\r\n`;

    it('a valid Host is replaced by the URI authority (RFC 9112 §3.2.2)', async () => {
      const res = await rawHttp(forwardPort, forwardHead('elsewhere.test'));
      assert.equal(res.status, 200);
      assert.deepEqual(headerValues(echoed(res.body), 'host'), [`127.0.0.1:${upstream.port}`]);
    });

    for (const [why, host, extra] of [['not a host', 'a b', ''], ['two Host fields', 'a.test', 'Host: b.test\r\n'], ['no Host (HTTP/1.1)', null, ''], ['an empty port bracket', '[::1', '']] as const) {
      it(`400 for ${why}, and nothing reaches the destination`, async () => {
        const before = upstream.connections();
        const res = await rawHttp(forwardPort, forwardHead(host, extra));
        assert.equal(res.status, 400);
        assert.equal(upstream.connections(), before);
      });
    }
  });
});
