/**
 * The arbiter: gunicorn's arbiter.py, for Node. It owns the listening socket, pre-forks N workers
 * and hands each accepted connection to a ready worker, round robin. It keeps the worker count,
 * restarts a dead worker at once (with exponential backoff while they crash in a loop, giving up
 * after a bound), kills a worker whose heartbeat is stale, replaces workers that recycle after max
 * requests, rolls workers one at a time on SIGHUP, and drains on SIGTERM/SIGINT.
 *
 * As in gunicorn, signal handlers only enqueue; one loop (`run`) handles them, one at a time, and
 * between signals checks heartbeats and the worker count.
 *
 * Why not node:cluster: cluster's round-robin handle closes the listening socket when its last
 * worker leaves (a max-requests recycle with one worker would refuse connections) and gives the
 * primary no say in which worker gets a connection. Here the socket lives as long as the arbiter,
 * connections wait in a queue while no worker is ready, and a worker that is booting, retiring or
 * stopping never receives one. The transport is the same as cluster's (a handle over IPC).
 *
 * Integrated mode (`portico up` with `apps`): no shared listener; each worker listens on a unix
 * socket of its own in `socketDir`, and the edge balances requests over them itself (least
 * outstanding requests, which a connection handed over once cannot give). The arbiter tells the
 * edge through `membership` (a hook, not events: a retiring worker must wait until the edge has
 * let go of it, so the arbiter needs a promise back): `add` once a worker is ready, `remove`
 * (awaited, bounded by the graceful timeout) BEFORE a worker is asked to drain for a recycle, a
 * reload, SIGTTOU or a stop, so the edge never sends a request to a worker that is closing, and
 * `remove` with no grace when a worker dies. This module still never imports the edge.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CrashStreak, GROUP_SIGNAL_WINDOW_MS } from '../core/crash-streak.js';
import { log, type Logger } from '../core/log.js';
import { appEnvironment } from './environment.js';
import { CRASH_DRAIN_MS, isFromWorker, type FromWorker, type ToWorker, type WorkerSettings, type WsgiWorkerSettings } from './ipc.js';

export type Bind = { readonly host: string; readonly port: number } | { readonly path: string };

/** A ready worker as the edge sees it (integrated mode). */
export interface MemberWorker {
  readonly id: number;
  readonly pid: number;
  /** Its own unix socket. */
  readonly socketPath: string;
}

/** How the arbiter tells its users (the edge, in `portico up`) which workers may get requests. */
export interface WorkerMembership {
  /** The worker is ready on its socket. */
  add(worker: MemberWorker): void;
  /**
   * The worker must get no new request; resolve once its requests in flight through the edge are
   * done (at most `graceMs`; 0: it is gone already, drop it at once).
   */
  remove(worker: MemberWorker, graceMs: number): Promise<void>;
}

/** A Python WSGI app: its workers are python/portico_wsgi.py, not Node processes. */
export interface WsgiApp {
  /** "module:callable". */
  readonly spec: string;
  /** The interpreter. */
  readonly python: string;
  /** The app's folder. */
  readonly cwd: string;
  readonly threads: number;
}

export interface ArbiterOptions {
  /** The JavaScript app's module; for a WSGI app, its "module:callable" (what logs and titles name). */
  readonly file: string;
  /** A WSGI app (integrated mode only: its workers listen on sockets the edge reaches over uwsgi). */
  readonly wsgi?: WsgiApp | null;
  /** The app's name (`apps.NAME`, or the file's for `portico app`): on every log line, and in the workers' process titles. */
  readonly name?: string;
  readonly workers: number;
  /** The shared listening socket; null in integrated mode (workers listen in `socketDir`). */
  readonly bind: Bind | null;
  /** Integrated mode: each worker listens on `socketDir/w<id>.sock`. */
  readonly socketDir?: string;
  readonly membership?: WorkerMembership;
  /** React to this process's signals (standalone `portico app`); false when embedded, driven by `signal()`. @default true */
  readonly handleSignals?: boolean;
  /** A worker silent (no heartbeat) for longer is killed; also each request's deadline. */
  readonly timeoutMs: number;
  readonly maxRequests: number;
  readonly maxRequestsJitter: number;
  readonly gracefulTimeoutMs: number;
  /** Consecutive crashes before giving up (default 6). */
  readonly maxCrashes?: number;
  /** Added to portico's environment for each worker (app/environment.ts: over `envFile`'s, NODE_ENV production unless set). */
  readonly env?: Readonly<Record<string, string>>;
  /** A .env file read as each worker starts. */
  readonly envFile?: string | null;
}

