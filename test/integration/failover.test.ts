/**
 * Failover through the real built server: upstreams that die (child processes killed by PID),
 * come back on the same port, fail their health checks, answer 503 or cut the connection; the
 * client must see no failure where a retry is allowed, and exactly the upstream's answer where
 * it is not.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { Agent, createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { after, describe, it } from 'node:test';
import { freePort, startWithConfig, tempDir, type RunningPortico } from '../helpers/portico.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// Upstreams

/** An upstream in its own process, so that a test can SIGKILL it by PID. */
const CHILD_SCRIPT = `
const http = require('node:http');
const [port, id] = process.argv.slice(1);
const server = http.createServer((req, res) => {
  if (req.url === '/health') { res.end('ok'); return; }
  req.resume();
  // A few ms of work, so that requests are in flight when the process is killed.
  req.on('end', () => setTimeout(() => { res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': id }); res.end(id); }, 3));
});
server.keepAliveTimeout = 30000;
server.listen(Number(port), '127.0.0.1', () => process.stdout.write('ready\\n'));
`;

class ChildUpstream {
  child: ChildProcess | null = null;
  constructor(
    readonly id: string,
    readonly port: number,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    const child = spawn(process.execPath, ['-e', CHILD_SCRIPT, String(this.port), this.id], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.child = child;
    let out = '';
    child.stdout?.setEncoding('utf8');
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.id} did not start`)), 10_000);
      child.stdout?.on('data', (chunk: string) => {
        out += chunk;
        if (out.includes('ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${this.id} exited (${code}) before listening`));
      });
    });
    return this;
  }

  /** SIGKILL by PID; resolves once the process is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    process.kill(child.pid as number, 'SIGKILL');
    await exited;
    this.child = null;
  }
}

type Mode = 'ok' | 'hold' | '503' | '404' | 'reset';

/** An in-process upstream with switchable behaviour and health status, counting what it receives. */
class Upstream {
  port = 0;
  mode: Mode = 'ok';
  /** Status of /health; 0 = never answer. */
  health = 200;
  healthHits = 0;
  healthActive = 0;
  healthMaxActive = 0;
  hits = 0;
  readonly methods: string[] = [];
  readonly bodies: string[] = [];
  readonly #held: ServerResponse[] = [];
  #server: Server | null = null;

