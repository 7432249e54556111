/**
 * The supervisor: the primary process of `portico up` (and `serve`, `proxy`). It owns the
 * listening sockets and every child process (edge workers, the apps' worker pools, external
 * app servers), and turns signals into a reload or a stop. Children never outlive it.
 *
 * With one edge worker (`workers: 1`) the edge runs in this process, as small deployments want;
 * with more, the edge runs in N node:cluster workers (supervisor/edge-workers.ts) and the apps
 * stay here, once per node, reached by every edge worker over their sockets.
 *
 * Signals (the issue's semantics, which are gunicorn's for TERM and QUIT, not nginx's, where
 * TERM/INT are the fast stop and QUIT the graceful one; SIGTERM is what systemd, Docker and
 * Kubernetes send for a graceful stop):
 *   SIGHUP           reload the config (an invalid one is refused and logged; the running one keeps serving)
 *   SIGTERM, SIGINT  graceful stop: stop accepting, let requests in flight finish for at most the
 *                    graceful timeout, then close what is left; a second one stops fast
 *   SIGQUIT          fast stop: close every connection and kill every child now
 */
import { watch, readFileSync, rmSync, writeFileSync, type FSWatcher } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname } from 'node:path';
import { ConfigError } from '../config/errors.js';
import type { ArbiterSnapshot } from '../app/arbiter.js';
import type { ResolvedConfig } from '../config/resolved.js';
import { listenKey } from '../config/sections/values.js';
import { MemoryLimitStore, type LimitStore } from '../core/limit-store.js';
import { CacheZones } from '../edge/handlers/cache/zones.js';
import type { SharedLimitStore } from '../state/limits.js';
import type { PurgeChannel, RemotePurge } from '../state/purges.js';
import type { SharedRedis } from '../state/redis.js';
import { complain, log, reopenErrorLog, useErrorLog } from '../core/log.js';
import type { BoundAddress, Members } from '../edge/bus.js';
import type { CertificateManager, CertificateSnapshot } from '../certs/manager.js';
import { PorticoError } from '../core/errors.js';
import type { EdgeMetrics } from '../edge/metrics.js';
import type { AdminHost, AdminServer, ReloadResult } from './admin.js';
import type { NodeMetrics } from './node-metrics.js';
import { ManagedCertificates } from '../edge/listen/managed-certificates.js';
import { TicketKeys } from '../edge/listen/ticket-keys.js';
import { createEdgeEnvironment, type EdgeEnvironment } from '../edge/environment.js';
import type { UpstreamGroup } from '../edge/handlers/proxy/upstream.js';
import { EdgeServer, type EdgeSnapshot } from '../edge/server.js';
import type { AppPools } from './apps.js';
import type { EdgeWorkers, EdgeWorkerSnapshot } from './edge-workers.js';
import type { ExternalApps } from './external.js';

/** What the CLI's flags override in every config the supervisor runs (the first and each reload). */

/** Session ticket keys are replaced this often (Caddy rotates its STEKs every 12 hours). */
const TICKET_KEY_ROTATION_MS = 12 * 3600 * 1000;
export interface Overrides {
  /** `--workers N|auto` */
  readonly workers?: number | 'auto';
  /** `--graceful-timeout D` (ms) */
  readonly gracefulTimeout?: number;
  /** `--pid FILE` (absolute) */
  readonly pidFile?: string;
}

/** The config with the flags applied; `workers` resolved to a count (flag, then config, then `PORTICO_WORKERS`, then one per core). */
export function applyOverrides(config: ResolvedConfig, overrides: Overrides): ResolvedConfig & { readonly workers: number } {
  const fromEnv = process.env.PORTICO_WORKERS;
  const env = fromEnv === 'auto' ? 'auto' : fromEnv && /^\d+$/.test(fromEnv) && Number(fromEnv) >= 1 ? Number(fromEnv) : undefined;
  const wanted = overrides.workers ?? config.workers ?? env ?? 'auto';
  return Object.freeze({
    ...config,
    workers: wanted === 'auto' ? availableParallelism() : wanted,
    gracefulTimeout: overrides.gracefulTimeout ?? config.gracefulTimeout,
    pidFile: overrides.pidFile ?? config.pidFile,
  });
}