/** What a reload may change. */
export type ArbiterSettings = Pick<ArbiterOptions, 'file' | 'wsgi' | 'workers' | 'timeoutMs' | 'maxRequests' | 'maxRequestsJitter' | 'gracefulTimeoutMs' | 'env' | 'envFile'>;

export interface ArbiterResult {
  readonly code: number;
  /** For the person at the terminal when the arbiter halts on an error. */
  readonly message?: string;
}

type WorkerState = 'booting' | 'ready' | 'retiring' | 'stopping';

export interface ArbiterSnapshot {
  readonly address: string;
  /** Workers the arbiter keeps running. */
  readonly target: number;
  readonly started: number;
  readonly crashes: number;
  readonly workers: readonly { readonly pid: number; readonly state: WorkerState; readonly ageMs: number; readonly requests: number; readonly rssBytes: number; readonly lastHeartbeatMs: number }[];
}

interface WorkerRecord {
  readonly id: number;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly startedAt: number;
  readonly socketPath: string | undefined;
  /** In the edge's group (told `add`, not yet `remove`). */
  member: boolean;
  state: WorkerState;
  lastTick: number;
  /** Requests served, as of its last heartbeat. */
  requests: number;
  /** WSGI: when its oldest request in progress began (epoch ms), as of its last heartbeat; null when idle. */
  busySince: number | null;
  /** Resident memory (bytes), as of its last heartbeat. */
  rss: number;
  /** Exit expected (stop, retire): not a crash. */
  planned: boolean;
  killed: boolean;
  bootError?: { code: string; message: string };
  killTimer?: NodeJS.Timeout;
  /** Connections handed to this worker whose IPC message is not written yet. */
  readonly inTransit: Set<Socket>;
  readonly ready: Promise<boolean>;
  settle(ok: boolean): void;
}

export { restartDelay } from '../core/crash-streak.js';
const QUEUE_LIMIT = 4096;

function workerEntry(): string {
  // Built: dist/app/worker.js. From source (tsx): src/app/worker.ts.
  const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
  return fileURLToPath(new URL(`./worker.${ext}`, import.meta.url));
}

/** The WSGI worker, shipped in the package's python/ folder (two levels up from src/app and dist/app alike). */
export const WSGI_WORKER = fileURLToPath(new URL('../../python/portico_wsgi.py', import.meta.url));

