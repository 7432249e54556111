/**
 * The forward proxy's cache (`forward.cache`, `portico forward --cache`): http:// responses go
 * through the shared RFC 9111 cache only after the client, proxy-authentication and destination
 * checks, keyed by the absolute URI with its port. Real processes on loopback: the built
 * `bin/portico`, curl as the client, raw sockets, and scripted origins that count every request
 * they receive (so "not fetched" and "answered from the cache" are observed at the origin).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, writeFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, rawRequest, runCli, statusOf, tempDir, writeConfig } from '../helpers/portico.js';
import { curl, eventually, openTunnel, readToEnd, startForward, startForwardConfig, type RunningForward } from '../helpers/forward.js';
import { answer, startScriptedUpstream, type ScriptedUpstream } from '../helpers/scripted-upstream.js';

/** Splits `curl -D - …` output into lower-cased headers (the last response's) and body. */
function parseCurl(output: string): { headers: Map<string, string[]>; body: string } {
  const cut = output.lastIndexOf('\r\n\r\n');
  const head = output.slice(0, cut);
  const headers = new Map<string, string[]>();
  for (const line of head.slice(head.lastIndexOf('HTTP/')).split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()]);
  }
  return { headers, body: output.slice(cut + 4) };
}

/** GET through the proxy with curl -x; status, Cache-Status, the whole header map and the body. */
async function viaProxy(proxy: RunningForward, url: string, extra: string[] = []): Promise<{ status: number; cacheStatus: string; headers: Map<string, string[]>; body: string }> {
  const result = await curl(['-x', proxy.url, '-D', '-', ...extra, url]);
  const { headers, body } = parseCurl(result.body);
  return { status: result.status, cacheStatus: headers.get('cache-status')?.join(', ') ?? '', headers, body };
}

/** Waits until the access log has `count` lines naming `text`; returns them. */
async function logLines(proxy: RunningForward, text: string, count: number): Promise<string[]> {
  await eventually(() => proxy.logLines(text).length >= count, 10_000, `${count} access-log lines with ${text}`);
  return proxy.logLines(text);
}

