/**
 * Automatic HTTPS against Pebble (Debian's `pebble`, Let's Encrypt's test CA), every part real:
 * Pebble validates on Portico's own ports (pebble-challtestsrv resolves every name to 127.0.0.1),
 * curl trusts Pebble's root fetched from its management port, and orders are counted in Pebble's
 * log. Every test uses its own Pebble, data folder and ports.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequest, Agent } from 'node:https';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { after, describe, it } from 'node:test';
import { eventually } from '../helpers/forward.js';
import { pebbleCaFile, startPebble, type RunningPebble } from '../helpers/pebble.js';
import { freePort, request, startWithConfig, tempDir, type RunningPortico } from '../helpers/portico.js';
import { startRedis } from '../helpers/redis.js';

const running: { stop(): Promise<unknown> }[] = [];
after(async () => {
  for (const one of running.reverse()) await one.stop().catch(() => undefined);
});

interface Stack {
  readonly dir: string;
  readonly httpPort: number;
  readonly tlsPort: number;
  readonly pebble: RunningPebble;
  readonly rootFile: string;
}

async function stack(options: { validitySeconds?: number } = {}): Promise<Stack> {
  const dir = tempDir('portico-acme-').path;
  const httpPort = await freePort();
  const tlsPort = await freePort();
  const pebble = await startPebble(dir, { httpPort, tlsPort, ...options });
  running.push(pebble);
  const rootFile = join(dir, 'pebble-root.pem');
  writeFileSync(rootFile, await pebble.root());
  return { dir, httpPort, tlsPort, pebble, rootFile };
}

function siteConfig(s: Stack, names: string[], extra: { state?: unknown; challenges?: string[]; workers?: number; dataDir?: string; httpPort?: number; tlsPort?: number; directory?: string; caFile?: string; eab?: { kid: string; hmacKey: string }; plain?: Record<string, unknown> } = {}): unknown {
  return {
    workers: extra.workers ?? 1,
    log: { level: 'info' },
    ...(extra.state ? { state: extra.state } : {}),
    acme: { directory: extra.directory ?? s.pebble.directory, ca: extra.caFile ?? s.pebble.caFile, dataDir: extra.dataDir ?? join(s.dir, 'data'), retryDelay: '1s', ...(extra.challenges ? { challenges: extra.challenges } : {}), ...(extra.eab ? { eab: extra.eab } : {}) },
    servers: [
      { listen: `127.0.0.1:${extra.httpPort ?? s.httpPort}`, routes: [{ respond: { body: 'plain\n' } }], ...extra.plain },
      { listen: `127.0.0.1:${extra.tlsPort ?? s.tlsPort}`, names, tls: 'auto', routes: [{ respond: { body: 'secure $host\n' } }] },
    ],
  };
}

async function start(dir: string, config: unknown): Promise<RunningPortico> {
  const portico = await startWithConfig(dir, config);
  running.push(portico);
  return portico;
}

interface CurlResult {
  readonly status: number;
  readonly version: string;
  readonly body: string;
  readonly stderr: string;
  readonly code: number;
}

/** Debian's curl over HTTPS (HTTP/2 when the server offers it): status, HTTP version, body, exit code. */
async function curlHttps(args: string[]): Promise<CurlResult> {
  const { execFile } = await import('node:child_process');
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--http2', '--max-time', '20', '-w', '\n%{http_code} %{http_version}', ...args], (error, stdout, stderr) => {
      const cut = stdout.lastIndexOf('\n');
      const [status, version] = stdout.slice(cut + 1).split(' ');
      resolve({ status: Number(status) || 0, version: version ?? '', body: cut === -1 ? '' : stdout.slice(0, cut), stderr, code: error ? Number((error as { code?: number }).code ?? -1) : 0 });
    });
  });
}

/** curl for `name` on `port`, trusting only Pebble's root. */
function curlName(s: Stack, name: string, port = s.tlsPort, rootFile = s.rootFile): Promise<CurlResult> {
  return curlHttps(['--resolve', `${name}:${port}:127.0.0.1`, '--cacert', rootFile, `https://${name}:${port}/`]);
}