export class Arbiter {
  /** The error log with this arbiter's app named on every line (`app`), or as it is without a name. */
  #log(): Logger {
    return this.#options.name ? log().child({ app: this.#options.name }) : log();
  }

  #options: ArbiterOptions;
  #target: number;
  readonly #workers = new Map<number, WorkerRecord>();
  #nextId = 1;
  #rr = 0;
  readonly #signals: NodeJS.Signals[] = [];
  #wake: (() => void) | null = null;
  #server: Server | null = null;
  readonly #queue: Socket[] = [];
  #stopping = false;
  #stopDeadline = 0;
  #reloading = false;
  #reloadAgain = false;
  #everReady = false;
  #announced = false;
  readonly #crashes = new CrashStreak();
  #nextSpawnAt = 0;
  /** Workers started and unplanned exits since the arbiter started (for snapshots and metrics). */
  #spawnCount = 0;
  #crashCount = 0;
  #result: ArbiterResult | null = null;
  readonly #onSignal = (signal: NodeJS.Signals) => {
    this.#signals.push(signal);
    this.#poke();
  };
  /** Called once, when the first full set of workers is ready. */
  onReady: ((address: string, pids: number[]) => void) | null = null;

  constructor(options: ArbiterOptions) {
    this.#options = options;
    this.#target = Math.max(1, options.workers);
  }

  /** The listening address, once bound ("http://127.0.0.1:8000" or "unix:/path"); the socket folder in integrated mode. */
  address(): string {
    const bind = this.#options.bind;
    if (bind === null) return `unix:${this.#options.socketDir ?? '?'}`;
    if ('path' in bind) return `unix:${bind.path}`;
    const address = this.#server?.address();
    const port = address && typeof address === 'object' ? address.port : bind.port;
    return `http://${bind.host.includes(':') ? `[${bind.host}]` : bind.host}:${port}`;
  }

  pids(): number[] {
    return [...this.#workers.values()].map((w) => w.pid);
  }

  /** Plain data for the admin API and metrics: each worker's pid, state, age and requests (as of its last heartbeat). */
  snapshot(): ArbiterSnapshot {
    const now = Date.now();
    return {
      address: this.address(),
      target: this.#target,
      started: this.#spawnCount,
      crashes: this.#crashCount,
      workers: [...this.#workers.values()].map((w) => ({ pid: w.pid, state: w.state, ageMs: now - w.startedAt, requests: w.requests, rssBytes: w.rss, lastHeartbeatMs: now - w.lastTick })),
    };
  }

  /** Enqueues a signal as if the process had received it (an embedding program drives the arbiter this way). */
  signal(signal: NodeJS.Signals): void {
    this.#onSignal(signal);
  }

  /** Stops now (a fast stop of an embedding program): every worker is killed, none is restarted, `run` resolves with 0. */
  kill(): void {
    this.#stopping = true;
    this.#stopDeadline = 0;
    for (const w of this.#workers.values()) {
      w.planned = true;
      w.child.kill('SIGKILL');
    }
    this.#poke();
  }

  /**
   * New settings (a reloaded config): the next workers started use them; the worker count applies
   * at once (surplus workers drain after a reload in progress). The bind address cannot change.
   */
  reconfigure(options: ArbiterSettings): void {
    this.#options = { ...this.#options, ...options };
    this.#target = Math.max(1, options.workers);
    this.#poke();
  }

  /** Sets the worker count (the admin API's scale; SIGTTIN/SIGTTOU step it by one): new workers start, surplus ones drain. */
  scale(workers: number): void {
    this.#target = Math.max(1, workers);
    this.#log().info({ workers: this.#target }, 'arbiter: scaled');
    this.#poke();
  }

  /** Binds, forks, and runs the loop until shutdown or a halt; resolves with the exit code. */
  async run(): Promise<ArbiterResult> {
    if (this.#options.bind) await this.#listen();
    const signals: NodeJS.Signals[] = this.#options.handleSignals === false ? [] : ['SIGHUP', 'SIGTERM', 'SIGINT', 'SIGTTIN', 'SIGTTOU'];
    for (const signal of signals) process.on(signal, this.#onSignal);
    try {
      while (!this.#result) {
        for (let signal = this.#signals.shift(); signal; signal = this.#signals.shift()) this.#handleSignal(signal);
        if (this.#result) break;
        this.#murderStale();
        this.#maintain();
        if (this.#stopping && (this.#workers.size === 0 || Date.now() > this.#stopDeadline)) {
          for (const w of this.#workers.values()) w.child.kill('SIGKILL');
          this.#result = { code: 0 };
          break;
        }
        await this.#sleep(this.#stopping ? 100 : 500);
      }
    } finally {
      for (const signal of signals) process.off(signal, this.#onSignal);
      this.#closeListener();
    }
    return this.#result;
  }

  #poke(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = null;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  async #listen(): Promise<void> {
    // noDelay: what node:http's own server sets on the sockets it accepts (its `noDelay` option
    // defaults to true), and a node:cluster worker gets it too; these sockets are accepted here,
    // by a net.Server (default false), and the option is a property of the socket, so the worker
    // would otherwise answer with Nagle's algorithm on (RFC 896): a small write waits for the
    // previous segment's ACK, which delays streamed answers (server-sent events).
    const server = createServer({ pauseOnConnect: true, noDelay: true }, (socket) => this.#dispatch(socket));
    const bind = this.#options.bind as Bind;
    if ('path' in bind && existsSync(bind.path) && lstatSync(bind.path).isSocket()) {
      // A socket file left by a previous run that died (gunicorn unlinks it too).
      unlinkSync(bind.path);
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if ('path' in bind) server.listen(bind.path, resolve);
      else server.listen(bind.port, bind.host, resolve);
    });
    server.on('error', (error) => this.#log().error({ err: error }, 'arbiter: listener error'));
    this.#server = server;
  }

  #closeListener(): void {
    const server = this.#server;
    if (!server) return;
    this.#server = null;
    server.close();
    for (const socket of this.#queue.splice(0)) socket.destroy();
    const bind = this.#options.bind;
    if (bind && 'path' in bind && existsSync(bind.path)) {
      try {
        unlinkSync(bind.path);
      } catch {
        // Already gone.
      }
    }
  }

  /** Hands a connection to the next ready worker, or queues it until one is. */
  #dispatch(socket: Socket): void {
    const ready = [...this.#workers.values()].filter((w) => w.state === 'ready' && w.child.connected);
    if (ready.length === 0) {
      if (this.#queue.length >= QUEUE_LIMIT || this.#stopping) socket.destroy();
      else this.#queue.push(socket);
      return;
    }
    const worker = ready[this.#rr++ % ready.length] as WorkerRecord;
    const message: ToWorker = { type: 'portico:conn' };
    // keepOpen: the arbiter keeps its copy of the socket until the message is written, so a
    // worker that dies first (its queued handles are never sent) does not strand the client:
    // the connection goes to another worker. Closing our copy afterwards sends no FIN, the
    // worker's copy keeps the connection open.
    worker.inTransit.add(socket);
    worker.child.send(message, socket, { keepOpen: true }, (error) => {
      if (!worker.inTransit.delete(socket)) return; // already handed over again after an exit
      if (error) this.#dispatch(socket);
      else socket.destroy();
    });
  }

  #flushQueue(): void {
    while (this.#queue.length > 0 && [...this.#workers.values()].some((w) => w.state === 'ready')) this.#dispatch(this.#queue.shift() as Socket);
  }

  #handleSignal(signal: NodeJS.Signals): void {
    switch (signal) {
      case 'SIGHUP':
        this.#log().info({ signal }, 'arbiter: reloading (rolling restart of workers, one at a time)');
        void this.#reload();
        break;
      case 'SIGTERM':
      case 'SIGINT':
        if (this.#stopping) {
          // A second signal: stop now.
          this.#log().warn({ signal }, 'arbiter: second stop signal, killing workers');
          this.#stopDeadline = 0;
          return;
        }
        this.#log().info({ signal, workers: this.#workers.size, gracefulTimeoutMs: this.#options.gracefulTimeoutMs }, 'arbiter: stopping gracefully (requests in flight finish)');
        this.#stopping = true;
        // With an edge in front, a worker first waits (bounded by the graceful timeout) for the
        // edge to finish its requests, then drains for up to the graceful timeout again.
        this.#stopDeadline = Date.now() + (this.#options.membership ? 2 : 1) * this.#options.gracefulTimeoutMs + 1000;
        this.#server?.close();
        for (const w of this.#workers.values()) this.#stopWorker(w);
        break;
      case 'SIGTTIN':
        this.#target += 1;
        this.#log().info({ workers: this.#target }, 'arbiter: SIGTTIN, one more worker');
        break;
      case 'SIGTTOU':
        if (this.#target > 1) this.#target -= 1;
        this.#log().info({ workers: this.#target }, 'arbiter: SIGTTOU, one worker less');
        break;
      default:
        break;
    }
  }

  #live(): WorkerRecord[] {
    return [...this.#workers.values()].filter((w) => w.state === 'booting' || w.state === 'ready');
  }

  /** Keeps the worker count at the target: spawns (unless backing off), or stops the oldest surplus. */
  #maintain(): void {
    if (this.#stopping || this.#result) return;
    const now = Date.now();
    const live = this.#live();
    if (live.length < this.#target) {
      if (now < this.#nextSpawnAt) {
        setTimeout(() => this.#poke(), this.#nextSpawnAt - now).unref();
        return;
      }
      for (let i = live.length; i < this.#target; i++) this.#spawn();
    } else if (live.length > this.#target && !this.#reloading) {
      const surplus = live.sort((a, b) => a.startedAt - b.startedAt).slice(0, live.length - this.#target);
      for (const w of surplus) this.#stopWorker(w);
    }
  }

  /** Kills workers whose last heartbeat is older than the timeout (a busy loop, a blocked event loop). */
  #murderStale(): void {
    const now = Date.now();
    const timeout = this.#options.timeoutMs;
    for (const w of this.#workers.values()) {
      if (w.killed) continue;
      // A WSGI worker's heartbeat comes from a thread of its own, which a hung request does not
      // stop: it says since when its oldest request runs, and a request past the timeout kills
      // the worker, as a gunicorn sync worker is killed (its request has had the edge's 504).
      const hung = w.busySince !== null && now - w.busySince > timeout;
      if (!hung && now - w.lastTick <= timeout) continue;
      if (hung) this.#log().error({ worker: w.pid, requestMs: now - (w.busySince as number) }, `arbiter: worker ${w.pid} timed out (a request running for ${Math.round((now - (w.busySince as number)) / 1000)} s), killing it`);
      else this.#log().error({ worker: w.pid, silentMs: now - w.lastTick }, `arbiter: worker ${w.pid} timed out (no heartbeat for ${Math.round((now - w.lastTick) / 1000)} s), killing it`);
      w.killed = true;
      if (w.state !== 'stopping') w.state = 'stopping';
      void this.#detach(w, 0);
      // SIGTERM first (a worker whose loop still turns exits cleanly); a stuck loop never runs
      // its handler, so SIGKILL follows.
      w.child.kill('SIGTERM');
      clearTimeout(w.killTimer);
      w.killTimer = setTimeout(() => w.child.kill('SIGKILL'), 1000);
    }
  }

  /**
   * Takes a worker out of the edge's group and waits until the edge is done with it (integrated
   * mode; at once otherwise). `graceMs` 0: the worker is gone, nothing to wait for.
   */
  #detach(w: WorkerRecord, graceMs = this.#options.gracefulTimeoutMs): Promise<void> {
    const membership = this.#options.membership;
    if (!membership || !w.member || !w.socketPath) return Promise.resolve();
    w.member = false;
    return membership.remove({ id: w.id, pid: w.pid, socketPath: w.socketPath }, graceMs).catch((error: unknown) => this.#log().error({ err: error, worker: w.pid }, 'arbiter: removing a worker from the edge failed'));
  }

  /** Resolves once a worker other than `w` is in the edge's group (at once outside integrated mode; at most the graceful timeout). */
  async #otherMember(w: WorkerRecord): Promise<void> {
    if (!this.#options.membership) return;
    const deadline = Date.now() + this.#options.gracefulTimeoutMs;
    while (!this.#stopping && !this.#result && w.child.connected && Date.now() < deadline && ![...this.#workers.values()].some((x) => x !== w && x.member)) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  #stopWorker(w: WorkerRecord): void {
    if (w.state === 'stopping' && w.planned) return;
    w.state = 'stopping';
    w.planned = true;
    clearTimeout(w.killTimer);
    // The edge lets go first (no new request can reach the worker), then the worker drains.
    void this.#detach(w).then(() => {
      const message: ToWorker = { type: 'portico:stop', graceMs: this.#options.gracefulTimeoutMs };
      if (w.child.connected) w.child.send(message, (error) => error && w.child.kill('SIGTERM'));
      clearTimeout(w.killTimer);
      w.killTimer = setTimeout(() => w.child.kill('SIGKILL'), this.#options.gracefulTimeoutMs + 1000);
    });
  }

  #spawn(): WorkerRecord {
    this.#spawnCount++;
    const jitter = this.#options.maxRequestsJitter > 0 ? Math.floor(Math.random() * (this.#options.maxRequestsJitter + 1)) : 0;
    const settings: WorkerSettings = {
      file: this.#options.file,
      timeoutMs: this.#options.timeoutMs,
      maxRequests: this.#options.maxRequests > 0 ? this.#options.maxRequests + jitter : 0,
      gracefulTimeoutMs: this.#options.gracefulTimeoutMs,
      title: `portico: app ${this.#options.name ?? basename(this.#options.file)} worker ${this.#nextId}`,
      ...(this.#options.socketDir ? { socketPath: join(this.#options.socketDir, `w${this.#nextId}.sock`) } : {}),
    };
    const wsgi = this.#options.wsgi;
    let child: ChildProcess;
    if (wsgi) {
      if (!settings.socketPath) throw new Error('a WSGI app runs behind the edge (integrated mode): socketDir is required');
      const python: WsgiWorkerSettings = { wsgi: wsgi.spec, cwd: wsgi.cwd, socketPath: settings.socketPath, threads: wsgi.threads, maxRequests: settings.maxRequests, gracefulTimeoutMs: settings.gracefulTimeoutMs };
      // The same IPC channel as a Node worker's (node:child_process opens it for any child; the
      // worker reads NODE_CHANNEL_FD), so the arbiter drives both kinds with the same messages.
      child = spawn(wsgi.python, [WSGI_WORKER, JSON.stringify(python)], {
        cwd: wsgi.cwd,
        env: { PYTHONUNBUFFERED: '1', ...appEnvironment(this.#options) },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        serialization: 'json',
      });
    } else {
      child = fork(workerEntry(), [JSON.stringify(settings)], {
        env: appEnvironment(this.#options),
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        execArgv: process.execArgv,
      });
    }
    let settle: (ok: boolean) => void = () => undefined;
    const ready = new Promise<boolean>((resolve) => (settle = resolve));
    const record: WorkerRecord = {
      id: this.#nextId++,
      child,
      pid: child.pid ?? 0,
      startedAt: Date.now(),
      socketPath: settings.socketPath,
      member: false,
      state: 'booting',
      lastTick: Date.now(),
      requests: 0,
      busySince: null,
      rss: 0,
      planned: false,
      killed: false,
      inTransit: new Set(),
      ready,
      settle,
    };
    this.#workers.set(record.id, record);
    child.on('message', (message: unknown) => {
      if (isFromWorker(message)) this.#onMessage(record, message);
    });
    child.on('exit', (code, signal) => this.#onExit(record, code, signal));
    child.on('error', (error) => this.#log().error({ err: error, worker: record.pid }, 'arbiter: worker process error'));
    this.#log().info({ worker: record.pid }, 'arbiter: worker started');
    return record;
  }

  #onMessage(w: WorkerRecord, message: FromWorker): void {
    w.lastTick = Date.now();
    switch (message.type) {
      case 'portico:tick':
        w.requests = message.requests;
        w.rss = message.rss;
        w.busySince = message.busySince ?? null;
        break;
      case 'portico:log': {
        const level = message.level === 'info' || message.level === 'warn' ? message.level : 'error';
        this.#log()[level]({ worker: w.pid }, message.message);
        break;
      }
      case 'portico:ready':
        if (w.state !== 'booting') break;
        w.state = 'ready';
        this.#everReady = true;
        if (w.socketPath && this.#options.membership) {
          w.member = true;
          this.#options.membership.add({ id: w.id, pid: w.pid, socketPath: w.socketPath });
        }
        // After `add`: a reload drains an old worker only once its replacement takes requests.
        w.settle(true);
        this.#log().info({ worker: w.pid, gateway: message.kind, via: message.via }, 'arbiter: worker ready');
        this.#flushQueue();
        if (!this.#announced && this.#live().filter((x) => x.state === 'ready').length >= this.#target) {
          this.#announced = true;
          this.onReady?.(this.address(), this.#live().map((x) => x.pid));
        }
        break;
      case 'portico:boot-error':
        w.bootError = { code: message.code, message: message.message };
        // An app that exports nothing servable will not fix itself: stop now, naming the file.
        // After a first successful boot (a reload with a broken file), the running workers keep serving.
        if (message.code === 'ERR_APP_EXPORT' && !this.#everReady) this.#halt(2, message.message);
        break;
      case 'portico:crashing':
        // An uncaught exception: no more connections, a replacement now (#maintain counts only
        // booting and ready workers); the worker finishes its requests and exits 1, a crash.
        if (w.state === 'booting' || w.state === 'ready' || w.state === 'retiring') {
          this.#log().error({ worker: w.pid, error: message.message }, `arbiter: worker ${w.pid} had an uncaught exception, replacing it (it finishes its requests first)`);
          w.state = 'stopping';
          // IPC is ordered: connections handed over before this ack reach the worker before it,
          // so the worker serves them instead of exiting with them still in the pipe (reset).
          if (w.child.connected) {
            const ack: ToWorker = { type: 'portico:crash-ack' };
            w.child.send(ack, () => undefined);
          }
          void this.#detach(w, CRASH_DRAIN_MS);
          clearTimeout(w.killTimer);
          w.killTimer = setTimeout(() => w.child.kill('SIGKILL'), CRASH_DRAIN_MS + 1000);
          this.#poke();
        }
        break;
      case 'portico:signalled':
        this.#stoppedFromOutside(w);
        break;
      case 'portico:retiring':
        if (w.state === 'ready' || w.state === 'booting') {
          this.#log().info({ worker: w.pid, requests: message.requests }, 'arbiter: worker reached max requests, replacing it');
          w.requests = message.requests;
          w.state = 'retiring';
          w.planned = true;
          this.#poke();
          // Its replacement starts now (#maintain); the edge lets go of this worker once another
          // one takes requests (bounded: so a lone worker's recycle costs no wait at the edge),
          // and the ack (the drain) waits until the edge is done with it.
          void this.#otherMember(w)
            .then(() => this.#detach(w))
            .then(() => {
              if (!w.child.connected) return;
              const ack: ToWorker = { type: 'portico:retire-ack' };
              w.child.send(ack, () => undefined);
              clearTimeout(w.killTimer);
              w.killTimer = setTimeout(() => w.child.kill('SIGKILL'), this.#options.gracefulTimeoutMs + 1000);
            });
        }
        break;
    }
  }

  /**
   * A worker stops on a SIGTERM portico did not send (GROUP_SIGNAL_WINDOW_MS says where such a
   * signal comes from): no more connections for it, and no crash; its replacement starts after
   * the window, unless the arbiter is told to stop within it.
   */
  #stoppedFromOutside(w: WorkerRecord, exited = false): void {
    if (w.planned || w.killed || this.#stopping) return;
    w.planned = true;
    w.state = 'stopping';
    void this.#detach(w, exited ? 0 : this.#options.gracefulTimeoutMs);
    this.#nextSpawnAt = Math.max(this.#nextSpawnAt, Date.now() + GROUP_SIGNAL_WINDOW_MS);
    this.#log().debug({ worker: w.pid }, 'arbiter: worker received SIGTERM from outside portico');
    // Said only when it was not a stop of the whole group (the arbiter was not told to stop).
    setTimeout(() => {
      if (this.#stopping || this.#result) return;
      this.#log().warn({ worker: w.pid }, `arbiter: worker ${w.pid} stopped on a SIGTERM portico did not send; replacing it`);
      this.#poke();
    }, GROUP_SIGNAL_WINDOW_MS).unref();
  }

  #onExit(w: WorkerRecord, code: number | null, signal: NodeJS.Signals | null): void {
    // Killed by a SIGTERM before its handler was installed (still loading): the same.
    if (signal === 'SIGTERM') this.#stoppedFromOutside(w, true);
    clearTimeout(w.killTimer);
    this.#workers.delete(w.id);
    w.settle(false);
    // A worker that died while a member: the edge drops it at once (its requests in flight fail;
    // idempotent ones are retried on another worker by the proxy).
    void this.#detach(w, 0);
    const stranded = [...w.inTransit];
    w.inTransit.clear();
    for (const socket of stranded) if (!socket.destroyed) this.#dispatch(socket);
    if (w.planned || this.#stopping) {
      this.#log().info({ worker: w.pid, code, signal }, 'arbiter: worker exited');
    } else {
      const now = Date.now();
      const lived = now - w.startedAt;
      this.#crashCount++;
      const { streak, delayMs: delay } = this.#crashes.crashed(lived, Boolean(w.bootError), now);
      const limit = this.#options.maxCrashes ?? 6;
      const why = w.bootError ? w.bootError.message : w.killed ? 'killed after its heartbeat timed out' : `exit ${signal ?? code}`;
      if (streak >= limit) {
        this.#halt(1, `app workers crashed ${streak} times in a row, giving up (last: ${why})`);
      } else {
        this.#nextSpawnAt = Math.max(this.#nextSpawnAt, now + delay);
        this.#log().error({ worker: w.pid, code, signal, lifetimeMs: lived, crashes: streak, restartInMs: delay }, `arbiter: worker ${w.pid} died (${why}); restarting ${delay ? `in ${delay} ms` : 'now'} (crash ${streak} of ${limit} in a row)`);
      }
    }
    this.#poke();
  }

  #halt(code: number, message: string): void {
    if (this.#result) return;
    this.#log().fatal({ code }, `arbiter: ${message}`);
    for (const w of this.#workers.values()) {
      w.planned = true;
      w.child.kill('SIGKILL');
    }
    this.#result = { code, message };
    this.#poke();
  }

  /** Rolling restart: start one new worker, wait until it is ready, then drain one old one. */
  async #reload(): Promise<void> {
    if (this.#reloading) {
      this.#reloadAgain = true;
      return;
    }
    this.#reloading = true;
    try {
      const old = this.#live();
      for (const previous of old) {
        if (this.#stopping || this.#result) return;
        const fresh = this.#spawn();
        if (!(await fresh.ready)) {
          this.#log().error({ worker: fresh.pid }, 'arbiter: reload stopped: a new worker failed to boot; the running workers keep serving');
          return;
        }
        if (this.#workers.has(previous.id)) this.#stopWorker(previous);
      }
      this.#log().info({ workers: this.#live().map((w) => w.pid) }, 'arbiter: reload done');
    } finally {
      this.#reloading = false;
      this.#poke();
      if (this.#reloadAgain) {
        this.#reloadAgain = false;
        void this.#reload();
      }
    }
  }
}
