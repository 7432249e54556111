/**
 * An edge worker process (node:cluster worker, forked by supervisor/edge-workers.ts): one
 * EdgeServer on the listening sockets the supervisor shares with it, serving the config the
 * supervisor sends. The apps' worker pools are not here (they exist once per node, in the
 * supervisor): this process reaches them over their sockets through the app groups, whose
 * members the supervisor announces.
 *
 * Signals: the terminal's (SIGINT, SIGHUP, SIGQUIT, SIGTTIN, SIGTTOU go to the whole process
 * group) are ignored: the supervisor decides and tells this process over IPC. SIGTERM alone (a
 * service manager that signals every process of the group, systemd's default) drains gracefully,
 * as the supervisor would have asked. The worker exits when the supervisor's channel closes
 * (node:cluster does that), so it never outlives it.
 */
import type { ResolvedConfig } from '../config/resolved.js';
import { NodeBus, type IpcChannel } from '../core/bus.js';
import { IpcLimitStore } from '../core/limit-ipc.js';
import { CacheZones } from '../edge/handlers/cache/zones.js';
import { log, reopenErrorLog, useErrorLog } from '../core/log.js';
import type { ControlFromEdge, EdgeBus, FromEdge, Members, ToEdge } from '../edge/bus.js';
import { ManagedCertificates } from '../edge/listen/managed-certificates.js';
import { EdgeMetrics } from '../edge/metrics.js';
import { TicketKeys } from '../edge/listen/ticket-keys.js';
import { createEdgeEnvironment } from '../edge/environment.js';
import { UpstreamGroup } from '../edge/handlers/proxy/upstream.js';
import { EdgeServer } from '../edge/server.js';

/** This process's end of the node bus: control, limits and cache purges, one channel (edge/bus.ts). */
const bus: EdgeBus = new NodeBus<FromEdge, ToEdge>(process as IpcChannel);
let server: EdgeServer | null = null;
/** Settles once the first start is done (served or failed): a reload waits for it. */
let started: Promise<void> = Promise.resolve();
let config: ResolvedConfig | null = null;
const groups = new Map<string, UpstreamGroup>();
let stopping = false;

function send(message: ControlFromEdge): void {
  bus.send(message);
}

/** The error log as the config says, its file reopened on every reload (with the access log, which each generation opens anew). */
function applyLog(next: ResolvedConfig): void {
  useErrorLog({ level: next.log.level, destination: next.log.error, format: next.log.format });
}

/** The node's TLS ticket keys, as the supervisor sends them (start, then each rotation). */
process.title = 'portico: edge worker';
const ticketKeys = new TicketKeys();
/** The node's managed certificates, as the supervisor sends them (after the start message, then each new one). */
const certificates = new ManagedCertificates(ticketKeys);
certificates.asker = (name, issuer) => bus.send({ type: 'portico:tls:want', name, issuer });

/** This worker's metrics, once a config has the admin listener (then kept, across reloads). */
let metrics: EdgeMetrics | null = null;
function followAdmin(next: ResolvedConfig): void {
  if (metrics || next.admin === null) return;
  metrics = new EdgeMetrics(() => server?.snapshot() ?? null);
  metrics.start();
}

async function start(initial: ResolvedConfig, members: Members, keys: string): Promise<void> {
  followAdmin(initial);
  ticketKeys.set(Buffer.from(keys, 'base64'));
  config = initial;
  applyLog(initial);
  for (const upstream of Object.values(initial.upstreams)) {
    if (upstream.app === null) continue;
    const group = new UpstreamGroup(upstream);
    for (const url of members[upstream.name] ?? []) group.addServer(url);
    groups.set(upstream.name, group);
  }
  // The node's state, handed in: limits are the supervisor's (asked over the bus), cache purges
  // go out on the bus and come back from the other workers through it.
  // With `state`, the cache zones also keep small entries in the fleet's Redis, and ACME
  // challenges are read from there (from the first config, as the supervisor does: a reload that
  // changes `state` is refused).
  // Loaded only then (node-redis adds ~0.2 s to a process's start).
  const shared = initial.state ? new (await import('../state/redis.js')).SharedRedis(initial.state, 'edge worker', 'the shared cache tier is skipped (lookups miss it, nothing is stored there) and ACME challenges go unanswered') : null;
  const environment = createEdgeEnvironment({ sharedState: shared, limits: new IpcLimitStore(bus), bus, sharedUpstreams: groups, ticketKeys, certificates, cacheZones: new CacheZones(bus, shared) });
  const edge = new EdgeServer(initial, environment);
  try {
    await edge.start();
  } catch (error) {
    const e = error as { code?: string; message?: string };
    send({ type: 'portico:edge:start-failed', code: e.code ?? 'ERR_LISTEN', message: e.message ?? String(error) });
    log().flush();
    setTimeout(() => process.exit(1), 50);
    return;
  }
  server = edge;
  send({ type: 'portico:edge:listening', addresses: edge.addresses() });
}