/** Waits until `name` is served with a certificate curl trusts. */
async function servedSoon(s: Stack, name: string, ms: number, port = s.tlsPort): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const result = await curlName(s, name, port);
    if (result.code === 0) return;
    if (Date.now() > deadline) throw new Error(`${name} not served over HTTPS within ${ms} ms: ${result.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The serial of the certificate a new TLS connection to `port` is served for `name`. */
function servedSerial(port: number, name: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, servername: name, path: '/', ca, agent: false, headers: { host: name } }, (res) => {
      const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(serial) : reject(new Error(`status ${res.statusCode}`))));
    });
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.on('error', reject).end();
  });
}

/** Both nodes (the second on `otherTls`) serve one certificate per name, validated and issued once at Pebble. */
async function bothServeOneCertificate(s: Stack, names: string[], otherTls: number, nodes: RunningPortico[]): Promise<void> {
  for (const name of names) {
    await servedSoon(s, name, 30_000);
    await servedSoon(s, name, 30_000, otherTls);
  }
  const ca = readFileSync(s.rootFile, 'utf8');
  for (const name of names) {
    assert.equal(await servedSerial(s.tlsPort, name, ca), await servedSerial(otherTls, name, ca), `${name}: both nodes serve the one certificate`);
    assert.equal(s.pebble.validations(name), 1, `${name}: validations at Pebble`);
  }
  assert.equal(s.pebble.issued(), names.length, `certificates issued by Pebble:\n${nodes.map((node) => node.stderr()).join('\n')}`);
}

describe('ACME against Pebble', () => {
  it('obtains a certificate by HTTP-01; curl trusting Pebble gets 200 over h2', async () => {
    const s = await stack();
    // The plain server redirects everything and allows no client: the challenge is answered before any rewrite or access rule.
    const plain = { rewrite: [{ from: '^/', to: 'https://example.invalid/', flag: 'permanent' }], access: [{ deny: 'all' }] };
    const portico = await start(s.dir, siteConfig(s, ['a.test'], { challenges: ['http-01'], plain }));
    await servedSoon(s, 'a.test', 20_000);
    const result = await curlName(s, 'a.test');
    assert.equal(result.status, 200);
    assert.equal(result.version, '2');
    assert.equal(result.body, 'secure a.test\n');
    assert.match(s.pebble.log(), /Attempting to validate w\/ HTTP: http:\/\/a\.test:\d+\/\.well-known\/acme-challenge\//);
    assert.match(portico.stderr(), /answered an HTTP-01 challenge/);
    // The account, key and certificate are in the data folder, mode 0600.
    const stored = join(s.dir, 'data');
    const { statSync, readdirSync } = await import('node:fs');
    const certDir = join(stored, 'certificates', readdirSync(join(stored, 'certificates'))[0] as string, 'a.test');
    for (const file of ['cert.pem', 'key.pem']) assert.equal(statSync(join(certDir, file)).mode & 0o777, 0o600, file);
    // The challenge path is only for pending tokens: any other goes through the server's own rules.
    assert.equal((await request(`http://127.0.0.1:${s.httpPort}/.well-known/acme-challenge/unknown-token-123456`)).status, 301);
  });

  it('obtains a certificate by TLS-ALPN-01 (RFC 8737) on the TLS listener', async () => {
    const s = await stack();
    const portico = await start(s.dir, siteConfig(s, ['b.test'], { challenges: ['tls-alpn-01'] }));
    await servedSoon(s, 'b.test', 20_000);
    const result = await curlName(s, 'b.test');
    assert.equal(result.status, 200);
    assert.equal(result.version, '2');
    assert.match(portico.stderr(), /answering a TLS-ALPN-01 challenge/);
    assert.doesNotMatch(s.pebble.log(), /validate w\/ HTTP/);
  });

  it('renews without a restart: every edge worker serves the new serial, 0 failed requests under load', async () => {
    // 20-second certificates: renewed at half their life (the rule for certificates under 10 days).
    const s = await stack({ validitySeconds: 20 });
    await start(s.dir, siteConfig(s, ['r.test'], { workers: 2 }));
    await servedSoon(s, 'r.test', 20_000);
    const ca = readFileSync(s.rootFile, 'utf8');
    const first = await servedSerial(s.tlsPort, 'r.test', ca);
    const serials = new Set<string>();
    let ok = 0;
    const failures: string[] = [];
    const deadline = Date.now() + 14_000;
    // Four clients, a new connection (a new handshake) per request, for 14 s: past the renewal at ~10 s.
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (Date.now() < deadline) {
          try {
            serials.add(await servedSerial(s.tlsPort, 'r.test', ca));
            ok++;
          } catch (error) {
            failures.push((error as Error).message);
          }
        }
      }),
    );
    assert.deepEqual(failures, [], `failed requests during the renewal (${ok} ok)`);
    assert.ok(ok > 50, `requests made: ${ok}`);
    assert.ok(serials.size >= 2, `serials served: ${[...serials].join(', ')}`);
    // After the renewal every worker serves the new certificate: 20 new connections, none with the first serial.
    const after = await Promise.all(Array.from({ length: 20 }, () => servedSerial(s.tlsPort, 'r.test', ca)));
    assert.ok(!after.includes(first), `still served the first serial ${first}: ${after.join(', ')}`);
    assert.ok(s.pebble.issued() >= 2, `orders: ${s.pebble.issued()}`);
  });

  it('two edge workers and two nodes sharing one data folder: exactly one order per name', async () => {
    const s = await stack();
    const dataDir = join(s.dir, 'shared-data');
    const otherHttp = await freePort();
    const otherTls = await freePort();
    // Node A listens where Pebble validates; node B elsewhere: if B takes an order, A answers its
    // challenges from the shared folder.
    const [a, b] = await Promise.all([
      start(join(s.dir), siteConfig(s, ['one.test', 'two.test'], { workers: 2, dataDir })),
      (async () => {
        const dirB = tempDir('portico-acme-b-').path;
        return start(dirB, siteConfig(s, ['one.test', 'two.test'], { workers: 2, dataDir, httpPort: otherHttp, tlsPort: otherTls }));
      })(),
    ]);
    await bothServeOneCertificate(s, ['one.test', 'two.test'], otherTls, [a, b]);
  });

  it('two nodes with their own data folders sharing Redis (`state`): one order per name, both serve it, the lock and challenges in Redis', async () => {
    const s = await stack();
    const redis = await startRedis(s.dir, await freePort());
    running.push(redis);
    const state = { redis: { url: redis.url, timeout: '500ms' } };
    const otherHttp = await freePort();
    const otherTls = await freePort();
    // Node B's ports are not where Pebble validates: an order B takes is validated through node A,
    // which can only answer from Redis (the data folders differ).
    const [a, b] = await Promise.all([
      start(s.dir, siteConfig(s, ['one.test', 'two.test'], { workers: 2, dataDir: join(s.dir, 'data-a'), state })),
      start(tempDir('portico-acme-b-').path, siteConfig(s, ['one.test', 'two.test'], { workers: 2, dataDir: join(s.dir, 'data-b'), state, httpPort: otherHttp, tlsPort: otherTls })),
    ]);
    await bothServeOneCertificate(s, ['one.test', 'two.test'], otherTls, [a, b]);
    const keys = await redis.command('KEYS', 'portico:certs:*');
    assert.match(keys, /portico:certs:certificates\/[^\n]+\/one\.test\/cert\.pem/, `the certificates are in Redis: ${keys}`);
    assert.match(keys, /portico:certs:accounts\//, 'and the account');
  });

  it('on demand: the ask hook allows a name at its first handshake, once per name; a denied name fails the handshake', async () => {
    const s = await stack();
    const asked = new Map<string, number>();
    const hook: Server = createServer((req, res) => {
      const domain = new URL(req.url ?? '/', 'http://x').searchParams.get('domain') ?? '';
      asked.set(domain, (asked.get(domain) ?? 0) + 1);
      res.writeHead(domain.startsWith('ok') ? 200 : 403).end();
    });
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
    running.push({ stop: () => new Promise((resolve) => hook.close(resolve)) });
    const askUrl = `http://127.0.0.1:${(hook.address() as { port: number }).port}/check`;
    await start(s.dir, {
      workers: 2,
      log: { level: 'info' },
      acme: { directory: s.pebble.directory, ca: s.pebble.caFile, dataDir: join(s.dir, 'data'), retryDelay: '1s', onDemand: { ask: askUrl } },
      servers: [
        { listen: `127.0.0.1:${s.httpPort}`, routes: [{ respond: { body: 'plain\n' } }] },
        { listen: `127.0.0.1:${s.tlsPort}`, default: true, tls: { mode: 'auto', onDemand: true }, routes: [{ respond: { body: 'on demand $host\n' } }] },
      ],
    });
    assert.equal(s.pebble.issued(), 0, 'nothing is ordered before a handshake');
    const first = await curlName(s, 'ok1.test');
    assert.equal(first.status, 200, first.stderr);
    assert.equal(first.body, 'on demand ok1.test\n');
    assert.equal(first.version, '2');
    for (let i = 0; i < 3; i++) assert.equal((await curlName(s, 'ok1.test')).status, 200);
    for (let i = 0; i < 3; i++) {
      const denied = await curlName(s, 'no.test');
      assert.notEqual(denied.code, 0, 'a denied name fails the handshake');
      assert.equal(denied.status, 0);
    }
    assert.equal(asked.get('ok1.test'), 1, 'ask hook calls for ok1.test');
    assert.equal(asked.get('no.test'), 1, 'ask hook calls for no.test');
    assert.equal(s.pebble.issued(), 1);
  });

  it('registers with External Account Binding when the CA requires it (and is refused without)', async () => {
    const eab = { kid: 'portico-kid', hmacKey: 'zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W' };
    const dir = tempDir('portico-acme-eab-').path;
    const httpPort = await freePort();
    const tlsPort = await freePort();
    const pebble = await startPebble(dir, { httpPort, tlsPort, eab });
    running.push(pebble);
    const rootFile = join(dir, 'pebble-root.pem');
    writeFileSync(rootFile, await pebble.root());
    const s = { dir, httpPort, tlsPort, pebble, rootFile };
    const without = await start(dir, siteConfig(s, ['eab.test'], { dataDir: join(dir, 'no-eab') }));
    await eventually(() => /could not obtain a certificate for eab\.test/.test(without.stderr()), 20_000, 'the refusal without EAB');
    assert.match(without.stderr(), /externalAccountBinding/);
    await without.stop();
    await start(dir, siteConfig(s, ['eab.test'], { eab, dataDir: join(dir, 'with-eab') }));
    await servedSoon(s, 'eab.test', 20_000);
    assert.equal(pebble.issued(), 1);
  });

  it('a name that cannot be validated logs the CA\'s problem document: type, detail, which challenge', async () => {
    const dir = tempDir('portico-acme-invalid-').path;
    const tlsPort = await freePort();
    // Pebble validates HTTP-01 on a port where nothing listens.
    const nowhere = await freePort();
    const pebble = await startPebble(dir, { httpPort: nowhere, tlsPort });
    running.push(pebble);
    const httpPort = await freePort();
    const s = { dir, httpPort, tlsPort, pebble, rootFile: '' };
    const portico = await start(dir, siteConfig(s, ['bad.test'], { challenges: ['http-01'] }));
    await eventually(() => /could not obtain a certificate for bad\.test/.test(portico.stderr()), 20_000, 'the logged failure');
    const line = portico.stderr().split('\n').find((l) => l.includes('could not obtain a certificate for bad.test')) as string;
    const logged = JSON.parse(line) as { problem?: { type: string; detail: string; challenge: string; name: string }; retryInMs?: number };
    assert.equal(logged.problem?.type, 'urn:ietf:params:acme:error:connection', line);
    assert.equal(logged.problem?.challenge, 'http-01');
    assert.equal(logged.problem?.name, 'bad.test');
    assert.match(logged.problem?.detail ?? '', /bad\.test/);
    assert.equal(logged.retryInMs, 1000);
    assert.equal(pebble.issued(), 0);
  });

  it('with Pebble down at start, serves HTTP, fails TLS for the name cleanly, and obtains it once Pebble is up', async () => {
    const dir = tempDir('portico-acme-down-').path;
    const httpPort = await freePort();
    const tlsPort = await freePort();
    const listenPort = await freePort();
    const managementPort = await freePort();
    const directory = `https://127.0.0.1:${listenPort}/dir`;
    const caFile = pebbleCaFile(dir);
    const placeholder = { dir, httpPort, tlsPort, rootFile: join(dir, 'pebble-root.pem') } as Stack;
    const portico = await start(dir, siteConfig({ ...placeholder, pebble: { directory, caFile } as RunningPebble }, ['late.test'], { directory, caFile }));
    assert.equal((await request(`http://127.0.0.1:${httpPort}/`)).body.toString(), 'plain\n');
    await eventually(() => /could not obtain a certificate for late\.test/.test(portico.stderr()), 20_000, 'a logged failure');
    const refused = await curlHttps(['-k', '--resolve', `late.test:${tlsPort}:127.0.0.1`, `https://late.test:${tlsPort}/`]);
    assert.notEqual(refused.code, 0, 'no certificate yet: the handshake fails');
    assert.equal(refused.status, 0);
    assert.ok(portico.child.exitCode === null, 'portico keeps running');
    const pebble = await startPebble(dir, { httpPort, tlsPort, listenPort, managementPort });
    running.push(pebble);
    writeFileSync(placeholder.rootFile, await pebble.root());
    // Retries back off from 1 s (1, 2, 4, 8… s): the next one comes within ~16 s.
    await servedSoon({ ...placeholder, pebble }, 'late.test', 30_000);
    assert.equal((await request(`http://127.0.0.1:${httpPort}/`)).body.toString(), 'plain\n');
  });
});

