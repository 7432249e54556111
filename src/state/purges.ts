/**
 * Cache purges between nodes, over Redis pub/sub (`<prefix>purge`): a node that purged a key
 * (from its own tiers and the shared Redis tier) publishes it, and every other node drops it from
 * its memory and disk tiers. Pub/sub is fire and forget: a node that is disconnected at that
 * moment misses it (its local copies then live until they expire, as a node that was down would
 * keep them); the shared tier, where most nodes find small entries, was purged synchronously.
 */
import { log } from '../core/log.js';
import type { RedisClient, SharedRedis } from './redis.js';

export interface RemotePurge {
  readonly zone: string;
  readonly key: string;
  readonly prefix: boolean;
}

export class PurgeChannel {
  readonly #redis: SharedRedis;
  readonly #subscriber: RedisClient;
  readonly #channel: string;
  readonly #nodeId: string;

  /** `nodeId`: this node's, so that it ignores its own purges; `onRemote`: another node's purge. */
  constructor(redis: SharedRedis, nodeId: string, onRemote: (purge: RemotePurge) => void) {
    this.#redis = redis;
    this.#nodeId = nodeId;
    this.#channel = redis.key('purge');
    this.#subscriber = redis.client.duplicate();
    // Errors are the main connection's to report (SharedRedis logs going down once); without a listener node-redis would throw.
    this.#subscriber.on('error', () => undefined);
    this.#subscriber
      .connect()
      .then(() =>
        this.#subscriber.subscribe(this.#channel, (message) => {
          let purge: RemotePurge & { readonly node?: string };
          try {
            purge = JSON.parse(message) as RemotePurge & { readonly node?: string };
          } catch {
            return;
          }
          if (purge.node === this.#nodeId || typeof purge.zone !== 'string' || typeof purge.key !== 'string') return;
          onRemote({ zone: purge.zone, key: purge.key, prefix: purge.prefix === true });
        }),
      )
      .catch((error: unknown) => log().warn({ err: (error as Error).message }, 'shared state: cannot subscribe to cache purges; other nodes\' purges will not reach this one'));
  }

  /** Tells the other nodes; resolves once Redis has it (or could not be reached within its timeout). */
  async publish(purge: RemotePurge): Promise<void> {
    if (!this.#redis.up) return;
    await this.#redis.client.publish(this.#channel, JSON.stringify({ node: this.#nodeId, ...purge })).catch(() => 0);
  }

  async close(): Promise<void> {
    try {
      if (this.#subscriber.isOpen) await this.#subscriber.close();
    } catch {
      this.#subscriber.destroy();
    }
  }
}
