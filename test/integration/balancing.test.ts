/**
 * Load balancing through the real built server: upstreams are node:http servers on loopback that
 * answer with their own id, and every figure is counted from what the upstreams received and
 * what the client got back.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Agent, createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { after, describe, it } from 'node:test';
import { freePort, startWithConfig, tempDir, type RunningPortico } from '../helpers/portico.js';

type Mode = 'ok' | 'hold' | '503';

/** An upstream on 127.0.0.1 that answers its id; in `hold` mode it keeps requests until released. */
class Upstream {
  readonly id: string;
  port = 0;
  mode: Mode = 'ok';
  hits = 0;
  active = 0;
  maxActive = 0;
  readonly paths: string[] = [];
  readonly #held: ServerResponse[] = [];
  readonly #waiters: (() => void)[] = [];
  #server: Server | null = null;

  constructor(id: string) {
    this.id = id;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get held(): number {
    return this.#held.length;
  }

  async start(port?: number): Promise<this> {
    this.port = port ?? (await freePort());
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      req.resume();
      if (req.url === '/health') {
        res.end('ok');
        return;
      }
      this.hits++;
      this.paths.push(req.url ?? '');
      this.active++;
      this.maxActive = Math.max(this.maxActive, this.active);
      res.once('close', () => this.active--);
      if (this.mode === 'hold') {
        this.#held.push(res);
        for (const wake of this.#waiters.splice(0)) wake();
        return;
      }
      if (this.mode === '503') res.writeHead(503).end(`${this.id} unavailable`);
      else this.#answer(res);
    });
    server.keepAliveTimeout = 30_000;
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    this.#server = server;
    return this;
  }

  #answer(res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': this.id });
    res.end(this.id);
  }

  /** Resolves once at least `n` requests are held. */
  async waitHeld(n: number, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.#held.length < n) {
      if (Date.now() > deadline) throw new Error(`${this.id}: ${this.#held.length} held, wanted ${n}`);
      await Promise.race([new Promise<void>((resolve) => this.#waiters.push(resolve)), sleep(50)]);
    }
  }

  /** Answers every held request and stops holding. */
  release(): void {
    this.mode = 'ok';
    for (const res of this.#held.splice(0)) this.#answer(res);
  }

  reset(): void {
    this.hits = 0;
    this.maxActive = 0;
    this.paths.length = 0;
  }

  /** Stops listening and cuts every connection (the port then refuses). */
  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = null;
    for (const res of this.#held.splice(0)) res.destroy();
    server.close();
    server.closeAllConnections();
    await once(server, 'close');
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface Reply {
  status: number;
  body: string;
}

function get(base: string, path: string, options: { headers?: Record<string, string>; agent?: Agent; localAddress?: string; timeoutMs?: number } = {}): Promise<Reply> {
  const target = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: target.hostname, port: target.port, path, headers: options.headers, agent: options.agent ?? false, localAddress: options.localAddress },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.setTimeout(options.timeoutMs ?? 10_000, () => req.destroy(new Error(`no answer to ${path} in time`)));
    req.on('error', reject);
    req.end();
  });
}

/** Runs `count` requests with `concurrency` workers; returns the bodies of 200s and the other statuses. */
async function load(count: number, concurrency: number, send: (i: number) => Promise<Reply>, deadlineMs = 60_000): Promise<{ bodies: Map<string, number>; failures: number[] }> {
  const bodies = new Map<string, number>();
  const failures: number[] = [];
  const deadline = Date.now() + deadlineMs;
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count && Date.now() < deadline) {
        const reply = await send(next++);
        if (reply.status === 200) bodies.set(reply.body, (bodies.get(reply.body) ?? 0) + 1);
        else failures.push(reply.status);
      }
    }),
  );
  assert.equal(next, count, 'load did not finish before its deadline');
  return { bodies, failures };
}

/** One portico + a set of upstreams per describe block, all stopped after it. */
function setup() {
  const dir = tempDir();
  const upstreams: Upstream[] = [];
  const porticos: RunningPortico[] = [];
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  after(async () => {
    agent.destroy();
    for (const portico of porticos) await portico.stop();
    for (const upstream of upstreams) await upstream.stop();
    dir.remove();
  });
  return {
    agent,
    async upstreams(...ids: string[]): Promise<Upstream[]> {
      const started = await Promise.all(ids.map((id) => new Upstream(id).start()));
      upstreams.push(...started);
      return started;
    },
    async portico(group: Record<string, unknown>, http: Record<string, unknown> = {}): Promise<RunningPortico> {
      const listen = `127.0.0.1:${await freePort()}`;
      const portico = await startWithConfig(dir.path, {
        log: { access: false, level: 'error' },
        http,
        upstreams: { pool: group },
        servers: [{ listen, routes: [{ prefix: '/', proxy: { to: 'pool' } }] }],
      });
      porticos.push(portico);
      return portico;
    },
  };
}

