/**
 * Messages between the arbiter and its workers (over the child_process IPC channel, JSON).
 * Connections travel as handles attached to a `conn` message: the arbiter owns the listening
 * socket and hands each accepted connection to one worker (what node:cluster's round-robin mode
 * does, but here the arbiter also decides *which* workers may receive: never one that is booting,
 * retiring or stopping).
 */

/** Worker settings, passed as the worker's one argument, JSON (handed in by the arbiter, not found in the environment). */
export interface WorkerSettings {
  readonly file: string;
  /** Per-request timeout (ms): the Fetch signal aborts, a 503 is sent if nothing was. 0 = none. */
  readonly timeoutMs: number;
  /** Recycle after this many requests (already jittered by the arbiter); 0 = never. */
  readonly maxRequests: number;
  readonly gracefulTimeoutMs: number;
  /** The process title (`ps`): "portico: app web worker 2". */
  readonly title: string;
  /**
   * Integrated mode (`portico up`): the worker also listens on this unix socket of its own, so the
   * edge can send it requests directly (and choose the worker per request). Absent with `portico
   * app`, where the arbiter hands over connections.
   */
  readonly socketPath?: string;
}


/**
 * The settings of a WSGI worker (python/portico_wsgi.py), its one argument, JSON. It always listens
 * on a socket of its own (the edge reaches it over uwsgi); `portico app --wsgi` puts an edge in front.
 */
export interface WsgiWorkerSettings {
  /** "module:callable". */
  readonly wsgi: string;
  /** The app's folder: the working directory, first on sys.path. */
  readonly cwd: string;
  readonly socketPath: string;
  /** Requests served at once (a thread pool, gunicorn's gthread); 1: in the worker's main thread. */
  readonly threads: number;
  readonly maxRequests: number;
  readonly gracefulTimeoutMs: number;
}

/** Heartbeat interval: a worker whose last tick is older than the timeout is killed. */
export const TICK_MS = 1000;

/** After an uncaught exception, how long a worker may finish the requests it has before exiting. */
export const CRASH_DRAIN_MS = 1000;

export type ToWorker =
  /** One accepted connection (the socket is the message's handle). */
  | { readonly type: 'portico:conn' }
  /** Stop gracefully: finish requests in flight, then exit 0. */
  | { readonly type: 'portico:stop'; readonly graceMs: number }
  /** The arbiter will send no more connections: the retiring worker may drain and exit. */
  | { readonly type: 'portico:retire-ack' }
  /** The same after `portico:crashing`: every connection handed over before it has arrived. */
  | { readonly type: 'portico:crash-ack' };

export type FromWorker =
  /** `busySince` (WSGI workers): when the oldest request in progress began (epoch ms), or null when idle. */
  | { readonly type: 'portico:tick'; readonly requests: number; readonly rss: number; readonly busySince?: number | null }
  | { readonly type: 'portico:ready'; readonly kind: 'fetch' | 'node' | 'wsgi'; readonly via: string }
  /** A line for the error log from a worker that has no logger of its own (WSGI: `wsgi.errors`, an app's traceback). */
  | { readonly type: 'portico:log'; readonly level: 'info' | 'warn' | 'error'; readonly message: string }
  /** The app could not be loaded; `code` says whether retrying can help (ERR_APP_IMPORT) or not (ERR_APP_EXPORT). */
  | { readonly type: 'portico:boot-error'; readonly code: string; readonly message: string }
  /** The worker reached max requests and asks to be replaced. */
  | { readonly type: 'portico:retiring'; readonly requests: number }
  /**
   * An uncaught exception: send no more connections, start a replacement; the worker finishes its
   * requests in flight (at most `CRASH_DRAIN_MS`) and exits 1 (a crash).
   */
  | { readonly type: 'portico:crashing'; readonly message: string }
  /** The worker received a SIGTERM (the arbiter never sends one but to a stale worker) and drains: not a crash (core/crash-streak.ts GROUP_SIGNAL_WINDOW_MS). */
  | { readonly type: 'portico:signalled'; readonly signal: 'SIGTERM' };

export function isFromWorker(message: unknown): message is FromWorker {
  return typeof message === 'object' && message !== null && typeof (message as { type?: unknown }).type === 'string' && (message as { type: string }).type.startsWith('portico:');
}

export function isToWorker(message: unknown): message is ToWorker {
  return isFromWorker(message);
}
