/**
 * An external app server supervised by `portico up` (`apps.NAME.command`): gunicorn running the
 * Flask app of test/fixtures/apps/flask_app.py on a unix socket, behind a route `app: "flask"`.
 * Its master is killed by PID and must come back; SIGTERM to portico must leave no gunicorn
 * process behind. gunicorn and Flask are required (CI installs them): missing, the tests fail.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BIN, freePort, request, startWithConfig, tempDir, writeConfig, type RunningPortico } from '../helpers/portico.js';
import { APPS_DIR, assertFlaskInstalled, gunicornCommand } from '../helpers/upstreams.js';

/** Whether any process of the group `pgid` is alive (signal 0 only checks). */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Master pids of the command, in the order portico reported them ready (its JSON log on stderr). */
function readyPids(portico: RunningPortico): number[] {
  return [...portico.stderr().matchAll(/"commandPid":(\d+)[^\n]*accepting connections/g)].map((m) => Number(m[1]));
}

it('gunicorn and Flask are installed (required: CI installs them in .ci/run)', () => {
  gunicornCommand();
  assertFlaskInstalled();
});

describe('portico up runs an external app server (command) and routes to it', () => {
  const dir = tempDir('portico-ext-');
  const sock = join(dir.path, 'g.sock');
  let portico: RunningPortico | undefined;
  const pids: number[] = [];

  before(async () => {
    const { command, args } = gunicornCommand();
    portico = await startWithConfig(dir.path, {
      log: { access: false },
      apps: {
        flask: {
          command: [command, ...args, '--bind', `unix:${sock}`, '--workers', '2', '--graceful-timeout', '2', '--chdir', APPS_DIR, 'flask_app:app'],
          socket: `unix:${sock}`,
          env: { PYTHONDONTWRITEBYTECODE: '1' },
        },
      },
      servers: [{ listen: `127.0.0.1:${await freePort()}`, routes: [{ prefix: '/', app: 'flask' }] }],
    });
  });
  after(async () => {
    if (portico && portico.child.exitCode === null) await portico.stop();
    for (const pid of pids) if (groupAlive(pid)) process.kill(-pid, 'SIGKILL');
    dir.remove();
  });

  it('answers through the command once its socket accepts (the banner names it and its pid)', async () => {
    const p = portico as RunningPortico;
    assert.match(p.stdout(), /app flask: .*gunicorn.* \(pid \d+\), on unix:/);
    const res = await request(`${p.url}/echo/hello?x=1`);
    assert.equal(res.status, 200, res.text.slice(0, 300));
    const echo = JSON.parse(res.text) as { path: string; query: string };
    assert.equal(echo.path, '/echo/hello');
    assert.equal(echo.query, 'x=1');
    pids.push(...readyPids(p));
    assert.equal(pids.length, 1, p.stderr());
  });

  it('the gunicorn master killed by PID is restarted, and requests succeed again within a few seconds', async () => {
    const p = portico as RunningPortico;
    const first = pids[0] as number;
    process.kill(first, 'SIGKILL');
    const killedAt = Date.now();
    let ok = false;
    while (Date.now() - killedAt < 10_000) {
      const res = await request(`${p.url}/health`).catch(() => null);
      if (res?.status === 200 && readyPids(p).length === 2) {
        ok = true;
        break;
      }
      await sleep(100);
    }
    assert.ok(ok, `no answer from a restarted gunicorn within 10 s:\n${p.stderr().slice(-2000)}`);
    const second = readyPids(p)[1] as number;
    pids.push(second);
    assert.notEqual(second, first);
    assert.match(p.stderr(), /app command exited: restarting it/);
    // The old master's workers (orphans holding the old socket) went with it (SIGKILL is
    // asynchronous, and an orphan is reaped by PID 1 when it gets to it: allow a moment).
    for (let i = 0; i < 50 && groupAlive(first); i++) await sleep(100);
    assert.equal(groupAlive(first), false, 'the killed master left processes behind');
    for (let i = 0; i < 5; i++) assert.equal((await request(`${p.url}/echo/again${i}`)).status, 200);
  });

  it('SIGTERM to portico stops gunicorn: no process of its group is left', async () => {
    const p = portico as RunningPortico;
    const code = await p.stop('SIGTERM');
    assert.equal(code, 0, p.stderr().slice(-2000));
    const last = pids.at(-1) as number;
    for (let i = 0; i < 50 && groupAlive(last); i++) await sleep(100);
    assert.equal(groupAlive(last), false, `gunicorn (group ${last}) outlived portico`);
  });
});

it('SIGTERM to portico while a command is still starting (its socket not accepting yet) leaves nothing running', async () => {
  const dir = tempDir('portico-ext-');
  try {
    const pidFile = join(dir.path, 'cmd.pid');
    const path = writeConfig(dir.path, {
      log: { access: false },
      // Never accepts on its socket: portico is still waiting for it when the signal comes.
      apps: { slow: { command: ['sh', '-c', `echo $$ > ${pidFile}; exec sleep 60`], socket: `127.0.0.1:${await freePort()}` } },
      servers: [{ listen: `127.0.0.1:${await freePort()}`, routes: [{ prefix: '/', app: 'slow' }] }],
    });
    // One process, as every test started through the helpers (PORTICO_WORKERS=1).
    const child = spawn(process.execPath, [BIN, 'up', '--config', path], { cwd: dir.path, stdio: 'ignore', env: { ...process.env, PORTICO_WORKERS: '1' } });
    const exited = once(child, 'exit');
    for (let i = 0; i < 100 && !existsSync(pidFile); i++) await sleep(50);
    assert.ok(existsSync(pidFile), 'the command did not start');
    const pid = Number(readFileSync(pidFile, 'utf8'));
    child.kill('SIGTERM');
    await exited;
    for (let i = 0; i < 50 && groupAlive(pid); i++) await sleep(100);
    assert.equal(groupAlive(pid), false, `the command (group ${pid}) outlived portico`);
  } finally {
    dir.remove();
  }
});
