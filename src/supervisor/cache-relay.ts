/**
 * The supervisor's side of edge/handlers/cache/broadcast.ts: a cache purge announced by one edge
 * worker is sent on to every other worker, so no memory tier keeps serving what was purged.
 */
import cluster, { type Worker } from 'node:cluster';
import { isCacheMessage } from '../edge/handlers/cache/broadcast.js';

/** Relays this worker's cache purges to the others; returns the detach function. */
export function relayCacheMessages(worker: Worker): () => void {
  const onMessage = (message: unknown) => {
    if (!isCacheMessage(message)) return;
    for (const other of Object.values(cluster.workers ?? {})) {
      if (other && other !== worker && other.isConnected()) other.send(message);
    }
  };
  worker.on('message', onMessage);
  return () => worker.off('message', onMessage);
}