describe('weighted round robin over real sockets', () => {
  const s = setup();

  it('weights 3:1 give 75% / 25% (±3%) of 4,000 requests', async (t) => {
    const [a, b] = (await s.upstreams('a', 'b')) as [Upstream, Upstream];
    const portico = await s.portico({ servers: [{ url: a.url, weight: 3 }, { url: b.url, weight: 1 }] });
    const { bodies, failures } = await load(4000, 8, () => get(portico.url, '/w', { agent: s.agent }));
    assert.deepEqual(failures, []);
    const share = (bodies.get('a') ?? 0) / 4000;
    t.diagnostic(`a ${bodies.get('a')} (${(share * 100).toFixed(2)}%), b ${bodies.get('b')}`);
    assert.ok(Math.abs(share - 0.75) <= 0.03, `a got ${(share * 100).toFixed(1)}% (${bodies.get('a')}), b ${bodies.get('b')}`);
    // The upstreams saw the same thing the client did: each request went to exactly one server.
    assert.equal(a.hits, bodies.get('a'));
    assert.equal(b.hits, bodies.get('b'));
    assert.equal(a.hits + b.hits, 4000);
  });
});

describe('retries keep the weights', () => {
  const s = setup();

  it('requests retried away from a 503 server still split 2:1 over weights 2:1', async (t) => {
    const [bad, a, b] = (await s.upstreams('bad', 'a', 'b')) as [Upstream, Upstream, Upstream];
    bad.mode = '503';
    const portico = await s.portico({ servers: [bad.url, { url: a.url, weight: 2 }, b.url], maxFails: 0, retry: { on: ['error', 'timeout', 503] } });
    const { bodies, failures } = await load(2400, 1, () => get(portico.url, '/r', { agent: s.agent }));
    assert.deepEqual(failures, []);
    const share = (bodies.get('a') ?? 0) / 2400;
    t.diagnostic(`a ${bodies.get('a')} (${(share * 100).toFixed(1)}%), b ${bodies.get('b')}, 503s retried ${bad.hits}`);
    assert.ok(bad.hits > 400, 'the 503 server was not tried');
    assert.ok(Math.abs(share - 2 / 3) <= 0.03, `a got ${(share * 100).toFixed(1)}%`);
  });
});

describe('ip-hash: a client keeps its server', () => {
  const s = setup();
  let portico: RunningPortico;
  let ups: Upstream[];

  it('clients in different /24s (X-Forwarded-For from a trusted proxy) each stick to one server and spread over several', async () => {
    ups = await s.upstreams('a', 'b', 'c', 'd');
    portico = await s.portico({ servers: ups.map((u) => u.url), balance: 'ip-hash' }, { trustedProxies: ['127.0.0.1'] });
    const seen = new Map<string, Set<string>>();
    for (let round = 0; round < 8; round++) {
      for (let net = 1; net <= 24; net++) {
        const client = `198.${net}.${net * 3}.${10 + round}`; // a different host of the same /24 each round
        const reply = await get(portico.url, `/ip/${round}`, { headers: { 'x-forwarded-for': client }, agent: s.agent });
        assert.equal(reply.status, 200);
        const key = `198.${net}.${net * 3}`;
        if (!seen.has(key)) seen.set(key, new Set());
        seen.get(key)?.add(reply.body);
      }
    }
    for (const [net, servers] of seen) assert.equal(servers.size, 1, `${net}.0/24 went to ${[...servers].join(', ')}`);
    const used = new Set([...seen.values()].map((set) => [...set][0]));
    assert.ok(used.size >= 3, `24 networks used only ${[...used].join(', ')}`);
  });

  it('an untrusted peer cannot choose its server with X-Forwarded-For (127.0.0.2 is not trusted)', async () => {
    const bodies = new Set<string>();
    for (let i = 1; i <= 24; i++) {
      const reply = await get(portico.url, '/ip', { headers: { 'x-forwarded-for': `198.${i}.${i * 3}.1` }, localAddress: '127.0.0.2' });
      assert.equal(reply.status, 200);
      bodies.add(reply.body);
    }
    assert.equal(bodies.size, 1, `one peer address went to ${[...bodies].join(', ')}`);
  });

  it('sources 127.0.0.2..9 share the 127.0.0 key, so they share one server', async () => {
    const bodies = new Set<string>();
    for (let n = 2; n <= 9; n++) {
      for (let i = 0; i < 3; i++) {
        const reply = await get(portico.url, '/ip', { localAddress: `127.0.0.${n}` });
        assert.equal(reply.status, 200);
        bodies.add(reply.body);
      }
    }
    assert.equal(bodies.size, 1);
  });
});