describe('forward cache: hits, what is not stored, keys, CONNECT, purge, coalescing', () => {
  let origin: ScriptedUpstream;
  let other: ScriptedUpstream;
  let proxy: RunningForward;
  before(async () => {
    origin = await startScriptedUpstream();
    other = await startScriptedUpstream();
    proxy = await startForward(['--port', '0', '--allow-dest', '127.0.0.1', '--connect-port', String(origin.port), '--cache']);
  });
  after(async () => {
    await proxy?.stop();
    await origin?.close();
    await other?.close();
  });

  it('curl -x: the second GET of a max-age=60 response is a hit; the origin sees 1 request; Via and the origin Server kept; the access log says miss then hit', async () => {
    origin.on('/fresh', answer({ 'cache-control': 'max-age=60', server: 'origin-server/1.0' }));
    const url = `${origin.url}/fresh`;
    const first = await viaProxy(proxy, url);
    assert.equal(first.status, 200);
    assert.equal(first.body, 'body 1\n');
    assert.match(first.cacheStatus, /^portico; fwd=miss; fwd-status=200; stored; ttl=\d+$/);
    const second = await viaProxy(proxy, url);
    assert.equal(second.status, 200);
    assert.equal(second.body, 'body 1\n');
    assert.match(second.cacheStatus, /^portico; hit; ttl=\d+$/);
    assert.equal(origin.count('/fresh'), 1);
    // RFC 9110 §7.6.3: this hop once in Via, on the miss and on the hit; the origin's Server, not the proxy's.
    for (const response of [first, second]) {
      assert.deepEqual(response.headers.get('via'), ['1.1 portico']);
      assert.deepEqual(response.headers.get('server'), ['origin-server/1.0']);
    }
    assert.ok(second.headers.has('age'));
    const lines = await logLines(proxy, `"GET ${url} HTTP/1.1"`, 2);
    assert.match(lines[0] as string, / dest=127\.0\.0\.1:\d+ .* cache=miss$/);
    // A hit connects to nothing.
    assert.match(lines[1] as string, /" 200 7 .* dest=- up=0 down=7 ms=\d+ cache=hit$/);
  });

  it('no-store and private responses are not stored: every GET reaches the origin', async () => {
    origin.on('/no-store', answer({ 'cache-control': 'no-store, max-age=60' }));
    origin.on('/private', answer({ 'cache-control': 'private, max-age=60' }));
    for (const [path, detail] of [
      ['/no-store', 'no-store'],
      ['/private', 'private'],
    ] as const) {
      for (let i = 1; i <= 2; i++) {
        const response = await viaProxy(proxy, origin.url + path);
        assert.equal(response.body, `body ${i}\n`, path);
        assert.match(response.cacheStatus, new RegExp(`^portico; fwd=miss; fwd-status=200; detail=${detail}$`));
      }
      assert.equal(origin.count(path), 2, path);
    }
  });

  it('the key has the port: the same path on two origins (two ports of 127.0.0.1) are two entries', async () => {
    origin.on('/same', (_req, res) => res.writeHead(200, { 'cache-control': 'max-age=60' }).end('from the first origin\n'));
    other.on('/same', (_req, res) => res.writeHead(200, { 'cache-control': 'max-age=60' }).end('from the second origin\n'));
    assert.equal((await viaProxy(proxy, `${origin.url}/same`)).body, 'from the first origin\n');
    const second = await viaProxy(proxy, `${other.url}/same`);
    assert.equal(second.body, 'from the second origin\n');
    assert.match(second.cacheStatus, /fwd=miss/);
    assert.equal((await viaProxy(proxy, `${other.url}/same`)).body, 'from the second origin\n');
    assert.match((await viaProxy(proxy, `${origin.url}/same`)).cacheStatus, /^portico; hit/);
    assert.equal(origin.count('/same'), 1);
    assert.equal(other.count('/same'), 1);
    // The purge answer names the key: the absolute URI with the port.
    const purge = await curl(['-x', proxy.url, '-X', 'PURGE', `${other.url}/same`]);
    assert.equal(purge.status, 200);
    assert.deepEqual(JSON.parse(purge.body), { purged: 1, key: `http://127.0.0.1:${other.port}/same` });
  });

  it('CONNECT is untouched: requests inside a tunnel all reach the origin, without Cache-Status', async () => {
    origin.on('/tunnelled', answer({ 'cache-control': 'max-age=60' }));
    // Stored through the proxy first: the tunnel must still not be answered from it.
    await viaProxy(proxy, `${origin.url}/tunnelled`);
    for (let i = 2; i <= 3; i++) {
      const tunnel = await openTunnel(proxy.port, `127.0.0.1:${origin.port}`);
      assert.equal(tunnel.status, 200, tunnel.head);
      tunnel.socket.write(`GET /tunnelled HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\nConnection: close\r\n\r\n`);
      const raw = (await readToEnd(tunnel.socket, 10_000, tunnel.rest)).toString();
      assert.equal(statusOf(raw), 200, raw);
      assert.ok(raw.includes(`body ${i}\n`), raw);
      assert.doesNotMatch(raw, /cache-status/i);
    }
    assert.equal(origin.count('/tunnelled'), 3);
  });

  it('PURGE http://… from loopback removes the entry (the next GET goes to the origin); from an address purge.allow lacks: 403', async () => {
    origin.on('/purge-me', answer({ 'cache-control': 'max-age=60' }));
    const url = `${origin.url}/purge-me`;
    await viaProxy(proxy, url);
    assert.match((await viaProxy(proxy, url)).cacheStatus, /hit/);
    // 127.0.0.2 may use the proxy (127.0.0.0/8) but not purge (127.0.0.1 and ::1 by default).
    const refused = await curl(['--interface', '127.0.0.2', '-x', proxy.url, '-X', 'PURGE', url]);
    assert.equal(refused.status, 403);
    assert.match((await viaProxy(proxy, url)).cacheStatus, /hit/);
    const purged = await curl(['-x', proxy.url, '-X', 'PURGE', url]);
    assert.equal(purged.status, 200, purged.body);
    assert.equal((JSON.parse(purged.body) as { purged: number }).purged, 1);
    assert.equal((await curl(['-x', proxy.url, '-X', 'PURGE', url])).status, 404);
    const after = await viaProxy(proxy, url);
    assert.equal(after.body, 'body 2\n');
    assert.match(after.cacheStatus, /fwd=miss/);
    assert.equal(origin.count('/purge-me'), 2);
    // A path ending in "*": every key of that origin with the prefix.
    origin.on('/dir/a', answer({ 'cache-control': 'max-age=60' }));
    origin.on('/dir/b', answer({ 'cache-control': 'max-age=60' }));
    for (const path of ['/dir/a', '/dir/b', '/dir/a']) await viaProxy(proxy, origin.url + path);
    const prefix = await curl(['-x', proxy.url, '-X', 'PURGE', `${origin.url}/dir/*`]);
    assert.equal(prefix.status, 200, prefix.body);
    assert.deepEqual(JSON.parse(prefix.body), { purged: 2, key: `http://127.0.0.1:${origin.port}/dir/*` });
    assert.match((await viaProxy(proxy, `${origin.url}/dir/b`)).cacheStatus, /fwd=miss/);
    assert.equal(origin.count('/dir/a'), 1);
    assert.equal(origin.count('/dir/b'), 2);
  });

  it('a successful POST to a URI invalidates its stored response (RFC 9111 §4.4)', async () => {
    origin.on('/resource', (req, res, n) => {
      if (req.method === 'POST') res.writeHead(204).end();
      else res.writeHead(200, { 'cache-control': 'max-age=60' }).end(`version ${n}\n`);
    });
    const url = `${origin.url}/resource`;
    assert.equal((await viaProxy(proxy, url)).body, 'version 1\n');
    assert.equal((await viaProxy(proxy, url)).body, 'version 1\n');
    assert.equal((await curl(['-x', proxy.url, '-X', 'POST', '--data', 'x=1', url])).status, 204);
    assert.equal((await viaProxy(proxy, url)).body, 'version 3\n');
    assert.equal(origin.count('/resource'), 3);
  });

  it('a response to a request with Authorization (for the origin) is not stored (§3.5)', async () => {
    origin.on('/origin-auth', answer({ 'cache-control': 'max-age=60' }));
    for (let i = 1; i <= 2; i++) assert.match((await viaProxy(proxy, `${origin.url}/origin-auth`, ['-H', 'Authorization: Basic dTpw'])).cacheStatus, /detail=authorization/);
    assert.equal(origin.count('/origin-auth'), 2);
  });

  it('coalescing: 50 concurrent cold requests through the proxy make 1 origin request', async () => {
    origin.on('/cold', (_req, res) => {
      setTimeout(() => res.writeHead(200, { 'cache-control': 'max-age=60' }).end('cold body\n'), 300);
    });
    const agent = new Agent({ keepAlive: false, maxSockets: 50 });
    try {
      const responses = await Promise.all(
        Array.from(
          { length: 50 },
          () =>
            new Promise<{ status: number; body: string; cacheStatus: string }>((resolve, reject) => {
              // Absolute form, as a client configured with the proxy sends it.
              const req = httpRequest({ host: '127.0.0.1', port: proxy.port, path: `${origin.url}/cold`, agent, timeout: 30_000 }, (res) => {
                let body = '';
                res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
                res.on('end', () => resolve({ status: res.statusCode ?? 0, body, cacheStatus: String(res.headers['cache-status']) }));
              });
              req.on('timeout', () => req.destroy(new Error('no answer within 30 s')));
              req.on('error', reject);
              req.end();
            }),
        ),
      );
      assert.equal(origin.count('/cold'), 1);
      for (const response of responses) {
        assert.equal(response.status, 200);
        assert.equal(response.body, 'cold body\n');
      }
      assert.equal(responses.filter((r) => /stored/.test(r.cacheStatus)).length, 1);
    } finally {
      agent.destroy();
    }
  });
});

describe('forward cache: proxy authentication', () => {
  const dir = tempDir();
  let origin: ScriptedUpstream;
  let proxy: RunningForward;
  before(async () => {
    origin = await startScriptedUpstream();
    const sha = (text: string) => `{SHA}${createHash('sha1').update(text).digest('base64')}`;
    const htpasswd = join(dir.path, 'users.htpasswd');
    writeFileSync(htpasswd, `alice:${sha('wonderland')}\nbob:${sha('builder')}\n`);
    proxy = await startForward(['--port', '0', '--allow-dest', '127.0.0.1', '--htpasswd', htpasswd, '--cache']);
  });
  after(async () => {
    await proxy?.stop();
    await origin?.close();
    dir.remove();
  });

  it('Proxy-Authorization does not make a response unstorable; another user gets the hit; the origin never sees the credentials', async () => {
    origin.on('/shared', answer({ 'cache-control': 'max-age=60' }));
    const url = `${origin.url}/shared`;
    const alice = await viaProxy(proxy, url, ['-U', 'alice:wonderland']);
    assert.equal(alice.status, 200);
    assert.match(alice.cacheStatus, /stored/);
    // Not partitioned per user (as Squid): the origin never saw who asked, so its answer cannot depend on it.
    const bob = await viaProxy(proxy, url, ['-U', 'bob:builder']);
    assert.equal(bob.status, 200);
    assert.match(bob.cacheStatus, /^portico; hit/);
    assert.equal(bob.body, 'body 1\n');
    assert.equal(origin.count('/shared'), 1);
    assert.equal(origin.received('/shared')[0]?.headers['proxy-authorization'], undefined);
  });

  it('407 before any cache answer: a cached URI without (or with wrong) credentials is refused, nothing fetched', async () => {
    origin.on('/cached-secret', answer({ 'cache-control': 'max-age=60' }));
    const url = `${origin.url}/cached-secret`;
    assert.equal((await viaProxy(proxy, url, ['-U', 'alice:wonderland'])).status, 200);
    assert.match((await viaProxy(proxy, url, ['-U', 'alice:wonderland'])).cacheStatus, /hit/);
    const none = (await rawRequest(proxy.port, `GET ${url} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`)).toString();
    assert.equal(statusOf(none), 407);
    assert.match(none, /\r\nProxy-Authenticate: Basic /i);
    assert.doesNotMatch(none, /cache-status|body 1/i);
    const wrong = await viaProxy(proxy, url, ['-U', 'alice:wrong']);
    assert.equal(wrong.status, 407);
    assert.equal(wrong.cacheStatus, '');
    // PURGE too needs the proxy's credentials first.
    assert.equal((await curl(['-x', proxy.url, '-X', 'PURGE', url])).status, 407);
    assert.match((await viaProxy(proxy, url, ['-U', 'bob:builder'])).cacheStatus, /hit/);
    assert.equal(origin.count('/cached-secret'), 1);
  });
});

describe('forward cache: a refused request is never answered from the cache (config reloaded over a stored entry)', () => {
  const dir = tempDir();
  let origin: ScriptedUpstream;
  let proxy: RunningForward;
  let listen: string;
  const config = (forward: Record<string, unknown>) => ({ workers: 1, log: { level: 'info' }, forward: { listen, cache: true, ...forward } });
  /** Writes the config and reloads it (SIGHUP); waits for the new generation to serve. */
  async function reload(forward: Record<string, unknown>): Promise<void> {
    writeConfig(dir.path, config(forward));
    const before = proxy.err().split('reloaded: new config serving').length;
    process.kill(proxy.proc.pid, 'SIGHUP');
    await eventually(() => proxy.err().split('reloaded: new config serving').length > before, 15_000, 'the reload');
  }
  before(async () => {
    origin = await startScriptedUpstream();
    // A fixed port: a reload keeps a listener whose address is unchanged.
    listen = `127.0.0.1:${await freePort()}`;
    proxy = await startForwardConfig(dir.path, config({ allowDest: ['127.0.0.1'] }));
  });
  after(async () => {
    await proxy?.stop();
    await origin?.close();
    dir.remove();
  });

  it('stored while allowed; after a reload that denies the destination: 403 (not the stored copy); allowed again: the same entry is a hit', async () => {
    origin.on('/kept', answer({ 'cache-control': 'max-age=600' }));
    const url = `${origin.url}/kept`;
    assert.match((await viaProxy(proxy, url)).cacheStatus, /stored/);
    assert.match((await viaProxy(proxy, url)).cacheStatus, /hit/);
    // Loopback is default-denied without allowDest; denyDest names it outright.
    await reload({ denyDest: ['127.0.0.1'] });
    const denied = await viaProxy(proxy, url);
    assert.equal(denied.status, 403);
    assert.match(denied.body, /127\.0\.0\.1/);
    assert.equal(denied.cacheStatus, '');
    assert.doesNotMatch(denied.body, /body 1/);
    await reload({});
    assert.equal((await viaProxy(proxy, url)).status, 403);
    // The zone outlives the reloads: the entry was there all along, the checks refused it.
    await reload({ allowDest: ['127.0.0.1'] });
    const again = await viaProxy(proxy, url);
    assert.match(again.cacheStatus, /^portico; hit/);
    assert.equal(again.body, 'body 1\n');
    assert.equal(origin.count('/kept'), 1);
  });

  it('a client outside `allow` gets 403 for a stored URI, and an allowed client still gets the hit', async () => {
    origin.on('/client-acl', answer({ 'cache-control': 'max-age=600' }));
    const url = `${origin.url}/client-acl`;
    assert.match((await viaProxy(proxy, url)).cacheStatus, /stored/);
    await reload({ allowDest: ['127.0.0.1'], allow: ['127.0.0.2/32'] });
    const refused = await viaProxy(proxy, url);
    assert.equal(refused.status, 403);
    assert.match(refused.body, /client 127\.0\.0\.1 may not use this proxy/);
    assert.equal(refused.cacheStatus, '');
    const allowed = await viaProxy(proxy, url, ['--interface', '127.0.0.2']);
    assert.match(allowed.cacheStatus, /^portico; hit/);
    assert.equal(origin.count('/client-acl'), 1);
  });
});

/** Entry files of a disk tier (dir/<a>/<bc>/<hash>), not its temporary files or locks. */
function diskEntries(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && !/(^|\/)(tmp|locks)(\/|$)/.test(join(entry.parentPath, entry.name).slice(dir.length)))
    .map((entry) => entry.name);
}

