/**
 * The apps of a `portico up` config, run in the edge's process: one arbiter per app (the one of
 * `portico app`, with no shared listener), each worker on a unix socket of its own in a private
 * temporary folder, and one upstream group per app that outlives config generations. The
 * arbiter's membership hook keeps the group equal to the ready workers: the edge balances over
 * them through the proxy's own transport (undici pools), never by importing the app.
 *
 * This is the only module that knows both app/ and edge/ (app/ never imports edge/). With edge
 * worker processes (`workers` > 1) the pools still exist once, here in the supervisor; a `mirror`
 * (supervisor/edge-workers.ts) tells every edge worker of each membership change, and a removal
 * waits until every edge worker is done with the app worker.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Arbiter, type ArbiterResult, type ArbiterSettings, type ArbiterSnapshot } from '../app/arbiter.js';
import type { ResolvedApp, ResolvedConfig } from '../config/resolved.js';
import { PorticoError } from '../core/errors.js';
import { log } from '../core/log.js';
import { UpstreamGroup } from '../edge/handlers/proxy/upstream.js';

interface RunningPool {
  app: ResolvedApp;
  readonly group: UpstreamGroup;
  readonly arbiter: Arbiter;
  readonly dir: string;
  result: Promise<ArbiterResult>;
  pids: number[];
}

const settings = (app: ResolvedApp): ArbiterSettings => ({
  file: app.module,
  wsgi: app.wsgi,
  workers: app.workers,
  timeoutMs: app.timeout,
  maxRequests: app.maxRequests,
  maxRequestsJitter: app.maxRequestsJitter,
  gracefulTimeoutMs: app.gracefulTimeout,
  env: app.env,
  envFile: app.envFile,
});

/** Where membership changes go besides this process's own groups: the edge worker processes. */
export interface MemberMirror {
  addMember(group: string, url: string): void;
  removeMember(group: string, url: string, graceMs: number): Promise<void>;
}

export class AppPools {
  readonly #pools = new Map<string, RunningPool>();
  #stopping = false;
  /** Called when an app's arbiter gives up after start (workers crash-looping). */
  onHalt: ((app: string, result: ArbiterResult) => void) | null = null;

  constructor(config: ResolvedConfig, mirror: MemberMirror | null = null) {
    for (const app of Object.values(config.apps)) {
      const upstream = config.upstreams[app.upstream];
      if (!upstream) throw new Error(`app "${app.name}" has no upstream group (the config resolver should have made one)`);
      const group = new UpstreamGroup(upstream);
      // Private: only this process (and its workers) may reach the sockets. Short: a unix socket
      // path is limited to about 107 bytes.
      const dir = mkdtempSync(join(tmpdir(), `portico-${process.pid}-${app.name.slice(0, 24)}-`));
      // A JavaScript worker answers HTTP on its socket (undici pools); a WSGI worker speaks uwsgi,
      // with keep-alive (proxy/raw-exchange.ts pools its connections).
      const memberUrl = (socketPath: string) => (app.wsgi ? `uwsgi+unix:${socketPath}` : `unix:${socketPath}`);
      const arbiter = new Arbiter({
        ...settings(app),
        name: app.name,
        bind: null,
        socketDir: dir,
        handleSignals: false,
        membership: {
          add: (worker) => {
            group.addServer(memberUrl(worker.socketPath));
            mirror?.addMember(app.upstream, memberUrl(worker.socketPath));
            log().debug({ app: app.name, worker: worker.pid }, 'app worker joined the edge');
          },
          remove: async (worker, graceMs) => {
            await Promise.all([group.removeServer(memberUrl(worker.socketPath), graceMs), mirror?.removeMember(app.upstream, memberUrl(worker.socketPath), graceMs)]);
          },
        },
      });
      this.#pools.set(app.name, { app, group, arbiter, dir, result: Promise.resolve({ code: 0 }), pids: [] });
    }
  }

