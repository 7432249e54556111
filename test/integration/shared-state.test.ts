/**
 * The shared state (`state`, issue #17) on loopback, one node at a time: what is kept in the
 * real Redis, the `onRedisDown` policies "open" and "closed" (the fleet test covers "local"),
 * the metrics, and the config's refusals. A Redis that is not there never holds a request up.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { BIN, freePort, request, startWithConfig, tempDir, writeConfig, type RunningPortico } from '../helpers/portico.js';
import { startRedis, type RunningRedis } from '../helpers/redis.js';
import { startNodeUpstream, type NodeUpstream } from '../helpers/upstreams.js';

describe('shared state in Redis (one node)', { timeout: 120_000 }, () => {
  const work = tempDir();
  let redis: RunningRedis;
  let upstream: NodeUpstream;
  let fetched = 0;

  before(async () => {
    redis = await startRedis(work.path, await freePort());
    upstream = await startNodeUpstream((_req, res) => res.writeHead(200, { 'cache-control': 'max-age=600' }).end(`fetch ${++fetched}`));
  });
  after(async () => {
    await upstream.close();
    await redis.stop();
    work.remove();
  });

  const configFor = async (onRedisDown: string, workers: number) => {
    const port = await freePort();
    const admin = await freePort();
    return {
      port,
      admin,
      config: {
        workers,
        log: { access: false, level: 'warn' },
        admin: { listen: `127.0.0.1:${admin}` },
        state: { redis: { url: redis.url, prefix: `t${port}:` }, onRedisDown },
        limits: { rateZones: { slow: { key: '$remote_addr', rate: '1r/m' } } },
        servers: [
          {
            listen: `127.0.0.1:${port}`,
            routes: [
              { prefix: '/limited', rateLimit: { zone: 'slow' }, respond: { status: 200, body: 'ok\n' } },
              { prefix: '/cached', proxy: { to: upstream.url }, cache: true },
              { respond: { status: 200, body: 'free\n' } },
            ],
          },
        ],
      },
    };
  };

  const metric = async (admin: number, name: string): Promise<number> => {
    const text = (await request(`http://127.0.0.1:${admin}/metrics`)).text;
    const line = text.split('\n').find((l) => l.startsWith(name));
    return line === undefined ? NaN : Number(line.slice(line.lastIndexOf(' ') + 1));
  };

  it('one process: limits count in Redis, cache entries are stored there, metrics show it; a reload that changes `state` is refused', async () => {
    const { port, admin, config } = await configFor('local', 1);
    const node = await startWithConfig(work.path, config, { name: 'one.json' });
    try {
      const base = `http://127.0.0.1:${port}`;
      assert.equal((await request(`${base}/limited`)).status, 200);
      assert.equal((await request(`${base}/limited`)).status, 429);
      assert.equal(await redis.command('EXISTS', `t${port}:rate:slow:127.0.0.1`), '1', 'the bucket is in Redis');
      const first = await request(`${base}/cached/a`);
      assert.match(String(first.headers['cache-status']), /stored/);
      // Written as the body completes, just after the client has it.
      let keys = '';
      for (const deadline = Date.now() + 2_000; !/\/cached\/a/.test(keys) && Date.now() < deadline; ) keys = await redis.command('KEYS', `t${port}:cache:default:e:*`);
      assert.match(keys, /\/cached\/a/, `the entry is in Redis: ${keys}`);
      assert.match(await redis.command('KEYS', `t${port}:cache:default:s:*`), /\/cached\/a/, 'and in its key\'s variant set');
      // A PURGE removes it from Redis through that set (no scan): entry and set both gone.
      assert.equal((await request(`${base}/cached/a`, { method: 'PURGE' })).status, 200);
      assert.doesNotMatch(await redis.command('KEYS', `t${port}:cache:default:*`), /\/cached\/a/, 'purged from Redis');
      assert.match((await request(`${base}/cached/a`)).text, /^fetch \d+$/);
      assert.equal(await metric(admin, 'portico_state_redis_up'), 1);
      assert.equal(await metric(admin, 'portico_state_nodes'), 1);
      writeConfig(work.path, { ...config, state: { ...config.state, onRedisDown: 'open' } }, 'one.json');
      process.kill(node.pid, 'SIGHUP');
      const deadline = Date.now() + 10_000;
      while (!/state changed: restart portico to apply/.test(node.stderr() + node.stdout())) {
        assert.ok(Date.now() < deadline, `the reload was not refused:\n${node.stderr()}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.equal((await request(`${base}/`)).text, 'free\n', 'the running config keeps serving');
    } finally {
      await node.stop();
    }
  });

  for (const [policy, expected] of [
    ['closed', 429],
    ['open', 200],
  ] as const) {
    it(`onRedisDown "${policy}": with Redis gone, limited requests get ${expected} at once, others 200; the metrics count it`, async () => {
      const { port, admin, config } = await configFor(policy, 2);
      const node: RunningPortico = await startWithConfig(work.path, config, { name: `${policy}.json` });
      try {
        const base = `http://127.0.0.1:${port}`;
        assert.equal((await request(`${base}/limited`)).status, 200);
        await redis.kill();
        for (let i = 0; i < 5; i++) {
          const started = Date.now();
          const limited = await request(`${base}/limited`);
          assert.equal(limited.status, expected);
          assert.ok(Date.now() - started < 1_000, 'no request waits on a Redis that is not there');
          assert.equal((await request(`${base}/`)).status, 200);
          // A cache lookup misses the shared tier and goes on.
          assert.equal((await request(`${base}/cached/b${i}`)).status, 200);
        }
        assert.equal(await metric(admin, 'portico_state_redis_up'), 0);
        assert.ok((await metric(admin, 'portico_state_fallback_total')) >= 5, 'the fallbacks are counted');
        assert.match(node.stderr() + node.stdout(), /shared state: Redis unreachable/);
      } finally {
        await node.stop();
        await redis.start();
      }
    });
  }

  it('portico trust with `state`: the fleet\'s local CA is made once in Redis and copied to the data folder', async () => {
    const dataDir = `${work.path}/trust-data`;
    const file = writeConfig(work.path, { state: { redis: { url: redis.url, prefix: 'trust:' } }, acme: { dataDir }, servers: [{ listen: '127.0.0.1:8080', routes: [{ respond: { status: 200 } }] }] }, 'trust.json');
    const run = () => spawnSync(process.execPath, [BIN, 'trust', '--config', file, '--no-install'], { encoding: 'utf8' });
    const first = run();
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stdout, /local CA: .*\n\s+file\s+\S+\/trust-data\/ca\/root\.crt/);
    const stored = await redis.command('GET', 'trust:certs:ca/root.crt');
    assert.match(stored, /BEGIN CERTIFICATE/);
    assert.equal(readFileSync(`${dataDir}/ca/root.crt`, 'utf8').split('\n')[1], stored.split('\n')[1], 'the copy is the root in Redis');
    const again = run();
    assert.equal(again.status, 0, again.stderr);
    assert.equal(/SHA-256\s+(\S+)/.exec(again.stdout)?.[1], /SHA-256\s+(\S+)/.exec(first.stdout)?.[1], 'the same CA the second time');
  });

  it('a bad `state` is refused with its field path', () => {
    const file = writeConfig(work.path, { state: { redis: { url: 'http://127.0.0.1:6379' }, leaseTtl: '10ms', onRedisDown: 'maybe' }, servers: [{ listen: '127.0.0.1:8080', routes: [{ respond: { status: 200 } }] }] }, 'bad.json');
    const check = spawnSync(process.execPath, [BIN, 'check', '--config', file], { encoding: 'utf8' });
    assert.equal(check.status, 2);
    assert.match(check.stderr, /state\.redis\.url: expected a URL like "redis:\/\/127\.0\.0\.1:6379"/);
    assert.match(check.stderr, /state\.onRedisDown/);
  });
});
