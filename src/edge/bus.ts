/**
 * The node bus's one message union: everything the supervisor and an edge worker say to each
 * other (core/bus.ts carries it). Three conversations share it:
 *
 *   control   supervisor → worker  start, reload, member-add, member-remove, ticket-keys, reopen-logs, stop
 *             worker → supervisor  hello, listening, start-failed, reloaded, removed
 *   limits    worker → supervisor  limit:take, limit:acquire, limit:release (core/limit-ipc.ts)
 *             supervisor → worker  limit:reply
 *   cache     both ways            cache:purge (a worker announces it; the supervisor relays it
 *                                  to every other worker, each drops the key from its memory tier),
 *                                  cache:purged (each answers; the announcer hears once all have)
 *   tls       supervisor → worker  tls:certificate (a managed certificate, new or renewed: every
 *                                  worker, and all of them to a worker that starts), tls:refused
 *             worker → supervisor  tls:want (a handshake for a name with no certificate yet)
 *   observe   supervisor → worker  observe:get (its metrics, or its edge snapshot, for the admin API),
 *                                  observe:upstream (drain, enable or weigh an upstream server),
 *                                  observe:purge (a cache key or prefix, admin API)
 *             worker → supervisor  observe:reply
 *
 * The resolved config travels as JSON (it is JSON-serialisable by design): a worker never loads
 * the config file itself, so every worker serves exactly the config the supervisor validated.
 * docs/architecture.md lists these messages with where each kind of state lives.
 */
import type { ManagedIssuer } from '../certs/manager.js';
import type { ResolvedConfig } from '../config/resolved.js';
import type { Bus } from '../core/bus.js';
import type { LimitReply, LimitRequest } from '../core/limit-ipc.js';

/** An address a listener is bound to. */
export interface BoundAddress {
  readonly key: string;
  /** A URL a person can open: "http://127.0.0.1:8080" or "unix:/path". */
  readonly url: string;
  /** What the listener serves (edge/listen/kinds.ts). */
  readonly kind: ListenerKind;
}

/** What a listening socket serves: the virtual servers' pipeline, or the forward proxy (later: the admin API). */
export type ListenerKind = 'site' | 'forward';

/** The members of the dynamic upstream groups (apps' workers, commands' sockets), by group name. */
export type Members = Record<string, string[]>;

/**
 * A purge of one key (or every key under a prefix) in a cache zone, for every edge worker's
 * memory tier; answered with `purged` and the same `seq` (each side numbers what it sends).
 */
export interface CachePurge {
  readonly type: 'portico:cache:purge';
  readonly seq: number;
  readonly zone: string;
  readonly key: string;
  readonly prefix: boolean;
  /** Another node's purge (supervisor → one worker of this node): drop it from the disk tier too. */
  readonly local?: boolean;
}
/** The purge `seq` is done: in this worker (worker → supervisor), or in every other worker of the node (supervisor → the worker that announced it). */
export interface CachePurged {
  readonly type: 'portico:cache:purged';
  readonly seq: number;
  /**
   * How many entries it dropped: this worker's count, or the largest of the other workers'
   * (each memory tier holds its own copy of the same entries, so counts are not added). The
   * announcer's PURGE answers 404 only when no worker of the node had the entry.
   */
  readonly purged?: number;
}

