/**
 * The supervisor and its edge workers, through bin/portico on real sockets: `workers: 1` is one
 * process; `portico reload` finds a running `portico up` through its pid file; a broken config on
 * reload is refused with its field path while the old one serves; listeners added and removed by
 * a reload; `--watch`; SIGTERM lets a slow request in flight finish (bounded by the graceful
 * timeout); SIGQUIT stops at once.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, request, runCli, startPortico, tempDir, writeConfig, type RunningPortico } from '../helpers/portico.js';
import { runLoad, summary } from '../helpers/load.js';
import { APPS_DIR, startNodeUpstream, type NodeUpstream } from '../helpers/upstreams.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function eventually(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(50);
  }
}

/** Pids of the children of `pid` (from /proc). */
function children(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const refused = (url: string) =>
  request(url).then(
    () => false,
    (error: NodeJS.ErrnoException) => error.code === 'ECONNREFUSED',
  );

describe('supervisor and edge workers', () => {
  const dir = tempDir();
  let slow: NodeUpstream;

  before(async () => {
    // Answers after ?ms=N milliseconds.
    slow = await startNodeUpstream((req, res) => {
      const ms = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('ms') ?? 0);
      setTimeout(() => res.end(`slept ${ms}`), ms);
    });
  });
  after(async () => {
    await slow.close();
    dir.remove();
  });

  const config = (port: number, body: string, extra: Record<string, unknown> = {}, listen: string[] = [`127.0.0.1:${port}`]) => ({
    log: { access: false },
    upstreams: { slow: { servers: [slow.url] } },
    servers: [
      {
        listen,
        routes: [
          { exact: '/', respond: { body } },
          { prefix: '/slow', proxy: { to: 'slow' } },
        ],
      },
    ],
    ...extra,
  });

  it('workers: 1 runs in one process: no edge worker processes, no banner line for them', async () => {
    const port = await freePort();
    const portico = await startPortico(['up', '--config', writeConfig(dir.path, config(port, 'one\n', { workers: 1 }), 'one.config.json')]);
    try {
      assert.equal((await request(`${portico.url}/`)).text, 'one\n');
      assert.doesNotMatch(portico.stdout(), /edge workers/);
      assert.deepEqual(children(portico.pid), []);
    } finally {
      await portico.stop();
    }
  });

  it('workers: 2 forks two edge workers (children of portico) that share the port', async () => {
    const port = await freePort();
    const portico = await startPortico(['up', '--config', writeConfig(dir.path, config(port, 'two\n', { workers: 2 }), 'two.config.json')], { timeoutMs: 30_000 });
    try {
      const pids = /edge workers 2 \(pids (\d+), (\d+)\)/.exec(portico.stdout());
      assert.ok(pids, portico.stdout());
      assert.deepEqual(children(portico.pid).sort(), [Number(pids[1]), Number(pids[2])].sort());
      for (let i = 0; i < 10; i++) assert.equal((await request(`${portico.url}/`)).text, 'two\n');
    } finally {
      assert.equal(await portico.stop(), 0);
    }
  });

  it('apps run once per node (not once per edge worker); every edge worker reaches them, also through a rolling reload', async (t) => {
    const port = await freePort();
    const appConfig = {
      workers: 2,
      log: { access: false },
      apps: { pid: { module: join(APPS_DIR, 'pid.mjs'), workers: 2 } },
      servers: [{ listen: `127.0.0.1:${port}`, routes: [{ prefix: '/', app: 'pid' }] }],
    };
    const portico = await startPortico(['up', '--config', writeConfig(dir.path, appConfig, 'apps.config.json')], { timeoutMs: 30_000 });
    try {
      const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      const kids = children(portico.pid);
      // Each process names itself in its title (what `ps` shows, written over /proc/PID/cmdline).
      const appWorkers = kids.filter((pid) => /^portico: app pid worker \d+/.test(cmdline(pid)));
      const edgeWorkers = kids.filter((pid) => /^portico: edge worker/.test(cmdline(pid)));
      assert.equal(edgeWorkers.length, 2, 'two edge workers');
      assert.equal(appWorkers.length, 2, 'two app workers in all, children of the supervisor');
      for (const edge of edgeWorkers) assert.deepEqual(children(edge), [], 'an edge worker runs no app worker');
      // Fresh connections land on both edge workers; every answer comes from one of the two app workers.
      const answered = new Set<string>();
      for (let i = 0; i < 20; i++) answered.add((await request(`${portico.url}/`)).text);
      assert.ok([...answered].every((pid) => appWorkers.includes(Number(pid))), `answers from ${[...answered].join(', ')}`);
      // A rolling reload of the app workers under load: each edge worker lets go of a leaving app worker first.
      const hup = sleep(500).then(() => process.kill(portico.pid, 'SIGHUP'));
      const result = await runLoad({ port, paths: ['/'], clients: 4, durationMs: 4_000, keepAlive: true });
      await hup;
      t.diagnostic(summary('SIGHUP (app workers roll) under 4 keep-alive clients, 2 edge workers', result));
      assert.deepEqual(result.statuses, {});
      assert.deepEqual(result.errors, {});
      await eventually(() => /arbiter: reload done/.test(portico.stderr()), 15_000, 'the rolling reload done');
      const after = new Set<string>();
      for (let i = 0; i < 10; i++) after.add((await request(`${portico.url}/`)).text);
      assert.ok([...after].every((pid) => !appWorkers.includes(Number(pid))), 'the new app workers answer');
    } finally {
      assert.equal(await portico.stop(), 0);
    }
  });

  it('edge workers never outlive the supervisor (SIGKILL of portico: they exit)', async () => {
    const port = await freePort();
    // --pid in the test folder: a SIGKILLed portico cannot remove its pid file.
    const portico = await startPortico(['up', '--config', writeConfig(dir.path, config(port, 'x\n', { workers: 2 }), 'orphan.config.json'), '--pid', join(dir.path, 'orphan.pid')], { timeoutMs: 30_000 });
    const edge = children(portico.pid);
    assert.equal(edge.length, 2);
    await portico.stop('SIGKILL');
    for (const pid of edge) await eventually(() => !alive(pid), 5_000, `edge worker ${pid} gone after the supervisor`);
    assert.ok(await refused(`http://127.0.0.1:${port}/`));
  });

  it('edge workers that die in a loop are restarted with backoff (0, 250 ms, 500 ms …), and the 6th crash in a row stops portico (exit 1)', async () => {
    const port = await freePort();
    const portico = await startPortico(['up', '--config', writeConfig(dir.path, config(port, 'x\n', { workers: 2 }), 'loop.config.json')], { timeoutMs: 30_000 });
    const killed = new Set<number>();
    const deadline = Date.now() + 40_000;
    while (portico.child.exitCode === null && Date.now() < deadline) {
      for (const match of portico.stderr().matchAll(/"worker":(\d+),"msg":"edge worker started"/g)) {
        const pid = Number(match[1]);
        if (killed.has(pid) || !alive(pid)) continue;
        killed.add(pid);
        process.kill(pid, 'SIGKILL');
      }
      await sleep(20);
    }
    const code = await portico.stop('SIGKILL');
    assert.equal(code, 1, portico.stderr().slice(-2000));
    assert.match(portico.stderr(), /edge workers crashed 6 times in a row, giving up \(last: exit SIGKILL\)/);
    for (const delay of ['replacing it now', 'replacing it in 250 ms', 'replacing it in 500 ms', 'replacing it in 1000 ms']) assert.ok(portico.stderr().includes(delay), `logged: ${delay}`);
  });

  it('--workers overrides the config; a port in use fails at once with exit 1', async () => {
    const port = await freePort();
    const path = writeConfig(dir.path, config(port, 'flag\n', { workers: 1 }), 'flag.config.json');
    const portico = await startPortico(['up', '--config', path, '--workers', '2'], { timeoutMs: 30_000 });
    try {
      assert.match(portico.stdout(), /edge workers 2 \(pids/);
      const second = await runCli(['up', '--config', path, '--workers', '2', '--pid', join(dir.path, 'second.pid')], { env: { PORTICO_WORKERS: '1' } });
      assert.equal(second.code, 1, second.stderr);
      assert.match(second.stderr, /cannot listen on 127\.0\.0\.1:\d+: address already in use/);
      assert.equal((await request(`${portico.url}/`)).text, 'flag\n', 'the first one still serves');
    } finally {
      await portico.stop();
    }
    const usage = await runCli(['up', '--config', path, '--workers', 'lots']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--workers: expected a whole number >= 1, got "lots"/);
  });

  it('portico reload signals the running portico up (found through its pid file); a broken config is refused with its field path and the old one serves', async () => {
    const port = await freePort();
    const path = writeConfig(dir.path, config(port, 'first\n', { workers: 2 }), 'reload.config.json');
    const portico = await startPortico(['up', '--config', path], { timeoutMs: 30_000 });
    // The default pid file: named after the config's path, in the temporary folder.
    const pidFile = (JSON.parse((await runCli(['check', '--config', path])).stdout) as { pidFile: string }).pidFile;
    try {
      assert.equal(readFileSync(pidFile, 'utf8').trim(), String(portico.pid));
      assert.equal((await request(`${portico.url}/`)).text, 'first\n');
      writeConfig(dir.path, config(port, 'second\n', { workers: 2 }), 'reload.config.json');
      const reloaded = await runCli(['reload', '--config', path]);
      assert.equal(reloaded.code, 0, reloaded.stderr);
      assert.match(reloaded.stdout, new RegExp(`reload signalled to pid ${portico.pid}`));
      await eventually(async () => (await request(`${portico.url}/`)).text === 'second\n', 10_000, 'the new config serving');
      for (let i = 0; i < 6; i++) assert.equal((await request(`${portico.url}/`)).text, 'second\n', 'every edge worker serves the new config');

      // A broken config: `portico reload` refuses it itself (exit 2, field path), signals nothing.
      const broken = config(port, 'third\n', { workers: 2 }) as { servers: { routes: { respond?: { status?: number } }[] }[] };
      (broken.servers[0]?.routes[0]?.respond as { status?: number }).status = 99;
      writeConfig(dir.path, broken, 'reload.config.json');
      const refusedHere = await runCli(['reload', '--config', path]);
      assert.equal(refusedHere.code, 2);
      assert.match(refusedHere.stderr, /servers\[0\]\.routes\[0\]\.respond\.status: expected a number >= 200/);
      // SIGHUP with it anyway: the running portico refuses it, logs the field path, keeps serving.
      process.kill(portico.pid, 'SIGHUP');
      await eventually(() => /reload refused: the running config keeps serving/.test(portico.stderr()), 10_000, 'the refusal in the log');
      assert.match(portico.stderr(), /servers\[0\]\.routes\[0\]\.respond\.status: expected a number >= 200, got number 99/);
      for (let i = 0; i < 6; i++) assert.equal((await request(`${portico.url}/`)).text, 'second\n');

      // A pid file naming nobody: a clear error.
      const stale = join(dir.path, 'stale.pid');
      writeFileSync(stale, '999999999\n');
      const nobody = await runCli(['reload', '--config', join(dir.path, 'one.config.json'), '--pid', stale]);
      assert.equal(nobody.code, 1);
      assert.match(nobody.stderr, /pid 999999999 .* is not a live portico process/);
    } finally {
      assert.equal(await portico.stop(), 0);
    }
    assert.equal(existsSync(pidFile), false, 'the pid file is removed on exit');
  });

  it('a reload opens an added listener and closes a removed one (2 edge workers)', async () => {
    const [a, b] = [await freePort(), await freePort()];
    const pid = join(dir.path, 'listen.pid');
    const path = writeConfig(dir.path, config(a, 'a\n', { workers: 2 }), 'listen.config.json');
    const portico = await startPortico(['up', '--config', path, '--pid', pid], { timeoutMs: 30_000 });
    try {
      assert.equal(readFileSync(pid, 'utf8').trim(), String(portico.pid));
      assert.ok(await refused(`http://127.0.0.1:${b}/`));
      writeConfig(dir.path, config(a, 'ab\n', { workers: 2 }, [`127.0.0.1:${a}`, `127.0.0.1:${b}`]), 'listen.config.json');
      assert.equal((await runCli(['reload', '--pid', pid, '--config', path])).code, 0);
      await eventually(async () => (await request(`http://127.0.0.1:${b}/`).catch(() => null))?.text === 'ab\n', 10_000, 'the added listener serving');
      writeConfig(dir.path, config(b, 'b\n', { workers: 2 }), 'listen.config.json');
      process.kill(portico.pid, 'SIGHUP');
      await eventually(() => refused(`http://127.0.0.1:${a}/`), 10_000, 'the removed listener closed');
      assert.equal((await request(`http://127.0.0.1:${b}/`)).text, 'b\n');
    } finally {
      assert.equal(await portico.stop(), 0);
    }
    assert.equal(existsSync(pid), false, 'the pid file is removed on exit');
  });

  it('--watch reloads when the config file changes', async () => {
    const port = await freePort();
    const path = writeConfig(dir.path, config(port, 'before\n', { workers: 2 }), 'watch.config.json');
    const portico = await startPortico(['up', '--config', path, '--watch'], { timeoutMs: 30_000 });
    try {
      assert.equal((await request(`${portico.url}/`)).text, 'before\n');
      writeConfig(dir.path, config(port, 'after\n', { workers: 2 }), 'watch.config.json');
      await eventually(async () => (await request(`${portico.url}/`)).text === 'after\n', 10_000, 'the edited config serving');
      // The supervisor logs it once every edge worker has answered: a moment after they serve it.
      await eventually(() => /"trigger":"file change"/.test(portico.stderr()), 10_000, 'the reload logged with its trigger');
    } finally {
      await portico.stop();
    }
  });

  for (const workers of [1, 2]) {
    it(`SIGTERM (workers: ${workers}): a slow request in flight finishes, new connections are refused, exit 0`, async () => {
      const port = await freePort();
      const portico: RunningPortico = await startPortico(['up', '--config', writeConfig(dir.path, config(port, 'x\n', { workers }), `term${workers}.config.json`)], { timeoutMs: 30_000 });
      const inFlight = request(`${portico.url}/slow?ms=1500`);
      await sleep(300);
      const started = Date.now();
      process.kill(portico.pid, 'SIGTERM');
      const answer = await inFlight;
      assert.equal(answer.status, 200);
      assert.equal(answer.text, 'slept 1500');
      await eventually(() => refused(`${portico.url}/`), 5_000, 'new connections refused');
      const code = await portico.stop();
      assert.equal(code, 0);
      assert.ok(Date.now() - started < 10_000, 'stopped soon after the request finished, not at the end of the 30 s grace');
    });
  }

  it('SIGTERM with --graceful-timeout 1s: a longer request is cut when the grace ends, exit 0', async () => {
    const port = await freePort();
    const portico = await startPortico(['up', '--config', writeConfig(dir.path, config(port, 'x\n', { workers: 2 }), 'grace.config.json'), '--graceful-timeout', '1s'], { timeoutMs: 30_000 });
    const inFlight = request(`${portico.url}/slow?ms=20000`).then(
      (r) => `status ${r.status}`,
      (error: NodeJS.ErrnoException) => error.code ?? error.message,
    );
    await sleep(300);
    const started = Date.now();
    process.kill(portico.pid, 'SIGTERM');
    assert.match(await inFlight, /ECONNRESET|socket hang up/);
    const code = await portico.stop();
    const took = Date.now() - started;
    assert.equal(code, 0);
    assert.ok(took >= 900 && took < 10_000, `stopped after the 1 s grace (took ${took} ms)`);
  });

  it('SIGQUIT stops at once: the request in flight is cut, no process is left', async () => {
    const port = await freePort();
    const portico = await startPortico(['up', '--config', writeConfig(dir.path, config(port, 'x\n', { workers: 2 }), 'quit.config.json')], { timeoutMs: 30_000 });
    const edge = children(portico.pid);
    assert.equal(edge.length, 2);
    const inFlight = request(`${portico.url}/slow?ms=20000`).then(
      (r) => `status ${r.status}`,
      (error: NodeJS.ErrnoException) => error.code ?? error.message,
    );
    await sleep(300);
    const started = Date.now();
    process.kill(portico.pid, 'SIGQUIT');
    assert.match(await inFlight, /ECONNRESET|socket hang up/);
    await portico.stop('SIGQUIT');
    const took = Date.now() - started;
    // The graceful timeout is 30 s and the request wanted 20 s: "at once" is far below either.
    assert.ok(took < 5_000, `took ${took} ms`);
    for (const pid of edge) await eventually(() => !alive(pid), 2_000, `edge worker ${pid} gone`);
  });
});