  constructor(readonly id: string) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(port?: number): Promise<this> {
    this.port = port ?? (await freePort());
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      if (req.url === '/health') {
        req.resume();
        this.healthHits++;
        this.healthActive++;
        this.healthMaxActive = Math.max(this.healthMaxActive, this.healthActive);
        res.once('close', () => this.healthActive--);
        if (this.health === 0) this.#held.push(res);
        else res.writeHead(this.health).end(String(this.health));
        return;
      }
      this.hits++;
      this.methods.push(req.method ?? '');
      if (this.mode === 'reset') {
        req.socket.destroy();
        return;
      }
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        this.bodies.push(body);
        if (this.mode === 'hold') this.#held.push(res);
        else if (this.mode === '503') res.writeHead(503, { 'x-upstream': this.id }).end(`${this.id} unavailable`);
        else if (this.mode === '404') res.writeHead(404, { 'x-upstream': this.id }).end(`${this.id} has no such thing`);
        else res.writeHead(200, { 'x-upstream': this.id }).end(this.id);
      });
    });
    server.keepAliveTimeout = 30_000;
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    this.#server = server;
    return this;
  }

  reset(): void {
    this.hits = 0;
    this.methods.length = 0;
    this.bodies.length = 0;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = null;
    for (const res of this.#held.splice(0)) res.destroy();
    server.close();
    server.closeAllConnections();
    await once(server, 'close');
  }

  /** Resolves after `n` more health probes reached this server. */
  async probes(n: number, timeoutMs = 5000): Promise<void> {
    const target = this.healthHits + n;
    const deadline = Date.now() + timeoutMs;
    while (this.healthHits < target) {
      if (Date.now() > deadline) throw new Error(`${this.id}: no health probes`);
      await sleep(20);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Client

interface Reply {
  status: number;
  body: string;
  upstream: string | undefined;
}

function send(base: string, path: string, options: { method?: string; body?: string; agent?: Agent; timeoutMs?: number } = {}): Promise<Reply> {
  const target = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: target.hostname, port: target.port, path, method: options.method ?? 'GET', agent: options.agent ?? false, headers: options.body === undefined ? {} : { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(options.body)) } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, upstream: res.headers['x-upstream'] as string | undefined }));
      res.on('error', reject);
    });
    req.setTimeout(options.timeoutMs ?? 15_000, () => req.destroy(new Error(`no answer to ${path} in time`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** A failed response: a status other than 200, or a request that errored (connection cut). */
async function attempt(base: string, path: string, agent: Agent): Promise<Reply> {
  try {
    return await send(base, path, { agent });
  } catch (error) {
    return { status: 0, body: String(error), upstream: undefined };
  }
}

function setup() {
  const dir = tempDir();
  const porticos: RunningPortico[] = [];
  const children: ChildUpstream[] = [];
  const upstreams: Upstream[] = [];
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  after(async () => {
    agent.destroy();
    for (const portico of porticos) await portico.stop();
    for (const child of children) await child.kill();
    for (const upstream of upstreams) await upstream.stop();
    dir.remove();
  });
  return {
    agent,
    async children(...ids: string[]): Promise<ChildUpstream[]> {
      const started = await Promise.all(ids.map(async (id) => new ChildUpstream(id, await freePort()).start()));
      children.push(...started);
      return started;
    },
    async upstreams(...ids: string[]): Promise<Upstream[]> {
      const started = await Promise.all(ids.map((id) => new Upstream(id).start()));
      upstreams.push(...started);
      return started;
    },
    async portico(group: Record<string, unknown>, level = 'error'): Promise<RunningPortico> {
      const listen = `127.0.0.1:${await freePort()}`;
      const portico = await startWithConfig(dir.path, {
        log: { access: false, level },
        upstreams: { pool: group },
        servers: [{ listen, routes: [{ prefix: '/', proxy: { to: 'pool' } }] }],
      });
      porticos.push(portico);
      return portico;
    },
  };
}

const HEALTH = { path: '/health', interval: '200ms', rise: 2, fall: 1 };

// ---------------------------------------------------------------------------------------------

describe('failover: an upstream killed under load', () => {
  const s = setup();

  it('no GET fails while 1 of 3 upstreams is SIGKILLed midway, and it gets traffic again soon after it restarts', async (t) => {
    const ups = await s.children('k1', 'k2', 'k3');
    const victim = ups[1] as ChildUpstream;
    const portico = await s.portico({ servers: ups.map((u) => u.url), maxFails: 1, failTimeout: '30s', healthCheck: HEALTH }, 'warn');

    const TOTAL = 3000;
    const KILL_AT = 1000;
    const counts = new Map<string, number>();
    const failures: Reply[] = [];
    let afterKill = 0;
    let victimAfterKill = 0;
    let killed: Promise<void> | null = null;
    let next = 0;
    const deadline = Date.now() + 60_000;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < TOTAL && Date.now() < deadline) {
          const i = next++;
          if (i === KILL_AT) killed = victim.kill();
          const reply = await attempt(portico.url, `/load/${i}`, s.agent);
          if (reply.status !== 200) failures.push(reply);
          else {
            counts.set(reply.body, (counts.get(reply.body) ?? 0) + 1);
            if (killed && i > KILL_AT + 8) {
              afterKill++;
              if (reply.body === victim.id) victimAfterKill++;
            }
          }
        }
      }),
    );
    await killed;
    assert.equal(next, TOTAL, 'the load did not finish within 60 s');
    const retried = portico.stderr().match(/upstream attempt failed/g)?.length ?? 0;
    t.diagnostic(`served ${JSON.stringify(Object.fromEntries(counts))}, failed ${failures.length} of ${TOTAL}, upstream attempts failed and retried ${retried}`);
    assert.deepEqual(
      failures.map((f) => `${f.status} ${f.body}`),
      [],
    );
    assert.ok((counts.get(victim.id) ?? 0) > 200, 'the victim served before it was killed');
    assert.equal(victimAfterKill, 0, 'a dead server answered');
    assert.ok(afterKill > 1500);
    assert.ok(retried >= 1, 'no attempt failed: the kill was not exercised');

    // Back on the same port: active health checks (rise 2 × 200 ms) bring it back long before
    // failTimeout (30 s) would.
    await victim.start();
    const restarted = Date.now();
    let backAfter = -1;
    const more: Reply[] = [];
    while (Date.now() - restarted < 5000) {
      const replies = await Promise.all(Array.from({ length: 4 }, (_, i) => attempt(portico.url, `/again/${i}`, s.agent)));
      more.push(...replies.filter((r) => r.status !== 200));
      if (replies.some((r) => r.body === victim.id)) {
        backAfter = Date.now() - restarted;
        break;
      }
      await sleep(20);
    }
    t.diagnostic(`restarted upstream got traffic again after ${backAfter} ms`);
    assert.deepEqual(more, []);
    assert.ok(backAfter >= 0, 'the restarted upstream got no traffic within 5 s');
  });
});

