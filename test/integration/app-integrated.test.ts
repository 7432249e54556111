/**
 * Apps inside `portico up` (config `apps` + route action `app`): the edge balances over the app's
 * worker processes (least outstanding requests) through its proxy transport, and takes a worker
 * out of its group before the worker drains, so recycling and reloads fail no request. Real
 * processes on loopback, stopped by PID; loads are bounded (a few hundred requests, 8 clients).
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { APPS, get, load, sleep } from '../helpers/app.js';
import { freePort, request, runCli, startWithConfig, tempDir, writeConfig, type RunningPortico } from '../helpers/portico.js';

const PID_APP = join(APPS, 'pid.mjs');
const ENV_APP = join(APPS, 'env.mjs');
const CONTEXT_APP = join(APPS, 'fetch-context.mjs');
const dirs: { remove(): void }[] = [];
after(() => dirs.forEach((dir) => dir.remove()));

async function startUp(app: Record<string, unknown>): Promise<RunningPortico> {
  const dir = tempDir();
  dirs.push(dir);
  const config = {
    log: { level: 'info', access: false },
    apps: { web: { module: PID_APP, ...app } },
    servers: [{ listen: `127.0.0.1:${await freePort()}`, routes: [{ prefix: '/', app: 'web' }] }],
  };
  return startWithConfig(dir.path, config);
}

function bannerPids(p: RunningPortico): string[] {
  return (/app web: .*\(pids ([\d, ]+)\)/.exec(p.stdout())?.[1] ?? '').split(', ').filter(Boolean);
}

async function pidsSeen(url: string, n: number): Promise<Set<string>> {
  const pids = new Set<string>();
  for (let i = 0; i < n; i++) {
    const res = await get(`${url}/`);
    assert.equal(res.status, 200, res.text);
    pids.add(res.text);
  }
  return pids;
}

const alive = (pid: string): boolean => {
  try {
    process.kill(Number(pid), 0);
    return true;
  } catch {
    return false;
  }
};

/** `total` requests from `concurrency` sequential loops; statuses other than 200 and errors are failures. */
async function bounded(url: string, total: number, concurrency: number): Promise<{ ok: number; failed: string[]; pids: Set<string> }> {
  let next = 0;
  let ok = 0;
  const failed: string[] = [];
  const pids = new Set<string>();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        next += 1;
        try {
          const res = await get(`${url}/`, { timeoutMs: 10_000 });
          if (res.status === 200) {
            ok += 1;
            pids.add(res.text);
          } else failed.push(`status ${res.status}: ${res.text.slice(0, 80)}`);
        } catch (error) {
          failed.push((error as Error).message);
        }
      }
    }),
  );
  return { ok, failed, pids };
}

