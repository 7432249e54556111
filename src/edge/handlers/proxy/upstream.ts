/**
 * Upstream groups (nginx `upstream`): servers with keep-alive pools (undici), the balancer, and
 * health. Passive health follows nginx `max_fails`/`fail_timeout`: `maxFails` failures within
 * `failTimeout` take a server out for `failTimeout`. Active health probes a path every
 * `interval`; `fall` failed probes in a row take a server out, `rise` good ones bring it back.
 * A server that comes back ramps its weight up over `slowStart`. Backup servers take traffic
 * only while no primary is available. As nginx, a group of one server is never marked down, and
 * when every server is marked down by passive health they are all marked live again (so a
 * restart of every upstream costs one failed request at most, not `failTimeout` of 502s).
 */
import { Pool } from 'undici';
import type { ResolvedUpstream, ResolvedUpstreamServer } from '../../../config/resolved.js';
import { log } from '../../../core/log.js';
import type { RequestContext } from '../../context.js';
import { compileTemplate, type Template } from '../../variables.js';
import { createSelector, type Balanced, type Selector } from './balancer.js';
import { RawPool, type SocketAddress } from './raw-exchange.js';
import { parseUwsgiUrl, type UwsgiAddress } from './uwsgi.js';

export class UpstreamServer implements Balanced {
  /** The configured address ("http://host:port" or "unix:/path"). */
  readonly url: string;
  readonly name: string;
  /** Its share of the group's requests; the admin API may change it at runtime (`setWeight`). */
  weight: number;
  readonly backup: boolean;
  readonly maxConns: number;
  readonly pool: Pool;
  /**
   * Where a uwsgi server listens ("uwsgi://", "uwsgi+unix:"), or null for HTTP. A uwsgi server
   * is reached by proxy/uwsgi.ts, one connection per request; its `pool` is never dispatched to
   * (undici opens no connection before a dispatch) and stays only so that removal and close
   * handle every server alike.
   */
  readonly uwsgi: UwsgiAddress | null;
  /** `host:port` of the server, the default `Host` when the policy is `upstream`. */
  readonly authority: string;
  /** Where an `http://` or `unix:` server is reached on a raw socket; null for https and uwsgi. */
  readonly direct: SocketAddress | null;
  /**
   * The raw-socket connections (proxy/raw-exchange.ts) of an `http://`, `unix:` or uwsgi
   * server; null for https. A uwsgi server of an app's group (Portico's own WSGI workers, which
   * frame each answer) keeps its connections; uWSGI closes after each answer.
   */
  readonly raw: RawPool | null;
  /**
   * The server closes every connection (its last answer said `Connection: close`, as gunicorn's
   * sync workers always do): requests with a body then go on raw connections too, each of its
   * own (proxy/raw-exchange.ts), rather than through undici's pool, whose per-connection costs
   * would be paid for every request.
   * An answer that keeps its connection turns this off again.
   */
  closesConnections = false;
  /** Attempts in flight on this server now. */
  active = 0;
  /** Attempts made on this server since it joined the group (for snapshots and metrics). */
  attempts = 0;
  /** Failed attempts since it joined the group (`#failures` is only the current `failTimeout` window). */
  failuresTotal = 0;
  #failures = 0;
  #failWindowStart = 0;
  #downUntil = 0;
  /** Active health state; true until probes say otherwise (as nginx starts peers up). */
  #healthy = true;
  #probeSuccesses = 0;
  #probeFailures = 0;
  #recoveredAt = 0;
  readonly #group: ResolvedUpstream;

  constructor(config: ResolvedUpstreamServer, group: ResolvedUpstream) {
    this.#group = group;
    this.url = config.url;
    this.weight = config.weight;
    this.backup = config.backup;
    this.maxConns = config.maxConns;
    this.uwsgi = parseUwsgiUrl(config.url);
    const unix = config.url.startsWith('unix:') ? config.url.slice(5) : null;
    const origin = unix || this.uwsgi ? 'http://localhost' : config.url;
    this.name = unix ? `unix:${unix}` : this.uwsgi?.kind === 'unix' ? config.url : new URL(config.url).host;
    this.authority = unix || this.uwsgi?.kind === 'unix' ? 'localhost' : new URL(config.url).host;
    const parsed = unix || this.uwsgi ? null : new URL(config.url);
    this.direct = unix ? { kind: 'unix', path: unix } : parsed?.protocol === 'http:' ? { kind: 'tcp', host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(parsed.port || 80) } : null;
    this.raw = this.uwsgi ? new RawPool(this.uwsgi, group, 'uwsgi', group.app !== null) : this.direct ? new RawPool(this.direct, group, 'http', true) : null;
    this.pool = new Pool(origin, {
      connections: group.keepAlive.connections,
      pipelining: 1,
      keepAliveTimeout: group.keepAlive.idleTimeout,
      keepAliveMaxTimeout: group.keepAlive.idleTimeout,
      // The response-head timeout is the proxy's own precise timer (proxy/index.ts); 0 disables undici's coarse one.
      headersTimeout: 0,
      bodyTimeout: group.idleTimeout,
      connect: unix ? { socketPath: unix, timeout: group.connectTimeout } : { timeout: group.connectTimeout },
      // Request smuggling defence: a body that disagrees with its Content-Length is an error (RFC 9112 §6.3).
      strictContentLength: true,
    });
  }

