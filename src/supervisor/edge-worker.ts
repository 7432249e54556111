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
import type { ResolvedConfig } from '../config/resolve.js';
import { createLogger, log, setLogger } from '../core/log.js';
import { UpstreamGroup } from '../edge/handlers/proxy/upstream.js';
import { EdgeServer } from '../edge/server.js';
import { isToEdge, type FromEdge, type Members, type ToEdge } from './edge-ipc.js';

let server: EdgeServer | null = null;
/** Settles once the first start is done (served or failed): a reload waits for it. */
let started: Promise<void> = Promise.resolve();
let config: ResolvedConfig | null = null;
const groups = new Map<string, UpstreamGroup>();
let stopping = false;

function send(message: FromEdge): void {
  if (process.connected) process.send?.(message);
}

function applyLog(next: ResolvedConfig, previous: ResolvedConfig | null): void {
  if (previous && previous.log.level === next.log.level && previous.log.error === next.log.error) return;
  log().flush();
  setLogger(createLogger({ level: next.log.level, destination: next.log.error }));
}

async function start(initial: ResolvedConfig, members: Members): Promise<void> {
  config = initial;
  applyLog(initial, null);
  for (const upstream of Object.values(initial.upstreams)) {
    if (upstream.app === null) continue;
    const group = new UpstreamGroup(upstream);
    for (const url of members[upstream.name] ?? []) group.addServer(url);
    groups.set(upstream.name, group);
  }
  const edge = new EdgeServer(initial, { sharedUpstreams: groups });
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
    applyLog(next, config);
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

function onMessage(message: ToEdge): void {
  switch (message.type) {
    case 'portico:edge:start':
      started = start(message.config, message.members);
      break;
    case 'portico:edge:reload':
      void reload(message.seq, message.config);
      break;
    case 'portico:edge:member-add':
      groups.get(message.group)?.addServer(message.url);
      break;
    case 'portico:edge:member-remove': {
      const group = groups.get(message.group);
      void (group ? group.removeServer(message.url, message.graceMs) : Promise.resolve()).finally(() => send({ type: 'portico:edge:removed', seq: message.seq }));
      break;
    }
    case 'portico:edge:stop':
      void stop(message.graceMs);
      break;
  }
}

process.on('message', (message: unknown) => {
  if (isToEdge(message)) onMessage(message);
});
send({ type: 'portico:edge:hello' });
for (const signal of ['SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGTTIN', 'SIGTTOU'] as const) process.on(signal, () => undefined);
process.on('SIGTERM', () => void stop(config?.gracefulTimeout ?? 30_000));
