/**
 * A real uWSGI server (Debian's `uwsgi` + `uwsgi-plugin-python3`) running the Flask app of
 * test/fixtures/apps/flask_app.py on its uwsgi-protocol socket, started as a child process in its
 * own process group and stopped by PID. Missing uWSGI is an error with an install hint: the tests
 * fail, they are never skipped.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort } from './portico.js';
import { APPS_DIR, assertFlaskInstalled, stopProcessGroup } from './upstreams.js';

const PLUGIN = '/usr/lib/uwsgi/plugins/python3_plugin.so';

/** The uwsgi binary, or an Error saying how to install it and its Python 3 plugin. */
export function uwsgiCommand(): string {
  const hint = '`apt-get install uwsgi uwsgi-plugin-python3 python3-flask` (CI: .ci/run installs them)';
  const binary = ['/usr/bin/uwsgi', '/usr/local/bin/uwsgi'].find((path) => existsSync(path));
  if (!binary) throw new Error(`uWSGI is not installed (needed by the uwsgi proxy tests): ${hint}`);
  if (!existsSync(PLUGIN)) throw new Error(`uWSGI's Python 3 plugin is missing (${PLUGIN}): ${hint}`);
  return binary;
}

export interface Uwsgi {
  readonly pid: number;
  readonly child: ChildProcess;
  /** "127.0.0.1:PORT" or the unix socket path, as given to --uwsgi-socket. */
  readonly socket: string;
  /** The upstream URL: "uwsgi://127.0.0.1:PORT" or "uwsgi+unix:/path". */
  readonly url: string;
  output(): string;
  stop(graceMs?: number): Promise<void>;
}

function accepts(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const colon = socket.lastIndexOf(':');
    const conn = socket.startsWith('/') ? connect({ path: socket }) : connect({ host: socket.slice(0, colon), port: Number(socket.slice(colon + 1)) });
    conn.once('connect', () => {
      conn.destroy();
      resolve(true);
    });
    conn.once('error', () => resolve(false));
  });
}

/** `uwsgi --plugin python3 --uwsgi-socket … --wsgi-file flask_app.py --callable app --master --processes N --die-on-term`. */
export async function startUwsgi(options: { unixPath?: string; processes?: number; timeoutMs?: number } = {}): Promise<Uwsgi> {
  assertFlaskInstalled();
  const command = uwsgiCommand();
  const socket = options.unixPath ?? `127.0.0.1:${await freePort()}`;
  const url = options.unixPath ? `uwsgi+unix:${options.unixPath}` : `uwsgi://${socket}`;
  const child = spawn(
    command,
    ['--plugin', 'python3', '--uwsgi-socket', socket, '--wsgi-file', join(APPS_DIR, 'flask_app.py'), '--callable', 'app', '--master', '--processes', String(options.processes ?? 2), '--die-on-term', '--disable-logging'],
    { cwd: APPS_DIR, stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } },
  );
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const exited = once(child, 'exit');
  const pid = child.pid;
  if (pid === undefined) throw new Error('uwsgi did not start');
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  const stop = (graceMs = 5_000) => stopProcessGroup(pid, gone, exited, graceMs);
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  // The socket accepts once uWSGI has bound it; a connection made before the workers are forked
  // waits in the listen backlog, so the first request is answered, never refused.
  while (!(await accepts(socket))) {
    if (gone()) throw new Error(`uwsgi exited (${child.exitCode ?? child.signalCode}) before accepting:\n${out}`);
    if (Date.now() > deadline) {
      await stop(0);
      throw new Error(`uwsgi did not accept on ${socket} within ${options.timeoutMs ?? 20_000} ms:\n${out}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { pid, child, socket, url, output: () => out, stop };
}
