/**
 * Purges and invalidations reach every edge worker of the node. Each worker has its own memory
 * tier; the disk tier is shared and purged once, by the worker that got the request. That worker
 * then tells the supervisor (`portico:cache:purge` on its IPC channel), which relays the message
 * to the other workers (supervisor/cache-relay.ts), and each removes the key (or prefix) from its
 * memory tier of that zone. Without edge workers (one process) there is nobody to tell.
 */
import { EDGE_WORKER_ENV } from '../../../supervisor/edge-ipc.js';
import { zoneByName } from './tiered.js';

export const CACHE_PREFIX = 'portico:cache:';

export interface PurgeMessage {
  readonly type: 'portico:cache:purge';
  readonly zone: string;
  readonly key: string;
  readonly prefix: boolean;
}

export const isCacheMessage = (message: unknown): message is PurgeMessage =>
  typeof message === 'object' && message !== null && (message as { type?: unknown }).type === 'portico:cache:purge';

let listening = false;

/** Tells the other edge workers to drop `key` (or every key under a prefix) from their memory tier. */
export function announcePurge(zone: string, key: string, prefix: boolean): void {
  if (!process.env[EDGE_WORKER_ENV] || !process.connected || !process.send) return;
  listen();
  process.send({ type: 'portico:cache:purge', zone, key, prefix } satisfies PurgeMessage);
}

/** Applies purges the supervisor relays from other workers (installed once per process). */
export function listen(): void {
  if (listening || !process.env[EDGE_WORKER_ENV]) return;
  listening = true;
  process.on('message', (message: unknown) => {
    if (!isCacheMessage(message)) return;
    void zoneByName(message.zone)?.memory.purge(message.key, message.prefix);
  });
}
