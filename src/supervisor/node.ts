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
import type { ResolvedConfig } from '../config/resolve.js';
import { complain, createLogger, log, setLogger } from '../core/log.js';
import type { UpstreamGroup } from '../edge/handlers/proxy/upstream.js';
import { EdgeServer, type BoundAddress } from '../edge/server.js';
import type { AppPools } from './apps.js';
import type { Members } from './edge-ipc.js';
import type { EdgeWorkers } from './edge-workers.js';
import type { ExternalApps } from './external.js';

/** What the CLI's flags override in every config the supervisor runs (the first and each reload). */
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
  constructor(config: ResolvedConfig, shared: ReadonlyMap<string, UpstreamGroup>) {
    this.server = new EdgeServer(config, shared.size > 0 ? { sharedUpstreams: shared } : {});
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
  setLogger(createLogger({ level: config.log.level, destination: config.log.error }));
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

/** Runs until a signal stops it (the process exits from here). */
export async function runNode(options: NodeOptions): Promise<void> {
  let current = options.config;
  applyLogConfig(current);
  const multi = current.workers > 1;
  // The edge workers are created before the apps so the apps can mirror membership to them;
  // the members of a starting worker are read from the groups here, which are always current.
  let shared = new Map<string, UpstreamGroup>();
  const members = (): Members => Object.fromEntries([...shared].map(([name, group]) => [name, group.servers.map((s) => s.url)]));
  let workers: EdgeWorkers | null = null;
  if (multi) {
    const { EdgeWorkers } = await import('./edge-workers.js');
    workers = new EdgeWorkers(current, current.workers, members);
    const created = workers;
    process.on('exit', () => created.killAll());
  }
  // Loaded only when the config has apps. Last resort (an exit on an error path): the socket
  // folders go; the workers exit by themselves when our IPC channels close.
  let pools: AppPools | null = null;
  if (Object.keys(current.apps).length > 0) {
    const { AppPools } = await import('./apps.js');
    pools = new AppPools(current, workers);
    const created = pools;
    process.on('exit', () => created.removeFolders());
  }
  // External app servers (`command`): never left running when portico exits, whatever the path
  // (the exit hook kills their groups).
  let external: ExternalApps | null = null;
  if (Object.keys(current.externalApps).length > 0) {
    const { ExternalApps } = await import('./external.js');
    external = new ExternalApps(current, workers);
    const created = external;
    process.on('exit', () => created.killAll());
  }
  // Until the stop handlers below are installed (commands and workers may take a while), a
  // SIGTERM/SIGINT would end the process without its 'exit' hooks and leave children running.
  const early = () => process.exit(1);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGQUIT'] as const) process.once(signal, early);
  shared = new Map([...(pools?.groups ?? []), ...(external?.groups ?? [])]);
  const edge: Edge = workers ?? new InProcessEdge(current, shared);
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
  const removePidFile = current.pidFile ? writePidFile(current.pidFile) : () => undefined;
  process.on('exit', removePidFile);
  options.announce({ config: current, addresses: edge.addresses(), processes: [...edge.describe(), ...(pools?.describe() ?? []), ...(external?.describe() ?? [])] });

  let stopping: 'graceful' | 'fast' | null = null;
  // Created here (used by stop); it follows the files once the reload below is defined.
  let onFileChange: () => void = () => undefined;
  const watcher = new ConfigWatcher(options.watch ? () => onFileChange() : null);
  // The edge stops first (its requests in flight finish, on the app workers too), then the apps
  // (their workers have nothing left to do, and exit).
  const stop = (signal: string, fast: boolean, code = 0) => {
    if (stopping === 'fast' || (stopping === 'graceful' && !fast)) return;
    const escalate = stopping === 'graceful';
    stopping = fast ? 'fast' : 'graceful';
    watcher.close();
    if (fast) {
      log().warn({ signal }, escalate ? 'stopping now (second signal): closing every connection' : 'fast stop: closing every connection, killing workers');
      // Children go at once; no request is waited for.
      workers?.killAll();
      pools?.kill();
      external?.killAll();
      void edge
        .stop(0)
        .catch(() => undefined)
        .then(() => {
          log().flush();
          process.exit(code);
        });
      return;
    }
    log().info({ signal, gracefulTimeoutMs: current.gracefulTimeout }, 'stopping: finishing requests in flight');
    void edge
      .stop(code === 0 ? current.gracefulTimeout : 0)
      .then(() => pools?.stop())
      .then(() => external?.stop())
      .then(() => {
        log().flush();
        process.exit(code);
      });
  };
  const halt = (why: string, code: number) => {
    complain(`portico: ${why}`);
    stop(why, false, code || 1);
  };
  if (pools) pools.onHalt = (name, result) => halt(`app "${name}": ${result.message ?? `stopped (${result.code})`}`, result.code);
  if (workers) workers.onHalt = (message) => halt(message, 1);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGQUIT'] as const) process.off(signal, early);
  process.on('SIGINT', () => stop('SIGINT', stopping === 'graceful'));
  process.on('SIGTERM', () => stop('SIGTERM', stopping === 'graceful'));
  process.on('SIGQUIT', () => stop('SIGQUIT', true));

  // Reloads run one at a time; one asked for while another runs happens after it, once.
  let reloading = false;
  let again = false;
  const reload = async (why: string): Promise<void> => {
    if (stopping) return;
    if (reloading) {
      again = true;
      return;
    }
    reloading = true;
    try {
      if (!options.load) {
        if (pools) {
          log().info(`${why}: nothing to reload (no config file); rolling the app workers`);
          pools.reload(current);
        } else log().warn(`${why}: nothing to reload (no config file)`);
        return;
      }
      const loaded = await options.load();
      const next = applyOverrides(loaded.config, options.overrides);
      // App pools outlive generations; one added or removed needs a restart (refused here,
      // before anything changes, like any other invalid reload).
      const refusal = pools ? pools.refusal(next) : Object.keys(next.apps).length > 0 ? 'apps added: restart portico to apply' : null;
      // An external command is not rolled by a reload: changing one needs a restart.
      const changed = JSON.stringify(next.externalApps) !== JSON.stringify(current.externalApps) ? 'apps with a "command" added, removed or changed: restart portico to apply' : null;
      // One process or several is decided at start.
      const mode = (next.workers > 1) !== multi ? `workers ${current.workers} → ${next.workers}: changing between one process and several needs a restart` : null;
      const problem = refusal ?? changed ?? mode;
      if (problem) throw new Error(problem);
      await edge.reload(next);
      // New app code and settings: a rolling restart, one worker at a time, each new worker
      // in the edge's group before an old one leaves it.
      pools?.reload(next);
      // The error log follows the reloaded config too (its level or destination may have changed).
      if (next.log.level !== current.log.level || next.log.error !== current.log.error) {
        log().flush();
        applyLogConfig(next);
      }
      current = next;
      watcher.follow(loaded.dependencies);
      log().info({ source: next.source, trigger: why }, 'reloaded: new config serving');
    } catch (error) {
      const problems = error instanceof ConfigError ? error.problems : undefined;
      log().error({ problem: (error as Error).message, ...(problems ? { problems } : {}), trigger: why }, 'reload refused: the running config keeps serving');
    } finally {
      reloading = false;
      if (again) {
        again = false;
        void reload(why);
      }
    }
  };
  process.on('SIGHUP', () => void reload('SIGHUP'));
  onFileChange = () => void reload('file change');
  watcher.follow(options.dependencies);
}

/**
 * `--watch`: a reload when a file of the config changes (the config file and, for a TypeScript
 * config, the local modules it imports). The folders are watched, not the files: an editor that
 * saves by writing a new file and renaming it over the old one would end a watch on the file.
 * Changes are debounced (300 ms), so one save is one reload.
 */
class ConfigWatcher {
  readonly #onChange: (() => void) | null;
  #watchers: FSWatcher[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(onChange: (() => void) | null) {
    this.#onChange = onChange;
  }

  follow(files: readonly string[]): void {
    const onChange = this.#onChange;
    if (!onChange) return;
    this.close();
    const byDir = new Map<string, Set<string>>();
    for (const file of files) {
      const names = byDir.get(dirname(file)) ?? new Set<string>();
      names.add(basename(file));
      byDir.set(dirname(file), names);
    }
    for (const [dir, names] of byDir) {
      try {
        const watcher = watch(dir, { persistent: false }, (_event, name) => {
          if (name !== null && !names.has(String(name))) return;
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

  close(): void {
    clearTimeout(this.#timer);
    for (const watcher of this.#watchers) watcher.close();
    this.#watchers = [];
  }
}
