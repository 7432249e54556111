/**
 * Limits hold for the node, not per edge worker: `portico up` with `workers: 2`, many keep-alive
 * client connections from one address. Each connection first asks `/who` (answered with `$pid`)
 * so the test knows which worker serves it (a connection stays on the worker that accepted it);
 * then requests go out on connections of both workers at once. With state per worker each worker
 * would let its own budget through (2×); the assertions are on the node's total.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { freePort, startWithConfig, tempDir, writeConfig, type RunningPortico } from '../helpers/portico.js';
import { startNodeUpstream, type NodeUpstream } from '../helpers/upstreams.js';

interface Answer {
  readonly status: number;
  readonly body: string;
}

/** One raw keep-alive HTTP/1.1 connection: requests one after another, answers parsed by Content-Length. */
class Conn {
  readonly socket: Socket;
  worker = '';
  #buffer = '';
  #waiting: ((answer: Answer | null) => void) | null = null;
  closed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.#buffer += chunk;
      this.#drain();
    });
    socket.on('close', () => {
      this.closed = true;
      this.#waiting?.(null);
      this.#waiting = null;
    });
    socket.on('error', () => undefined);
  }

  static open(port: number): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: '127.0.0.1' });
      socket.once('connect', () => resolve(new Conn(socket)));
      socket.once('error', reject);
    });
  }

  #drain(): void {
    const end = this.#buffer.indexOf('\r\n\r\n');
    if (end === -1 || !this.#waiting) return;
    const head = this.#buffer.slice(0, end);
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    if (this.#buffer.length < end + 4 + length) return;
    const body = this.#buffer.slice(end + 4, end + 4 + length);
    this.#buffer = this.#buffer.slice(end + 4 + length);
    const resolve = this.#waiting;
    this.#waiting = null;
    resolve({ status: Number(head.slice(9, 12)), body });
  }

  /** Sends a GET; resolves with the answer, or null when the server closed the connection. */
  get(path: string): Promise<Answer | null> {
    return new Promise((resolve) => {
      if (this.closed) return resolve(null);
      this.#waiting = resolve;
      this.socket.write(`GET ${path} HTTP/1.1\r\nHost: limits.test\r\n\r\n`);
      this.#drain();
    });
  }
}

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const MAX_CONNECTIONS = 60;

