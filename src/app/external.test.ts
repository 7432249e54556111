/**
 * External app servers (`apps.NAME.command`): the config rules, in-process, and the supervisor's
 * start failures (test/integration/app-external.test.ts runs gunicorn under `portico up`).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../config/errors.js';
import { validateConfig } from '../config/load.js';
import { ExternalApp } from './external.js';

function problems(apps: unknown): string[] {
  try {
    validateConfig({ apps, servers: [{ listen: '127.0.0.1:8080', routes: [{ prefix: '/', app: 'py' }] }] }, '/srv', null);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return [...error.problems];
  }
  return [];
}

describe('apps with a command (config)', () => {
  it('resolves command, socket, env, cwd and defaults; the route proxies to the group app:NAME', () => {
    const config = validateConfig(
      { apps: { py: { command: ['gunicorn', 'app:app'], socket: 'unix:/run/g.sock', env: { A: '1' }, cwd: 'srv' } }, servers: [{ listen: '127.0.0.1:8080', routes: [{ prefix: '/', app: 'py' }] }] },
      '/srv',
      null,
    );
    assert.deepEqual(config.externalApps.py, {
      name: 'py',
      command: ['gunicorn', 'app:app'],
      socket: { kind: 'unix', path: '/run/g.sock' },
      env: { A: '1' },
      envFile: null,
      cwd: '/srv/srv',
      restartDelay: 250,
      gracefulTimeout: 10_000,
      upstream: 'app:py',
    });
    assert.deepEqual(config.apps, {});
    assert.equal(config.upstreams['app:py']?.app, 'py');
    const handler = config.servers[0]?.routes[0]?.handler;
    assert.equal(handler?.type === 'proxy' ? handler.upstream : null, 'app:py');
  });
  it('refuses two kinds at once, none, settings of another kind, and a command without socket, naming the field', () => {
    const kinds = 'expected exactly one of "module" (a JavaScript app), "wsgi" (a Python WSGI app) or "command" (an external app server)';
    assert.deepEqual(problems({ py: { module: './app.mjs', command: ['x'] } }), [`apps.py: ${kinds}, got "module" and "command"`]);
    assert.deepEqual(problems({ py: { wsgi: 'app:app', command: ['x'] } }), [`apps.py: ${kinds}, got "wsgi" and "command"`]);
    assert.deepEqual(problems({ py: {} }), [`apps.py: ${kinds}, got none`]);
    assert.deepEqual(problems({ py: { command: ['x'], socket: '127.0.0.1:8000', workers: 2 } }), ['apps.py.workers: expected only with "module" or "wsgi", got number 2']);
    assert.deepEqual(problems({ py: { module: './app.mjs', threads: 2 } }), ['apps.py.threads: expected only with "wsgi", got number 2']);
    assert.deepEqual(problems({ py: { wsgi: 'app:app', socket: '127.0.0.1:8000' } }), ['apps.py.socket: expected only with "command", got "127.0.0.1:8000"']);
    assert.deepEqual(problems({ py: { command: ['x'] } }), ['apps.py.socket: is required with "command": expected where it listens, "unix:/path" or "host:port", got nothing']);
    assert.match(problems({ py: { command: [], socket: '127.0.0.1:8000' } }).join('\n'), /^apps\.py\.command: /);
    assert.match(problems({ py: { command: ['x'], socket: 'nowhere' } }).join('\n'), /^apps\.py\.socket: expected a listen address/);
  });
});

describe('ExternalApp start failures', () => {
  const app = (command: string[]) => ({
    name: 't',
    command,
    socket: { kind: 'tcp' as const, host: '127.0.0.1', port: 9 },
    env: {},
    envFile: null,
    cwd: process.cwd(),
    restartDelay: 5,
    gracefulTimeout: 1_000,
    upstream: 'app:t',
  });
  const hooks = { up: () => assert.fail('never ready'), down: () => undefined };

  it('a program that does not exist fails the start at once', async () => {
    await assert.rejects(new ExternalApp(app(['/nonexistent/portico-test-program']), hooks).start(), /app "t": cannot run "\/nonexistent\/portico-test-program"/);
  });
  it('a command that keeps exiting before it accepts gives up after 6 tries, with its last status', async () => {
    await assert.rejects(new ExternalApp(app(['sh', '-c', 'exit 3']), hooks).start(), /exited 6 times in a row before accepting connections \(last: exit code 3\)/);
  });
});