export interface NodeView {
  readonly config: ResolvedConfig;
  readonly addresses: BoundAddress[];
  /** Lines about processes: edge workers, apps. */
  readonly processes: string[];
}

export interface NodeOptions {
  /** The config, with `applyOverrides` done. */
  readonly config: ResolvedConfig & { readonly workers: number };
  /** Loads the config file again (a reload), or null when there is none (the demo, serve, proxy). */
  readonly load: (() => Promise<{ config: ResolvedConfig; dependencies: readonly string[] }>) | null;
  readonly overrides: Overrides;
  /** Reload when a file of the config changes. */
  readonly watch: boolean;
  /** The config's files, for `watch`. */
  readonly dependencies: readonly string[];
  /** Prints the banner once everything serves. */
  readonly announce: (view: NodeView) => void;
}

/** The edge as the supervisor drives it: in this process, or in edge worker processes. */
interface Edge {
  start(): Promise<void>;
  addresses(): BoundAddress[];
  reload(config: ResolvedConfig): Promise<void>;
  stop(graceMs: number): Promise<void>;
  describe(): string[];
}

class InProcessEdge implements Edge {
  readonly server: EdgeServer;
  constructor(config: ResolvedConfig, environment: EdgeEnvironment) {
    this.server = new EdgeServer(config, environment);
  }
  start(): Promise<void> {
    return this.server.start();
  }
  addresses(): BoundAddress[] {
    return this.server.addresses();
  }
  reload(config: ResolvedConfig): Promise<void> {
    return this.server.reload(config);
  }
  stop(graceMs: number): Promise<void> {
    return this.server.stop(graceMs);
  }
  describe(): string[] {
    return [];
  }
}

function applyLogConfig(config: ResolvedConfig): void {
  useErrorLog({ level: config.log.level, destination: config.log.error, format: config.log.format });
}

/** Writes the pid file; returns its remover (only if it still names this process: a newer instance may own it). */
function writePidFile(path: string): () => void {
  writeFileSync(path, `${process.pid}\n`);
  return () => {
    try {
      if (readFileSync(path, 'utf8').trim() === String(process.pid)) rmSync(path, { force: true });
    } catch {
      // Gone already.
    }
  };
}

/** What the supervisor is asked to do. Signals, the file watcher and (later) the admin API enqueue these; one loop runs them in order. */
export type SupervisorCommand =
  /** Load the config again and swap it in (SIGHUP, `portico reload`, `--watch`, the admin API); `reply` hears how it went. */
  | { readonly type: 'reload'; readonly trigger: string; readonly reply?: (result: ReloadResult) => void }
  /** Stop: graceful (requests in flight finish within `gracefulTimeout`) or fast; `code` is the exit code. */
  | { readonly type: 'stop'; readonly signal: string; readonly fast: boolean; readonly code: number };

export type SupervisorState = 'starting' | 'serving' | 'reloading' | 'stopping';

/** The running node as plain data: what the admin API and metrics show. */
export interface SupervisorSnapshot {
  readonly pid: number;
  readonly state: SupervisorState;
  readonly startedAt: number;
  /** Reloads that swapped in a new config since the start (the config generation). */
  readonly generation: number;
  readonly lastReload: { readonly at: number; readonly ok: boolean; readonly trigger: string; readonly problem: string | null } | null;
  readonly source: string | null;
  readonly workers: number;
  readonly addresses: readonly BoundAddress[];
  /** Edge worker processes (empty when the edge runs in this process). */
  readonly edgeWorkers: readonly EdgeWorkerSnapshot[];
  /** The edge's listeners, upstreams and cache zones when it runs in this process (edge workers answer for themselves). */
  readonly edge: EdgeSnapshot | null;
  /** Each integrated app's arbiter, by app name. */
  readonly apps: Record<string, ArbiterSnapshot>;
  /** The managed certificates (`tls: "auto"` / `"internal"`): names, issuer, expiry, renewal, last error. */
  readonly certificates: readonly CertificateSnapshot[];
  /** The shared state (`state`), or null: whether Redis is reachable, the nodes last seen, limit decisions made by `onRedisDown`. */
  readonly shared: { readonly redis: 'up' | 'down'; readonly nodes: number; readonly fallbacks: number; readonly onRedisDown: string } | null;
}

