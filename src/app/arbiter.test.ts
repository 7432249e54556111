/**
 * The arbiter's snapshot (what the admin API and metrics will show): real worker processes on a
 * free loopback port, driven in-process and stopped with `kill()` (by the arbiter, by PID).
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Arbiter } from './arbiter.js';

const PID_APP = join(import.meta.dirname, '../../test/fixtures/apps/pid.mjs');

function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('arbiter snapshot', () => {
  it("shows each worker's pid, state, age and requests, and the counts of workers started and crashed", async (t) => {
    const arbiter = new Arbiter({ file: PID_APP, workers: 2, bind: { host: '127.0.0.1', port: 0 }, handleSignals: false, timeoutMs: 30_000, maxRequests: 0, maxRequestsJitter: 0, gracefulTimeoutMs: 1_000 });
    const ready = new Promise<string>((resolve) => (arbiter.onReady = (address) => resolve(address)));
    const done = arbiter.run();
    t.after(async () => {
      arbiter.kill();
      await done;
    });
    const address = await ready;
    for (let i = 0; i < 6; i++) await get(`${address}/`);
    // Requests are reported with each heartbeat (once a second).
    const deadline = Date.now() + 5_000;
    let snapshot = arbiter.snapshot();
    while (snapshot.workers.reduce((sum, w) => sum + w.requests, 0) < 6 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      snapshot = arbiter.snapshot();
    }
    assert.equal(snapshot.address, address);
    assert.equal(snapshot.target, 2);
    assert.equal(snapshot.started, 2);
    assert.equal(snapshot.crashes, 0);
    assert.equal(snapshot.workers.length, 2);
    assert.deepEqual(new Set(snapshot.workers.map((w) => w.pid)), new Set(arbiter.pids()));
    for (const worker of snapshot.workers) {
      assert.equal(worker.state, 'ready');
      assert.ok(worker.ageMs >= 0 && worker.ageMs < 60_000);
      assert.ok(worker.lastHeartbeatMs < 5_000);
    }
    assert.equal(snapshot.workers.reduce((sum, w) => sum + w.requests, 0), 6, 'every request counted once');

    // A worker killed from outside is a crash; its replacement is counted as started.
    const victim = snapshot.workers[0]?.pid ?? 0;
    process.kill(victim, 'SIGKILL');
    const replaced = Date.now() + 10_000;
    while (Date.now() < replaced && !(arbiter.snapshot().crashes === 1 && arbiter.snapshot().workers.filter((w) => w.state === 'ready').length === 2)) await new Promise((resolve) => setTimeout(resolve, 50));
    snapshot = arbiter.snapshot();
    assert.equal(snapshot.crashes, 1);
    assert.equal(snapshot.started, 3);
    assert.ok(!snapshot.workers.some((w) => w.pid === victim));
  });
});