describe('consistent hash on $request_uri', () => {
  const s = setup();
  const KEYS = Array.from({ length: 500 }, (_, i) => `/obj/${i}`);
  let ups: Upstream[];
  let portico: RunningPortico;
  const before = new Map<string, string>();

  async function map(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < KEYS.length) {
          const key = KEYS[next++] as string;
          const reply = await get(portico.url, key, { agent: s.agent });
          assert.equal(reply.status, 200, `${key}: ${reply.status} ${reply.body}`);
          out.set(key, reply.body);
        }
      }),
    );
    return out;
  }

  it('each of 500 URIs goes to one server, every time', async (t) => {
    ups = await s.upstreams('h1', 'h2', 'h3', 'h4', 'h5');
    portico = await s.portico({ servers: ups.map((u) => u.url), balance: 'hash', hashKey: '$request_uri', maxFails: 1, failTimeout: '30s' });
    for (const [key, server] of await map()) before.set(key, server);
    const again = await map();
    assert.deepEqual(again, before);
    const per = new Map<string, number>();
    for (const server of before.values()) per.set(server, (per.get(server) ?? 0) + 1);
    t.diagnostic(`keys per server: ${JSON.stringify(Object.fromEntries(per))}`);
    assert.equal(per.size, 5, 'every server owns some keys');
    for (const [server, n] of per) assert.ok(n >= 50 && n <= 150, `${server} owns ${n} of 500 keys`);
  });

  it('taking one of 5 servers out moves only its keys (about 1/5), with no failed request', async (t) => {
    const gone = ups[2] as Upstream;
    await gone.stop();
    const after = await map(); // asserts every request got 200 (retried to the next server on the ring)
    let moved = 0;
    for (const [key, server] of after) {
      if (server === before.get(key)) continue;
      moved++;
      assert.equal(before.get(key), gone.id, `${key} moved from ${before.get(key)} to ${server}`);
    }
    const owned = [...before.values()].filter((server) => server === gone.id).length;
    t.diagnostic(`${moved} of ${KEYS.length} keys moved (${((moved / KEYS.length) * 100).toFixed(1)}%)`);
    assert.equal(moved, owned, 'every key of the stopped server moved, and only those');
    assert.ok(moved / KEYS.length <= 0.3, `${moved} of ${KEYS.length} keys moved`);
    // Stable afterwards (the server is marked down; the same ring without it answers).
    assert.deepEqual(await map(), after);
  });
});

describe('consistent hash on $http_x_user', () => {
  const s = setup();
  it('a user header keeps each user on one server, whatever the path', async () => {
    const ups = await s.upstreams('u1', 'u2', 'u3');
    const portico = await s.portico({ servers: ups.map((u) => u.url), balance: 'hash', hashKey: '$http_x_user' });
    const users = new Map<string, Set<string>>();
    for (let i = 0; i < 300; i++) {
      const user = `user-${i % 30}`;
      const reply = await get(portico.url, `/p/${i}`, { headers: { 'x-user': user }, agent: s.agent });
      assert.equal(reply.status, 200);
      if (!users.has(user)) users.set(user, new Set());
      users.get(user)?.add(reply.body);
    }
    for (const [user, servers] of users) assert.equal(servers.size, 1, `${user} went to ${[...servers].join(', ')}`);
    assert.ok(new Set([...users.values()].map((set) => [...set][0])).size >= 2);
  });
});

describe('least-conn', () => {
  const s = setup();
  it('sends new requests to the idle server while the other holds requests open', async () => {
    const [a, b] = (await s.upstreams('a', 'b')) as [Upstream, Upstream];
    const portico = await s.portico({ servers: [a.url, b.url], balance: 'least-conn' });
    // Both hold: 6 requests split 3 / 3 (ties go round robin).
    a.mode = 'hold';
    b.mode = 'hold';
    const pending = Array.from({ length: 6 }, () => get(portico.url, '/slow'));
    await a.waitHeld(3);
    await b.waitHeld(3);
    // b answers: a still has 3 in flight, b none.
    b.release();
    a.reset();
    b.reset();
    for (let i = 0; i < 30; i++) {
      const reply = await get(portico.url, '/fast', { agent: s.agent });
      assert.equal(reply.status, 200);
      assert.equal(reply.body, 'b', `request ${i} went to the busy server`);
    }
    assert.equal(a.hits, 0);
    assert.equal(b.hits, 30);
    a.release();
    const held = await Promise.all(pending);
    assert.deepEqual(held.map((r) => r.status), [200, 200, 200, 200, 200, 200]);
    assert.equal(held.filter((r) => r.body === 'a').length, 3);
    // Both idle again: they share.
    a.reset();
    b.reset();
    for (let i = 0; i < 20; i++) assert.equal((await get(portico.url, '/even', { agent: s.agent })).status, 200);
    assert.ok(a.hits >= 8 && b.hits >= 8, `a ${a.hits}, b ${b.hits}`);
  });
});

