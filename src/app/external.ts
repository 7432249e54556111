/**
 * An external app server (`apps.NAME.command`: gunicorn, uWSGI, any program that serves HTTP on a
 * socket) supervised by `portico up`, as systemd or supervisord would:
 *
 * - started without a shell in a process group of its own (`detached`), so that a terminal's
 *   Ctrl-C reaches portico only (portico decides when it stops) and so that the whole group (a
 *   pre-fork server's workers) can be killed at once;
 * - "ready" once its socket accepts a connection: only then does the edge route to it (the
 *   `up` hook); requests that come earlier wait in the edge's app group, bounded;
 * - restarted when it exits, with the arbiter's backoff: the first restart at once, then
 *   `restartDelay`, doubled each time (at most 30 s); a process that lived 10 s or more starts a
 *   new count. What is left of its group (workers orphaned by a killed master, still holding the
 *   listening socket) is killed first, so that readiness is the new process's. Before the first
 *   ready, 6 exits in a row give up (a command that cannot start fails `portico up` at once);
 *   after it, restarts go on for as long as portico runs;
 * - stopped with SIGTERM to the process (gunicorn's graceful stop; uWSGI needs `--die-on-term`),
 *   then SIGKILL to its group after `gracefulTimeout`; the `exit` hook of portico SIGKILLs any
 *   group still running, so it never outlives a portico that exits (a SIGKILL of portico itself
 *   cannot be caught: a service manager's cgroup is the answer there, and the next start finds
 *   the group through its file, `groupFileOf`, and stops it before starting the command again).
 *
 * Never imports edge/: the supervisor (supervisor/external.ts) turns the hooks into group membership.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ListenAddress, ResolvedExternalApp } from '../config/resolved.js';
import { PorticoError } from '../core/errors.js';
import { log } from '../core/log.js';
import { appEnvironment } from './environment.js';

export interface ExternalHooks {
  /** The socket accepts connections: route to it. */
  up(): void;
  /** The process is gone (or stopping): route to it no more. */
  down(): void;
}

/** Crashes in a row before the first ready that give up, as the arbiter's. */
const START_ATTEMPTS = 6;
/** A process that lived this long is stable: its exit starts a new count. */
const STABLE_MS = 10_000;
const MAX_RESTART_DELAY_MS = 30_000;
const READY_POLL_MS = 100;

/**
 * Where the command's process group is written while it runs (`<pgid> <start time>`), so that a
 * portico killed with SIGKILL (no exit hook runs) does not leave it serving beside the next one:
 * the next start of the same app finds the file and stops that group first. One file per app
 * (its name, command, folder and socket), in the temporary folder, as portico's own pid file.
 */
export function groupFileOf(app: ResolvedExternalApp): string {
  const identity = JSON.stringify([app.name, app.command, app.cwd, app.socket]);
  return join(tmpdir(), `portico-app-${app.name.replace(/[^A-Za-z0-9_.-]/g, '_')}-${createHash('sha256').update(identity).digest('hex').slice(0, 12)}.pgid`);
}