describe('active health checks', () => {
  const s = setup();

  it('a server whose health endpoint answers 500 gets no traffic, and gets it again after 200s', async (t) => {
    const [a, b, c] = (await s.upstreams('a', 'b', 'c')) as [Upstream, Upstream, Upstream];
    const portico = await s.portico({ servers: [a.url, b.url, c.url], healthCheck: HEALTH, maxFails: 0 });
    await a.probes(1);
    for (let i = 0; i < 30; i++) assert.equal((await send(portico.url, '/h', { agent: s.agent })).status, 200);
    assert.ok(a.hits >= 9, `a got ${a.hits} of 30 while healthy`);

    a.health = 500;
    await a.probes(2); // fall 1: the first 500 took it out; the second one started after that answer
    a.reset();
    for (let i = 0; i < 60; i++) {
      const reply = await send(portico.url, '/h', { agent: s.agent });
      assert.equal(reply.status, 200);
      assert.notEqual(reply.body, 'a');
    }
    assert.equal(a.hits, 0, 'an unhealthy server got traffic');

    a.health = 200;
    const healthyFrom = Date.now();
    await a.probes(3); // rise 2
    let back = -1;
    while (Date.now() - healthyFrom < 4000) {
      const reply = await send(portico.url, '/h', { agent: s.agent });
      assert.equal(reply.status, 200);
      if (reply.body === 'a') {
        back = Date.now() - healthyFrom;
        break;
      }
    }
    t.diagnostic(`a back after ${back} ms`);
    assert.ok(back >= 0, 'a did not come back within 4 s of healthy probes');
    a.reset();
    for (let i = 0; i < 30; i++) await send(portico.url, '/h', { agent: s.agent });
    assert.ok(a.hits >= 9, `a got ${a.hits} of 30 after coming back`);
  });

  it('slowStart: a server that comes back gets a small share that grows', async (t) => {
    const [a, b, c] = (await s.upstreams('sa', 'sb', 'sc')) as [Upstream, Upstream, Upstream];
    const portico = await s.portico({ servers: [a.url, b.url, c.url], healthCheck: HEALTH, maxFails: 0, slowStart: '2s' });
    await a.probes(1);
    a.health = 500;
    await a.probes(2);
    a.health = 200;
    await a.probes(2); // rise 2: back after the second good probe's answer
    const start = Date.now();
    // 6 windows of 500 ms under 4 concurrent clients: a's share per window.
    const windows = Array.from({ length: 6 }, () => ({ a: 0, all: 0 }));
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (;;) {
          const elapsed = Date.now() - start;
          if (elapsed >= 3000) return;
          const reply = await send(portico.url, '/s', { agent: s.agent });
          assert.equal(reply.status, 200);
          const w = windows[Math.min(5, Math.floor(elapsed / 500))] as { a: number; all: number };
          w.all++;
          if (reply.body === 'sa') w.a++;
        }
      }),
    );
    const shares = windows.map((w) => w.a / Math.max(1, w.all));
    t.diagnostic(`share of the returning server per 500 ms: ${shares.map((x) => `${(x * 100).toFixed(1)}%`).join(' ')}`);
    assert.ok(windows.every((w) => w.all >= 20), 'too few requests to measure');
    assert.ok((shares[0] as number) < 0.15, `first 500 ms share ${shares[0]}`);
    assert.ok((shares[5] as number) > 0.25, `share after slow start ${shares[5]}`);
    assert.ok((shares[0] as number) < (shares[3] as number), 'the share did not grow');
  });
});

