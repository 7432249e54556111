/**
 * The arbiter with real worker processes: pre-fork, crash replacement, heartbeat timeout,
 * max-requests recycling, rolling reload under load, graceful stop, SIGTTIN, crash-loop give-up.
 * Loads are bounded (a few seconds, a few connections) and loopback only.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { APPS, get, load, sleep, startApp, type RunningApp } from '../helpers/app.js';
import { runCli } from '../helpers/portico.js';

const PID_APP = join(APPS, 'pid.mjs');
const start = (...flags: string[]) => startApp(['app', PID_APP, '--bind', '127.0.0.1:0', ...flags]);

/** Distinct worker pids seen over `n` sequential requests. */
async function pidsSeen(r: RunningApp, n: number): Promise<Set<string>> {
  const pids = new Set<string>();
  for (let i = 0; i < n; i++) pids.add((await get(`${r.url}/`)).text);
  return pids;
}

function bannerPids(r: RunningApp): string[] {
  return (/workers \d+ \(pids ([\d, ]+)\)/.exec(r.stdout())?.[1] ?? '').split(', ').filter(Boolean);
}

describe('arbiter', () => {
  it('pre-forks N workers that all answer', async () => {
    const r = await start('--workers', '3');
    try {
      assert.equal(bannerPids(r).length, 3);
      const pids = await pidsSeen(r, 30);
      assert.equal(pids.size, 3, `pids: ${[...pids].join(', ')}`);
      assert.deepEqual([...pids].sort(), bannerPids(r).sort());
    } finally {
      assert.equal(await r.stop(), 0);
    }
  });

  it('replaces a worker killed with SIGKILL; the service keeps answering', async () => {
    const r = await start('--workers', '2');
    try {
      const [victim] = bannerPids(r);
      process.kill(Number(victim), 'SIGKILL');
      // Connections already handed to the victim die with it (as with gunicorn); once the arbiter
      // has seen the exit, requests keep succeeding while the replacement boots.
      await r.waitFor((out) => out.includes(`worker ${victim} died`));
      for (let i = 0; i < 10; i++) assert.equal((await get(`${r.url}/`)).status, 200);
      await r.waitFor((out) => /worker ready/.test(out.split(`died (exit SIGKILL)`)[1] ?? ''));
      const pids = await pidsSeen(r, 20);
      assert.equal(pids.size, 2);
      assert.ok(!pids.has(String(victim)), 'the killed worker is gone');
    } finally {
      assert.equal(await r.stop(), 0);
    }
  });

  it('kills a worker stuck in a busy loop after --timeout and replaces it', async () => {
    const r = await start('--workers', '1', '--timeout', '2s');
    try {
      const [stuck] = bannerPids(r);
      // The worker never answers this one; it stops ticking.
      const spin = get(`${r.url}/spin`, { timeoutMs: 15_000 }).catch((error: Error) => error);
      const started = Date.now();
      await r.waitFor((out) => out.includes(`worker ${stuck} timed out`), 10_000);
      await r.waitFor((out) => (out.split(`worker ${stuck} timed out`)[1] ?? '').includes('worker ready'), 10_000);
      const elapsed = Date.now() - started;
      assert.ok(elapsed < 8000, `replaced after ${elapsed} ms`);
      const res = await get(`${r.url}/`);
      assert.equal(res.status, 200);
      assert.notEqual(res.text, stuck);
      await spin;
    } finally {
      assert.equal(await r.stop(), 0);
    }
  });

  it('--max-requests 20 recycles workers with zero failed requests over 100 requests', async () => {
    const r = await start('--workers', '2', '--max-requests', '20');
    try {
      const pids = new Set<string>();
      let failed = 0;
      for (let i = 0; i < 100; i++) {
        try {
          const res = await get(`${r.url}/`);
          if (res.status === 200) pids.add(res.text);
          else failed += 1;
        } catch {
          failed += 1;
        }
      }
      assert.equal(failed, 0);
      assert.ok(pids.size >= 4, `expected recycled workers, saw ${pids.size} pids`);
      assert.match(r.stderr(), /reached max requests/);
    } finally {
      assert.equal(await r.stop(), 0);
    }
  });

  it('SIGHUP rolls every worker under load (3 s, 8 concurrent) with zero failed requests', async () => {
    const r = await start('--workers', '2');
    try {
      const before = new Set(bannerPids(r));
      const running = load(r.url, { durationMs: 3000, concurrency: 8 });
      await sleep(500);
      process.kill(r.pid, 'SIGHUP');
      await r.waitFor((out) => out.includes('reload done'), 10_000);
      // Let the load run on over the new workers.
      const result = await running;
      assert.equal(result.failed, 0, result.errors.slice(0, 5).join('\n'));
      assert.ok(result.ok > 100, `only ${result.ok} requests`);
      const after = await pidsSeen(r, 20);
      assert.equal(after.size, 2);
      for (const pid of after) assert.ok(!before.has(pid), `old worker ${pid} still serving`);
    } finally {
      assert.equal(await r.stop(), 0);
    }
  });

  it('SIGTERM is graceful: a slow request in flight completes, then exit 0', async () => {
    const r = await start('--workers', '2');
    const slow = get(`${r.url}/slow?ms=1000`);
    await sleep(200);
    const started = Date.now();
    const code = r.stop('SIGTERM');
    const res = await slow;
    assert.equal(res.status, 200);
    assert.equal(await code, 0);
    assert.ok(Date.now() - started >= 600, 'waited for the request');
    // The listener is closed.
    await assert.rejects(get(`${r.url}/`, { timeoutMs: 2000 }));
  });

  it('SIGTTIN adds a worker, SIGTTOU removes one', async () => {
    const r = await start('--workers', '1');
    try {
      process.kill(r.pid, 'SIGTTIN');
      await r.waitFor((out) => (out.split('SIGTTIN')[1] ?? '').includes('worker ready'));
      assert.equal((await pidsSeen(r, 10)).size, 2);
      process.kill(r.pid, 'SIGTTOU');
      await r.waitFor((out) => (out.split('SIGTTOU')[1] ?? '').includes('worker exited'));
      assert.equal((await pidsSeen(r, 10)).size, 1);
    } finally {
      assert.equal(await r.stop(), 0);
    }
  });

  it('gives up on a crash loop (an app that throws at import) with backoff and a clear message', async () => {
    const started = Date.now();
    const result = await runCli(['app', join(APPS, 'import-throws.mjs'), '--workers', '2', '--bind', '127.0.0.1:0'], { timeoutMs: 30_000 });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /portico: app workers crashed 6 times in a row, giving up \(last: .*this app cannot start/);
    assert.match(result.stderr, /restarting in 250 ms/);
    assert.match(result.stderr, /restarting in 2000 ms/);
    // Two workers crash about together, so the crashes may come in pairs: (1, 2) then a 250 ms
    // wait, (3, 4) then 1000 ms, (5, 6) give up. 1250 ms of backoff is the least; boot times add
    // to it (the bound was 3000 ms, which a fast boot, ~450 ms, went under: 2670 ms).
    assert.ok(Date.now() - started >= 1250, 'backed off before giving up');
    assert.doesNotMatch(result.stdout, /listening on/);
  });

  it('workers exit when the arbiter is SIGKILLed', async () => {
    const r = await start('--workers', '2');
    const pids = bannerPids(r).map(Number);
    process.kill(r.pid, 'SIGKILL');
    await r.exited();
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 40 && pids.some(alive); i++) await sleep(50);
    assert.deepEqual(pids.filter(alive), []);
  });
});
