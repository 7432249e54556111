/**
 * Worker deaths under `portico app --workers 2`: a worker SIGKILLed, one that calls
 * `process.exit(1)` inside a handler, one whose timer throws (an uncaught exception outside any
 * request). Each time a replacement (a new pid) must answer within 1 s of the death, while a
 * concurrent loop of requests on fresh connections fails only requests that were in flight on the
 * dying worker (none for the timer throw: its answer was already sent). A synchronous throw in a
 * handler is a 500 and the same worker answers on. Real processes on loopback, stopped by PID;
 * every wait is bounded.
 */
import assert from 'node:assert/strict';
import { Agent, request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { APPS, get, sleep, startApp, type RunningApp } from '../helpers/app.js';
import { freePort } from '../helpers/portico.js';

const CRASH_APP = join(APPS, 'crash-app.mjs');
/** Concurrent request loops during an event; each has at most one request in flight. */
const CLIENTS = 4;
/** Pause between two requests of one loop (so each loop polls every ~25-30 ms). */
const PAUSE_MS = 25;
const REPLACEMENT_BOUND_MS = 1000;

async function start(): Promise<RunningApp> {
  return startApp(['app', CRASH_APP, '--workers', '2', '--bind', `127.0.0.1:${await freePort()}`]);
}

function bannerPids(r: RunningApp): string[] {
  return (/workers \d+ \(pids ([\d, ]+)\)/.exec(r.stdout())?.[1] ?? '').split(', ').filter(Boolean);
}

interface Sample {
  readonly start: number;
  readonly end: number;
  readonly status?: number;
  readonly pid?: string;
  readonly error?: string;
}

/** CLIENTS loops of GET / on fresh connections (agent: false), each recording every request. */
function traffic(url: string): { samples: Sample[]; stop(): Promise<void> } {
  const samples: Sample[] = [];
  let running = true;
  const loops = Array.from({ length: CLIENTS }, async () => {
    while (running) {
      const start = Date.now();
      try {
        const res = await get(`${url}/`, { timeoutMs: 3000 });
        samples.push({ start, end: Date.now(), status: res.status, pid: res.text });
      } catch (error) {
        samples.push({ start, end: Date.now(), error: (error as Error).message });
      }
      await sleep(PAUSE_MS);
    }
  });
  return {
    samples,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** Waits (bounded) for the first successful sample from a pid not in `known`. */
async function firstNewPid(samples: Sample[], known: Set<string>, timeoutMs = 5000): Promise<Sample> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const fresh = samples.filter((s) => s.status === 200 && s.pid && !known.has(s.pid)).sort((a, b) => a.end - b.end)[0];
    if (fresh) return fresh;
    if (Date.now() > end) throw new Error(`no new worker answered in ${timeoutMs} ms`);
    await sleep(10);
  }
}

const failed = (s: Sample) => s.status !== 200;

/**
 * Runs one death: traffic starts, `trigger` kills a worker (returns the victim's pid if it knows
 * it), then checks the replacement time and the loop's failures. `allowInFlight`: failures are
 * tolerated only for requests in flight on the victim: started before the arbiter logged its death
 * (until then a connection may be handed to it) and not over before the trigger; at most one per loop.
 */
async function death(
  t: TestContext,
  label: string,
  trigger: (r: RunningApp) => Promise<{ victim?: string }>,
  allowInFlight: boolean,
): Promise<void> {
  const r = await start();
  try {
    const before = new Set(bannerPids(r));
    assert.equal(before.size, 2);
    const load = traffic(r.url);
    await sleep(300);
    const t0 = Date.now();
    const { victim: known } = await trigger(r);
    let replacement: Sample;
    try {
      replacement = await firstNewPid(load.samples, before);
    } finally {
      await sleep(300);
      await load.stop();
    }
    const replacementMs = replacement.end - t0;
    // Which worker died: the one the arbiter reports.
    await r.waitFor((out) => /worker (\d+) died/.test(out), 5000);
    const died = /"time":"([^"]+)"[^\n]*worker (\d+) died/.exec(r.stderr()) as RegExpExecArray;
    const victim = died[2] as string;
    // When the arbiter saw the exit: until then a connection could still be handed to the victim.
    const deathSeenAt = Date.parse(died[1] as string);
    if (known !== undefined) assert.equal(victim, known);
    assert.ok(before.has(victim));
    const survivor = [...before].find((pid) => pid !== victim) as string;
    const newPid = replacement.pid as string;

    const all = load.samples;
    const during = all.filter((s) => s.end >= t0 && s.start <= replacement.end);
    const failures = all.filter(failed);
    const survivorDuring = during.filter((s) => s.pid === survivor).length;
    t.diagnostic(
      `${label}: victim ${victim} (the arbiter saw it die ${deathSeenAt - t0} ms after the ${label === 'SIGKILL' ? 'kill' : 'request'}), replacement ${newPid} answered ${replacementMs} ms after the ${label === 'SIGKILL' ? 'kill' : 'request'}; ` +
        `loop: ${all.length} requests (${during.length} during the event, ${survivorDuring} of them answered by survivor ${survivor}), ` +
        `${failures.length} failed${failures.length ? ` (${failures.map((f) => `${f.error ?? f.status} started ${f.start - t0} ms`).join('; ')})` : ''}`,
    );

    assert.ok(replacementMs <= REPLACEMENT_BOUND_MS, `replacement answered ${replacementMs} ms after the death`);
    if (allowInFlight) {
      for (const f of failures) assert.ok(f.start <= deathSeenAt && f.end >= t0, `a request that was not in flight on the dying worker failed: ${JSON.stringify(f)}`);
      assert.ok(failures.length <= CLIENTS);
    } else {
      assert.deepEqual(failures, []);
    }
    // Nothing after the death came from the victim; the survivor kept answering meanwhile.
    assert.deepEqual(all.filter((s) => s.start > deathSeenAt && s.pid === victim), []);
    assert.ok(survivorDuring >= 1, 'the other worker answered during the event');
    for (const s of all) if (s.status === 200) assert.ok([...before, newPid].includes(s.pid as string), `unexpected pid ${s.pid}`);
    // Afterwards: exactly the survivor and the replacement.
    const after = new Set<string>();
    for (let i = 0; i < 10; i++) after.add((await get(`${r.url}/`)).text);
    assert.deepEqual([...after].sort(), [survivor, newPid].sort());
    assert.equal((r.stderr().match(/ died /g) ?? []).length, 1, 'exactly one worker died');
  } finally {
    assert.equal(await r.stop(), 0);
  }
}

