/**
 * Edge worker processes under load (2 edge workers, real sockets, bounded in time):
 *   (a) a config reload every second for 10 s of keep-alive clients (a fixed answer that changes
 *       with each generation, and a proxied route): zero non-2xx, zero socket errors, and an open
 *       WebSocket on a route that did not change still echoes afterwards;
 *   (b) SIGKILL of one edge worker under load: a new pid replaces it and the service goes on;
 *       the requests that fail are reported (only connections the killed worker held can fail).
 * Timing- and load-bound: runs alone (scripts/test.mjs ALONE).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { freePort, startPortico, tempDir, writeConfig, type RunningPortico } from '../helpers/portico.js';
import { runLoad, summary } from '../helpers/load.js';
import { startNodeUpstream, type NodeUpstream } from '../helpers/upstreams.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function eventually(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(25);
  }
}

/** The edge worker pids the banner names. */
function edgePids(out: string): number[] {
  const match = /edge workers \d+ \(pids ([\d, ]+)\)/.exec(out);
  return match ? (match[1] as string).split(', ').map(Number) : [];
}

/** Pids the supervisor's log says it started as edge workers. */
function startedEdgePids(err: string): number[] {
  return [...err.matchAll(/"worker":(\d+),"msg":"edge worker started"/g)].map((m) => Number(m[1]));
}

describe('edge workers under load (2 processes)', () => {
  const dir = tempDir();
  let upstream: NodeUpstream;
  const wss = new WebSocketServer({ noServer: true });

  before(async () => {
    wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
    upstream = await startNodeUpstream((req, res) => res.end(`upstream ${req.url}`), {
      onUpgrade: (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req)),
    });
  });

  after(async () => {
    for (const client of wss.clients) client.terminate();
    await upstream.close();
    dir.remove();
  });

  const config = (port: number, generation: number) => ({
    workers: 2,
    log: { access: false },
    upstreams: { api: { servers: [upstream.url] } },
    servers: [
      {
        listen: `127.0.0.1:${port}`,
        routes: [
          { exact: '/gen', respond: { body: `generation ${generation}\n` } },
          { prefix: '/api/', proxy: { to: 'api' } },
          { prefix: '/ws/', proxy: { to: 'api' } },
        ],
      },
    ],
  });

  it('(a) a reload every second for 10 s of keep-alive load: zero non-2xx, zero socket errors; an open WebSocket survives', async (t) => {
    const port = await freePort();
    const path = writeConfig(dir.path, config(port, 0), 'reload.config.json');
    const portico: RunningPortico = await startPortico(['up', '--config', path], { cwd: dir.path, timeoutMs: 30_000 });
    try {
      assert.equal(edgePids(portico.stdout()).length, 2, portico.stdout());
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/chat`);
      await once(ws, 'open');
      ws.send('before');
      assert.equal(String((await once(ws, 'message'))[0]), 'before');
      let closed = false;
      ws.once('close', () => (closed = true));

      let reloads = 0;
      const reloader = (async () => {
        for (let generation = 1; generation <= 9; generation++) {
          await sleep(1000);
          writeFileSync(path, JSON.stringify(config(port, generation)));
          process.kill(portico.pid, 'SIGHUP');
          reloads++;
        }
      })();
      const result = await runLoad({ port, paths: ['/gen', '/api/x'], clients: 8, durationMs: 10_000, keepAlive: true });
      await reloader;
      t.diagnostic(summary('reload every second, 8 keep-alive clients, 2 edge workers', result));
      const done = () => (portico.stderr().match(/reloaded: new config serving/g) ?? []).length;
      await eventually(() => done() >= reloads, 10_000, 'every reload logged as done');
      t.diagnostic(`${reloads} SIGHUPs, ${done()} reloads done; answers by generation: ${JSON.stringify(Object.fromEntries(Object.entries(result.bodies).filter(([k]) => k.startsWith('generation')).map(([k, v]) => [k.trim(), v])))}`);
      assert.ok(result.requests > 100, `too few requests to mean anything: ${result.requests}`);
      assert.deepEqual(result.statuses, {}, 'no non-2xx answer');
      assert.deepEqual(result.errors, {}, 'no socket error');
      // Several generations answered during the load: the reloads did apply under it.
      const generations = Object.keys(result.bodies).filter((body) => body.startsWith('generation'));
      assert.ok(generations.length >= 5, `generations seen: ${generations.join(', ')}`);
      // The WebSocket on /ws/ (a route no reload changed) is still open and echoes.
      assert.equal(closed, false, 'the WebSocket was closed by a reload');
      ws.send('after');
      assert.equal(String((await once(ws, 'message'))[0]), 'after');
      ws.close();
      // Same two edge workers: a reload swaps generations inside them, it does not restart them.
      assert.deepEqual(startedEdgePids(portico.stderr()).sort(), edgePids(portico.stdout()).sort());
    } finally {
      await portico.stop();
    }
  });

  it('(b) SIGKILL of one edge worker under load: a new pid replaces it, the service goes on', async (t) => {
    const port = await freePort();
    const path = writeConfig(dir.path, config(port, 0), 'kill.config.json');
    const portico = await startPortico(['up', '--config', path], { cwd: dir.path, timeoutMs: 30_000 });
    try {
      const [victim, survivor] = edgePids(portico.stdout()) as [number, number];
      assert.ok(victim && survivor, portico.stdout());
      const runBoth = async (keepAlive: boolean, label: string) => {
        const killedAt = { at: 0 };
        const failures: { at: number; what: string }[] = [];
        let lastOk = 0;
        const killer = (async () => {
          await sleep(1500);
          const alive = startedEdgePids(portico.stderr()).filter((pid) => {
            try {
              process.kill(pid, 0);
              return true;
            } catch {
              return false;
            }
          });
          const target = alive[0] as number;
          killedAt.at = Date.now();
          process.kill(target, 'SIGKILL');
          return target;
        })();
        const result = await runLoad({
          port,
          paths: ['/gen', '/api/x'],
          clients: 8,
          durationMs: 5_000,
          keepAlive,
          onResult: (at, ok, what) => {
            if (ok) lastOk = Math.max(lastOk, at);
            else failures.push({ at, what });
          },
        });
        const killed = await killer;
        t.diagnostic(`${summary(label, result)}; killed edge worker ${killed}; failures at ${failures.map((f) => `+${f.at - killedAt.at} ms ${f.what}`).join(', ') || 'none'}`);
        // Answers went on after the kill, up to the end of the load.
        assert.ok(lastOk > killedAt.at + 2000, 'requests succeeded well after the kill');
        // Only connections the killed worker held can fail: at most one request per client in flight on it.
        assert.ok(failures.length <= 8, `failures: ${JSON.stringify(failures)}`);
        assert.deepEqual(result.statuses, {}, 'no non-2xx answer');
        return killed;
      };
      const first = await runBoth(false, 'SIGKILL under 8 clients, a new connection per request');
      await eventually(() => startedEdgePids(portico.stderr()).length >= 3, 10_000, 'a replacement edge worker');
      const replacement = startedEdgePids(portico.stderr())[2] as number;
      assert.ok(![victim, survivor].includes(replacement), 'the replacement has a new pid');
      await eventually(() => /edge worker replaced: the new one listens/.test(portico.stderr()), 10_000, 'the replacement listens');
      t.diagnostic(`edge worker ${first} killed, replaced by ${replacement}`);
      await runBoth(true, 'SIGKILL under 8 keep-alive clients');
      await eventually(() => startedEdgePids(portico.stderr()).length >= 4, 10_000, 'a second replacement');
    } finally {
      await portico.stop();
    }
  });
});