async function reload(seq: number, next: ResolvedConfig): Promise<void> {
  await started;
  if (!server || stopping) return send({ type: 'portico:edge:reloaded', seq, error: 'not serving' });
  try {
    await server.reload(next);
    followAdmin(next);
    applyLog(next);
    config = next;
    send({ type: 'portico:edge:reloaded', seq, error: null });
  } catch (error) {
    send({ type: 'portico:edge:reloaded', seq, error: (error as Error).message });
  }
}

async function stop(graceMs: number): Promise<void> {
  if (stopping) {
    if (graceMs === 0) process.exit(0);
    return;
  }
  stopping = true;
  await server?.stop(graceMs);
  await Promise.all([...groups.values()].map((group) => group.close().catch(() => undefined)));
  log().flush();
  process.exit(0);
}

bus.on('portico:edge:start', (message) => {
  started = start(message.config, message.members, message.ticketKeys);
});
bus.on('portico:edge:ticket-keys', (message) => ticketKeys.set(Buffer.from(message.keys, 'base64')));
bus.on('portico:tls:certificate', (message) => certificates.set(message.name, { cert: message.cert, key: message.key }));
bus.on('portico:tls:refused', (message) => certificates.refuse(message.name));
// The admin API's view of this worker: its metrics (counted from the start when the config has an
// admin listener) and its edge snapshot.
bus.on('portico:observe:upstream', (message) => {
  void started.then(() => bus.send({ type: 'portico:observe:reply', seq: message.seq, data: server?.changeUpstream(message.group, message.server, message.change) ?? false }));
});
bus.on('portico:observe:purge', (message) => {
  void started
    .then(() => server?.purgeCache(message.zone, message.key, message.prefix) ?? null)
    .then((purged) => bus.send({ type: 'portico:observe:reply', seq: message.seq, data: purged }));
});
bus.on('portico:observe:get', (message) => {
  void (async () => {
    await started;
    const data = message.what === 'metrics' ? ((await metrics?.registry.getMetricsAsJSON()) ?? []) : (server?.snapshot() ?? null);
    bus.send({ type: 'portico:observe:reply', seq: message.seq, data });
  })();
});
bus.on('portico:edge:reload', (message) => void reload(message.seq, message.config));
bus.on('portico:edge:member-add', (message) => groups.get(message.group)?.addServer(message.url));
bus.on('portico:edge:member-remove', (message) => {
  const group = groups.get(message.group);
  void (group ? group.removeServer(message.url, message.graceMs) : Promise.resolve()).finally(() => send({ type: 'portico:edge:removed', seq: message.seq }));
});
bus.on('portico:edge:stop', (message) => void stop(message.graceMs));
function reopenLogs(): void {
  reopenErrorLog();
  server?.reopenLogs();
}
bus.on('portico:edge:reopen-logs', reopenLogs);
// A SIGUSR1 to the whole process group (or to this worker) reopens this worker's logs too; without
// a listener node would start its inspector instead.
process.on('SIGUSR1', reopenLogs);
send({ type: 'portico:edge:hello' });
for (const signal of ['SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGTTIN', 'SIGTTOU'] as const) process.on(signal, () => undefined);
process.on('SIGTERM', () => {
  // From outside (the whole process group): the supervisor hears of it before the exit.
  send({ type: 'portico:edge:signalled', signal: 'SIGTERM' });
  void stop(config?.gracefulTimeout ?? 30_000);
});