/**
 * The primary process of a node, in gunicorn's arbiter shape: its running state is fields that
 * other components read (`snapshot()`), and everything that changes that state arrives as a
 * command on one queue (`command()`), which one loop runs in order. Signal handlers only enqueue;
 * a reload asked for while another runs happens after it; a stop ends the loop.
 */
export class Supervisor {
  readonly #options: NodeOptions;
  #config: ResolvedConfig & { readonly workers: number };
  #state: SupervisorState = 'starting';
  #stopping: 'graceful' | 'fast' | null = null;
  readonly #startedAt = Date.now();
  #generation = 0;
  #lastReload: SupervisorSnapshot['lastReload'] = null;
  readonly #multi: boolean;
  /** The node's limit state: the edge in this process uses it directly, edge workers over their buses; in Redis, counted fleet-wide, when the config has `state`. */
  #limits: LimitStore = new MemoryLimitStore();
  /** The Redis every node shares (`state`), or null; made at start from the first config (a reload that changes it is refused). */
  #shared: { readonly redis: SharedRedis; readonly limits: SharedLimitStore; readonly purges: PurgeChannel } | null = null;
  /** The node's TLS session ticket keys: made here, in memory only, handed to every edge process, rotated (edge/listen/ticket-keys.ts). */
  readonly ticketKeys = new TicketKeys();
  readonly #ticketRotation = setInterval(() => this.ticketKeys.set(TicketKeys.fresh()), TICKET_KEY_ROTATION_MS).unref();
  /** The node's managed certificates: the edge in this process reads them, edge workers get them over their buses. */
  readonly certificates = new ManagedCertificates(this.ticketKeys);
  /** Obtains and renews them (src/certs), once the config has a `tls: "auto"` or `"internal"` server. */
  #certificateManager: CertificateManager | null = null;
  #workers: EdgeWorkers | null = null;
  #pools: AppPools | null = null;
  #external: ExternalApps | null = null;
  #edge: Edge | null = null;
  readonly #queue: SupervisorCommand[] = [];
  /** Those waiting for the result of the next reload (the admin API). */
  readonly #reloadReplies: ((result: ReloadResult) => void)[] = [];
  /** The admin API and the node's metrics, while the config has `admin`. */
  #admin: AdminServer | null = null;
  #nodeMetrics: NodeMetrics | null = null;
  /** The edge's metrics when it runs in this process (edge workers keep their own). */
  #edgeMetrics: EdgeMetrics | null = null;
  #wake: (() => void) | null = null;
  readonly #watcher: ConfigWatcher;

  constructor(options: NodeOptions) {
    this.#options = options;
    this.#config = options.config;
    this.#multi = options.config.workers > 1;
    this.#watcher = new ConfigWatcher(options.watch ? () => this.command({ type: 'reload', trigger: 'file change' }) : null);
  }

  get config(): ResolvedConfig {
    return this.#config;
  }

  get state(): SupervisorState {
    return this.#state;
  }

  get pools(): AppPools | null {
    return this.#pools;
  }

  get edgeWorkers(): EdgeWorkers | null {
    return this.#workers;
  }

  snapshot(): SupervisorSnapshot {
    return {
      pid: process.pid,
      state: this.#state,
      startedAt: this.#startedAt,
      generation: this.#generation,
      lastReload: this.#lastReload,
      source: this.#config.source,
      workers: this.#config.workers,
      addresses: this.#edge?.addresses() ?? [],
      edgeWorkers: this.#workers?.snapshot() ?? [],
      edge: this.#edge instanceof InProcessEdge ? this.#edge.server.snapshot() : null,
      apps: this.#pools?.snapshot() ?? {},
      certificates: this.#certificateManager?.snapshot() ?? [],
      shared: this.#shared ? { redis: this.#shared.redis.up ? 'up' : 'down', nodes: this.#shared.limits.nodes, fallbacks: this.#shared.limits.fallbacks, onRedisDown: this.#shared.redis.settings.onRedisDown } : null,
    };
  }