/** GET over a given agent (keep-alive), resolving with status, body and whether the socket was reused. */
function agentGet(agent: Agent, url: string, path: string): Promise<{ status: number; text: string; reused: boolean }> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: target.hostname, port: target.port, path, agent, timeout: 5000 }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, reused: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

describe('app worker crashes (portico app --workers 2)', () => {
  it('(a) a worker killed with SIGKILL: a new pid answers within 1 s, the other worker serves on', async (t) => {
    await death(
      t,
      'SIGKILL',
      async (r) => {
        const victim = bannerPids(r)[0] as string;
        process.kill(Number(victim), 'SIGKILL');
        return { victim };
      },
      true,
    );
  });

  it('(b) process.exit(1) inside a handler: a new pid answers within 1 s, the other worker serves on', async (t) => {
    await death(
      t,
      'process.exit(1)',
      async (r) => {
        // The handler exits before answering: the client sees its connection close.
        await assert.rejects(get(`${r.url}/exit`, { timeoutMs: 3000 }), /socket hang up|ECONNRESET/);
        return {};
      },
      true,
    );
  });

  it('(c) an uncaught exception in a timer: a new pid answers within 1 s, no request fails', async (t) => {
    await death(
      t,
      'timer throw',
      async (r) => {
        const res = await get(`${r.url}/timer-throw`, { timeoutMs: 3000 });
        assert.equal(res.status, 200);
        return { victim: res.text };
      },
      false,
    );
  });

  it('(d) a synchronous throw in a handler is a 500 and the same worker answers next', async (t) => {
    const r = await start();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const before = bannerPids(r);
      const first = await agentGet(agent, r.url, '/');
      assert.equal(first.status, 200);
      const pid = first.text;
      assert.ok(before.includes(pid));
      const statuses: number[] = [];
      const pids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const thrown = await agentGet(agent, r.url, '/sync-throw');
        assert.equal(thrown.reused, true, 'same connection, so same worker');
        statuses.push(thrown.status);
        const next = await agentGet(agent, r.url, '/');
        assert.equal(next.reused, true);
        pids.push(next.text);
      }
      t.diagnostic(`sync throw: statuses ${statuses.join(', ')}; worker ${pid} answered next: ${pids.join(', ')}`);
      assert.deepEqual(statuses, [500, 500, 500, 500, 500]);
      assert.deepEqual(pids, [pid, pid, pid, pid, pid]);
      // On fresh connections too: still the two original workers, none died.
      const seen = new Set<string>();
      for (let i = 0; i < 10; i++) seen.add((await get(`${r.url}/`)).text);
      assert.deepEqual([...seen].sort(), [...before].sort());
      assert.doesNotMatch(r.stderr(), / died /);
    } finally {
      agent.destroy();
      assert.equal(await r.stop(), 0);
    }
  });
});
