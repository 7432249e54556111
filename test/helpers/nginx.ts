/**
 * Runs Debian's real nginx as a reference server in tests: one process (`master_process off`),
 * a temp prefix holding its config, logs, pid and temp folders (nothing under /var), started on
 * a free loopback port and stopped by PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { accepts } from './portico.js';

export interface RunningNginx {
  readonly pid: number;
  readonly port: number;
  readonly url: string;
  errorLog(): string;
  stop(): Promise<void>;
}

/** Finds the nginx binary (Debian installs it in /usr/sbin, which a test's PATH may lack). */
function nginxBinary(): string {
  return ['/usr/sbin/nginx', '/usr/bin/nginx'].find((candidate) => existsSync(candidate)) ?? 'nginx';
}

/**
 * Starts nginx with `http` as the body of its `http {}` block (the listen port is substituted for
 * `$PORT`). `prefix` must be an empty temp folder.
 */
export async function startNginx(prefix: string, port: number, http: string): Promise<RunningNginx> {
  for (const sub of ['tmp/body', 'tmp/proxy', 'tmp/fastcgi', 'tmp/uwsgi', 'tmp/scgi']) mkdirSync(join(prefix, sub), { recursive: true });
  return startNginxMain(
    prefix,
    port,
    `worker_processes 1;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${join(prefix, 'tmp/body')};
  proxy_temp_path ${join(prefix, 'tmp/proxy')};
  fastcgi_temp_path ${join(prefix, 'tmp/fastcgi')};
  uwsgi_temp_path ${join(prefix, 'tmp/uwsgi')};
  scgi_temp_path ${join(prefix, 'tmp/scgi')};
${http.replaceAll('$PORT', String(port))}
}
`,
  );
}

/**
 * Starts nginx on a whole configuration (`main`: what nginx.conf holds, `events` and `http`
 * included, or an `include` of such a file) written to `prefix/confName`, in the foreground, as
 * one process, with its pid and error log in `prefix`; resolves once `port` accepts connections.
 */
export async function startNginxMain(prefix: string, port: number, main: string, confName = 'nginx.conf'): Promise<RunningNginx> {
  mkdirSync(join(prefix, 'logs'), { recursive: true });
  // nginx resolves relative includes against this file's folder (its conf prefix).
  const conf = join(prefix, confName);
  writeFileSync(
    conf,
    `daemon off;
master_process off;
pid ${join(prefix, 'nginx.pid')};
error_log ${join(prefix, 'logs', 'error.log')} info;
${main}`,
  );
  const child: ChildProcess = spawn(nginxBinary(), ['-p', prefix, '-e', join(prefix, 'logs', 'error.log'), '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = once(child, 'exit');
  const errorLog = (): string => {
    try {
      return readFileSync(join(prefix, 'logs', 'error.log'), 'utf8');
    } catch {
      return '';
    }
  };
  const deadline = Date.now() + 10_000;
  while (!(await accepts(port))) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`nginx exited (${child.exitCode ?? child.signalCode}): ${output}\n${errorLog()}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`nginx did not listen in 10 s: ${output}\n${errorLog()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  const pid = child.pid as number;
  return {
    pid,
    port,
    url: `http://127.0.0.1:${port}`,
    errorLog,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      // SIGTERM is nginx's fast shutdown; SIGKILL if it lingers.
      process.kill(pid, 'SIGTERM');
      const timer = setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL');
      }, 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