export type ControlToEdge =
  /** The first message (the answer to `hello`): serve `config`; the app groups start with `members`; TLS tickets use `ticketKeys` (base64). */
  | { readonly type: 'portico:edge:start'; readonly config: ResolvedConfig; readonly members: Members; readonly ticketKeys: string }
  /** The node's TLS session ticket keys were rotated (base64; edge/listen/ticket-keys.ts). */
  | { readonly type: 'portico:edge:ticket-keys'; readonly keys: string }
  /** Swap in a new generation; answered with `reloaded` and the same `seq`. */
  | { readonly type: 'portico:edge:reload'; readonly seq: number; readonly config: ResolvedConfig }
  /** A member joins a group. */
  | { readonly type: 'portico:edge:member-add'; readonly group: string; readonly url: string }
  /** A member leaves a group; answered with `removed` once requests in flight to it are done (at most `graceMs`). */
  | { readonly type: 'portico:edge:member-remove'; readonly seq: number; readonly group: string; readonly url: string; readonly graceMs: number }
  /** Reopen the error and access log files at their paths (SIGUSR1 to the supervisor, after logrotate). */
  | { readonly type: 'portico:edge:reopen-logs' }
  /** Stop: finish requests in flight for at most `graceMs` (0: close everything now), then exit 0. */
  | { readonly type: 'portico:edge:stop'; readonly graceMs: number };

export type ControlFromEdge =
  /**
   * The worker listens for messages: only now may the supervisor send any (an ES module worker
   * attaches its listener after an asynchronous load, and a message that arrives before is lost).
   */
  | { readonly type: 'portico:edge:hello' }
  | { readonly type: 'portico:edge:listening'; readonly addresses: BoundAddress[] }
  | { readonly type: 'portico:edge:start-failed'; readonly code: string; readonly message: string }
  | { readonly type: 'portico:edge:reloaded'; readonly seq: number; readonly error: string | null }
  | { readonly type: 'portico:edge:removed'; readonly seq: number }
  /** The worker received a SIGTERM (the supervisor stops workers over this bus, never by signal) and stops: not a crash. */
  | { readonly type: 'portico:edge:signalled'; readonly signal: 'SIGTERM' };

/** Managed certificates (src/certs/manager.ts → edge/listen/managed-certificates.ts). */
export type TlsToEdge =
  /** A certificate for `name` (PEM): later handshakes get it. */
  | { readonly type: 'portico:tls:certificate'; readonly name: string; readonly cert: string; readonly key: string }
  /** No certificate for `name` now: the handshakes waiting for it fail. */
  | { readonly type: 'portico:tls:refused'; readonly name: string };

/** A handshake in a worker wants a certificate for `name` (on demand): answered with `certificate` or `refused`. */
export type TlsFromEdge = { readonly type: 'portico:tls:want'; readonly name: string; readonly issuer: ManagedIssuer };

/**
 * The admin API asks each worker for its part of the node's view (edge/metrics.ts,
 * EdgeServer.snapshot), to change an upstream server (drain, enable, weight: EdgeServer.changeUpstream),
 * or to purge a cache key (one worker purges memory and disk, and announces it to the others).
 */
export type ObserveToEdge =
  | { readonly type: 'portico:observe:get'; readonly seq: number; readonly what: 'metrics' | 'snapshot' }
  | { readonly type: 'portico:observe:upstream'; readonly seq: number; readonly group: string; readonly server: string; readonly change: UpstreamChange }
  | { readonly type: 'portico:observe:purge'; readonly seq: number; readonly zone: string; readonly key: string; readonly prefix: boolean };

/** What the admin API changes on an upstream server at runtime (HAProxy's runtime API). */
export type UpstreamChange = { readonly drained: boolean } | { readonly weight: number };
/** A worker's answer: prom-client's JSON of its registry, its EdgeSnapshot, or whether it found the server to drain. */
export type ObserveFromEdge = { readonly type: 'portico:observe:reply'; readonly seq: number; readonly data: unknown };

/** Supervisor → edge worker: the whole union. */
export type ToEdge = ControlToEdge | LimitReply | CachePurge | CachePurged | TlsToEdge | ObserveToEdge;
/** Edge worker → supervisor: the whole union. */
export type FromEdge = ControlFromEdge | LimitRequest | CachePurge | CachePurged | TlsFromEdge | ObserveFromEdge;

/** An edge worker's end of the bus. */
export type EdgeBus = Bus<FromEdge, ToEdge>;
/** The supervisor's end of one edge worker's bus. */
export type SupervisorBus = Bus<ToEdge, FromEdge>;
