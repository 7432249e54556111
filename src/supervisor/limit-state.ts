/**
 * The node's limit state, held by the supervisor for all its edge workers (see core/limit-ipc.ts
 * for the protocol and README "Limits" for the semantics). The supervisor calls
 * `attachLimitState(worker)` for each edge worker it forks and the returned function when that
 * worker exits, which frees every concurrency slot the worker still held.
 */
import type { ChildProcess } from 'node:child_process';
import type { Worker } from 'node:cluster';
import { nodeLimitStore, serveLimits, type SupervisorChannel } from '../core/limit-ipc.js';

export function attachLimitState(child: ChildProcess | Worker): () => void {
  const channel: SupervisorChannel = {
    send: (message) => (child.send as (message: unknown) => boolean)(message),
    on: (event, listener) => child.on(event, listener),
    off: (event, listener) => child.off(event, listener),
  };
  return serveLimits(nodeLimitStore(), channel);
}
