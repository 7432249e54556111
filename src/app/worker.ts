/**
 * An app worker: a child process forked by the arbiter. It loads the app once, then serves the
 * connections the arbiter hands it. It ticks every second (the heartbeat: a worker stuck in a busy
 * loop stops ticking and is killed), recycles itself after max requests, drains on `stop` or
 * SIGTERM, and exits as soon as the arbiter goes away (the IPC channel closes), so workers never
 * outlive the supervisor.
 */
import { rmdirSync, rmSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { dirname } from 'node:path';
import { flushLog, log } from '../core/log.js';
import { AppError } from './errors.js';
import { createAppListener } from './gateway/listener.js';
import { loadWorkerApp } from './gateway/load-app.js';
import { CRASH_DRAIN_MS, TICK_MS, isToWorker, type FromWorker, type WorkerSettings } from './ipc.js';

/**
 * While draining (standalone), how long an idle connection (a fresh one, or a keep-alive one
 * between requests) may still send a request, answered with `Connection: close`.
 */
const IDLE_CONNECTION_GRACE_MS = 2000;

/** What the worker knows of one connection; kept on the socket itself, so a request finds it without a lookup. */
interface Connection {
  /** Responses in progress (more than one when requests are pipelined). */
  busy: number;
  /** Requests answered. */
  served: number;
  /** The newest response begun on it, until it closes: the one a drain marks Connection: close. */
  latest: ServerResponse | null;
}
const CONNECTION = Symbol('portico.connection');
type TrackedSocket = Socket & { [CONNECTION]?: Connection };

const send = (message: FromWorker, done?: () => void): void => {
  if (process.connected && process.send) process.send(message, undefined, {}, () => done?.());
  else done?.();
};

async function main(): Promise<void> {
  const raw = process.argv[2];
  if (!raw || !process.send) {
    process.stderr.write('portico: app/worker.js is started by the arbiter (portico app), not directly\n');
    process.exit(2);
  }
  const settings = JSON.parse(raw) as WorkerSettings;
  // `ps` and `top` tell the workers apart (gunicorn's setproctitle).
  process.title = settings.title;
  let requests = 0;
  let inFlight = 0;
  let draining = false;
  let awaitingCrashAck = false;
  /** Every open connection (each socket also carries its Connection, for the per-request path). */
  const connections = new Map<Socket, Connection>();
  const pending = new Set<Promise<unknown>>();

  // The supervisor is gone (crashed, SIGKILLed): nobody will hand us connections or reap us.
  // Integrated mode: nobody will remove our socket either; the last worker out removes the
  // (then empty) private folder too.
  process.on('disconnect', () => {
    if (settings.socketPath) {
      rmSync(settings.socketPath, { force: true });
      try {
        rmdirSync(dirname(settings.socketPath));
      } catch {
        // Other workers' sockets are still there: the last one removes the folder.
      }
    }
    process.exit(0);
  });
  // Ctrl-C reaches the whole process group; the arbiter decides how workers stop, not the terminal.
  // So do a hangup and `kill -HUP -<pgid>` (a SIGHUP killed every worker at once, which the
  // arbiter then counted as crashes) and the job-control signals meant for the arbiter.
  for (const signal of ['SIGINT', 'SIGHUP', 'SIGTTIN', 'SIGTTOU'] as const) process.on(signal, () => undefined);
  // A SIGTERM from outside (the whole process group): the arbiter hears of it first, so it does
  // not take the exit for a crash.
  process.on('SIGTERM', () => {
    send({ type: 'portico:signalled', signal: 'SIGTERM' });
    drain();
  });
  // An uncaught exception (a timer's throw, an unhandled 'error' event): the worker's state is
  // suspect, so it goes, but not with the other requests it is serving (they did nothing wrong;
  // exiting at once reset them): once serving, it tells the arbiter (no more connections, a
  // replacement starts now), finishes what it has for at most CRASH_DRAIN_MS and exits 1.
  let crashed = false;
  let onCrash: ((error: unknown) => void) | null = null;
  process.on('uncaughtException', (error) => {
    const draining = onCrash !== null && !crashed;
    log().fatal({ err: error }, draining ? `app worker: uncaught exception, finishing requests in flight (at most ${CRASH_DRAIN_MS} ms) then exiting (the arbiter starts a new worker)` : 'app worker: uncaught exception, exiting (the arbiter starts a new worker)');
    flushLog();
    if (!draining || !onCrash) process.exit(1);
    crashed = true;
    onCrash(error);
  });

  // Ticks start before the app is imported: an import stuck in a loop is a stale worker too.
  // The heartbeat carries the request count and the resident memory (metrics, `GET /apps`).
  const tick = setInterval(() => send({ type: 'portico:tick', requests, rss: process.memoryUsage.rss() }), TICK_MS);
  send({ type: 'portico:tick', requests, rss: process.memoryUsage.rss() });

  // TypeScript apps (and their TypeScript imports) load with no build step.
  let app;
  try {
    app = await loadWorkerApp(settings.file);
  } catch (error) {
    const code = error instanceof AppError ? error.code : 'ERR_APP_IMPORT';
    const message = error instanceof Error ? error.message : String(error);
    log().error({ err: error instanceof AppError && error.cause ? error.cause : error, file: settings.file }, 'app worker: the app failed to load');
    flushLog();
    send({ type: 'portico:boot-error', code, message }, () => process.exit(code === 'ERR_APP_EXPORT' ? 3 : 4));
    return;
  }

  const finish = () => {
    if (!draining || awaitingCrashAck || inFlight > 0 || pending.size > 0 || connections.size > 0) return;
    clearInterval(tick);
    server.closeAllConnections();
    flushLog();
    process.exit(crashed ? 1 : 0);
  };
  const waitUntil = (promise: Promise<unknown>) => {
    const tracked = Promise.resolve(promise)
      .catch((error: unknown) => log().error({ err: error }, 'app waitUntil promise rejected'))
      .finally(() => {
        pending.delete(tracked);
        finish();
      });
    pending.add(tracked);
  };
  // The request path does as little as it can (the app server's hot path): counters and the
  // connection's state, found on its socket; a response's end comes from the gateway's own
  // 'close' listener (no second listener, no closure per request).
  const onResponseClose = (res: ServerResponse) => {
    inFlight -= 1;
    const socket = res.req.socket as TrackedSocket;
    const connection = socket[CONNECTION];
    if (connection) {
      connection.busy -= 1;
      connection.served += 1;
      if (connection.latest === res) connection.latest = null;
      // A keep-alive answer that began before the drain did not say Connection: close: the
      // client may already be writing its next request on this connection; closing now would
      // reset it, so that request is answered (with Connection: close) if it comes.
      if (draining && connection.busy === 0 && !socket.destroyed) closeWhenIdle(socket, connection);
    }
    if (draining) finish();
  };
  const listener = createAppListener(app, { timeoutMs: settings.timeoutMs, waitUntil, onResponseClose, behindEdge: settings.socketPath !== undefined });
  const server = createServer((req, res) => {
    requests += 1;
    inFlight += 1;
    const connection = (req.socket as TrackedSocket)[CONNECTION];
    if (connection) {
      connection.busy += 1;
      connection.latest = res;
    }
    // While draining, every answer closes its connection (Fastify's habit; RFC 9112 §9.6).
    if (draining) res.setHeader('connection', 'close');
    if (settings.maxRequests > 0 && requests >= settings.maxRequests && !draining) retire();
    listener(req, res);
  });

  if (!settings.socketPath) {
    // Standalone, this server never listens (the arbiter hands it connections), and node:http
    // starts the checks behind headersTimeout and requestTimeout (408 to a client that is too
    // slow to send its request, a slowloris) on 'listening': without it they never ran here, as a
    // raw socket showed (no 408 after a stalled header, 408 once 'listening' was emitted).
    server.emit('listening');
  }
  server.on('connection', (socket: Socket) => {
    const connection: Connection = { busy: 0, served: 0, latest: null };
    (socket as TrackedSocket)[CONNECTION] = connection;
    connections.set(socket, connection);
    socket.on('close', () => {
      connections.delete(socket);
      finish();
    });
  });

  let retiring = false;
  function retire(): void {
    if (retiring) return;
    retiring = true;
    // Ask first: the arbiter stops handing us connections, then acks; IPC is ordered, so every
    // connection sent before the ack arrives before it and is served.
    send({ type: 'portico:retiring', requests });
  }

  /** Draining: closes the connection unless a request has begun on it meanwhile. */
  function closeWhenIdle(socket: Socket, state: Connection): void {
    setTimeout(() => {
      if (state.busy === 0 && !socket.destroyed) socket.destroy();
    }, IDLE_CONNECTION_GRACE_MS).unref();
  }

  function drain(graceMs = settings.gracefulTimeoutMs): void {
    if (draining) return;
    draining = true;
    // Integrated mode: no new connections on our socket (the edge has already taken this worker
    // out of its group before asking it to drain); closing also removes the socket file.
    if (settings.socketPath) server.close();
    // The newest response of each connection (pipelined ones before it are answered first, so the
    // connection closes after the last one the client asked for).
    for (const { latest } of connections.values()) if (latest && !latest.headersSent) latest.setHeader('connection', 'close');
    // Not server.closeIdleConnections(): a connection the arbiter handed over just before the
    // stop has not sent its request yet and counts as idle there, and a keep-alive client between
    // two requests may be writing the next one right now (16 keep-alive clients under a
    // max-requests recycle or a reload got "socket hang up" / ECONNRESET on reused sockets when
    // they were destroyed at once); closing either would reset a client that did nothing wrong.
    // So idle connections get a moment for one more request (answered with Connection: close).
    // Integrated mode: the edge has taken this worker out of its group before the drain and
    // sends it no request any more, so its idle connections close now.
    for (const [socket, state] of connections) {
      if (state.busy > 0) continue;
      if (settings.socketPath && state.served > 0) socket.destroy();
      else closeWhenIdle(socket, state);
    }
    setTimeout(() => {
      if (inFlight > 0 || pending.size > 0) log().warn({ inFlight, waitUntil: pending.size }, 'app worker: graceful timeout reached, exiting with requests in flight');
      flushLog();
      process.exit(crashed ? 1 : 0);
    }, graceMs).unref();
    finish();
  }

  onCrash = (error) => {
    // Until the arbiter acks, a connection it handed over may still be in the IPC pipe: exiting
    // now would reset that client (the drain timer still bounds the wait to CRASH_DRAIN_MS).
    awaitingCrashAck = process.connected;
    send({ type: 'portico:crashing', message: error instanceof Error ? error.message : String(error) });
    drain(Math.min(CRASH_DRAIN_MS, settings.gracefulTimeoutMs));
  };

  process.on('message', (message: unknown, handle?: unknown) => {
    if (!isToWorker(message)) return;
    if (message.type === 'portico:conn') {
      if (handle) server.emit('connection', handle as Socket);
    } else if (message.type === 'portico:stop') {
      drain(message.graceMs);
    } else if (message.type === 'portico:retire-ack') {
      drain();
    } else if (message.type === 'portico:crash-ack') {
      awaitingCrashAck = false;
      finish();
    }
  });
  if (settings.socketPath) {
    const path = settings.socketPath;
    // The edge's pool closes idle connections after 60 s (undici also honours our Keep-Alive
    // hint): outlasting it means the edge, never the worker, closes an idle keep-alive
    // connection, so a request is never written into a connection the worker is closing (a
    // POST lost that way could not be retried). node's default here is 5 s.
    server.keepAliveTimeout = 75_000;
    // Ready means reachable: the arbiter tells the edge about this socket once we say so.
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
  }
  send({ type: 'portico:ready', kind: app.kind, via: app.via });
}

await main();