describe('passive health', () => {
  const s = setup();

  it('maxFails 3: a failing server is taken out after its third failure, and no GET fails meanwhile', async () => {
    const [cut, good] = (await s.upstreams('cut3', 'good3b')) as [Upstream, Upstream];
    cut.mode = 'reset';
    const portico = await s.portico({ servers: [cut.url, good.url], maxFails: 3, failTimeout: '30s' });
    for (let i = 0; i < 20; i++) assert.equal((await send(portico.url, `/f/${i}`, { agent: s.agent })).status, 200);
    assert.equal(cut.hits, 3, 'the failing server was not taken out after exactly 3 failures');
    assert.equal(good.hits, 20);
  });

  it('a group of one server is never marked down (nginx ignores max_fails there): it answers as soon as it is back', async () => {
    const [only] = (await s.upstreams('only')) as [Upstream];
    const portico = await s.portico({ servers: [only.url], maxFails: 1, failTimeout: '30s' });
    assert.equal((await send(portico.url, '/1')).status, 200);
    await only.stop();
    assert.equal((await send(portico.url, '/2')).status, 502);
    assert.equal((await send(portico.url, '/3')).status, 502);
    await only.start(only.port);
    const reply = await send(portico.url, '/4');
    assert.equal(reply.status, 200, 'the only server stayed marked down after it came back');
    assert.equal(reply.body, 'only');
  });

  it('when every server was marked down, traffic resumes as soon as they are back (not after failTimeout)', async () => {
    const ups = await s.upstreams('d1', 'd2', 'd3');
    const portico = await s.portico({ servers: ups.map((u) => u.url), maxFails: 1, failTimeout: '30s' });
    for (let i = 0; i < 6; i++) assert.equal((await send(portico.url, `/up/${i}`)).status, 200);
    for (const u of ups) await u.stop();
    for (let i = 0; i < 4; i++) assert.equal((await send(portico.url, `/down/${i}`)).status, 502);
    for (const u of ups) await u.start(u.port);
    // nginx marks all peers live again when all failed; at most one more 502 is tolerated.
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await send(portico.url, `/back/${i}`)).status);
    assert.ok(statuses.slice(1).every((x) => x === 200), `after the servers came back: ${statuses.join(' ')}`);
    assert.ok(ups.filter((u) => u.hits > 0).length >= 2, 'traffic stuck to one server');
  });

  it('health probes of a server that never answers do not pile up (one at a time per server)', async () => {
    const [mute, other] = (await s.upstreams('mute', 'other')) as [Upstream, Upstream];
    mute.health = 0;
    const portico = await s.portico({ servers: [mute.url, other.url], healthCheck: { path: '/health', interval: '100ms', timeout: '1s', fall: 1, rise: 2 } });
    await sleep(2500);
    assert.ok(mute.healthMaxActive <= 2, `${mute.healthMaxActive} probes in flight at once on one server`);
    assert.ok(mute.healthHits >= 2 && mute.healthHits <= 5, `${mute.healthHits} probes in 2.5 s with a 1 s timeout`);
    assert.ok(other.healthHits >= 15, `${other.healthHits} probes of the healthy server in 2.5 s at 100 ms`);
    // Taken out by the timed-out probe.
    for (let i = 0; i < 10; i++) assert.equal((await send(portico.url, `/m/${i}`, { agent: s.agent })).body, 'other');
  });
});