describe('backup servers', () => {
  const s = setup();
  it('get traffic only while every primary is down', async () => {
    const [p1, p2, bk] = (await s.upstreams('p1', 'p2', 'bk')) as [Upstream, Upstream, Upstream];
    const portico = await s.portico({ servers: [p1.url, p2.url, { url: bk.url, backup: true }], maxFails: 1, failTimeout: '1s' });
    const first = await load(40, 4, () => get(portico.url, '/b', { agent: s.agent }));
    assert.deepEqual(first.failures, []);
    assert.equal(bk.hits, 0, 'the backup got traffic while the primaries were up');
    assert.equal((first.bodies.get('p1') ?? 0) + (first.bodies.get('p2') ?? 0), 40);

    await p1.stop();
    const one = await load(40, 4, () => get(portico.url, '/b', { agent: s.agent }));
    assert.deepEqual(one.failures, []);
    assert.equal(bk.hits, 0, 'the backup got traffic while one primary was up');
    assert.equal(one.bodies.get('p2'), 40);

    await p2.stop();
    const none = await load(40, 4, () => get(portico.url, '/b', { agent: s.agent }));
    assert.deepEqual(none.failures, []);
    assert.equal(none.bodies.get('bk'), 40);

    // Primaries back on their ports: once failTimeout (1 s) has passed, the backup is idle again.
    await p1.start(p1.port);
    await p2.start(p2.port);
    await sleep(1200);
    bk.reset();
    const back = await load(40, 4, () => get(portico.url, '/b', { agent: s.agent }));
    assert.deepEqual(back.failures, []);
    assert.equal(bk.hits, 0, `the backup still got ${bk.hits} requests after the primaries came back`);
  });
});

describe('maxConns', () => {
  const s = setup();
  it('caps the requests in flight on a server; the excess goes to the other one', async () => {
    const [a, b] = (await s.upstreams('a', 'b')) as [Upstream, Upstream];
    const portico = await s.portico({ servers: [{ url: a.url, maxConns: 2 }, b.url] });
    a.mode = 'hold';
    const pending: Promise<Reply>[] = [];
    for (let i = 0; i < 12; i++) {
      pending.push(get(portico.url, `/c/${i}`));
      await sleep(20);
    }
    await a.waitHeld(2);
    await sleep(100);
    assert.equal(a.held, 2, 'a holds more than maxConns requests');
    assert.equal(a.maxActive, 2);
    a.release();
    const replies = await Promise.all(pending);
    assert.deepEqual(new Set(replies.map((r) => r.status)), new Set([200]));
    assert.equal(replies.filter((r) => r.body === 'a').length, 2);
    assert.equal(replies.filter((r) => r.body === 'b').length, 10);
  });

  it('answers 502 when every server is at its cap', async () => {
    const [c, d] = (await s.upstreams('c', 'd')) as [Upstream, Upstream];
    const portico = await s.portico({ servers: [{ url: c.url, maxConns: 1 }, { url: d.url, maxConns: 1 }] });
    c.mode = 'hold';
    d.mode = 'hold';
    const pending = [get(portico.url, '/x'), get(portico.url, '/y')];
    await c.waitHeld(1);
    await d.waitHeld(1);
    const started = Date.now();
    const over = await Promise.all([get(portico.url, '/z'), get(portico.url, '/z')]);
    assert.deepEqual(
      over.map((r) => r.status),
      [502, 502],
    );
    assert.ok(Date.now() - started < 2000, 'the 502 waited for a slot');
    assert.ok(!over.some((r) => /127\.0\.0\.1|:\d{4,5}/.test(r.body)), 'the 502 shows the upstream address');
    assert.equal(c.hits + d.hits, 2, 'a request over the cap reached an upstream');
    c.release();
    d.release();
    const done = await Promise.all(pending);
    assert.deepEqual(
      done.map((r) => r.status).sort(),
      [200, 200],
    );
    // Slots free again: requests go through.
    assert.equal((await get(portico.url, '/again')).status, 200);
  });
});
