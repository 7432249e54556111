/**
 * Messages between the supervisor and its edge worker processes, over each worker's IPC channel.
 * Every type starts with `portico:edge:`; other messages on the same channel (node:cluster's own,
 * the limit store's `portico:limit…`) are not ours and are ignored. The resolved config travels
 * as JSON (it is JSON-serialisable by design): a worker never loads the config file itself, so
 * every worker serves exactly the config the supervisor validated.
 */
import type { ResolvedConfig } from '../config/resolve.js';
import type { BoundAddress } from '../edge/server.js';

export const EDGE_PREFIX = 'portico:edge:';
/** Set in an edge worker's environment (the limit code picks its IPC-backed store by it). */
export const EDGE_WORKER_ENV = 'PORTICO_EDGE_WORKER';

/** The members of the dynamic upstream groups (apps' workers, commands' sockets), by group name. */
export type Members = Record<string, string[]>;

export type ToEdge =
  /** The first message (the answer to `hello`): serve `config`; the app groups start with `members`. */
  | { readonly type: 'portico:edge:start'; readonly config: ResolvedConfig; readonly members: Members }
  /** Swap in a new generation; answered with `reloaded` and the same `seq`. */
  | { readonly type: 'portico:edge:reload'; readonly seq: number; readonly config: ResolvedConfig }
  /** A member joins a group. */
  | { readonly type: 'portico:edge:member-add'; readonly group: string; readonly url: string }
  /** A member leaves a group; answered with `removed` once requests in flight to it are done (at most `graceMs`). */
  | { readonly type: 'portico:edge:member-remove'; readonly seq: number; readonly group: string; readonly url: string; readonly graceMs: number }
  /** Stop: finish requests in flight for at most `graceMs` (0: close everything now), then exit 0. */
  | { readonly type: 'portico:edge:stop'; readonly graceMs: number };

export type FromEdge =
  /**
   * The worker listens for messages: only now may the supervisor send any (an ES module worker
   * attaches its listener after an asynchronous load, and a message that arrives before is lost).
   */
  | { readonly type: 'portico:edge:hello' }
  | { readonly type: 'portico:edge:listening'; readonly addresses: BoundAddress[] }
  | { readonly type: 'portico:edge:start-failed'; readonly code: string; readonly message: string }
  | { readonly type: 'portico:edge:reloaded'; readonly seq: number; readonly error: string | null }
  | { readonly type: 'portico:edge:removed'; readonly seq: number };

const isEdge = (message: unknown): boolean =>
  typeof message === 'object' && message !== null && typeof (message as { type?: unknown }).type === 'string' && (message as { type: string }).type.startsWith(EDGE_PREFIX);

export const isFromEdge = (message: unknown): message is FromEdge => isEdge(message);
export const isToEdge = (message: unknown): message is ToEdge => isEdge(message);