describe('limits across 2 edge workers hold for the node as a whole', () => {
  const dir = tempDir('portico-limits-workers-');
  let portico: RunningPortico;
  let upstream: NodeUpstream;
  let port = 0;
  const held: (() => void)[] = [];
  const conns: Conn[] = [];
  const byWorker = new Map<string, Conn[]>();

  before(async () => {
    upstream = await startNodeUpstream((_req, res) => {
      held.push(() => res.end('done\n'));
    });
    port = await freePort();
    portico = await startWithConfig(dir.path, {
      workers: 2,
      log: { access: false },
      http: { maxConnections: MAX_CONNECTIONS },
      limits: {
        // 1 r/s: while the test's burst is in flight (well under a second) the bucket drains by
        // at most a request or two, so the node's total is 6 plus that, never 2 × 6.
        rateZones: { perip: { key: '$remote_addr', rate: '60r/m' } },
        connZones: { perip: { key: '$remote_addr' } },
      },
      servers: [
        {
          listen: `127.0.0.1:${port}`,
          routes: [
            { exact: '/who', respond: { body: '$pid' } },
            { prefix: '/rate/', rateLimit: { zone: 'perip', burst: 5, nodelay: true }, respond: { body: '$pid $limit_req_status' } },
            { prefix: '/conn/', connLimit: { zone: 'perip', max: 2 }, proxy: { to: upstream.url } },
          ],
        },
      ],
    });
  });
  after(async () => {
    for (const release of held.splice(0)) release();
    for (const conn of conns) conn.socket.destroy();
    await portico?.stop();
    await upstream?.close();
    dir.remove();
  });

  it(`http.maxConnections ${MAX_CONNECTIONS}: exactly that many connections are open on the node, spread over both workers; the next gets 503`, async () => {
    for (let i = 0; i < MAX_CONNECTIONS; i++) conns.push(await Conn.open(port));
    const who = await Promise.all(conns.map((conn) => conn.get('/who')));
    who.forEach((answer, i) => {
      assert.equal(answer?.status, 200, `connection ${i} is served`);
      const conn = conns[i] as Conn;
      conn.worker = answer.body;
      byWorker.set(conn.worker, [...(byWorker.get(conn.worker) ?? []), conn]);
    });
    const counts = [...byWorker.values()].map((list) => list.length);
    process.stdout.write(`# connections per edge worker: ${counts.join(', ')}\n`);
    assert.equal(byWorker.size, 2, `both edge workers hold some of the ${MAX_CONNECTIONS} connections`);
    // One more, on whichever worker: the node is full.
    const over = await Conn.open(port);
    const answer = await over.get('/who');
    assert.equal(answer?.status, 503, 'the connection over the node-wide cap is refused');
    over.socket.destroy();
  });

  it('rate limit 1 r/s burst 5 nodelay, per IP: the node passes 6 (plus what drains meanwhile), not 6 per worker', async () => {
    // At least 7 requests on each worker: with a bucket per worker each would pass 6.
    const perWorker = 10;
    const chosen = [...byWorker.values()].flatMap((list) => {
      assert.ok(list.length >= 1);
      return Array.from({ length: perWorker }, (_, i) => list[i % list.length] as Conn);
    });
    // Requests on one connection go one after another; different connections at once.
    const lanes = new Map<Conn, number>();
    for (const conn of chosen) lanes.set(conn, (lanes.get(conn) ?? 0) + 1);
    const started = performance.now();
    const results = (
      await Promise.all(
        [...lanes].map(async ([conn, n]) => {
          const out: { worker: string; answer: Answer | null }[] = [];
          for (let i = 0; i < n; i++) out.push({ worker: conn.worker, answer: await conn.get(`/rate/${i}`) });
          return out;
        }),
      )
    ).flat();
    const elapsedMs = performance.now() - started;
    const passed = results.filter((r) => r.answer?.status === 200);
    const rejected = results.filter((r) => r.answer?.status === 429);
    assert.equal(passed.length + rejected.length, results.length, 'every request is answered 200 or 429');
    for (const r of passed) assert.equal(r.answer?.body, `${r.worker} PASSED`);
    const passedOn = [...byWorker.keys()].map((worker) => passed.filter((r) => r.worker === worker).length);
    process.stdout.write(`# ${results.length} requests in ${elapsedMs.toFixed(0)} ms: ${passed.length} passed (per worker ${passedOn.join(', ')}), ${rejected.length} rejected\n`);
    // 6 at once, plus one per second elapsed (1 r/s), plus one for a drain started just before.
    const bound = 6 + Math.floor(elapsedMs / 1000) + 1;
    assert.ok(passed.length >= 6, `the burst passes: ${passed.length}`);
    assert.ok(passed.length <= bound, `the node passed ${passed.length}, more than ${bound}`);
    assert.ok(passed.length < 12, 'not a budget per worker');
  });

  it('limit_conn 2 per IP: 2 requests in flight on the node, whatever worker they reach; the rest get 503', async () => {
    const [first, second] = [...byWorker.values()] as [Conn[], Conn[]];
    // Three on each worker (the kernel may have given one worker fewer connections: then the
    // other makes up the six), all at once, each on its own idle connection.
    const fromSecond = second.slice(-3);
    const lanes = [...first.slice(-(6 - fromSecond.length)), ...fromSecond];
    assert.equal(lanes.length, 6);
    const pending = lanes.map((conn, i) => conn.get(`/conn/${i}`).then((answer) => ({ worker: conn.worker, answer })));
    // The ones over the limit answer at once; two wait at the upstream.
    await until(() => held.length === 2, 'two requests at the upstream');
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(held.length, 2, 'no third request reached the upstream');
    for (const release of held.splice(0)) release();
    const results = await Promise.all(pending);
    const statuses = results.map((r) => r.answer?.status).sort();
    assert.deepEqual(statuses, [200, 200, 503, 503, 503, 503]);
    const refusedOn = new Set(results.filter((r) => r.answer?.status === 503).map((r) => r.worker));
    if (fromSecond.length === 3) assert.equal(refusedOn.size, 2, 'both workers refused: each saw the slots the other held');
  });

  it('a killed edge worker gives back its slots', async () => {
    // The victim: the worker with more connections (it has at least two).
    const [victimPid, victimConns] = [...byWorker.entries()].sort((a, b) => b[1].length - a[1].length)[0] as [string, Conn[]];
    // Two requests in flight, both on the victim. The previous test's two slots were given back
    // by whichever worker held them, on its own channel to the supervisor: a release on one
    // worker's channel and an acquire on the other's are not ordered, so a request sent right
    // after may still find the slots taken (503). Then the round is repeated.
    let inFlight: Promise<Answer | null>[];
    const early: (number | undefined)[] = [];
    for (let attempt = 0; ; attempt++) {
      let answered = 0;
      inFlight = victimConns.slice(-2).map((conn) => conn.get('/conn/victim').then((answer) => (answered++, answer)));
      await until(() => held.length + answered >= 2, 'each request on the victim at the upstream or answered', 5_000);
      if (held.length === 2) break;
      for (const release of held.splice(0)) release();
      early.push(...(await Promise.all(inFlight)).map((answer) => answer?.status));
      assert.ok(attempt < 20, `two requests on the victim reach the upstream (answers meanwhile: ${early.join(', ')})`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    process.kill(Number(victimPid), 'SIGKILL');
    await Promise.all(inFlight); // their connections close with the worker
    for (const release of held.splice(0)) release();
    // The survivor can take both slots again once the supervisor saw the exit.
    const survivor = [...byWorker.entries()].find(([pid]) => pid !== victimPid)?.[1] ?? [];
    // The survivor may hold a single connection: open one more if so (the victim's closed ones freed room).
    for (let opened = 0; survivor.length < 2; opened++) {
      assert.ok(opened < 40, 'a connection on the surviving worker');
      const conn = await Conn.open(port);
      const who = await conn.get('/who');
      conns.push(conn);
      if (who?.body === survivor[0]?.worker) survivor.push(conn);
      else conn.socket.destroy();
    }
    const lanes = survivor.slice(-2);
    assert.equal(lanes.length, 2);
    let statuses: (number | undefined)[] = [];
    for (let attempt = 0; attempt < 20; attempt++) {
      // Each request either reaches the upstream (a slot was free) or is answered at once (503:
      // not yet). Both outcomes can mix in one round: the supervisor may see the victim's exit
      // between the two acquires, so the wait is for each request, not for "both held or both answered".
      let answered = 0;
      const tries = lanes.map((conn) => conn.get('/conn/after').then((answer) => (answered++, answer)));
      const settled = Promise.all(tries);
      await until(() => held.length + answered >= 2, 'each request at the upstream or answered', 5_000);
      for (const release of held.splice(0)) release();
      statuses = (await settled).map((answer) => answer?.status);
      if (statuses.every((status) => status === 200)) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.deepEqual(statuses, [200, 200], `both slots are free again after the worker that held them died (victim ${victimPid}, survivor ${lanes[0]?.worker})`);
  });
});

describe('limit state survives a config reload', () => {
  const dir = tempDir('portico-limits-reload-');
  let portico: RunningPortico;
  let port = 0;
  const config = (version: string) => ({
    // The default `workers: "auto"` (2 here): the state is the supervisor's, kept across the reload.
    log: { access: false },
    // 1r/m: the bucket drains 16 milli-requests a second, nothing that matters during the test.
    limits: { rateZones: { perip: { key: '$remote_addr', rate: '1r/m' } } },
    servers: [
      {
        listen: `127.0.0.1:${port}`,
        routes: [
          { exact: '/version', respond: { body: version } },
          { prefix: '/rate/', rateLimit: { zone: 'perip', burst: 2, nodelay: true }, respond: { body: '$limit_req_status' } },
        ],
      },
    ],
  });

  before(async () => {
    port = await freePort();
    portico = await startWithConfig(dir.path, config('v1'));
  });
  after(async () => {
    await portico?.stop();
    dir.remove();
  });

  it('a key over its limit stays limited after SIGHUP reloads the config (as nginx keeps a zone)', async () => {
    const conn = await Conn.open(port);
    try {
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await conn.get('/rate/x'))?.status);
      assert.deepEqual(statuses, [200, 200, 200, 429]);
      writeConfig(dir.path, config('v2'));
      process.kill(portico.pid, 'SIGHUP');
      const deadline = Date.now() + 15_000;
      while ((await conn.get('/version'))?.body !== 'v2') {
        assert.ok(Date.now() < deadline, 'the reload took effect within 15 s');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.equal((await conn.get('/rate/x'))?.status, 429, 'still over the limit on the new generation');
    } finally {
      conn.socket.destroy();
    }
  });
});