  /** The apps' groups by upstream name ("app:web"), for the edge's generations. */
  get groups(): ReadonlyMap<string, UpstreamGroup> {
    return new Map([...this.#pools.values()].map((pool) => [pool.app.upstream, pool.group]));
  }

  get size(): number {
    return this.#pools.size;
  }

  /** Starts every app; resolves once each has its full set of workers ready, or throws (exit code 2 or 1) when one gives up first. */
  async start(): Promise<void> {
    await Promise.all(
      [...this.#pools.values()].map(
        (pool) =>
          new Promise<void>((resolve, reject) => {
            pool.arbiter.onReady = (_address, pids) => {
              pool.pids = pids;
              resolve();
            };
            pool.result = pool.arbiter.run().catch((error: unknown): ArbiterResult => ({ code: 1, message: (error as Error).message }));
            void pool.result.then((result) => {
              // Before ready: start() fails; after: the arbiter gave up on a running app.
              reject(new PorticoError(result.code === 2 ? 'ERR_APP_INVALID' : 'ERR_APP_START', `app "${pool.app.name}": ${result.message ?? `stopped (${result.code})`}`));
              if (!this.#stopping && result.code !== 0) this.onHalt?.(pool.app.name, result);
            });
          }),
      ),
    );
  }

  /** Each app's arbiter as plain data, by app name. */
  snapshot(): Record<string, ArbiterSnapshot> {
    return Object.fromEntries([...this.#pools.values()].map((pool) => [pool.app.name, pool.arbiter.snapshot()]));
  }

  /** Banner lines: one per app. */
  describe(): string[] {
    return [...this.#pools.values()].map((pool) => `app ${pool.app.name}: ${pool.app.wsgi ? `WSGI ${pool.app.module} (${pool.app.wsgi.python}${pool.app.wsgi.threads > 1 ? `, ${pool.app.wsgi.threads} threads each` : ''})` : pool.app.module}, ${pool.pids.length} workers (pids ${pool.pids.join(', ')}), least outstanding requests`);
  }

  /** Why `next` cannot be applied by a reload (an app added or removed), or null. */
  refusal(next: ResolvedConfig): string | null {
    const now = [...this.#pools.keys()].sort().join(',');
    const then = Object.keys(next.apps).sort().join(',');
    return now === then ? null : `apps added or removed (${now || 'none'} → ${then || 'none'}): restart portico to apply`;
  }

  /** A rolling restart of one app's workers (the admin API); false when there is no such app. */
  reloadApp(name: string): boolean {
    const pool = this.#pools.get(name);
    pool?.arbiter.signal('SIGHUP');
    return pool !== undefined;
  }

  /** Sets one app's worker count until the next reload (the admin API); false when there is no such app. */
  scaleApp(name: string, workers: number): boolean {
    const pool = this.#pools.get(name);
    pool?.arbiter.scale(workers);
    return pool !== undefined;
  }

  /** A reload: new settings, then a rolling restart of every app's workers (a new one ready before an old one drains). */
  reload(next: ResolvedConfig): void {
    for (const pool of this.#pools.values()) {
      const app = next.apps[pool.app.name];
      if (!app) continue;
      pool.app = app;
      pool.arbiter.reconfigure(settings(app));
      pool.arbiter.signal('SIGHUP');
    }
  }

  /** Graceful stop of every app (requests in flight finish, bounded by each app's graceful timeout); removes the socket folders. */
  async stop(): Promise<void> {
    this.#stopping = true;
    for (const pool of this.#pools.values()) pool.arbiter.signal('SIGTERM');
    await Promise.all(
      [...this.#pools.values()].map(async (pool) => {
        await pool.result.catch(() => undefined);
        await pool.group.close();
        rmSync(pool.dir, { recursive: true, force: true });
      }),
    );
  }

  /** Fast stop (SIGQUIT): every worker is killed now, nothing waits. */
  kill(): void {
    this.#stopping = true;
    for (const pool of this.#pools.values()) pool.arbiter.kill();
    this.removeFolders();
  }

  /** Last resort on exit: nothing of ours stays on disk (workers exit on their own when our IPC channel closes). */
  removeFolders(): void {
    for (const pool of this.#pools.values()) rmSync(pool.dir, { recursive: true, force: true });
  }
}
