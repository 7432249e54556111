/**
 * `portico app --workers 2` under a bounded load (10 s, 16 concurrent keep-alive clients): workers
 * recycled by `--max-requests 50 --max-requests-jitter 10`, and rolling reloads (SIGHUP every 2 s).
 * Every non-2xx status and every socket error counts as a failure; both must be zero. Real
 * processes on loopback, stopped by PID.
 */
import assert from 'node:assert/strict';
import { Agent, request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { APPS, startApp, type RunningApp } from '../helpers/app.js';
import { freePort } from '../helpers/portico.js';

const PID_APP = join(APPS, 'pid.mjs');
const DURATION_MS = 10_000;
const CLIENTS = 16;

async function start(...flags: string[]): Promise<RunningApp> {
  return startApp(['app', PID_APP, '--workers', '2', '--bind', `127.0.0.1:${await freePort()}`, ...flags]);
}

interface LoadResult {
  requests: number;
  ok: number;
  non2xx: number;
  socketErrors: number;
  errors: string[];
  /** Requests answered per worker pid. */
  pids: Map<string, number>;
}

/** CLIENTS loops of sequential GETs over one keep-alive agent for DURATION_MS. */
async function keepAliveLoad(url: string): Promise<LoadResult> {
  const target = new URL(url);
  const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS });
  const result: LoadResult = { requests: 0, ok: 0, non2xx: 0, socketErrors: 0, errors: [], pids: new Map() };
  const one = () =>
    new Promise<void>((resolve) => {
      const req = httpRequest({ host: target.hostname, port: target.port, path: '/', agent, timeout: 5000 }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            result.ok += 1;
            result.pids.set(text, (result.pids.get(text) ?? 0) + 1);
          } else {
            result.non2xx += 1;
            result.errors.push(`status ${status}: ${text.slice(0, 100)}`);
          }
          resolve();
        });
        res.on('error', (error) => {
          result.socketErrors += 1;
          result.errors.push(`response: ${error.message}`);
          resolve();
        });
      });
      req.on('timeout', () => req.destroy(new Error('request timed out')));
      req.on('error', (error) => {
        result.socketErrors += 1;
        result.errors.push(`${req.reusedSocket ? 'reused socket' : 'new socket'}: ${error.message}`);
        resolve();
      });
      req.end();
    });
  const end = Date.now() + DURATION_MS;
  try {
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        while (Date.now() < end) {
          result.requests += 1;
          await one();
        }
      }),
    );
  } finally {
    agent.destroy();
  }
  return result;
}

function summary(label: string, r: LoadResult): string {
  return `${label}: ${r.requests} requests in ${DURATION_MS / 1000} s over ${CLIENTS} keep-alive clients, ${r.ok} 2xx, ${r.non2xx} non-2xx, ${r.socketErrors} socket errors; ${r.pids.size} distinct worker pids`;
}

describe('app workers under load (10 s, 16 keep-alive clients)', () => {
  it('(a) --max-requests 50 --max-requests-jitter 10 recycles workers with zero failed requests', async (t) => {
    const r = await start('--max-requests', '50', '--max-requests-jitter', '10');
    try {
      const result = await keepAliveLoad(r.url);
      const recycles = (r.stderr().match(/reached max requests/g) ?? []).length;
      t.diagnostic(`${summary('max-requests', result)}; ${recycles} recycles logged`);
      assert.deepEqual(result.errors.slice(0, 10), []);
      assert.equal(result.non2xx, 0);
      assert.equal(result.socketErrors, 0);
      assert.equal(result.ok, result.requests);
      assert.ok(result.requests >= 1000, `only ${result.requests} requests`);
      // Each worker serves at least 50 requests before it retires (all but the last two, which
      // the end of the load may cut short).
      const short = [...result.pids].filter(([, n]) => n < 50);
      assert.ok(short.length <= 2, `workers that served fewer than 50: ${short.map(([pid, n]) => `${pid}: ${n}`).join(', ')}`);
      assert.ok(result.pids.size >= 10, `only ${result.pids.size} pids: workers did not recycle`);
      assert.ok(recycles >= result.pids.size - 2);
    } finally {
      assert.equal(await r.stop(), 0);
    }
  });

  it('(b) a rolling reload (SIGHUP every 2 s) gives zero failed requests', async (t) => {
    const r = await start();
    const timers: NodeJS.Timeout[] = [];
    try {
      let hups = 0;
      for (const at of [2000, 4000, 6000, 8000])
        timers.push(
          setTimeout(() => {
            process.kill(r.pid, 'SIGHUP');
            hups += 1;
          }, at),
        );
      const result = await keepAliveLoad(r.url);
      await r.waitFor((out) => (out.match(/reload done/g) ?? []).length >= 1, 10_000);
      const reloads = (r.stderr().match(/reload done/g) ?? []).length;
      t.diagnostic(`${summary('rolling reload', result)}; ${hups} SIGHUPs, ${reloads} reloads done`);
      assert.equal(hups, 4);
      assert.deepEqual(result.errors.slice(0, 10), []);
      assert.equal(result.non2xx, 0);
      assert.equal(result.socketErrors, 0);
      assert.equal(result.ok, result.requests);
      assert.ok(result.requests >= 1000, `only ${result.requests} requests`);
      // The 2 first workers and at least 2 per reload.
      assert.ok(result.pids.size >= 2 + 2 * Math.min(reloads, 3), `only ${result.pids.size} pids over ${reloads} reloads`);
    } finally {
      timers.forEach(clearTimeout);
      assert.equal(await r.stop(), 0);
    }
  });
});