describe('forward cache: the disk tier (--cache-dir) and the JSON access log', () => {
  const dir = tempDir();
  let origin: ScriptedUpstream;
  let proxy: RunningForward | undefined;
  before(async () => {
    origin = await startScriptedUpstream();
  });
  after(async () => {
    await proxy?.stop();
    await origin?.close();
    dir.remove();
  });

  it('an entry stored on disk is a hit for the next process on the same directory; the JSON line has cache "miss" then "hit"', async () => {
    origin.on('/on-disk', answer({ 'cache-control': 'max-age=600' }));
    const url = `${origin.url}/on-disk`;
    const args = ['--port', '0', '--allow-dest', '127.0.0.1', '--cache', '--cache-dir', dir.path, '--access-log', 'json'];
    proxy = await startForward(args);
    assert.match((await viaProxy(proxy, url)).cacheStatus, /stored/);
    const [missLine] = await logLines(proxy, `"uri":"${url}"`, 1);
    assert.equal((JSON.parse(missLine as string) as { cache: string }).cache, 'miss');
    // The entry is renamed into place once its body is complete.
    await eventually(() => diskEntries(dir.path).length > 0, 10_000, 'the entry file on disk');
    await proxy.stop();
    proxy = await startForward(args);
    const hit = await viaProxy(proxy, url);
    assert.match(hit.cacheStatus, /^portico; hit/);
    assert.equal(hit.body, 'body 1\n');
    assert.equal(origin.count('/on-disk'), 1);
    const [hitLine] = await logLines(proxy, `"uri":"${url}"`, 1);
    const fields = JSON.parse(hitLine as string) as { cache: string; destination: string | null; status: number };
    assert.equal(fields.cache, 'hit');
    assert.equal(fields.destination, null);
    assert.equal(fields.status, 200);
  });
});