describe('apps inside portico up', () => {
  it('answers from every worker of the pool, and the banner names them', async () => {
    const p = await startUp({ workers: 3 });
    try {
      assert.equal(bannerPids(p).length, 3, p.stdout());
      const pids = await pidsSeen(p.url, 30);
      assert.deepEqual([...pids].sort(), bannerPids(p).sort());
    } finally {
      assert.equal(await p.stop(), 0);
    }
  });

  it('least outstanding requests: a worker busy with a slow request gets no new one', async () => {
    const p = await startUp({ workers: 2 });
    try {
      const slow = get(`${p.url}/slow?ms=1500`, { timeoutMs: 10_000 });
      await sleep(200);
      const quick = await pidsSeen(p.url, 10);
      const busy = (await slow).text;
      assert.equal(quick.size, 1, `quick requests went to ${[...quick].join(', ')}`);
      assert.ok(!quick.has(busy), `the busy worker ${busy} got quick requests too`);
    } finally {
      assert.equal(await p.stop(), 0);
    }
  });

  it('maxRequests 20: 300 requests from 8 clients, zero failures, workers recycled', async () => {
    const p = await startUp({ workers: 2, maxRequests: 20 });
    try {
      const before = bannerPids(p);
      const result = await bounded(p.url, 300, 8);
      assert.deepEqual(result.failed, []);
      assert.equal(result.ok, 300);
      // Recycles are paced by how fast replacements boot (0.4-0.7 s here): the last worker in
      // the group keeps serving until its replacement is ready, so a fast burst may end before
      // any replacement answers. A few more requests, and new workers must have taken over.
      const seen = new Set(result.pids);
      const end = Date.now() + 10_000;
      do {
        const more = await bounded(p.url, 20, 2);
        assert.deepEqual(more.failed, []);
        for (const pid of more.pids) seen.add(pid);
      } while ([...seen].every((pid) => before.includes(pid)) && Date.now() < end);
      const fresh = [...seen].filter((pid) => !before.includes(pid));
      assert.ok(fresh.length >= 1, `no recycled worker answered (pids ${[...seen].join(', ')})`);
    } finally {
      assert.equal(await p.stop(), 0);
    }
  });

  it('a single worker with maxRequests 10: its recycle costs no request', async () => {
    const p = await startUp({ workers: 1, maxRequests: 10 });
    try {
      const [first] = bannerPids(p);
      const result = await bounded(p.url, 150, 1);
      assert.deepEqual(result.failed, []);
      // As above: a burst can outrun the replacement's boot; then it must answer soon after.
      const end = Date.now() + 10_000;
      while ([...result.pids].every((pid) => pid === first) && Date.now() < end) {
        const more = await bounded(p.url, 10, 1);
        assert.deepEqual(more.failed, []);
        for (const pid of more.pids) result.pids.add(pid);
      }
      assert.ok(result.pids.size >= 2, `only ${result.pids.size} worker pids seen`);
    } finally {
      assert.equal(await p.stop(), 0);
    }
  });

  it('SIGHUP under load: zero failed requests, every worker replaced', async () => {
    const p = await startUp({ workers: 3 });
    try {
      const before = bannerPids(p);
      const loading = load(p.url, { durationMs: 4000, concurrency: 8 });
      await sleep(500);
      process.kill(p.pid, 'SIGHUP');
      const result = await loading;
      assert.equal(result.failed, 0, result.errors.slice(0, 5).join('\n'));
      assert.ok(result.ok > 100, `only ${result.ok} requests`);
      // The rolling restart is done within the load window here; allow a little more.
      const end = Date.now() + 10_000;
      let now = await pidsSeen(p.url, 30);
      while ([...now].some((pid) => before.includes(pid)) && Date.now() < end) {
        await sleep(200);
        now = await pidsSeen(p.url, 30);
      }
      assert.equal(now.size, 3, `pids now: ${[...now].join(', ')}`);
      assert.ok(![...now].some((pid) => before.includes(pid)), `old workers still answer: ${[...now].join(', ')} (before: ${before.join(', ')})`);
      for (const pid of before) assert.ok(!alive(pid) || (await sleep(2000), !alive(pid)), `old worker ${pid} still runs`);
    } finally {
      assert.equal(await p.stop(), 0);
    }
  });

  it('a reloaded config applies app settings (workers 2 → 3); adding an app is refused', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const config = (workers: number, extra: Record<string, unknown> = {}) => ({
      log: { level: 'info', access: false },
      apps: { web: { module: PID_APP, workers }, ...extra },
      servers: [{ listen: `127.0.0.1:${port}`, routes: [{ prefix: '/', app: 'web' }] }],
    });
    const port = await freePort();
    const p = await startWithConfig(dir.path, config(2));
    try {
      writeConfig(dir.path, config(3, { other: { module: PID_APP, workers: 1 } }));
      process.kill(p.pid, 'SIGHUP');
      const refused = Date.now() + 5000;
      while (!p.stderr().includes('apps added or removed') && Date.now() < refused) await sleep(50);
      assert.match(p.stderr(), /apps added or removed \(web → other,web\): restart portico to apply.*reload refused/);
      assert.equal((await pidsSeen(p.url, 10)).size, 2);
      writeConfig(dir.path, config(3));
      process.kill(p.pid, 'SIGHUP');
      const end = Date.now() + 15_000;
      let pids = await pidsSeen(p.url, 30);
      while (pids.size < 3 && Date.now() < end) {
        await sleep(200);
        pids = await pidsSeen(p.url, 30);
      }
      assert.equal(pids.size, 3, `pids: ${[...pids].join(', ')}`);
    } finally {
      assert.equal(await p.stop(), 0);
    }
  });

  it('a worker killed with SIGKILL: the service keeps answering', async () => {
    const p = await startUp({ workers: 2 });
    try {
      const [victim] = bannerPids(p);
      // One request in flight on each worker while the victim dies: at most that one may fail.
      const inFlight = [get(`${p.url}/slow?ms=1000`), get(`${p.url}/slow?ms=1000`)].map((r) => r.then((res) => res.status).catch(() => 0));
      await sleep(200);
      process.kill(Number(victim), 'SIGKILL');
      const statuses = await Promise.all(inFlight);
      assert.ok(statuses.filter((s) => s !== 200).length <= 1, `statuses: ${statuses.join(', ')}`);
      const result = await bounded(p.url, 40, 4);
      assert.deepEqual(result.failed, []);
      assert.ok(!result.pids.has(String(victim)));
      // The replacement joins the pool.
      const end = Date.now() + 10_000;
      let pids = await pidsSeen(p.url, 20);
      while (pids.size < 2 && Date.now() < end) {
        await sleep(200);
        pids = await pidsSeen(p.url, 20);
      }
      assert.equal(pids.size, 2);
    } finally {
      assert.equal(await p.stop(), 0);
    }
  });

  it('portico SIGTERM: the workers exit too', async () => {
    const p = await startUp({ workers: 2 });
    const pids = bannerPids(p);
    assert.equal(pids.length, 2);
    assert.ok(pids.every(alive));
    assert.equal(await p.stop(), 0);
    const end = Date.now() + 5000;
    while (pids.some(alive) && Date.now() < end) await sleep(50);
    assert.deepEqual(pids.filter(alive), []);
  });

  it('an unknown app name in a route: exit 2 with the field path', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const path = writeConfig(dir.path, {
      apps: { web: { module: PID_APP, workers: 1 } },
      servers: [{ listen: `127.0.0.1:${await freePort()}`, routes: [{ prefix: '/', app: 'wbe' }] }],
    });
    const result = await runCli(['up', '--config', path]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /servers\[0\]\.routes\[0\]\.app: expected an app name \(a key of "apps": "web"\), got "wbe"/);
  });
});

