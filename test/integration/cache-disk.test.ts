/**
 * The cache's disk tier with real processes: entries survive a restart of portico; a portico
 * killed with SIGKILL while it writes an entry (a big body streamed slowly by the upstream)
 * leaves no entry that is ever served, only a temporary file, removed at the next start; a
 * corrupt or truncated entry file is detected and never served; the size bound evicts; large
 * bodies stream from disk byte-identical. The CLI's `--cache --cache-dir` runs the same.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, request, startPortico, startWithConfig, tempDir, type RunningPortico, type SimpleResponse } from '../helpers/portico.js';
import { answer, startScriptedUpstream, type ScriptedUpstream } from '../helpers/scripted-upstream.js';

const KiB = 1024;

/** Entry files under a cache directory (not its tmp/), with sizes. */
function entries(dir: string): { path: string; size: number }[] {
  const out: { path: string; size: number }[] = [];
  if (!existsSync(dir)) return out;
  for (const a of readdirSync(dir)) {
    if (a.length !== 1) continue; // tmp/, locks/
    for (const b of readdirSync(join(dir, a))) {
      for (const name of readdirSync(join(dir, a, b))) if (!name.endsWith('.vary')) out.push({ path: join(dir, a, b, name), size: statSync(join(dir, a, b, name)).size });
    }
  }
  return out;
}

const tmpFiles = (dir: string): string[] => (existsSync(join(dir, 'tmp')) ? readdirSync(join(dir, 'tmp')) : []);