describe('forward cache on 2 edge workers with a disk zone', () => {
  const dir = tempDir();
  let origin: ScriptedUpstream;
  let proxy: RunningForward;
  before(async () => {
    origin = await startScriptedUpstream();
    proxy = await startForwardConfig(dir.path, { workers: 2, cache: { dir: './cache' }, forward: { listen: '127.0.0.1:0', allowDest: ['127.0.0.1'], cache: true } });
  });
  after(async () => {
    await proxy?.stop();
    await origin?.close();
    dir.remove();
  });

  /** `count` concurrent GETs, each on its own connection (spread over the workers by the kernel); their bodies. */
  async function bodies(url: string, count: number): Promise<string[]> {
    const results = await Promise.all(Array.from({ length: count }, () => viaProxy(proxy, url)));
    for (const result of results) assert.equal(result.status, 200);
    return results.map((result) => result.body);
  }

  it('concurrent cold requests make 1 origin request (lock files on the shared disk tier); a PURGE reaches every worker', async () => {
    // The banner's next line (it may arrive in a later chunk than the one startForwardConfig waited for).
    await eventually(() => /edge workers 2/.test(proxy.out()), 10_000, 'the edge workers line');
    origin.on('/shared-cold', (_req, res, n) => {
      setTimeout(() => res.writeHead(200, { 'cache-control': 'max-age=600' }).end(`version ${n}\n`), 300);
    });
    const url = `${origin.url}/shared-cold`;
    assert.deepEqual(new Set(await bodies(url, 20)), new Set(['version 1\n']));
    assert.deepEqual(new Set(await bodies(url, 10)), new Set(['version 1\n']));
    assert.equal(origin.count('/shared-cold'), 1);
    const purged = await curl(['-x', proxy.url, '-X', 'PURGE', url]);
    assert.equal(purged.status, 200, purged.body);
    // The worker that purged announces it; the supervisor relays it to the other worker's memory tier (asynchronously).
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.deepEqual(new Set(await bodies(url, 10)), new Set(['version 2\n']));
    assert.equal(origin.count('/shared-cold'), 2);
  });
});

