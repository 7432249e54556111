/**
 * The supervisor's edge worker processes (`workers` > 1): N node:cluster workers, each an
 * EdgeServer (supervisor/edge-worker.ts) on the same listening sockets.
 *
 * Why node:cluster with SCHED_NONE (the kernel distributes accepts), not round robin and not our
 * own handle passing:
 *   - The listening sockets belong to this process: cluster's primary binds each address (a
 *     SharedHandle) and hands the same socket to every worker that listens on it; the workers
 *     accept from it directly, as nginx's workers share one listening socket. A worker that dies
 *     takes nothing with it: the others keep accepting, and its replacement gets the same socket.
 *     Addresses added or removed by a reload are opened and closed by each worker's own
 *     EdgeServer.reload, through the same primary (the socket closes when its last worker lets go).
 *   - Round robin (SCHED_RR, or the app arbiter's hand-over) makes this one process accept every
 *     connection and pass it over IPC: a per-connection cost and a single-core bottleneck in front
 *     of N edge processes. The arbiter pays it because it must choose which app worker gets a
 *     connection (never a booting or retiring one); an edge worker is ready or not listening at
 *     all, so the kernel may choose.
 *   - Node offers no public way to hold a bound socket without accepting on it (nor `reusePort`
 *     on Node 20), so hand-written handle passing would have this process accept too.
 * The price is the one Node's docs name: the kernel's choice can be uneven between processes
 * (a busy worker accepts less). Measured here (2 cores, loopback, 2 workers): see docs/performance.md.
 *
 * Crashes: a worker that dies is replaced at once, with the app arbiter's crash-loop backoff
 * (core/crash-streak.ts); after 6 crashes in a row the supervisor gives up (`onHalt`).
 */
import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import type { ResolvedConfig } from '../config/resolved.js';
import { ask, NodeBus } from '../core/bus.js';
import { CrashStreak, GROUP_SIGNAL_WINDOW_MS } from '../core/crash-streak.js';
import { PorticoError } from '../core/errors.js';
import { serveLimits } from '../core/limit-ipc.js';
import type { LimitStore } from '../core/limit-store.js';
import { log } from '../core/log.js';
import type { ManagedCertificates } from '../edge/listen/managed-certificates.js';
import type { TicketKeys } from '../edge/listen/ticket-keys.js';
import type { BoundAddress, CachePurge, ControlFromEdge, ControlToEdge, FromEdge, Members, ObserveToEdge, SupervisorBus, TlsToEdge, ToEdge, UpstreamChange } from '../edge/bus.js';


const CONTROL_FROM_EDGE: readonly ControlFromEdge['type'][] = ['portico:edge:hello', 'portico:edge:listening', 'portico:edge:start-failed', 'portico:edge:reloaded', 'portico:edge:removed', 'portico:edge:signalled'];

/** Consecutive edge worker crashes before the supervisor gives up. */
const MAX_CRASHES = 6;

type State = 'starting' | 'serving' | 'stopping';

interface EdgeRecord {
  readonly worker: Worker;
  /** The supervisor's end of this worker's node bus. */
  readonly bus: NodeBus<ToEdge, FromEdge>;
  readonly pid: number;
  readonly startedAt: number;
  /** It said hello: messages may be sent to it (its start carried the config and members of that moment). */
  greeted: boolean;
  state: State;
  /** Its exit is expected (a stop, fewer workers): not a crash. */
  planned: boolean;
  failedStart: string | null;
  readonly listening: Promise<BoundAddress[] | PorticoError>;
  settle(result: BoundAddress[] | PorticoError): void;
  readonly exited: Promise<void>;
  /** Releases what node-wide state (limits) this worker held, and closes its bus. */
  detachState(): void;
}

interface Pending {
  readonly waiting: Set<number>;
  readonly errors: string[];
  resolve(): void;
}

function entry(): string {
  // Built: dist/supervisor/edge-worker.js. From source (tsx): src/supervisor/edge-worker.ts.
  const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
  return fileURLToPath(new URL(`./edge-worker.${ext}`, import.meta.url));
}

/** A worker's state, as plain data (the admin API and metrics read it). */
export interface EdgeWorkerSnapshot {
  readonly pid: number;
  readonly state: State;
  readonly startedAt: number;
}