describe('retries', () => {
  const s = setup();

  it('retry on 404 moves the request but never marks the server down (nginx: 403/404 are not failures)', async () => {
    const [missing, good] = (await s.upstreams('missing', 'good')) as [Upstream, Upstream];
    missing.mode = '404';
    // maxFails 1: a single counted failure would take `missing` out for failTimeout.
    const portico = await s.portico({ servers: [missing.url, good.url], maxFails: 1, failTimeout: '30s', retry: { on: ['error', 'timeout', 404] } });
    for (let i = 0; i < 10; i++) assert.equal((await send(portico.url, `/n/${i}`, { agent: s.agent })).status, 200);
    assert.ok(missing.hits >= 4, `the 404 server saw ${missing.hits} of 10 requests: it was marked down`);
  });

  it('retry on 503: GETs succeed from the other server; a POST that got 503 is passed on, not retried', async () => {
    const [bad, good] = (await s.upstreams('bad', 'good')) as [Upstream, Upstream];
    bad.mode = '503';
    const portico = await s.portico({ servers: [bad.url, good.url], maxFails: 0, retry: { on: ['error', 'timeout', 503] } });
    for (let i = 0; i < 20; i++) {
      const reply = await send(portico.url, `/g/${i}`, { agent: s.agent });
      assert.equal(reply.status, 200);
      assert.equal(reply.body, 'good');
    }
    assert.ok(bad.hits >= 5, `the 503 server saw ${bad.hits} GETs: the retry was never exercised`);
    assert.equal(good.hits, 20);

    bad.reset();
    good.reset();
    const replies: Reply[] = [];
    for (let i = 0; i < 10; i++) replies.push(await send(portico.url, `/p/${i}`, { method: 'POST', body: `order-${i}`, agent: s.agent }));
    const refused = replies.filter((r) => r.status === 503);
    assert.ok(refused.length > 0, 'no POST landed on the 503 server');
    for (const r of refused) {
      assert.equal(r.upstream, 'bad');
      assert.equal(r.body, 'bad unavailable');
    }
    assert.equal(refused.length + replies.filter((r) => r.status === 200).length, 10);
    assert.equal(bad.hits, refused.length);
    assert.equal(good.hits, 10 - refused.length, 'a POST that got 503 was sent again');
    assert.deepEqual(good.methods, Array(good.hits).fill('POST'));
  });

  it('a POST to a server that refuses the connection (nothing sent) is retried on the next server', async () => {
    const [good] = (await s.upstreams('good2')) as [Upstream];
    const closed = `http://127.0.0.1:${await freePort()}`;
    const portico = await s.portico({ servers: [closed, good.url], maxFails: 0 });
    for (let i = 0; i < 10; i++) {
      const reply = await send(portico.url, `/p/${i}`, { method: 'POST', body: `payload-${i}`, agent: s.agent });
      assert.equal(reply.status, 200, `POST ${i}: ${reply.status} ${reply.body}`);
      assert.equal(reply.body, 'good2');
    }
    assert.equal(good.hits, 10, 'each POST reached the good server exactly once');
    assert.deepEqual(
      good.bodies,
      Array.from({ length: 10 }, (_, i) => `payload-${i}`),
    );
  });

  it('a POST whose connection is cut after it was sent is not retried (502)', async () => {
    const [cut, good] = (await s.upstreams('cut', 'good3')) as [Upstream, Upstream];
    cut.mode = 'reset';
    const portico = await s.portico({ servers: [cut.url, good.url], maxFails: 0 });
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await send(portico.url, `/p/${i}`, { method: 'POST', body: 'x', agent: s.agent })).status);
    assert.equal(cut.hits, statuses.filter((x) => x === 502).length);
    assert.ok(cut.hits > 0);
    assert.equal(good.hits, statuses.filter((x) => x === 200).length, 'a POST was sent twice');
    // The same failure on a GET is retried.
    cut.reset();
    good.reset();
    for (let i = 0; i < 6; i++) assert.equal((await send(portico.url, `/g/${i}`, { agent: s.agent })).status, 200);
    assert.ok(cut.hits > 0);
    assert.equal(good.hits, 6);
  });

  it('retry.tries bounds the attempts: 3 servers answering 503 with tries 2 → 2 attempts, then the 503 is passed on', async () => {
    const ups = await s.upstreams('t1', 't2', 't3');
    for (const u of ups) u.mode = '503';
    const bounded = await s.portico({ servers: ups.map((u) => u.url), maxFails: 0, retry: { tries: 2, on: ['error', 'timeout', 503] } });
    for (let i = 0; i < 10; i++) {
      const reply = await send(bounded.url, `/t/${i}`, { agent: s.agent });
      assert.equal(reply.status, 503);
      assert.match(reply.body, /^t\d unavailable$/);
    }
    assert.equal(ups.reduce((n, u) => n + u.hits, 0), 20, 'not exactly 2 attempts per request');
    for (const u of ups) u.reset();
    // Default tries: every server once.
    const all = await s.portico({ servers: ups.map((u) => u.url), maxFails: 0, retry: { on: ['error', 'timeout', 503] } });
    for (let i = 0; i < 10; i++) assert.equal((await send(all.url, `/t/${i}`, { agent: s.agent })).status, 503);
    for (const u of ups) assert.equal(u.hits, 10, `${u.id} was not tried once per request`);
  });

  it('retry.tries bounds retries on errors: connections cut on 3 servers, tries 2 → 502 after exactly 2 attempts', async () => {
    const ups = await s.upstreams('e1', 'e2', 'e3');
    for (const u of ups) u.mode = 'reset';
    const portico = await s.portico({ servers: ups.map((u) => u.url), maxFails: 0, retry: { tries: 2 } });
    for (let i = 0; i < 6; i++) assert.equal((await send(portico.url, `/e/${i}`, { agent: s.agent })).status, 502);
    assert.equal(ups.reduce((n, u) => n + u.hits, 0), 12);
  });

  it('retry.timeout stops retrying once it has passed: 504 after 2 of 3 attempts', async () => {
    const ups = await s.upstreams('r1', 'r2', 'r3');
    for (const u of ups) u.mode = 'hold';
    // `timeout` (per attempt) runs on a precise timer; undici's headersTimeout fires on a coarse one (up to ~1 s late).
    const portico = await s.portico({ servers: ups.map((u) => u.url), maxFails: 0, timeout: '300ms', retry: { timeout: '500ms' } });
    for (let i = 0; i < 3; i++) {
      const started = Date.now();
      assert.equal((await send(portico.url, `/rt/${i}`, { agent: s.agent })).status, 504);
      const took = Date.now() - started;
      assert.ok(took >= 550 && took < 2000, `took ${took} ms`);
    }
    assert.equal(ups.reduce((n, u) => n + u.hits, 0), 6, 'not exactly 2 attempts per request');
  });

  it('a timeout (no response head within headerTimeout) moves a GET to the next server', async () => {
    const [slow, fast] = (await s.upstreams('slow', 'fast')) as [Upstream, Upstream];
    slow.mode = 'hold';
    const portico = await s.portico({ servers: [slow.url, fast.url], maxFails: 0, headerTimeout: '300ms' });
    for (let i = 0; i < 4; i++) {
      const started = Date.now();
      const reply = await send(portico.url, `/t/${i}`, { agent: s.agent });
      assert.equal(reply.status, 200);
      assert.equal(reply.body, 'fast');
      assert.ok(Date.now() - started < 3000);
    }
    assert.ok(slow.hits > 0, 'the slow server was never tried');
    // Without retry on timeout, the client gets 504.
    const strict = await s.portico({ servers: [slow.url, fast.url], maxFails: 0, headerTimeout: '300ms', retry: { on: ['error'] } });
    const statuses = new Set<number>();
    for (let i = 0; i < 4; i++) statuses.add((await send(strict.url, `/t/${i}`, { agent: s.agent })).status);
    assert.deepEqual(statuses, new Set([200, 504]));
  });
});
