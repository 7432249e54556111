/**
 * Issue #20 item 8, with real processes stopped by PID (or by the process group the test made):
 *   - SIGTERM to portico's whole process group (systemd KillMode=control-group, `timeout`, npm)
 *     stops it cleanly: no worker is taken for crashed, none is started during the stop;
 *   - a SIGTERM to one app worker or one edge worker alone is not a crash either: it is replaced
 *     after a short window, with a warning, and portico serves on;
 *   - an external app server left running by a SIGKILLed portico is found at the next start and
 *     stopped, so it never runs twice;
 *   - the error log file is reopened on reload, as the access log is (logrotate's postrotate).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { APPS, get, sleep } from '../helpers/app.js';
import { freePort, spawnCli, startWithConfig, tempDir, waitForOutput, writeConfig } from '../helpers/portico.js';

const PID_APP = join(APPS, 'pid.mjs');
const dirs: { remove(): void }[] = [];
after(() => dirs.forEach((dir) => dir.remove()));

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Waits (bounded) until `check` holds. */
async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

const CRASH_WORDS = /died|crash|restarting|replacing it/i;

describe('process edges (#20)', () => {
  it('SIGTERM to the whole process group is a clean stop: no crash, no new worker', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const port = await freePort();
    const path = writeConfig(dir.path, {
      workers: 2,
      gracefulTimeout: '5s',
      log: { access: false, level: 'info' },
      apps: { web: { module: PID_APP, workers: 2 } },
      servers: [{ listen: `127.0.0.1:${port}`, routes: [{ prefix: '/', app: 'web' }] }],
    });
    const portico = spawnCli(['up', '--config', path], { cwd: dir.path, detached: true });
    try {
      await waitForOutput(portico, /listening on/, Date.now() + 30_000);
      for (let i = 0; i < 5; i++) assert.equal((await get(`http://127.0.0.1:${port}/`)).status, 200);
      const startedBefore = (portico.err().match(/worker started/g) ?? []).length;
      process.kill(-portico.pid, 'SIGTERM');
      const code = await Promise.race([portico.exited, sleep(15_000).then(() => 'timeout' as const)]);
      assert.equal(code, 0, `exit: ${String(code)}\n${portico.err().slice(-3000)}`);
      const log = portico.err();
      const bad = log.split('\n').filter((line) => CRASH_WORDS.test(line));
      assert.deepEqual(bad, [], 'no worker was taken for crashed');
      assert.equal((log.match(/worker started/g) ?? []).length, startedBefore, 'no worker was started during the stop');
    } finally {
      if (alive(portico.pid)) process.kill(-portico.pid, 'SIGKILL');
    }
  });

  it('SIGTERM to one app worker, then to one edge worker: each is replaced, with a warning, and not counted as a crash', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const portico = await startWithConfig(
      dir.path,
      {
        workers: 2,
        log: { access: false, level: 'info' },
        apps: { web: { module: PID_APP, workers: 2 } },
        servers: [{ listen: `127.0.0.1:${await freePort()}`, routes: [{ prefix: '/', app: 'web' }] }],
      },
      { env: { PORTICO_WORKERS: '2' } },
    );
    try {
      const appPid = Number((await get(`${portico.url}/`)).text);
      assert.ok(appPid > 0);
      process.kill(appPid, 'SIGTERM');
      await until(() => /stopped on a SIGTERM portico did not send; replacing it/.test(portico.stderr()), 10_000, 'the app worker warning');
      await until(() => !alive(appPid), 10_000, 'the app worker to exit');
      // Two workers answer again, neither of them the signalled one (the replacement boots after
      // the 1 s window: asked until it answers, for at most 15 s).
      const seen = new Set<number>();
      const deadline = Date.now() + 15_000;
      while (seen.size < 2 && Date.now() < deadline) {
        seen.add(Number((await get(`${portico.url}/`)).text));
        await sleep(20);
      }
      assert.equal(seen.size, 2, `pids seen: ${[...seen].join(', ')}`);
      assert.ok(!seen.has(appPid));

      const edgePid = Number(/edge workers 2 \(pids (\d+)/.exec(portico.stdout())?.[1]);
      assert.ok(edgePid > 0, portico.stdout());
      process.kill(edgePid, 'SIGTERM');
      await until(() => new RegExp(`edge worker ${edgePid} stopped on a SIGTERM portico did not send; replacing it`).test(portico.stderr()), 10_000, 'the edge worker warning');
      await until(() => /edge worker replaced: the new one listens/.test(portico.stderr()), 10_000, 'the replacement edge worker');
      for (let i = 0; i < 10; i++) assert.equal((await get(`${portico.url}/`)).status, 200);
      const bad = portico.stderr().split('\n').filter((line) => /died|crash/i.test(line));
      assert.deepEqual(bad, [], 'neither was counted as a crash');
    } finally {
      await portico.stop();
    }
  });

  it('an external app server left running by a SIGKILLed portico is stopped at the next start', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const appPort = await freePort();
    const server = join(dir.path, 'server.mjs');
    // Writes its pid where the test can read it, then serves HTTP with it.
    writeFileSync(server, `import http from 'node:http'; import fs from 'node:fs'; fs.appendFileSync(${JSON.stringify(join(dir.path, 'pids'))}, process.pid + '\\n'); http.createServer((q, s) => s.end(String(process.pid))).listen(${appPort}, '127.0.0.1');\n`);
    const config = {
      log: { access: false, level: 'info' },
      apps: { ext: { command: [process.execPath, server], socket: `127.0.0.1:${appPort}`, gracefulTimeout: '2s' } },
      servers: [{ listen: `127.0.0.1:${await freePort()}`, routes: [{ prefix: '/', app: 'ext' }] }],
    };
    const first = await startWithConfig(dir.path, config);
    const firstCommand = Number((await get(`${first.url}/`)).text);
    assert.ok(alive(firstCommand));
    await first.stop('SIGKILL');
    assert.ok(alive(firstCommand), 'a SIGKILLed portico cannot stop its command: it is left running');
    const second = await startWithConfig(dir.path, config);
    try {
      assert.match(second.stderr(), /left running by an earlier portico/);
      assert.ok(!alive(firstCommand), 'the leftover command was stopped');
      const secondCommand = Number((await get(`${second.url}/`)).text);
      assert.notEqual(secondCommand, firstCommand);
      const started = readFileSync(join(dir.path, 'pids'), 'utf8').trim().split('\n').map(Number);
      assert.deepEqual(started.filter(alive), [secondCommand], 'one command runs');
    } finally {
      await second.stop();
    }
  });

  it('portico reload reopens the error log file, as it does the access log (logrotate)', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const errorLog = join(dir.path, 'error.log');
    const accessLog = join(dir.path, 'access.log');
    const portico = await startWithConfig(
      dir.path,
      {
        workers: 2,
        log: { level: 'info', error: errorLog, access: { path: accessLog } },
        servers: [{ listen: `127.0.0.1:${await freePort()}`, routes: [{ prefix: '/dead/', proxy: { to: `http://127.0.0.1:${await freePort()}` } }, { respond: { body: 'ok' } }] }],
      },
      { env: { PORTICO_WORKERS: '2' } },
    );
    try {
      await get(`${portico.url}/`);
      await until(() => existsSync(errorLog) && existsSync(accessLog) && readFileSync(accessLog, 'utf8').includes('GET /'), 5000, 'both logs');
      renameSync(errorLog, `${errorLog}.1`);
      renameSync(accessLog, `${accessLog}.1`);
      process.kill(portico.pid, 'SIGHUP');
      await until(() => existsSync(errorLog) && readFileSync(errorLog, 'utf8').includes('reloaded'), 10_000, 'the supervisor to write to a new error log');
      // An edge worker's line (an upstream that refuses) goes to the new file too.
      for (let i = 0; i < 4; i++) assert.equal((await get(`${portico.url}/dead/x`)).status, 502);
      await until(() => readFileSync(errorLog, 'utf8').includes('upstream attempt failed'), 10_000, "an edge worker's line in the new error log");
      await until(() => existsSync(accessLog) && readFileSync(accessLog, 'utf8').includes('GET /dead/x'), 10_000, 'the new access log');
      assert.ok(!readFileSync(`${errorLog}.1`, 'utf8').includes('upstream attempt failed'), 'nothing more in the rotated file');
    } finally {
      await portico.stop();
    }
  });
});