async function eventually(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
const status = (response: SimpleResponse): string => String(response.headers['cache-status'] ?? '');

/** A deterministic body of `size` bytes. */
function bodyOf(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

describe('disk tier', () => {
  let upstream: ScriptedUpstream;
  const work = tempDir();
  const cacheDir = join(work.path, 'cache');
  const boundDir = join(work.path, 'bound');
  let port = 0;
  let portico: RunningPortico | undefined;
  const config = () => ({
    workers: 1,
    log: { access: false, level: 'error' },
    cache: {
      dir: cacheDir,
      memoryEntryMax: '1kb',
      zones: { bound: { dir: boundDir, diskSize: '64kb', memoryEntryMax: 1 } },
    },
    servers: [
      {
        listen: `127.0.0.1:${port}`,
        routes: [
          { prefix: '/', proxy: { to: upstream.url }, cache: true },
          { prefix: '/bound/', proxy: { to: upstream.url }, cache: { zone: 'bound' } },
        ],
      },
    ],
  });
  const start = async () => {
    portico = await startWithConfig(work.path, config());
  };
  const get = (path: string) => request(`http://127.0.0.1:${port}${path}`);

  before(async () => {
    upstream = await startScriptedUpstream();
    port = await freePort();
    await start();
  });
  after(async () => {
    await portico?.stop();
    await upstream.close();
    work.remove();
  });

  it('entries survive a restart of portico: the first request after it is a hit', async () => {
    const small = bodyOf(300, 1);
    const large = bodyOf(300 * KiB, 2);
    upstream.on('/restart/small', (_req, res) => res.writeHead(200, { 'cache-control': 'max-age=600' }).end(small));
    upstream.on('/restart/large', (_req, res) => res.writeHead(200, { 'cache-control': 'max-age=600' }).end(large));
    await get('/restart/small');
    await get('/restart/large');
    await eventually(() => entries(cacheDir).length >= 2, 'two entry files');
    await portico?.stop();
    await start();
    const smallAgain = await get('/restart/small');
    assert.match(status(smallAgain), /^portico; hit/);
    assert.equal(sha(smallAgain.body), sha(small));
    // Larger than memoryEntryMax: streamed from the file.
    const largeAgain = await get('/restart/large');
    assert.match(status(largeAgain), /^portico; hit/);
    assert.equal(largeAgain.body.length, large.length);
    assert.equal(sha(largeAgain.body), sha(large));
    assert.equal(upstream.count('/restart/small'), 1);
    assert.equal(upstream.count('/restart/large'), 1);
  });

  it('a portico killed (SIGKILL) mid-write leaves no entry that is served; its temporary file goes at the next start', async () => {
    const chunk = 64 * KiB;
    const chunks = 48; // 3 MiB, over ~1.5 s
    const whole = Buffer.concat(Array.from({ length: chunks }, (_, i) => bodyOf(chunk, i)));
    upstream.on('/killed', (_req, res) => {
      res.writeHead(200, { 'cache-control': 'max-age=600', 'content-length': String(whole.length) });
      let i = 0;
      const timer = setInterval(() => {
        if (res.destroyed) return clearInterval(timer);
        res.write(whole.subarray(i * chunk, (i + 1) * chunk));
        if (++i === chunks) {
          clearInterval(timer);
          res.end();
        }
      }, 30);
    });
    const before = entries(cacheDir).length;
    const victim = portico as RunningPortico;
    await new Promise<void>((resolve) => {
      const req = httpRequest(`http://127.0.0.1:${port}/killed`, (res) => {
        let received = 0;
        res.on('data', (data: Buffer) => {
          received += data.length;
          // Well into the body: the entry is being written.
          if (received >= 512 * KiB && victim.child.exitCode === null && victim.child.signalCode === null) process.kill(victim.pid, 'SIGKILL');
        });
        res.on('error', () => resolve());
        res.on('close', () => resolve());
      });
      req.on('error', () => resolve());
      req.end();
    });
    await victim.stop();
    assert.equal(victim.child.signalCode, 'SIGKILL');
    assert.ok(tmpFiles(cacheDir).some((name) => name.startsWith(`${victim.pid}-`)), 'the killed process left its partial temporary file');
    assert.equal(entries(cacheDir).length, before, 'no entry file for the interrupted write');
    await start();
    await eventually(() => !tmpFiles(cacheDir).some((name) => name.startsWith(`${victim.pid}-`)), 'the temporary file to be removed');
    const again = await get('/killed');
    assert.match(status(again), /fwd=miss/);
    assert.equal(sha(again.body), sha(whole));
    await eventually(() => entries(cacheDir).length === before + 1, 'the complete entry');
    const hit = await get('/killed');
    assert.match(status(hit), /^portico; hit/);
    assert.equal(sha(hit.body), sha(whole));
    assert.equal(upstream.count('/killed'), 2);
  });

  it('a corrupt or truncated entry file is never served: it is discarded and fetched again', async () => {
    const small = bodyOf(500, 7);
    const large = bodyOf(100 * KiB, 8);
    upstream.on('/corrupt/small', (_req, res) => res.writeHead(200, { 'cache-control': 'max-age=600' }).end(small));
    upstream.on('/corrupt/large', (_req, res) => res.writeHead(200, { 'cache-control': 'max-age=600' }).end(large));
    const known = new Set(entries(cacheDir).map((e) => e.path));
    await get('/corrupt/small');
    await eventually(() => entries(cacheDir).length === known.size + 1, 'the small entry');
    const smallFile = (entries(cacheDir).find((e) => !known.has(e.path)) as { path: string }).path;
    known.add(smallFile);
    await get('/corrupt/large');
    await eventually(() => entries(cacheDir).length === known.size + 1, 'the large entry');
    const largeFile = (entries(cacheDir).find((e) => !known.has(e.path)) as { path: string }).path;
    await portico?.stop();
    // One flipped byte in the small body; the large one cut short.
    const bytes = readFileSync(smallFile);
    bytes[bytes.length - 10] = (bytes[bytes.length - 10] as number) ^ 0xff;
    writeFileSync(smallFile, bytes);
    truncateSync(largeFile, statSync(largeFile).size - 1000);
    await start();
    const smallAgain = await get('/corrupt/small');
    assert.match(status(smallAgain), /fwd=miss/);
    assert.equal(sha(smallAgain.body), sha(small));
    const largeAgain = await get('/corrupt/large');
    assert.match(status(largeAgain), /fwd=miss/);
    assert.equal(sha(largeAgain.body), sha(large));
    assert.equal(upstream.count('/corrupt/small'), 2);
    assert.equal(upstream.count('/corrupt/large'), 2);
  });

  it('the disk size bound holds: least recently used entries are deleted', async () => {
    for (let i = 0; i < 8; i++) upstream.on(`/bound/${i}`, (_req, res) => res.writeHead(200, { 'cache-control': 'max-age=600' }).end(bodyOf(20 * KiB, i)));
    for (let i = 0; i < 8; i++) {
      const known = new Set(entries(boundDir).map((e) => e.path));
      await get(`/bound/${i}`);
      // Each key has its own file: wait for this one's commit.
      await eventually(() => entries(boundDir).some((e) => !known.has(e.path)), `entry ${i}`);
    }
    await eventually(() => entries(boundDir).reduce((sum, e) => sum + e.size, 0) <= 64 * KiB && entries(boundDir).length >= 2, 'the bound to hold');
    const total = entries(boundDir).reduce((sum, e) => sum + e.size, 0);
    assert.ok(total <= 64 * KiB, `disk use ${total} ≤ 64 KiB`);
    assert.match(status(await get('/bound/7')), /^portico; hit/);
    assert.match(status(await get('/bound/0')), /fwd=miss/);
  });

  it('portico proxy --cache --cache-dir: a caching reverse proxy that keeps entries across restarts', async () => {
    upstream.on('/cli', answer({ 'cache-control': 'max-age=600' }));
    const dir = join(work.path, 'cli-cache');
    const cliPort = await freePort();
    const env = { PORTICO_WORKERS: '1' };
    let cli = await startPortico(['proxy', upstream.url, '--port', String(cliPort), '--cache', '--cache-dir', dir, '--no-access-log'], { env });
    try {
      assert.match(cli.stdout(), /caching in memory and /);
      assert.match(status(await request(`${cli.url}/cli`)), /fwd=miss; fwd-status=200; stored/);
      assert.match(status(await request(`${cli.url}/cli`)), /^portico; hit/);
      await eventually(() => entries(dir).length === 1, 'the entry file');
      await cli.stop();
      cli = await startPortico(['proxy', upstream.url, '--port', String(cliPort), '--cache', '--cache-dir', dir, '--no-access-log'], { env });
      assert.match(status(await request(`${cli.url}/cli`)), /^portico; hit/);
      assert.equal(upstream.count('/cli'), 1);
    } finally {
      await cli.stop();
    }
  });

  it('several edge workers share the disk tier: one upstream request for concurrent cold requests, then hits in every worker', async () => {
    const body = bodyOf(2 * KiB, 9);
    upstream.on('/shared', (_req, res) => setTimeout(() => res.writeHead(200, { 'cache-control': 'max-age=600' }).end(body), 200));
    const sharedDir = join(work.path, 'shared');
    const sharedPort = await freePort();
    const shared = await startWithConfig(join(work.path), {
      workers: 2,
      log: { access: false, level: 'error' },
      cache: { dir: sharedDir },
      servers: [{ listen: `127.0.0.1:${sharedPort}`, routes: [{ proxy: { to: upstream.url }, cache: true }] }],
    });
    try {
      assert.match(shared.stdout(), /edge workers 2 \(pids/);
      // Concurrent cold requests over both workers: one upstream request (the lock file).
      const cold = await Promise.all(Array.from({ length: 30 }, () => request(`${shared.url}/shared`)));
      for (const response of cold) assert.equal(sha(response.body), sha(body));
      assert.equal(upstream.count('/shared'), 1);
      await eventually(() => entries(sharedDir).length === 1, 'the entry file');
      // New connections, spread by the kernel over both workers: all hits, from memory or disk.
      const later = await Promise.all(Array.from({ length: 20 }, () => request(`${shared.url}/shared`)));
      for (const response of later) {
        assert.match(status(response), /^portico; hit/);
        assert.equal(sha(response.body), sha(body));
      }
      assert.equal(upstream.count('/shared'), 1);
    } finally {
      await shared.stop();
    }
  });

  it('a purge reaches the memory tier of every edge worker (relayed by the supervisor)', async () => {
    upstream.on('/bcast', (_req, res, n) => res.writeHead(200, { 'cache-control': 'max-age=600' }).end(`v${n}`));
    const bcastPort = await freePort();
    const shared = await startWithConfig(join(work.path), {
      workers: 2,
      log: { access: false, level: 'error' },
      servers: [{ listen: `127.0.0.1:${bcastPort}`, routes: [{ proxy: { to: upstream.url }, cache: true }] }],
    });
    try {
      // Memory only: each worker stores its own copy.
      const before = new Set((await Promise.all(Array.from({ length: 20 }, () => request(`${shared.url}/bcast`)))).map((r) => r.text));
      assert.ok(upstream.count('/bcast') >= 1 && upstream.count('/bcast') <= 2, `one fetch per worker at most, got ${upstream.count('/bcast')}`);
      const purged = await request(`${shared.url}/bcast`, { method: 'PURGE' });
      assert.equal(purged.status, 200);
      // The 200 comes once every worker has dropped it: no waiting here.
      const after = await Promise.all(Array.from({ length: 20 }, () => request(`${shared.url}/bcast`)));
      for (const response of after) assert.ok(!before.has(response.text), `"${response.text}" was stored before the purge`);
    } finally {
      await shared.stop();
    }
  });

  it('with the memory tier off, refreshed and Vary entries are read whole under concurrent load: no request misses (#20)', async () => {
    const body = bodyOf(4 * KiB, 5);
    // Fresh for 1 s, then revalidated with If-None-Match: every request after the first that
    // reaches the origin must be conditional (a 304), or the disk tier lost the entry.
    upstream.on('/race/refresh', (req, res) => {
      if (req.headers['if-none-match'] === '"v1"') res.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=1' }).end();
      else res.writeHead(200, { etag: '"v1"', 'cache-control': 'max-age=1', 'content-type': 'application/octet-stream' }).end(body);
    });
    upstream.on('/race/vary', (req, res) => {
      const coding = req.headers['accept-encoding'] === 'gzip' ? 'gzip' : 'identity';
      res.writeHead(200, { vary: 'Accept-Encoding', 'cache-control': 'max-age=600', 'x-variant': coding }).end(bodyOf(4 * KiB, coding === 'gzip' ? 7 : 8));
    });
    const racePort = await freePort();
    const raceDir = join(work.path, 'race');
    const racing = await startWithConfig(work.path, {
      workers: 1,
      log: { access: false, level: 'error' },
      cache: { dir: raceDir, memoryEntryMax: 0 },
      servers: [{ listen: `127.0.0.1:${racePort}`, routes: [{ proxy: { to: upstream.url }, cache: true }] }],
    });
    const agent = new Agent({ keepAlive: true, maxSockets: 16 });
    const fetchOne = (path: string, headers: Record<string, string>) =>
      new Promise<{ status: number; body: Buffer; variant: string }>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port: racePort, path, headers, agent }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), variant: String(res.headers['x-variant'] ?? '') }));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      });
    try {
      // 16 clients for 3.5 s (three expiries of the refreshed entry), loopback only, then stop.
      const until = Date.now() + 3_500;
      let served = 0;
      await Promise.all(
        Array.from({ length: 16 }, async (_, client) => {
          for (let n = 0; Date.now() < until; n++) {
            if ((client + n) % 2 === 0) {
              const response = await fetchOne('/race/refresh', {});
              assert.equal(response.status, 200);
              assert.equal(sha(response.body), sha(body));
            } else {
              const gzip = (client + n) % 4 === 1;
              const response = await fetchOne('/race/vary', { 'accept-encoding': gzip ? 'gzip' : 'identity' });
              assert.equal(response.status, 200);
              assert.equal(response.variant, gzip ? 'gzip' : 'identity');
              assert.equal(sha(response.body), sha(bodyOf(4 * KiB, gzip ? 7 : 8)));
            }
            served++;
          }
        }),
      );
      assert.ok(served > 100, `only ${served} requests were made`);
      const unconditional = upstream.received('/race/refresh').filter((received) => received.headers['if-none-match'] === undefined);
      assert.equal(unconditional.length, 1, `the refreshed entry was lost ${unconditional.length - 1} time(s) of ${upstream.count('/race/refresh')} origin requests`);
      assert.ok(upstream.count('/race/refresh') >= 2, 'it was revalidated');
      assert.equal(upstream.count('/race/vary'), 2, 'one origin request per variant');
    } finally {
      agent.destroy();
      await racing.stop();
    }
  });
});
