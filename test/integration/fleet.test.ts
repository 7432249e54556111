/**
 * Several nodes, one policy (issue #17): three Portico nodes, each a `portico up` with two edge
 * workers on a host of its own (a network namespace with its own address), and Redis on a fourth,
 * all made and torn down here (test/helpers/netns.ts). The test's requests come from this
 * namespace through the bridge, spread over the three nodes; the upstream listens on the bridge
 * address. Traffic stays on these links, bounded in count and time.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { makeNetwork, type TestNetwork } from '../helpers/netns.js';
import { request, startWithConfig, tempDir, type RunningPortico, type SimpleResponse } from '../helpers/portico.js';
import { startRedis, type RunningRedis } from '../helpers/redis.js';
import { startNodeUpstream, type NodeUpstream } from '../helpers/upstreams.js';

const LEASE_TTL_MS = 3_000;
const PORT = 8080;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('a fleet: three nodes share limits, cache and purges through Redis', { timeout: 180_000 }, () => {
  const work = tempDir();
  let net: TestNetwork;
  let redis: RunningRedis;
  let upstream: NodeUpstream;
  const nodes: (RunningPortico | null)[] = [];
  let version = 0;
  const held: (() => void)[] = [];

  const nodeUrl = (i: number) => `http://${net.hosts[i]?.address}:${PORT}`;
  const configFor = (i: number) => ({
    workers: 2,
    log: { access: false, level: 'warn' },
    state: { redis: { url: redis.url, timeout: '100ms' }, leaseTtl: `${LEASE_TTL_MS}ms` },
    limits: { rateZones: { fleet: { key: '$remote_addr', rate: '10r/s' } }, connZones: { perclient: { key: '$remote_addr' } } },
    servers: [
      {
        listen: `${net.hosts[i]?.address}:${PORT}`,
        routes: [
          { prefix: '/limited', rateLimit: { zone: 'fleet' }, respond: { status: 200, body: 'ok\n' } },
          { prefix: '/slow', connLimit: { zone: 'perclient', max: 2 }, proxy: { to: upstream.url } },
          { prefix: '/quick', connLimit: { zone: 'perclient', max: 2 }, respond: { status: 200, body: 'quick\n' } },
          { prefix: '/cached', proxy: { to: upstream.url }, cache: { purge: { allow: [net.subnet] } } },
        ],
      },
    ],
  });
  const startNode = async (i: number) => {
    nodes[i] = await startWithConfig(work.path, configFor(i), { netns: net.hosts[i]?.name, name: `node${i}.config.json` });
  };

  before(async () => {
    net = makeNetwork(4);
    const redisHost = net.hosts[3] as { name: string; address: string };
    redis = await startRedis(work.path, 6379, redisHost.address, redisHost.name);
    upstream = await startNodeUpstream(
      (req, res) => {
        if (req.url?.startsWith('/slow')) {
          held.push(() => res.writeHead(200).end('slow\n'));
          return;
        }
        res.writeHead(200, { 'cache-control': 'max-age=600', 'content-type': 'text/plain' }).end(`v${++version}`);
      },
      { host: net.gateway },
    );
    await Promise.all([0, 1, 2].map(startNode));
  });

  after(async () => {
    for (const release of held.splice(0)) release();
    await Promise.all(nodes.map((node) => node?.stop()));
    await upstream?.close();
    await redis?.stop();
    net?.teardown();
    work.remove();
  });

  /** `clients` loops for `ms`, each sending one request after another to the three nodes in turn; counts the answers by status. */
  async function spread(path: string, ms: number, clients = 6): Promise<Map<number, number>> {
    const statuses = new Map<number, number>();
    const until = Date.now() + ms;
    await Promise.all(
      Array.from({ length: clients }, async (_, client) => {
        for (let n = client; Date.now() < until; n++) {
          const status = await request(`${nodeUrl(n % 3)}${path}`).then(
            (response) => response.status,
            () => -1,
          );
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
          await sleep(10);
        }
      }),
    );
    return statuses;
  }

  it('a 10 r/s zone without burst admits 100 ± 5 over 10 s, with requests spread over all three nodes', async () => {
    const statuses = await spread('/limited', 10_000);
    const admitted = statuses.get(200) ?? 0;
    const refused = statuses.get(429) ?? 0;
    assert.deepEqual([...statuses.keys()].sort(), [200, 429], `only 200 and 429: ${JSON.stringify([...statuses])}`);
    assert.ok(admitted >= 95 && admitted <= 105, `admitted ${admitted} (refused ${refused}), expected 100 ± 5`);
    assert.ok(refused > 300, `the clients sent well over the rate (refused ${refused})`);
  });

  it('with Redis killed, the nodes keep serving under "local"; shared counting resumes when it is back', async () => {
    await redis.kill();
    // Each node now enforces its share (10 r/s ÷ 3 nodes): nothing fails, and the fleet admits
    // about its rate (each node's bucket starts empty: a first request each, then 3.3 r/s each).
    const during = await spread('/limited', 3_000);
    assert.deepEqual([...during.keys()].sort(), [200, 429], `only 200 and 429 while Redis is down: ${JSON.stringify([...during])}`);
    const admittedDuring = during.get(200) ?? 0;
    assert.ok(admittedDuring >= 27 && admittedDuring <= 40, `admitted ${admittedDuring} in 3 s on local shares (expected about 30 + 3)`);
    await redis.start();
    // Back: the supervisors reconnect (backoff ≤ 5 s) and count in Redis again.
    const deadline = Date.now() + 15_000;
    while ((await redis.command('EXISTS', `portico:rate:fleet:${net.gateway}`)) !== '1') {
      assert.ok(Date.now() < deadline, 'the nodes did not count in Redis again within 15 s');
      await request(`${nodeUrl(0)}/limited`).catch(() => null);
      await sleep(100);
    }
    // Every node must be back: give the slowest reconnection its backoff, then measure.
    await sleep(5_500);
    const resumed = await spread('/limited', 5_000);
    const admitted = resumed.get(200) ?? 0;
    assert.ok(admitted >= 47 && admitted <= 55, `admitted ${admitted} in 5 s after Redis returned, expected 50 ± 3 (fleet-wide again)`);
    assert.equal(await redis.command('ZCARD', 'portico:nodes'), '3', 'all three nodes in the node set again');
  });

  it('a node killed while holding connection leases: its slots are free within the lease TTL', async () => {
    // Two slow requests through node 0 hold the client's two fleet-wide slots.
    const slow = [request(`${nodeUrl(0)}/slow/1`).catch(() => null), request(`${nodeUrl(0)}/slow/2`).catch(() => null)];
    const deadline = Date.now() + 5_000;
    while (held.length < 2) {
      assert.ok(Date.now() < deadline, 'the slow requests did not reach the upstream');
      await sleep(20);
    }
    assert.equal((await request(`${nodeUrl(1)}/quick`)).status, 503, 'node 1 sees the slots node 0 holds');
    assert.equal((await request(`${nodeUrl(2)}/quick`)).status, 503, 'node 2 too');
    const node0 = nodes[0] as RunningPortico;
    const killedAt = Date.now();
    await node0.stop('SIGKILL');
    nodes[0] = null;
    let freed: SimpleResponse | null = null;
    while (Date.now() - killedAt < LEASE_TTL_MS + 2_000) {
      freed = await request(`${nodeUrl(1)}/quick`);
      if (freed.status === 200) break;
      await sleep(50);
    }
    const after = Date.now() - killedAt;
    assert.equal(freed?.status, 200, 'the slots were never freed');
    assert.ok(after <= LEASE_TTL_MS + 250, `freed ${after} ms after the kill, lease TTL ${LEASE_TTL_MS} ms`);
    for (const release of held.splice(0)) release();
    await Promise.all(slow);
    // Node 0 comes back for the cache test.
    await startNode(0);
  });

  it('an entry stored through node A is a hit on node B, and a purge sent to node C removes it everywhere', async () => {
    // One site's name, whichever node the load balancer picked (the cache key has $host).
    const site = { headers: { host: 'www.example.test' } };
    const first = await request(`${nodeUrl(0)}/cached/page`, site);
    assert.match(String(first.headers['cache-status']), /fwd=miss; fwd-status=200; stored/);
    const stored = first.text;
    // Node A writes the entry to Redis once the answer's body has ended, after the client has it:
    // node B is asked once the entry is there (bounded), not before (a miss on B would store B's own copy).
    const deadline = Date.now() + 2_000;
    while ((await redis.command('KEYS', 'portico:cache:*:e:*')) === '') {
      assert.ok(Date.now() < deadline, 'node A never wrote the entry to Redis');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const onB = await request(`${nodeUrl(1)}/cached/page`, site);
    assert.match(String(onB.headers['cache-status']), /^portico; hit/, 'a hit on node B');
    assert.equal(onB.text, stored);
    // Both copies now also in the nodes' memory tiers.
    assert.equal((await request(`${nodeUrl(0)}/cached/page`, site)).text, stored);
    assert.equal((await request(`${nodeUrl(1)}/cached/page`, site)).text, stored);
    const purged = await request(`${nodeUrl(2)}/cached/page`, { ...site, method: 'PURGE' });
    assert.equal(purged.status, 200, `PURGE on node C: ${purged.status} ${purged.text}`);
    // The shared copy went with the PURGE; the other nodes' memory copies go when the pub/sub message arrives (milliseconds).
    for (const i of [0, 1, 2]) {
      const deadline = Date.now() + 2_000;
      let body = stored;
      while (body === stored) {
        assert.ok(Date.now() < deadline, `node ${i} still serves the purged entry after 2 s`);
        body = (await request(`${nodeUrl(i)}/cached/page`, site)).text;
        if (body === stored) await sleep(50);
      }
    }
  });
});