describe('forward cache config', () => {
  const dir = tempDir();
  after(() => dir.remove());

  it('forward.cache names a zone of the cache section; an unknown zone or a `key` is refused with its field path', async () => {
    const path = writeConfig(dir.path, { forward: { cache: { zone: 'nope', key: '$uri' } } }, 'bad.json');
    const result = await runCli(['check', '--config', path]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /forward\.cache\.key: unknown key/, result.stderr);
    const zoned = writeConfig(dir.path, { forward: { cache: { zone: 'nope' } } }, 'zone.json');
    const zoneResult = await runCli(['check', '--config', zoned]);
    assert.equal(zoneResult.code, 2);
    assert.match(zoneResult.stderr, /forward\.cache\.zone: expected a cache zone \("default"\), got "nope"/, zoneResult.stderr);
  });

  it('off by default; `cache: true` resolves the route cache defaults in zone "default"; a named zone with a disk tier', async () => {
    const off = await runCli(['check', '--config', writeConfig(dir.path, { forward: {} }, 'off.json')]);
    assert.equal(off.code, 0, off.stderr);
    assert.equal((JSON.parse(off.stdout) as { forward: { cache: unknown } }).forward.cache, null);
    const on = await runCli(['check', '--config', writeConfig(dir.path, { cache: { zones: { web: { dir: './web-cache' } } }, forward: { cache: { zone: 'web', useStale: ['error'] } } }, 'on.json')]);
    assert.equal(on.code, 0, on.stderr);
    const resolved = JSON.parse(on.stdout) as { forward: { cache: Record<string, unknown> }; cache: { zones: Record<string, { dir: string }> } };
    assert.equal(resolved.forward.cache.zone, 'web');
    assert.deepEqual(resolved.forward.cache.useStale, ['error']);
    assert.equal(resolved.forward.cache.lock, true);
    assert.deepEqual(resolved.forward.cache.purge, ['127.0.0.1', '::1']);
    assert.equal(resolved.cache.zones.web?.dir, join(dir.path, 'web-cache'));
  });

  it('portico forward: --cache-dir needs --cache', async () => {
    const result = await runCli(['forward', '--port', '0', '--cache-dir', dir.path]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--cache-dir: expected with --cache/);
  });
});