describe("an app's environment", () => {
  async function envSeen(options: { app: Record<string, unknown>; env?: Record<string, string>; files?: Record<string, string> }): Promise<{ json: Record<string, string | null>; p: RunningPortico; dir: string }> {
    const dir = tempDir();
    dirs.push(dir);
    for (const [name, text] of Object.entries(options.files ?? {})) writeFileSync(join(dir.path, name), text);
    const config = {
      log: { level: 'info', access: false },
      apps: { web: { module: ENV_APP, workers: 1, ...options.app } },
      servers: [{ listen: `127.0.0.1:${await freePort()}`, routes: [{ prefix: '/', app: 'web' }] }],
    };
    const env = { ...options.env };
    const p = await startWithConfig(dir.path, config, { env });
    const res = await get(`${p.url}/`);
    assert.equal(res.status, 200, res.text);
    return { json: JSON.parse(res.text) as Record<string, string | null>, p, dir: dir.path };
  }

  it('NODE_ENV is production by default; env and envFile reach the workers, env over the file', async () => {
    const { json, p } = await envSeen({
      app: { env: { GREETING: 'hello', SECRET: 'inline wins' }, envFile: '.env' },
      files: { '.env': '# the app\'s secrets\nSECRET=from-file\nFROM_FILE_ONLY=yes\nQUOTED="two words"\n' },
    });
    try {
      // The test runner's own NODE_ENV, if it has one, is portico's and so the app's.
      assert.deepEqual(json, { NODE_ENV: process.env.NODE_ENV ?? 'production', GREETING: 'hello', SECRET: 'inline wins', FROM_FILE_ONLY: 'yes', QUOTED: 'two words' });
    } finally {
      assert.equal(await p.stop(), 0);
    }
  });

  it("a NODE_ENV set in portico's environment or in env is kept", async () => {
    const inherited = await envSeen({ app: {}, env: { NODE_ENV: 'staging' } });
    try {
      assert.equal(inherited.json.NODE_ENV, 'staging');
    } finally {
      assert.equal(await inherited.p.stop(), 0);
    }
    const configured = await envSeen({ app: { env: { NODE_ENV: 'development' } } });
    try {
      assert.equal(configured.json.NODE_ENV, 'development');
    } finally {
      assert.equal(await configured.p.stop(), 0);
    }
  });

  it('a missing envFile is a config error with the field path', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const path = writeConfig(dir.path, { apps: { web: { module: ENV_APP, envFile: 'missing.env' } }, servers: [{ listen: '127.0.0.1:0', routes: [{ app: 'web' }] }] });
    const result = await runCli(['check', '--config', path]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /apps\.web\.envFile: expected a \.env file, got "missing\.env" \(.*missing\.env: no such file\)/);
  });
});

describe("an app's context.clientAddress behind the edge", () => {
  it('is the address the edge accepted the client from; a client cannot set it', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const port = await freePort();
    const p = await startWithConfig(dir.path, {
      log: { level: 'info', access: false },
      apps: { ctx: { module: CONTEXT_APP, workers: 1 } },
      // Two listeners: the app sees which address each client came from.
      servers: [{ listen: [`127.0.0.1:${port}`, `[::1]:${port}`], routes: [{ prefix: '/', app: 'ctx' }] }],
    });
    try {
      const v4 = await request(`http://127.0.0.1:${port}/`);
      assert.equal(v4.text, 'fetch with context from 127.0.0.1');
      const v6 = await request(`http://[::1]:${port}/`);
      assert.equal(v6.text, 'fetch with context from ::1');
      const forged = await request(`http://127.0.0.1:${port}/`, { headers: { 'Portico-Client-Address': '203.0.113.9' } });
      assert.equal(forged.text, 'fetch with context from 127.0.0.1', "the client's own field is dropped by the edge");
    } finally {
      assert.equal(await p.stop(), 0);
    }
  });
});