  /** Out only because of passive health (failures), not active checks or its connection cap. */
  passivelyDown(now: number): boolean {
    return this.#healthy && this.#downUntil !== 0 && now < this.#downUntil && (this.maxConns === 0 || this.active < this.maxConns);
  }

  /** nginx "all peers failed, mark them as live for quick recovery": forget passive failures. */
  markLive(): void {
    this.#downUntil = 0;
    this.#failures = 0;
  }

  /** Drained by the admin API (HAProxy's `set server … state drain`): takes no new request, finishes those it has. */
  drained = false;

  /** Up (passive and active health), not drained, and under its connection cap. */
  available(now: number): boolean {
    if (!this.#healthy || this.drained) return false;
    if (this.#downUntil !== 0) {
      if (now < this.#downUntil) return false;
      this.#downUntil = 0;
      this.#recoveredAt = now;
    }
    return this.maxConns === 0 || this.active < this.maxConns;
  }

  effectiveWeightFactor(now: number): number {
    const slowStart = this.#group.slowStart;
    if (slowStart === 0 || this.#recoveredAt === 0) return 1;
    const factor = (now - this.#recoveredAt) / slowStart;
    if (factor >= 1) {
      this.#recoveredAt = 0;
      return 1;
    }
    return Math.max(factor, 0.01);
  }

  /** A failed attempt (connect error, timeout, a failing status): nginx `max_fails` within `fail_timeout`. */
  recordFailure(now: number): void {
    this.failuresTotal++;
    const { maxFails, failTimeout } = this.#group;
    // nginx: "If there is only a single server in a group, max_fails, fail_timeout and slow_start
    // parameters are ignored, and such a server will never be considered unavailable."
    if (maxFails === 0 || this.#group.servers.length === 1) return;
    if (now - this.#failWindowStart > failTimeout) {
      this.#failWindowStart = now;
      this.#failures = 0;
    }
    if (++this.#failures >= maxFails) {
      this.#downUntil = now + failTimeout;
      this.#failures = 0;
      log().warn({ upstream: this.#group.name, server: this.name, seconds: failTimeout / 1000 }, 'upstream server marked down (passive health)');
    }
  }

  /** The result of one active probe. */
  recordProbe(ok: boolean, now: number): void {
    const check = this.#group.healthCheck;
    if (!check) return;
    if (ok) {
      this.#probeFailures = 0;
      if (!this.#healthy && ++this.#probeSuccesses >= check.rise) {
        this.#healthy = true;
        this.#probeSuccesses = 0;
        this.#downUntil = 0;
        this.#recoveredAt = now;
        log().info({ upstream: this.#group.name, server: this.name }, 'upstream server healthy again (active check)');
      }
    } else {
      this.#probeSuccesses = 0;
      if (this.#healthy && ++this.#probeFailures >= check.fall) {
        this.#healthy = false;
        this.#probeFailures = 0;
        log().warn({ upstream: this.#group.name, server: this.name }, 'upstream server unhealthy (active check)');
      }
    }
  }

  get healthy(): boolean {
    return this.#healthy;
  }

  /** Plain data for the admin API and metrics (Caddy's `/reverse_proxy/upstreams` shows the same). */
  snapshot(now: number): UpstreamServerSnapshot {
    return {
      url: this.url,
      name: this.name,
      weight: this.weight,
      backup: this.backup,
      healthy: this.#healthy,
      drained: this.drained,
      down: this.#downUntil !== 0 && now < this.#downUntil,
      inFlight: this.active,
      maxConns: this.maxConns,
      attempts: this.attempts,
      failures: this.failuresTotal,
      recentFailures: this.#failures,
    };
  }
}

export interface UpstreamServerSnapshot {
  readonly url: string;
  readonly name: string;
  readonly weight: number;
  readonly backup: boolean;
  /** Up by active health checks (always true without them). */
  readonly healthy: boolean;
  /** Taken out by the admin API (drain) until enabled again. */
  readonly drained: boolean;
  /** Out by passive health (`maxFails` within `failTimeout`) until its `failTimeout` ends. */
  readonly down: boolean;
  readonly inFlight: number;
  readonly maxConns: number;
  readonly attempts: number;
  readonly failures: number;
  /** Failures counted in the current `failTimeout` window. */
  readonly recentFailures: number;
}

export interface UpstreamGroupSnapshot {
  readonly name: string;
  readonly balance: string;
  /** An app's workers (members come and go), not configured servers. */
  readonly dynamic: boolean;
  readonly servers: readonly UpstreamServerSnapshot[];
}

/** How long a request waits for a member when a dynamic group (an app's workers) has none. */
export const MEMBER_WAIT_MS = 5_000;

export class UpstreamGroup {
  readonly name: string;
  readonly config: ResolvedUpstream;
  #servers: UpstreamServer[];
  #primaries: UpstreamServer[];
  #backups: UpstreamServer[];
  readonly #primarySelector: Selector<UpstreamServer>;
  readonly #backupSelector: Selector<UpstreamServer>;
  readonly #hashKey: Template | null;
  readonly #timers: NodeJS.Timeout[] = [];
  /** Servers with a probe in flight: the next one waits for its answer (or timeout), so a server that hangs gets one probe per `timeout`, not one per `interval` piling up. */
  readonly #probing = new Set<UpstreamServer>();
  /**
   * The last choice for a request's `tried` set: the proxy asks "is there a next server?" before
   * it picks that server, and a question must not advance the balancer (two extra round-robin
   * steps per retry made weights 2:1 come out 3:1 for retried requests).
   */
  readonly #chosen = new WeakMap<ReadonlySet<UpstreamServer>, { size: number; server: UpstreamServer }>();
  /** Requests waiting for a first member of an empty dynamic group. */
  readonly #waiters = new Set<() => void>();
  #closed = false;

  constructor(config: ResolvedUpstream) {
    this.name = config.name;
    this.config = config;
    this.#servers = config.servers.map((server) => new UpstreamServer(server, config));
    this.#primaries = this.#servers.filter((s) => !s.backup);
    this.#backups = this.#servers.filter((s) => s.backup);
    this.#primarySelector = createSelector(config.balance, this.#primaries);
    this.#backupSelector = createSelector(config.balance, this.#backups);
    this.#hashKey = config.balance === 'hash' ? compileTemplate(config.hashKey) : null;
  }

  get servers(): readonly UpstreamServer[] {
    return this.#servers;
  }

  /**
   * Whether members come and go at run time (an app's workers): such a group may be empty for a
   * moment (one worker recycling), and a request then waits for a member instead of failing.
   */
  get dynamic(): boolean {
    return this.config.app !== null;
  }

  /**
   * Adds a server (an app worker that is ready). Selectors see it on the next pick: round robin and
   * least-conn work on the candidate list of each pick; hash rings are rebuilt.
   */
  addServer(url: string): UpstreamServer {
    const existing = this.#servers.find((s) => s.url === url);
    if (existing) return existing;
    const server = new UpstreamServer({ url, weight: 1, backup: false, maxConns: 0 }, this.config);
    this.#servers = [...this.#servers, server];
    this.#primaries = [...this.#primaries, server];
    this.#rebuild();
    for (const wake of [...this.#waiters]) wake();
    return server;
  }

  /** A server's new weight (the admin API): the next pick uses it; hash rings are rebuilt. False when no server has that URL or name. */
  setWeight(server: string, weight: number): boolean {
    const found = this.#servers.find((s) => s.url === server || s.name === server);
    if (!found) return false;
    found.weight = weight;
    this.#rebuild();
    return true;
  }

  /**
   * Takes a server out: no request picks it from now on. Resolves once its requests in flight
   * are done (or after `graceMs`), with its pool closed; `graceMs` 0 destroys the pool at once
   * (the server is gone: a crashed worker).
   */
  async removeServer(url: string, graceMs: number): Promise<void> {
    const server = this.#servers.find((s) => s.url === url);
    if (!server) return;
    this.#servers = this.#servers.filter((s) => s !== server);
    this.#primaries = this.#primaries.filter((s) => s !== server);
    this.#backups = this.#backups.filter((s) => s !== server);
    this.#rebuild();
    if (graceMs > 0) {
      // `active` counts attempts until their response went to the client; polling it is cheaper
      // than a callback on every request end, and removals are rare (recycle, reload).
      const deadline = Date.now() + graceMs;
      while (server.active > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    server.raw?.close();
    if (graceMs > 0 && server.active === 0) await server.pool.close().catch(() => server.pool.destroy());
    else await server.pool.destroy().catch(() => undefined);
  }

  #rebuild(): void {
    for (const [selector, members] of [
      [this.#primarySelector, this.#primaries],
      [this.#backupSelector, this.#backups],
    ] as const) {
      if ('setMembers' in selector && typeof selector.setMembers === 'function') (selector.setMembers as (all: readonly UpstreamServer[]) => void)(members);
    }
  }

  snapshot(): UpstreamGroupSnapshot {
    const now = Date.now();
    return { name: this.name, balance: this.config.balance, dynamic: this.dynamic, servers: this.#servers.map((server) => server.snapshot(now)) };
  }

  /** Waits (bounded) until a dynamic group has a server; false on timeout or when the group closes. */
  waitForServer(timeoutMs: number): Promise<boolean> {
    if (this.#servers.length > 0) return Promise.resolve(true);
    if (this.#closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#waiters.delete(wake);
        resolve(this.#servers.length > 0);
      };
      const timer = setTimeout(wake, timeoutMs);
      this.#waiters.add(wake);
    });
  }

  /** Starts active health checks (once the generation is live). */
  start(): void {
    const check = this.config.healthCheck;
    if (!check || this.#timers.length > 0) return;
    for (const server of this.#servers) {
      const probe = () => void this.#probe(server);
      probe();
      const timer = setInterval(probe, check.interval);
      timer.unref();
      this.#timers.push(timer);
    }
  }

  async #probe(server: UpstreamServer): Promise<void> {
    const check = this.config.healthCheck;
    if (!check || this.#closed || this.#probing.has(server)) return;
    this.#probing.add(server);
    let ok: boolean;
    try {
      const response = await server.pool.request({
        path: check.path,
        method: 'GET',
        headers: { host: check.host ?? server.authority, 'user-agent': 'portico-health-check' },
        headersTimeout: check.timeout,
        bodyTimeout: check.timeout,
        signal: AbortSignal.timeout(check.timeout),
      });
      await response.body.dump();
      ok = check.statuses.includes(response.statusCode) || (check.statuses.length === 0 && response.statusCode >= 200 && response.statusCode < 400);
    } catch {
      ok = false;
    } finally {
      this.#probing.delete(server);
    }
    if (!this.#closed) server.recordProbe(ok, Date.now());
  }

  /**
   * A server for this request, skipping `tried` ones; null when none is available. Asking again
   * with the same `tried` set (same size) gives the same server while it stays available.
   */
  pick(ctx: RequestContext, tried: ReadonlySet<UpstreamServer> | null, now: number): UpstreamServer | null {
    if (tried) {
      const last = this.#chosen.get(tried);
      if (last && last.size === tried.size && !tried.has(last.server) && last.server.available(now)) return last.server;
    }
    // Reviving is for a request's first attempt only: a retry never brings back a server.
    const server = this.#select(ctx, tried, now) ?? ((tried === null || tried.size === 0) && this.#markAllLive(now) ? this.#select(ctx, tried, now) : null);
    if (tried && server) this.#chosen.set(tried, { size: tried.size, server });
    return server;
  }

  #select(ctx: RequestContext, tried: ReadonlySet<UpstreamServer> | null, now: number): UpstreamServer | null {
    // A group of one available primary (the usual `proxy.to`): every algorithm picks it, and
    // none keeps state for a pick among one; skip the candidate list and the key.
    const only = this.#primaries.length === 1 ? (this.#primaries[0] as UpstreamServer) : null;
    if (only !== null && only.available(now) && !tried?.has(only)) return only;
    const key = this.config.balance === 'ip-hash' ? ctx.clientAddress : this.#hashKey ? this.#hashKey(ctx) : '';
    const primaries = this.#candidates(this.#primaries, tried, now);
    if (primaries.length > 0) return this.#primarySelector.select(primaries, key, now);
    const backups = this.#candidates(this.#backups, tried, now);
    if (backups.length > 0) return this.#backupSelector.select(backups, key, now);
    return null;
  }

  /**
   * When no server of the group is available and some are out only by passive health, mark them
   * live again (nginx does this when all peers failed). Servers out by active checks or at their
   * connection cap stay out. Returns whether any server was revived.
   */
  #markAllLive(now: number): boolean {
    if (this.#servers.some((server) => server.available(now))) return false;
    const down = this.#servers.filter((server) => server.passivelyDown(now));
    for (const server of down) server.markLive();
    if (down.length > 0) log().warn({ upstream: this.name, servers: down.length }, 'every upstream server was marked down: marking them live again');
    return down.length > 0;
  }

  #candidates(servers: readonly UpstreamServer[], tried: ReadonlySet<UpstreamServer> | null, now: number): UpstreamServer[] {
    const out: UpstreamServer[] = [];
    for (const server of servers) if (server.available(now) && !tried?.has(server)) out.push(server);
    return out;
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const wake of [...this.#waiters]) wake();
    for (const timer of this.#timers) clearInterval(timer);
    for (const server of this.#servers) {
      server.raw?.close();
    }
    await Promise.all(this.#servers.map((server) => server.pool.close().catch(() => server.pool.destroy())));
  }
}
