/**
 * The node's cache zones as one process sees them: handed to the edge in its EdgeEnvironment
 * (edge/environment.ts) rather than kept in a module global, so two edge servers in one process
 * (tests, the in-process test server) never share zones by accident.
 *
 * Zones outlive config generations: `zoneFor` hands out the same store while a zone's settings
 * are unchanged, so a reload keeps what is cached.
 *
 * Purges reach every edge worker of the node. Each worker has its own memory tier; the disk tier
 * is shared and purged once, by the worker that got the request. That worker announces the purge
 * on the node bus (`portico:cache:purge`); the supervisor relays it to the other workers, each
 * drops the key (or prefix) from its memory tier of that zone and says so (`cache:purged`), and
 * the supervisor tells the announcer once all have: the PURGE is answered after that, so a 200
 * means no worker of the node serves the entry any more. With no bus (one process) there is
 * nobody to tell.
 */
import type { ResolvedCacheZone } from '../../../config/resolved.js';
import { ask } from '../../../core/bus.js';
import type { SharedRedis } from '../../../state/redis.js';
import type { EdgeBus } from '../../bus.js';
import { RedisCacheTier } from './redis.js';
import type { CacheZoneSnapshot } from './store.js';
import { TieredStore } from './tiered.js';

/** Tells the other nodes of a purge (src/state/purges.ts); what they drop is theirs to count. */
export type PurgePublisher = (purge: { readonly zone: string; readonly key: string; readonly prefix: boolean }) => Promise<void>;

/** How long a purge waits for the other workers' answers: a stuck worker must not hold a PURGE forever. */
const PURGE_RELAY_TIMEOUT_MS = 2_000;

export class CacheZones {
  readonly #zones = new Map<string, { signature: string; store: TieredStore }>();
  readonly #bus: EdgeBus | null;
  readonly #shared: SharedRedis | null;
  readonly #publish: PurgePublisher | null;
  #purgeSeq = 0;

  /**
   * `bus`: this edge worker's (null in a one-process node); `shared`: the fleet's Redis (`state`),
   * whose tier each zone gets; `publish`: in a one-process node with `state`, tells the other
   * nodes of a purge (an edge worker's supervisor does that for it).
   */
  constructor(bus: EdgeBus | null, shared: SharedRedis | null = null, publish: PurgePublisher | null = null) {
    this.#bus = bus;
    this.#shared = shared;
    this.#publish = publish;
    bus?.on('portico:cache:purge', (message) => {
      const store = this.#zones.get(message.zone)?.store;
      // `local`: another node's purge, relayed: this worker also purges the node's disk tier.
      const purged = message.local ? store?.purgeLocal(message.key, message.prefix) : store?.memory.purge(message.key, message.prefix);
      void Promise.resolve(purged)
        .catch(() => 0)
        .then((count) => bus.send({ type: 'portico:cache:purged', seq: message.seq, purged: count ?? 0 }));
    });
  }

  /** Tells the other workers (through the supervisor); resolves once they have purged (or after the timeout) with the most entries one of them dropped. */
  async #announce(bus: EdgeBus, zone: string, key: string, prefix: boolean): Promise<number> {
    const reply = await ask(bus, { type: 'portico:cache:purge', seq: ++this.#purgeSeq, zone, key, prefix }, 'portico:cache:purged', PURGE_RELAY_TIMEOUT_MS);
    return reply?.purged ?? 0;
  }

  /** The zone for these settings: the existing one while they are unchanged (a reload keeps the cache). */
  zoneFor(settings: ResolvedCacheZone): TieredStore {
    const signature = JSON.stringify(settings);
    const existing = this.#zones.get(settings.name);
    if (existing && existing.signature === signature) return existing.store;
    if (existing) void existing.store.close();
    const bus = this.#bus;
    const name = settings.name;
    const publish = this.#publish;
    const announce = bus ? (key: string, prefix: boolean) => this.#announce(bus, name, key, prefix) : publish ? (key: string, prefix: boolean) => publish({ zone: name, key, prefix }).then(() => 0) : null;
    const shared = this.#shared && this.#shared.settings.cacheEntryMax > 0 ? new RedisCacheTier(this.#shared, name) : null;
    const store = new TieredStore(settings, announce, shared);
    this.#zones.set(name, { signature, store });
    return store;
  }

  /** Another node's purge, in a one-process node: this node's memory and disk tiers drop it. */
  async purgeLocal(zone: string, key: string, prefix: boolean): Promise<void> {
    await this.#zones.get(zone)?.store.purgeLocal(key, prefix);
  }

  /** The zone of this process by name, if one was made. */
  byName(name: string): TieredStore | undefined {
    return this.#zones.get(name)?.store;
  }

  /** Every zone's entries and bytes, as plain data. */
  snapshot(): CacheZoneSnapshot[] {
    return [...this.#zones.values()].map(({ store }) => store.snapshot());
  }

  async close(): Promise<void> {
    await Promise.all([...this.#zones.values()].map(({ store }) => store.close()));
    this.#zones.clear();
  }
}