/** Field 22 of /proc/PID/stat, the process's start time (clock ticks after boot): with the pid, it names one process for ever. */
function startTimeOf(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

const groupAlive = (pgid: number): boolean => {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * Stops what an earlier portico left of this app's process group: SIGTERM to the group, SIGKILL
 * after `graceMs`. The group is ours when its leader is the process the file names (same start
 * time), or when the leader is gone but the group still has members (its workers): Linux does not
 * give a process id that still names a process group to a new process, so such a group can only
 * be the one the file recorded.
 */
async function stopLeftover(file: string, app: ResolvedExternalApp): Promise<void> {
  let recorded: string;
  try {
    recorded = readFileSync(file, 'utf8');
  } catch {
    return;
  }
  const [pidText, startTime] = recorded.trim().split(' ');
  const pgid = Number(pidText);
  rmSync(file, { force: true });
  if (!Number.isInteger(pgid) || pgid <= 1 || !groupAlive(pgid)) return;
  const leaderStart = startTimeOf(pgid);
  if (leaderStart !== null && leaderStart !== startTime) return;
  log().warn({ app: app.name, pgid }, `app "${app.name}": its command was left running by an earlier portico (process group ${pgid}); stopping it before starting a new one`);
  killGroup(pgid, 'SIGTERM');
  const deadline = Date.now() + app.gracefulTimeout;
  while (groupAlive(pgid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  killGroup(pgid, 'SIGKILL');
  for (let i = 0; i < 40 && groupAlive(pgid); i++) await new Promise((resolve) => setTimeout(resolve, 25));
}

/** Whether something accepts a connection at `address` now. */
export function accepts(address: ListenAddress, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = address.kind === 'unix' ? connect({ path: address.path }) : connect({ host: address.host || '127.0.0.1', port: address.port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(done, timeoutMs, false);
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is empty already
  }
}

export class ExternalApp {
  readonly #app: ResolvedExternalApp;
  readonly #hooks: ExternalHooks;
  #child: ChildProcess | null = null;
  #startedAt = 0;
  #crashes = 0;
  #everReady = false;
  #stopping = false;
  #restartTimer: NodeJS.Timeout | undefined;
  #started: { resolve(): void; reject(error: Error): void } | null = null;
  /** Restarts so far (for the banner and tests). */
  restarts = 0;

  readonly #groupFile: string;

  constructor(app: ResolvedExternalApp, hooks: ExternalHooks) {
    this.#app = app;
    this.#hooks = hooks;
    this.#groupFile = groupFileOf(app);
  }

  /** The group is gone for good (portico stops it): nothing for a later start to find. */
  #forgetGroup(): void {
    rmSync(this.#groupFile, { force: true });
  }

  get pid(): number | null {
    return this.#child?.pid ?? null;
  }

  /** Starts the command; resolves once its socket accepts, rejects when it cannot start. */
  async start(): Promise<void> {
    await stopLeftover(this.#groupFile, this.#app);
    return new Promise<void>((resolve, reject) => {
      this.#started = { resolve, reject };
      this.#spawn();
    });
  }

  #fail(message: string): void {
    this.#stopping = true;
    this.#started?.reject(new PorticoError('ERR_APP_START', `app "${this.#app.name}": ${message}`));
    this.#started = null;
  }

  #spawn(): void {
    const [file, ...args] = this.#app.command as [string, ...string[]];
    const child = spawn(file, args, {
      cwd: this.#app.cwd,
      env: appEnvironment(this.#app),
      // Its log lines go where portico's go; nothing to read from us.
      stdio: ['ignore', 'inherit', 'inherit'],
      detached: true,
    });
    this.#child = child;
    this.#startedAt = Date.now();
    if (child.pid !== undefined) {
      try {
        writeFileSync(this.#groupFile, `${child.pid} ${startTimeOf(child.pid) ?? ''}\n`);
      } catch (error) {
        log().warn({ err: error, file: this.#groupFile }, 'app command: its process group file could not be written');
      }
    }
    child.once('error', (error: NodeJS.ErrnoException) => {
      // Not started at all (ENOENT, EACCES): no 'exit' follows. It will not fix itself.
      if (child !== this.#child) return;
      this.#child = null;
      log().error({ app: this.#app.name, command: file, code: error.code }, 'app command could not be started');
      if (!this.#everReady) this.#fail(`cannot run ${JSON.stringify(file)}: ${error.message}`);
      else this.#scheduleRestart(null, null);
    });
    child.once('exit', (code, signal) => {
      if (child !== this.#child) return;
      this.#child = null;
      // Workers it left behind still hold the listening socket: they go, so that the next
      // readiness check sees the new process, not them.
      killGroup(child.pid, 'SIGKILL');
      this.#hooks.down();
      if (this.#stopping) return;
      this.#scheduleRestart(code, signal);
    });
    void this.#waitReady(child);
  }

  #scheduleRestart(code: number | null, signal: NodeJS.Signals | null): void {
    if (Date.now() - this.#startedAt >= STABLE_MS) this.#crashes = 0;
    this.#crashes++;
    const last = signal ? `signal ${signal}` : `exit code ${code}`;
    if (!this.#everReady && this.#crashes >= START_ATTEMPTS) {
      this.#fail(`the command exited ${this.#crashes} times in a row before accepting connections (last: ${last})`);
      return;
    }
    const delay = this.#crashes === 1 ? 0 : Math.min(this.#app.restartDelay * 2 ** (this.#crashes - 2), MAX_RESTART_DELAY_MS);
    log().warn({ app: this.#app.name, last, crashesInARow: this.#crashes, restartInMs: delay }, 'app command exited: restarting it');
    this.#restartTimer = setTimeout(() => {
      if (this.#stopping) return;
      this.restarts++;
      this.#spawn();
    }, delay);
  }

  async #waitReady(child: ChildProcess): Promise<void> {
    while (child === this.#child && !this.#stopping) {
      if (await accepts(this.#app.socket)) {
        if (child !== this.#child || this.#stopping) return;
        this.#everReady = true;
        log().info({ app: this.#app.name, commandPid: child.pid }, 'app command accepting connections: routing to it');
        this.#hooks.up();
        this.#started?.resolve();
        this.#started = null;
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, READY_POLL_MS));
    }
  }

  /** SIGTERM, then SIGKILL to the group after `gracefulTimeout`; resolves once it is gone. */
  async stop(): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#restartTimer);
    this.#started?.reject(new PorticoError('ERR_APP_START', `app "${this.#app.name}": stopped before it was ready`));
    this.#started = null;
    const child = this.#child;
    if (!child || child.pid === undefined) {
      this.#forgetGroup();
      return;
    }
    this.#hooks.down();
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      child.kill('SIGTERM');
    } catch {
      // gone already
    }
    const timer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), this.#app.gracefulTimeout);
    await exited;
    clearTimeout(timer);
    killGroup(child.pid, 'SIGKILL');
    this.#forgetGroup();
  }

  /** Last resort (portico's `exit`): synchronous SIGKILL to the whole group. */
  kill(): void {
    this.#stopping = true;
    clearTimeout(this.#restartTimer);
    killGroup(this.#child?.pid, 'SIGKILL');
    this.#forgetGroup();
  }
}