describe('tls: "internal"', () => {
  it('portico trust prints the local CA and how to trust it (made once in the data folder)', async () => {
    const dir = tempDir('portico-trust-').path;
    const dataDir = join(dir, 'data');
    const { spawnCli } = await import('../helpers/portico.js');
    const run = async () => {
      const cli = spawnCli(['trust', '--data-dir', dataDir, '--no-install']);
      assert.equal(await cli.exited, 0, cli.err());
      return cli.out();
    };
    const first = await run();
    const root = join(dataDir, 'ca', 'root.crt');
    assert.match(first, new RegExp(`file +${root.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
    assert.match(first, /curl --cacert .*root\.crt/);
    assert.match(first, /update-ca-certificates/);
    assert.doesNotMatch(first, /installed in the system store/, '--no-install installs nothing');
    const fingerprint = /SHA-256 +(\S+)/.exec(first)?.[1];
    assert.ok(fingerprint);
    assert.equal(/SHA-256 +(\S+)/.exec(await run())?.[1], fingerprint, 'the same CA the second time');
    const { statSync } = await import('node:fs');
    assert.equal(statSync(join(dataDir, 'ca', 'root.key')).mode & 0o777, 0o600);
  });

  it('serves localhost with a certificate from the local CA; curl trusting that CA gets 200 over h2', async () => {
    const dir = tempDir('portico-internal-').path;
    const port = await freePort();
    const dataDir = join(dir, 'data');
    const portico = await start(dir, {
      workers: 1,
      log: { level: 'info' },
      acme: { dataDir },
      servers: [{ listen: `127.0.0.1:${port}`, names: ['localhost', '*.portico.test'], tls: 'internal', routes: [{ respond: { body: 'local $host\n' } }] }],
    });
    const root = join(dataDir, 'ca', 'root.crt');
    await eventually(() => /certificate serving/.test(portico.stderr()), 20_000, 'the localhost certificate');
    const result = await curlHttps(['--cacert', root, `https://localhost:${port}/`]);
    assert.equal(result.status, 200, result.stderr);
    assert.equal(result.version, '2');
    assert.equal(result.body, 'local localhost\n');
    // A name under the wildcard gets its own certificate at its first handshake.
    const wild = await curlHttps(['--cacert', root, '--resolve', `app.portico.test:${port}:127.0.0.1`, `https://app.portico.test:${port}/`]);
    assert.equal(wild.status, 200, wild.stderr);
    // A restart on the same folder keeps the CA (and the certificates): the root curl trusts still works.
    const rootBefore = readFileSync(root, 'utf8');
    await portico.stop();
    const again = await start(dir, { workers: 1, log: { level: 'info' }, acme: { dataDir }, servers: [{ listen: `127.0.0.1:${port}`, names: ['localhost'], tls: 'internal', routes: [{ respond: { body: 'again\n' } }] }] });
    await eventually(() => /certificate serving/.test(again.stderr()), 20_000, 'the stored certificate');
    assert.equal(readFileSync(root, 'utf8'), rootBefore);
    const status = await new Promise<number>((resolve, reject) => {
      const agent = new Agent({ ca: rootBefore, keepAlive: false });
      httpsRequest({ host: 'localhost', port, agent, path: '/' }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on('error', reject)
        .end();
    });
    assert.equal(status, 200);
  });
});