  /**
   * Enqueues a command; the loop runs it after those before it. A second reload while one waits
   * is one reload; a fast stop jumps the queue (a second signal must not wait behind a reload).
   */
  command(command: SupervisorCommand): void {
    if (command.type === 'reload' && command.reply) this.#reloadReplies.push(command.reply);
    if (command.type === 'reload' && this.#queue.some((queued) => queued.type === 'reload')) return;
    if (command.type === 'stop') {
      // A stop applies at once (stop() is idempotent and escalates); what is queued after it is dropped.
      this.#stop(command.signal, command.fast, command.code);
      return;
    }
    this.#queue.push(command);
    this.#wake?.();
  }

  /** Starts everything (throws, having stopped what it started, when that fails), then runs commands until a stop ends the process. */
  async start(): Promise<void> {
    // `ps` tells the processes apart: "portico: supervisor", "portico: edge worker", "portico: app web worker 2".
    process.title = 'portico: supervisor';
    warnAbout(this.#config);
    await this.#start();
    this.#state = 'serving';
    void this.#loop();
  }

  async #loop(): Promise<void> {
    for (;;) {
      const next = this.#queue.shift();
      if (!next) {
        await new Promise<void>((resolve) => (this.#wake = resolve));
        this.#wake = null;
        continue;
      }
      if (this.#stopping) return;
      if (next.type === 'reload') {
        this.#state = 'reloading';
        // Whoever asked before this reload began hears its result; a later ask waits for the next one.
        const replies = this.#reloadReplies.splice(0);
        const result = await this.#reload(next.trigger);
        for (const reply of replies) reply(result);
        if (!this.#stopping) this.#state = 'serving';
      }
    }
  }

  async #start(): Promise<void> {
    const options = this.#options;
    const current = this.#config;
    applyLogConfig(current);
    await this.#connectShared(current);
    const sharedState = this.#shared;
    // The edge workers are created before the apps so the apps can mirror membership to them;
    // the members of a starting worker are read from the groups here, which are always current.
    let shared = new Map<string, UpstreamGroup>();
    const members = (): Members => Object.fromEntries([...shared].map(([name, group]) => [name, group.servers.map((s) => s.url)]));
    if (this.#multi) {
      const { EdgeWorkers } = await import('./edge-workers.js');
      const created = new EdgeWorkers(current, current.workers, members, this.#limits, this.ticketKeys, this.certificates);
      if (sharedState) created.onPurge = (purge) => sharedState.purges.publish(purge);
      this.#workers = created;
      process.on('exit', () => created.killAll());
    }
    // Loaded only when the config has apps. Last resort (an exit on an error path): the socket
    // folders go; the workers exit by themselves when our IPC channels close.
    if (Object.keys(current.apps).length > 0) {
      const { AppPools } = await import('./apps.js');
      const created = new AppPools(current, this.#workers);
      this.#pools = created;
      process.on('exit', () => created.removeFolders());
    }
    // External app servers (`command`): never left running when portico exits, whatever the path
    // (the exit hook kills their groups).
    if (Object.keys(current.externalApps).length > 0) {
      const { ExternalApps } = await import('./external.js');
      const created = new ExternalApps(current, this.#workers);
      this.#external = created;
      process.on('exit', () => created.killAll());
    }
    const pools = this.#pools;
    const external = this.#external;
    // Until the stop handlers below are installed (commands and workers may take a while), a
    // SIGTERM/SIGINT would end the process without its 'exit' hooks and leave children running.
    const early = () => process.exit(1);
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGQUIT'] as const) process.once(signal, early);
    shared = new Map([...(pools?.groups ?? []), ...(external?.groups ?? [])]);
    const cacheZones = new CacheZones(null, sharedState?.redis ?? null, sharedState ? (purge) => sharedState.purges.publish(purge) : null);
    const edge: Edge = this.#workers ?? new InProcessEdge(current, createEdgeEnvironment({ sharedState: sharedState?.redis ?? null, limits: this.#limits, sharedUpstreams: shared, ticketKeys: this.ticketKeys, certificates: this.certificates, cacheZones }));
    this.#edge = edge;
    // The edge binds its ports first (a port in use fails at once, before any app worker boots);
    // then the apps start; a request that arrives while an app's workers boot waits for one (up to
    // 5 s, see proxy/index.ts). The banner, with the workers' pids, comes once every app is ready.
    try {
      await edge.start(); // closes what it opened when it fails
    } catch (error) {
      await pools?.stop();
      await external?.stop();
      throw error;
    }
    try {
      await Promise.all([pools?.start(), external?.start()]);
    } catch (error) {
      await edge.stop(0);
      await pools?.stop();
      await external?.stop();
      throw error;
    }
    // Certificates are obtained once the edge listens: the CA's validations come to it.
    await this.#manageCertificates(current);
    try {
      await this.#followAdmin(current);
    } catch (error) {
      await edge.stop(0);
      await pools?.stop();
      await external?.stop();
      throw error;
    }
    const removePidFile = current.pidFile ? writePidFile(current.pidFile) : () => undefined;
    process.on('exit', removePidFile);
    const adminLine = this.#admin ? [`admin API on ${this.#admin.url} (GET /status, /metrics, /upstreams; POST /reload; a dashboard at /)`] : [];
    options.announce({ config: current, addresses: edge.addresses(), processes: [...edge.describe(), ...(pools?.describe() ?? []), ...(external?.describe() ?? []), ...adminLine] });

    const halt = (why: string, code: number) => {
      complain(`portico: ${why}`);
      this.command({ type: 'stop', signal: why, fast: false, code: code || 1 });
    };
    if (pools) pools.onHalt = (name, result) => halt(`app "${name}": ${result.message ?? `stopped (${result.code})`}`, result.code);
    if (this.#workers) this.#workers.onHalt = (message) => halt(message, 1);
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGQUIT'] as const) process.off(signal, early);
    // Signal handlers only enqueue. A second SIGINT/SIGTERM during a graceful stop stops fast.
    process.on('SIGINT', () => this.command({ type: 'stop', signal: 'SIGINT', fast: this.#stopping === 'graceful', code: 0 }));
    process.on('SIGTERM', () => this.command({ type: 'stop', signal: 'SIGTERM', fast: this.#stopping === 'graceful', code: 0 }));
    process.on('SIGQUIT', () => this.command({ type: 'stop', signal: 'SIGQUIT', fast: true, code: 0 }));
    process.on('SIGHUP', () => this.command({ type: 'reload', trigger: 'SIGHUP' }));
    // nginx's USR1: logrotate renamed the files; write to new ones at the same paths. Immediate (no
    // queue): nothing else changes, and a reload in progress reopens them anyway.
    process.on('SIGUSR1', () => this.#reopenLogs());
    this.#watcher.follow(options.dependencies);
  }

  // The edge stops first (its requests in flight finish, on the app workers too), then the apps
  // (their workers have nothing left to do, and exit).
  #stop(signal: string, fast: boolean, code: number): void {
    if (this.#stopping === 'fast' || (this.#stopping === 'graceful' && !fast)) return;
    const escalate = this.#stopping === 'graceful';
    this.#stopping = fast ? 'fast' : 'graceful';
    this.#state = 'stopping';
    this.#queue.length = 0;
    this.#watcher.close();
    clearInterval(this.#ticketRotation);
    this.#certificateManager?.close();
    void this.#admin?.close();
    const edge = this.#edge;
    const pools = this.#pools;
    const external = this.#external;
    if (fast) {
      log().warn({ signal }, escalate ? 'stopping now (second signal): closing every connection' : 'fast stop: closing every connection, killing workers');
      // Children go at once; no request is waited for.
      this.#workers?.killAll();
      pools?.kill();
      external?.killAll();
      void (edge?.stop(0) ?? Promise.resolve())
        .catch(() => undefined)
        .then(() => {
          log().flush();
          process.exit(code);
        });
      return;
    }
    log().info({ signal, gracefulTimeoutMs: this.#config.gracefulTimeout }, 'stopping: finishing requests in flight');
    void (edge?.stop(code === 0 ? this.#config.gracefulTimeout : 0) ?? Promise.resolve())
      .then(() => pools?.stop())
      .then(() => external?.stop())
      .then(() => this.#closeShared())
      .then(() => {
        log().flush();
        process.exit(code);
      });
  }

  /** A clean stop gives back this node's connection leases and node-set membership at once (a killed node's expire), then disconnects. */
  async #closeShared(): Promise<void> {
    const shared = this.#shared;
    if (!shared) return;
    await shared.limits.close();
    await shared.purges.close();
    await shared.redis.close();
  }

  /**
   * With `state`: the connection to the fleet's Redis, the limit store that counts there, and the
   * purge channel. Loaded only then (node-redis adds ~0.2 s to a process's start).
   */
  async #connectShared(config: ResolvedConfig): Promise<void> {
    if (!config.state) return;
    const [{ SharedRedis }, { SharedLimitStore }, { PurgeChannel }] = await Promise.all([import('../state/redis.js'), import('../state/limits.js'), import('../state/purges.js')]);
    const redis = new SharedRedis(config.state, 'supervisor', `limits are decided as onRedisDown "${config.state.onRedisDown}" says, and cache purges reach this node only`);
    const limits = new SharedLimitStore(redis);
    const purges = new PurgeChannel(redis, limits.nodeId, (purge) => void this.#purgeFromElsewhere(purge));
    this.#shared = { redis, limits, purges };
    this.#limits = limits;
  }

  /** Another node purged a cache key: this node's tiers drop it too. */
  async #purgeFromElsewhere(purge: RemotePurge): Promise<void> {
    const edge = this.#edge;
    if (this.#workers) await this.#workers.purgeFromElsewhere(purge);
    else if (edge instanceof InProcessEdge) await edge.server.purgeLocalCache(purge.zone, purge.key, purge.prefix);
  }

  #reopenLogs(): void {
    reopenErrorLog();
    if (this.#edge instanceof InProcessEdge) this.#edge.server.reopenLogs();
    this.#workers?.reopenLogs();
    log().info({ signal: 'SIGUSR1' }, 'log files reopened');
  }

  /** Starts the certificate manager with the first config that needs it (it is loaded only then), and has it follow each config. */
  async #manageCertificates(config: ResolvedConfig): Promise<void> {
    if (!this.#certificateManager) {
      if (!config.servers.some((server) => server.tls?.managed)) return;
      const { CertificateManager } = await import('../certs/manager.js');
      const certificates = this.certificates;
      this.#certificateManager = new CertificateManager({ publish: (name, pair) => certificates.set(name, pair), refuse: (name) => certificates.refuse(name) }, this.#shared?.redis ?? null);
      const manager = this.#certificateManager;
      certificates.asker = (name, issuer) => manager.want(name, issuer);
    }
    this.#certificateManager.configure(config);
  }

  async #reload(why: string): Promise<ReloadResult> {
    const options = this.#options;
    const current = this.#config;
    const pools = this.#pools;
    const edge = this.#edge;
    const unchanged = (problem: string | null): ReloadResult => ({ ok: problem === null, problem, problems: null, generation: this.#generation });
    if (!edge) return unchanged('not started');
    try {
      if (!options.load) {
        if (pools) {
          log().info(`${why}: nothing to reload (no config file); rolling the app workers`);
          pools.reload(current);
        } else log().warn(`${why}: nothing to reload (no config file)`);
        return unchanged(null);
      }
      const loaded = await options.load();
      const next = applyOverrides(loaded.config, options.overrides);
      // App pools outlive generations; one added or removed needs a restart (refused here,
      // before anything changes, like any other invalid reload).
      const refusal = pools ? pools.refusal(next) : Object.keys(next.apps).length > 0 ? 'apps added: restart portico to apply' : null;
      // An external command is not rolled by a reload: changing one needs a restart.
      const changed = JSON.stringify(next.externalApps) !== JSON.stringify(current.externalApps) ? 'apps with a "command" added, removed or changed: restart portico to apply' : null;
      // One process or several is decided at start.
      const mode = (next.workers > 1) !== this.#multi ? `workers ${current.workers} → ${next.workers}: changing between one process and several needs a restart` : null;
      // The shared state's connections and node id are made once, at start.
      const state = JSON.stringify(next.state) !== JSON.stringify(current.state) ? 'state changed: restart portico to apply' : null;
      const problem = refusal ?? changed ?? mode ?? state;
      if (problem) throw new Error(problem);
      await edge.reload(next);
      // New app code and settings: a rolling restart, one worker at a time, each new worker
      // in the edge's group before an old one leaves it.
      pools?.reload(next);
      await this.#manageCertificates(next);
      await this.#followAdmin(next);
      // The error log follows the reloaded config too (its level or destination may have changed),
      // and its file is reopened, as the access log's is (logrotate's postrotate: portico reload).
      applyLogConfig(next);
      this.#config = next;
      this.#generation++;
      this.#lastReload = { at: Date.now(), ok: true, trigger: why, problem: null };
      this.#watcher.follow(loaded.dependencies);
      log().info({ source: next.source, trigger: why }, 'reloaded: new config serving');
      warnAbout(next);
      this.#nodeMetrics?.reloaded(true);
      return { ok: true, problem: null, problems: null, generation: this.#generation };
    } catch (error) {
      const problems = error instanceof ConfigError ? error.problems : undefined;
      this.#lastReload = { at: Date.now(), ok: false, trigger: why, problem: (error as Error).message };
      log().error({ problem: (error as Error).message, ...(problems ? { problems } : {}), trigger: why }, 'reload refused: the running config keeps serving');
      this.#nodeMetrics?.reloaded(false);
      return { ok: false, problem: (error as Error).message, problems: problems ?? null, generation: this.#generation };
    }
  }

  /**
   * The admin API follows the config: started with the first config that has `admin` (with the
   * node's metrics, counted from then on), moved when its address or token changes. A new
   * address that cannot be opened is logged; the old one has been closed.
   */
  async #followAdmin(config: ResolvedConfig): Promise<void> {
    const wanted = config.admin;
    if (wanted && !this.#nodeMetrics) {
      const { NodeMetrics } = await import('./node-metrics.js');
      this.#nodeMetrics = new NodeMetrics(() => this.snapshot());
    }
    if (wanted && this.#edge instanceof InProcessEdge && !this.#edgeMetrics) {
      const { EdgeMetrics } = await import('../edge/metrics.js');
      const server = this.#edge.server;
      this.#edgeMetrics = new EdgeMetrics(() => server.snapshot());
      this.#edgeMetrics.start();
    }
    if (JSON.stringify(this.#admin?.settings ?? null) === JSON.stringify(wanted)) return;
    await this.#admin?.close();
    this.#admin = null;
    if (!wanted) return;
    const { AdminServer } = await import('./admin.js');
    const admin = new AdminServer(wanted, this.#adminHost());
    try {
      await admin.start();
      this.#admin = admin;
      log().info({ admin: admin.url }, 'admin API listening');
    } catch (error) {
      log().error({ err: error }, 'admin API: cannot listen');
      if (this.#state === 'starting') throw new PorticoError('ERR_LISTEN', `admin: cannot listen on ${listenKey(wanted.listen)}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  }

  #adminHost(): AdminHost {
    return {
      snapshot: () => this.snapshot(),
      config: () => this.#config,
      reload: (trigger) => new Promise((resolve) => this.command({ type: 'reload', trigger, reply: resolve })),
      edgeSnapshots: async () => {
        if (this.#workers) return (await this.#workers.observe('snapshot', 1000)).filter((answer) => answer.data !== null).map((answer) => ({ pid: answer.pid, snapshot: answer.data as EdgeSnapshot }));
        return this.#edge instanceof InProcessEdge ? [{ pid: process.pid, snapshot: this.#edge.server.snapshot() }] : [];
      },
      changeUpstream: async (group, server, change) => {
        if (this.#workers) {
          const answers = await this.#workers.changeUpstream(group, server, change, 1000);
          return { found: answers.filter((answer) => answer.data === true).length, processes: answers.length };
        }
        const found = this.#edge instanceof InProcessEdge && this.#edge.server.changeUpstream(group, server, change);
        return { found: found ? 1 : 0, processes: 1 };
      },
      purge: async (zone, key, prefix) => {
        if (this.#workers) return this.#workers.purge(zone, key, prefix, 5000);
        return this.#edge instanceof InProcessEdge ? this.#edge.server.purgeCache(zone, key, prefix) : null;
      },
      apps: () => this.#pools?.snapshot() ?? {},
      reloadApp: (name) => this.#pools?.reloadApp(name) ?? false,
      scaleApp: (name, workers) => this.#pools?.scaleApp(name, workers) ?? false,
      stats: () => (this.#nodeMetrics as NodeMetrics).stats({ inProcess: this.#edgeMetrics, workers: this.#workers }),
      metrics: async () => {
        const metrics = this.#nodeMetrics as NodeMetrics;
        return { contentType: metrics.contentType, body: await metrics.scrape({ inProcess: this.#edgeMetrics, workers: this.#workers }) };
      },
    };
  }
}

/** Starts a node; it runs until a signal (or a command) stops it, and the process exits from there. */
/** What the config found suspicious but serves (an expired certificate…): one warning line each. */
function warnAbout(config: ResolvedConfig): void {
  for (const warning of config.warnings) log().warn({ source: config.source }, `config warning: ${warning}`);
}

export async function runNode(options: NodeOptions): Promise<Supervisor> {
  const supervisor = new Supervisor(options);
  await supervisor.start();
  return supervisor;
}

/**
 * `--watch`: a reload when a file of the config changes (the config file and, for a TypeScript
 * config, the local modules it imports). The folders are watched, not the files: an editor that
 * saves by writing a new file and renaming it over the old one would end a watch on the file.
 * Changes are debounced (300 ms), so one save is one reload.
 */
/** The symlink a Kubernetes ConfigMap (or Secret) volume swaps to update its files. */
const KUBERNETES_ATOMIC_LINK = '..data';

class ConfigWatcher {
  readonly #onChange: (() => void) | null;
  #watchers: FSWatcher[] = [];
  /** The folders and names watched now (JSON), '' when none. */
  #key = '';
  #timer: NodeJS.Timeout | undefined;

  constructor(onChange: (() => void) | null) {
    this.#onChange = onChange;
  }

  follow(files: readonly string[]): void {
    const onChange = this.#onChange;
    if (!onChange) return;
    const byDir = new Map<string, Set<string>>();
    for (const file of files) {
      const names = byDir.get(dirname(file)) ?? new Set<string>();
      names.add(basename(file));
      byDir.set(dirname(file), names);
    }
    // The same files after a reload: the watches stay. Closing them and watching again would drop
    // what changed in between (the test of deploy.test.ts published a bad ConfigMap update just
    // as the previous one was reloaded, and the refusal never came).
    const key = JSON.stringify([...byDir].map(([dir, names]) => [dir, [...names].sort()]).sort());
    if (key === this.#key) return;
    this.#unwatch();
    this.#key = key;
    for (const [dir, names] of byDir) {
      try {
        const watcher = watch(dir, { persistent: false }, (_event, name) => {
          // A Kubernetes ConfigMap volume replaces its files at once by renaming a new `..data`
          // symlink over the old one (the kubelet's atomic writer): the config's own name never
          // appears in an event then.
          if (name !== null && !names.has(String(name)) && String(name) !== KUBERNETES_ATOMIC_LINK) return;
          clearTimeout(this.#timer);
          this.#timer = setTimeout(onChange, 300);
        });
        watcher.on('error', (error) => log().warn({ err: error, dir }, 'config watch: error'));
        this.#watchers.push(watcher);
      } catch (error) {
        log().warn({ err: error, dir }, 'config watch: cannot watch this folder');
      }
    }
  }

  /** Stops watching; a change already seen still reloads once its debounce ends (a reload runs after the one in progress). */
  #unwatch(): void {
    for (const watcher of this.#watchers) watcher.close();
    this.#watchers = [];
    this.#key = '';
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#unwatch();
  }
}
