/**
 * What the edge is given by the process that runs it (Caddy hands each module a context at
 * Provision; this is Portico's): node-level state that outlives config generations and may be
 * shared beyond this process. The edge never finds these on its own (no environment variable, no
 * module global): the supervisor builds one environment per process and hands it to the
 * EdgeServer, which hands it to every generation.
 *
 *   limits           the node's LimitStore: memory in a one-process node, the supervisor's over
 *                    the bus in an edge worker (core/limit-ipc.ts); with `state`, the
 *                    supervisor's is in Redis (state/limits.ts), with no change here
 *   cacheZones       the cache zones of this process (their memory tiers; disk is shared)
 *   sharedUpstreams  groups whose members outlive generations (an app's workers)
 *   bus              this process's end of the node bus, or null in a one-process node
 *   ticketKeys       the node's TLS session ticket keys (made and rotated by the supervisor)
 *   sharedState      the fleet's Redis (`state`), or null: the cache zones' shared tier and the
 *                    ACME challenges are read there
 *   certificates     the managed certificates (`tls: "auto"` / `"internal"`) this process holds:
 *                    the supervisor's certificate manager fills them, directly or over the bus
 */
import type { LimitStore } from '../core/limit-store.js';
import type { SharedRedis } from '../state/redis.js';
import { MemoryLimitStore } from '../core/limit-store.js';
import type { EdgeBus } from './bus.js';
import { CacheZones } from './handlers/cache/zones.js';
import { ManagedCertificates } from './listen/managed-certificates.js';
import { TicketKeys } from './listen/ticket-keys.js';
import type { UpstreamGroup } from './handlers/proxy/upstream.js';

export interface EdgeEnvironment {
  readonly limits: LimitStore;
  readonly cacheZones: CacheZones;
  readonly sharedUpstreams: ReadonlyMap<string, UpstreamGroup>;
  readonly bus: EdgeBus | null;
  readonly ticketKeys: TicketKeys;
  readonly certificates: ManagedCertificates;
  readonly sharedState: SharedRedis | null;
}

/** An environment with what is not given made fresh and local: a one-process node, a test. */
export function createEdgeEnvironment(given: Partial<EdgeEnvironment> = {}): EdgeEnvironment {
  const bus = given.bus ?? null;
  const ticketKeys = given.ticketKeys ?? new TicketKeys();
  return {
    limits: given.limits ?? new MemoryLimitStore(),
    cacheZones: given.cacheZones ?? new CacheZones(bus),
    sharedUpstreams: given.sharedUpstreams ?? new Map(),
    bus,
    ticketKeys,
    certificates: given.certificates ?? new ManagedCertificates(ticketKeys),
    sharedState: given.sharedState ?? null,
  };
}