export class EdgeWorkers {
  #config: ResolvedConfig;
  #target: number;
  readonly #members: () => Members;
  /** The node's limit state, which every worker asks over its bus. */
  readonly #limits: LimitStore;
  readonly #workers = new Map<number, EdgeRecord>();
  readonly #crashes = new CrashStreak();
  readonly #pending = new Map<number, Pending>();
  #seq = 0;
  #stopping = false;
  /** The first full set listens: from now on a worker that dies is replaced (before, start() fails). */
  #started = false;
  #addresses: BoundAddress[] = [];
  #respawnTimer: NodeJS.Timeout | undefined;
  /** Called when workers crash in a loop and the supervisor gives up. */
  onHalt: ((message: string) => void) | null = null;
  /** A worker purged a cache key: tells the other nodes (set when the config has `state`). */
  onPurge: ((purge: { readonly zone: string; readonly key: string; readonly prefix: boolean }) => Promise<void>) | null = null;

  /** `members`: the current members of the app groups, for a worker that starts; `limits`: the node's limit store. */
  constructor(config: ResolvedConfig, count: number, members: () => Members, limits: LimitStore, ticketKeys: TicketKeys, certificates: ManagedCertificates) {
    this.#config = config;
    this.#certificates = certificates;
    // A managed certificate, new or renewed, reaches every worker that has started (one that starts later gets them all after its start message).
    certificates.onChange((name, pair) => {
      for (const record of this.#workers.values()) if (record.state !== 'stopping') this.#send(record, { type: 'portico:tls:certificate', name, cert: pair.cert, key: pair.key });
    });
    this.#target = Math.max(1, count);
    this.#members = members;
    this.#limits = limits;
    this.#ticketKeys = ticketKeys;
    // A rotation reaches every worker that has started (one that starts later gets the keys in its start message).
    ticketKeys.onChange((keys) => {
      for (const record of this.#workers.values()) if (record.state !== 'stopping') this.#send(record, { type: 'portico:edge:ticket-keys', keys: keys.toString('base64') });
    });
  }

  /** The node's TLS session ticket keys: every worker encrypts and reads tickets with the same ones. */
  readonly #ticketKeys: TicketKeys;
  /** The node's managed certificates (the certificate manager fills them). */
  readonly #certificates: ManagedCertificates;

  /**
   * Asks every serving worker for its metrics (prom-client JSON) or its edge snapshot; a worker
   * that has not answered within `timeoutMs` is left out (one silent worker does not fail a scrape).
   */
  observe(what: 'metrics' | 'snapshot', timeoutMs: number): Promise<{ pid: number; data: unknown }[]> {
    return this.#askAll((seq) => ({ type: 'portico:observe:get', seq, what }), timeoutMs);
  }

  /** Drains, enables or weighs an upstream server in every worker; resolves with each answering worker's "found it". */
  changeUpstream(group: string, server: string, change: UpstreamChange, timeoutMs: number): Promise<{ pid: number; data: unknown }[]> {
    return this.#askAll((seq) => ({ type: 'portico:observe:upstream', seq, group, server, change }), timeoutMs);
  }

  /**
   * Purges a cache key in one worker: it purges its memory tier and the zone's disk tier, and
   * announces the purge, which this supervisor relays to the other workers' memory tiers (as a
   * PURGE request does). Resolves with the count purged, or null (no such zone, no worker).
   */
  async purge(zone: string, key: string, prefix: boolean, timeoutMs: number): Promise<number | null> {
    const answers = await this.#askAll((seq) => ({ type: 'portico:observe:purge', seq, zone, key, prefix }), timeoutMs, 1);
    return (answers[0]?.data as number | null | undefined) ?? null;
  }

  /**
   * Another node's purge (src/state/purges.ts): one worker drops it from its memory tier and the
   * node's disk tier, the others from their memory tiers.
   */
  async purgeFromElsewhere(purge: { readonly zone: string; readonly key: string; readonly prefix: boolean }): Promise<void> {
    const serving = [...this.#workers.values()].filter((record) => record.state === 'serving');
    await Promise.all(serving.map((record, i) => ask(record.bus, { type: 'portico:cache:purge', seq: ++this.#observeSeq, ...purge, local: i === 0 }, 'portico:cache:purged', 1_000)));
  }

  /** Relays a worker's purge to `others`; resolves once each has answered (one that does not within a second is left out) with the most entries one dropped. */
  async #relayPurge(others: EdgeRecord[], purge: CachePurge): Promise<number> {
    const replies = await Promise.all(others.map((record) => ask(record.bus, { ...purge, seq: ++this.#observeSeq }, 'portico:cache:purged', 1_000)));
    return replies.reduce((most, reply) => Math.max(most, reply?.purged ?? 0), 0);
  }

  async #askAll(make: (seq: number) => ObserveToEdge, timeoutMs: number, limit = Infinity): Promise<{ pid: number; data: unknown }[]> {
    const records = [...this.#workers.values()].filter((record) => record.state === 'serving').slice(0, limit);
    const answers = await Promise.all(
      records.map(async (record) => {
        const reply = await ask(record.bus, make(++this.#observeSeq), 'portico:observe:reply', timeoutMs);
        return reply ? { pid: record.pid, data: reply.data } : null;
      }),
    );
    return answers.filter((answer) => answer !== null);
  }

  #observeSeq = 0;

  /** Every worker reopens its log files (SIGUSR1). */
  reopenLogs(): void {
    for (const record of this.#workers.values()) if (record.state !== 'stopping') this.#send(record, { type: 'portico:edge:reopen-logs' });
  }

  snapshot(): EdgeWorkerSnapshot[] {
    return [...this.#workers.values()].map((r) => ({ pid: r.pid, state: r.state, startedAt: r.startedAt }));
  }

  pids(): number[] {
    return [...this.#workers.values()].filter((r) => r.state !== 'stopping').map((r) => r.pid);
  }

  addresses(): BoundAddress[] {
    return this.#addresses;
  }

  describe(): string[] {
    return [`edge workers ${this.pids().length} (pids ${this.pids().join(', ')}), sharing the listening sockets`];
  }

  /** Forks the workers; resolves once every one listens, or throws (stopping them) when one cannot. */
  async start(): Promise<void> {
    // Frozen at the first fork; must be set before setupPrimary.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ exec: entry(), execArgv: process.execArgv, args: [] });
    const records = Array.from({ length: this.#target }, () => this.#fork());
    const results = await Promise.all(records.map((r) => r.listening));
    const failure = results.find((r): r is PorticoError => r instanceof PorticoError);
    if (failure) {
      await this.stop(0);
      throw failure;
    }
    this.#addresses = results[0] as BoundAddress[];
    this.#started = true;
  }

  #send(record: EdgeRecord, message: ControlToEdge | TlsToEdge): boolean {
    if (!record.greeted) return false;
    return record.bus.send(message);
  }

  /**
   * The one place where node-wide state is attached to an edge worker, on its bus: the node's
   * limit store answers its `portico:limit…` questions, and the cache purges it announces are
   * relayed to every other worker's memory tier. The returned function releases the worker's
   * concurrency slots when it exits.
   */
  #attachNodeState(bus: SupervisorBus, worker: Worker): () => void {
    const detachLimits = serveLimits(this.#limits, bus);
    const detachCache = bus.on('portico:cache:purge', (message) => {
      const others = [...this.#workers.values()].filter((other) => other.worker !== worker && other.state === 'serving');
      const publish = this.onPurge?.({ zone: message.zone, key: message.key, prefix: message.prefix });
      void Promise.all([this.#relayPurge(others, message), publish]).then(([purged]) => bus.send({ type: 'portico:cache:purged', seq: message.seq, purged }));
    });
    // On demand: the node's set answers (it asks the certificate manager when it has none); the
    // answer goes to the worker that asked (a new certificate also reaches all of them, above).
    const detachTls = bus.on('portico:tls:want', (message) => {
      void this.#certificates.want(message.name, message.issuer).then((context) => {
        const pair = context ? this.#certificates.pairs().find(([name]) => name === message.name)?.[1] : undefined;
        bus.send(pair ? { type: 'portico:tls:certificate', name: message.name, cert: pair.cert, key: pair.key } : { type: 'portico:tls:refused', name: message.name });
      });
    });
    return () => {
      detachLimits();
      detachCache();
      detachTls();
    };
  }

  #fork(): EdgeRecord {
    const worker = cluster.fork();
    const bus = new NodeBus<ToEdge, FromEdge>(worker);
    const detachNodeState = this.#attachNodeState(bus, worker);
    let settle: (result: BoundAddress[] | PorticoError) => void = () => undefined;
    const listening = new Promise<BoundAddress[] | PorticoError>((resolve) => (settle = resolve));
    const record: EdgeRecord = {
      worker,
      bus,
      pid: worker.process.pid ?? 0,
      startedAt: Date.now(),
      greeted: false,
      state: 'starting',
      planned: false,
      failedStart: null,
      listening,
      settle,
      exited: new Promise((resolve) => worker.once('exit', () => resolve())),
      detachState: () => {
        detachNodeState();
        bus.close();
      },
    };
    this.#workers.set(worker.id, record);
    const onControl = (message: ControlFromEdge) => this.#onMessage(record, message);
    for (const type of CONTROL_FROM_EDGE) bus.on(type, onControl);
    worker.on('exit', (code: number | null, signal: string | null) => this.#onExit(record, code, signal));
    worker.on('error', (error) => log().error({ err: error, worker: record.pid }, 'edge worker process error'));
    log().info({ worker: record.pid }, 'edge worker started');
    return record;
  }

  #onMessage(record: EdgeRecord, message: ControlFromEdge): void {
    switch (message.type) {
      case 'portico:edge:hello':
        if (record.greeted) break;
        record.greeted = true;
        // The config and members of this moment; every later change reaches it as a message.
        if (record.state === 'stopping') this.#send(record, { type: 'portico:edge:stop', graceMs: 0 });
        else {
          this.#send(record, { type: 'portico:edge:start', config: this.#config, members: this.#members(), ticketKeys: this.#ticketKeys.current.toString('base64') });
          for (const [name, pair] of this.#certificates.pairs()) this.#send(record, { type: 'portico:tls:certificate', name, cert: pair.cert, key: pair.key });
        }
        break;
      case 'portico:edge:listening':
        if (record.state === 'starting') record.state = 'serving';
        record.settle(message.addresses);
        break;
      case 'portico:edge:start-failed':
        record.failedStart = message.message;
        record.settle(new PorticoError(message.code === 'ERR_LISTEN' ? 'ERR_LISTEN' : 'ERR_EDGE_WORKER', message.message));
        break;
      case 'portico:edge:signalled':
        this.#stoppedFromOutside(record);
        break;
      case 'portico:edge:reloaded':
      case 'portico:edge:removed': {
        const pending = this.#pending.get(message.seq);
        if (!pending) break;
        if (message.type === 'portico:edge:reloaded' && message.error !== null) pending.errors.push(`edge worker ${record.pid}: ${message.error}`);
        this.#settlePending(message.seq, record.worker.id);
        break;
      }
    }
  }

  #settlePending(seq: number, id: number): void {
    const pending = this.#pending.get(seq);
    if (!pending) return;
    pending.waiting.delete(id);
    if (pending.waiting.size === 0) {
      this.#pending.delete(seq);
      pending.resolve();
    }
  }

  /** Sends a message with a `seq` to every live worker; resolves with their errors once each answered (or exited, or `timeoutMs` passed). */
  #ask(make: (seq: number) => ControlToEdge, timeoutMs: number): Promise<string[]> {
    const seq = ++this.#seq;
    const message = make(seq);
    const waiting = new Set<number>();
    for (const record of this.#workers.values()) if (record.state !== 'stopping' && this.#send(record, message)) waiting.add(record.worker.id);
    if (waiting.size === 0) return Promise.resolve([]);
    return new Promise((resolve) => {
      const errors: string[] = [];
      const timer = setTimeout(() => {
        this.#pending.delete(seq);
        errors.push(`no answer from ${waiting.size} edge worker(s) within ${timeoutMs} ms`);
        resolve(errors);
      }, timeoutMs);
      this.#pending.set(seq, {
        waiting,
        errors,
        resolve: () => {
          clearTimeout(timer);
          resolve(errors);
        },
      });
    });
  }

  /** A member joins an app group in every worker. */
  addMember(group: string, url: string): void {
    for (const record of this.#workers.values()) if (record.state !== 'stopping') this.#send(record, { type: 'portico:edge:member-add', group, url });
  }

  /** A member leaves an app group in every worker; resolves once each has no request in flight to it (at most `graceMs`). */
  async removeMember(group: string, url: string, graceMs: number): Promise<void> {
    await this.#ask((seq) => ({ type: 'portico:edge:member-remove', seq, group, url, graceMs }), graceMs + 2000);
  }

  /**
   * Every worker swaps in `next` (in-flight requests finish on the old generation). When one cannot
   * (a new address that cannot be opened), the others go back to the running config and this
   * throws: all serve the same config, the old one.
   */
  async reload(next: ResolvedConfig): Promise<void> {
    const previous = this.#config;
    this.#config = next;
    const errors = await this.#ask((seq) => ({ type: 'portico:edge:reload', seq, config: next }), 30_000);
    if (errors.length > 0) {
      this.#config = previous;
      await this.#ask((seq) => ({ type: 'portico:edge:reload', seq, config: previous }), 30_000);
      throw new Error(errors.join('; '));
    }
    const count = typeof next.workers === 'number' ? next.workers : null;
    if (count !== null && count !== this.#target) this.#resize(count);
  }

  /** More workers (forked now) or fewer (the newest drain). */
  #resize(count: number): void {
    this.#target = Math.max(1, count);
    const live = [...this.#workers.values()].filter((r) => r.state !== 'stopping');
    for (let i = live.length; i < this.#target; i++) this.#fork();
    for (const record of live.sort((a, b) => b.startedAt - a.startedAt).slice(0, Math.max(0, live.length - this.#target))) this.#stopOne(record, this.#config.gracefulTimeout);
    log().info({ workers: this.#target }, 'edge workers: new count');
  }

  #stopOne(record: EdgeRecord, graceMs: number): void {
    record.state = 'stopping';
    record.planned = true;
    // A worker that has not said hello yet is told to stop when it does (above).
    if (!this.#send(record, { type: 'portico:edge:stop', graceMs }) && record.greeted) record.worker.process.kill('SIGKILL');
    const timer = setTimeout(() => record.worker.process.kill('SIGKILL'), graceMs + 2000);
    void record.exited.then(() => clearTimeout(timer));
  }

  /**
   * A worker stops on a SIGTERM portico did not send (core/crash-streak.ts GROUP_SIGNAL_WINDOW_MS):
   * not a crash; it is replaced after the window, unless the supervisor is told to stop within it.
   */
  #stoppedFromOutside(record: EdgeRecord): void {
    if (record.planned || this.#stopping || !this.#started) return;
    record.planned = true;
    record.state = 'stopping';
    log().debug({ worker: record.pid }, 'edge worker received SIGTERM from outside portico');
    clearTimeout(this.#respawnTimer);
    this.#respawnTimer = setTimeout(() => {
      // Said only when it was not a stop of the whole group (the supervisor was not told to stop).
      if (this.#stopping) return;
      log().warn({ worker: record.pid }, `edge worker ${record.pid} stopped on a SIGTERM portico did not send; replacing it`);
      this.#refill();
    }, GROUP_SIGNAL_WINDOW_MS);
  }

  #onExit(record: EdgeRecord, code: number | null, signal: string | null): void {
    // Killed by a SIGTERM before its handler was installed: the same.
    if (signal === 'SIGTERM') this.#stoppedFromOutside(record);
    this.#workers.delete(record.worker.id);
    record.detachState();
    record.settle(new PorticoError('ERR_EDGE_WORKER', record.failedStart ?? `edge worker ${record.pid} exited (${signal ?? code}) before listening`));
    for (const seq of [...this.#pending.keys()]) this.#settlePending(seq, record.worker.id);
    if (record.planned || this.#stopping || !this.#started) {
      log().info({ worker: record.pid, code, signal }, 'edge worker exited');
      return;
    }
    const lived = Date.now() - record.startedAt;
    const { streak, delayMs } = this.#crashes.crashed(lived, record.state === 'starting');
    const why = record.failedStart ?? `exit ${signal ?? code}`;
    if (streak >= MAX_CRASHES) {
      log().fatal({ worker: record.pid }, `edge workers crashed ${streak} times in a row, giving up (last: ${why})`);
      this.onHalt?.(`edge workers crashed ${streak} times in a row, giving up (last: ${why})`);
      return;
    }
    log().error({ worker: record.pid, code, signal, lifetimeMs: lived, crashes: streak, restartInMs: delayMs }, `edge worker ${record.pid} died (${why}); replacing it ${delayMs ? `in ${delayMs} ms` : 'now'} (crash ${streak} of ${MAX_CRASHES} in a row)`);
    clearTimeout(this.#respawnTimer);
    this.#respawnTimer = setTimeout(() => this.#refill(), delayMs);
  }

  #refill(): void {
    if (this.#stopping) return;
    const live = [...this.#workers.values()].filter((r) => r.state !== 'stopping').length;
    for (let i = live; i < this.#target; i++) {
      const record = this.#fork();
      void record.listening.then((result) => {
        if (!(result instanceof PorticoError)) log().info({ worker: record.pid }, 'edge worker replaced: the new one listens');
      });
    }
  }

  /** Every worker finishes its requests in flight for at most `graceMs` (0: closes everything now) and exits; SIGKILL for any still there 2 s later. */
  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#respawnTimer);
    const records = [...this.#workers.values()];
    for (const record of records) this.#stopOne(record, graceMs);
    await Promise.all(records.map((r) => r.exited));
  }

  /** Last resort on exit: no worker outlives us (they also exit when our IPC channel closes). */
  killAll(): void {
    for (const record of this.#workers.values()) record.worker.process.kill('SIGKILL');
  }
}
