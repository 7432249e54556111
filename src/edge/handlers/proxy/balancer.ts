/**
 * Load-balancing selectors: one tiny interface (`select`, as Caddy's `Selector.Select`) and one
 * implementation per algorithm. A selector sees only the servers that may take a request now
 * (up, under maxConns), so health and limits stay in upstream.ts.
 */
import { createHash } from 'node:crypto';
import type { ResolvedUpstream } from '../../../config/resolved.js';

export interface Balanced {
  /** Stable name ("127.0.0.1:3001"), used by hashing so a key keeps its server across reloads. */
  readonly name: string;
  readonly weight: number;
  /** Requests in flight. */
  readonly active: number;
  /** 0..1: below 1 while slow start ramps a returning server up. */
  effectiveWeightFactor(now: number): number;
}

export interface Selector<S extends Balanced> {
  /** Picks one of `candidates` (non-empty) for a request with hash key `key` ("" when unused). */
  select(candidates: readonly S[], key: string, now: number): S;
}

const effective = (server: Balanced, now: number): number => Math.max(server.weight * server.effectiveWeightFactor(now), 0.001);

/**
 * nginx's smooth weighted round robin (ngx_http_upstream_get_peer): each pick adds every
 * candidate's weight to its current score, takes the highest, and subtracts the total from it.
 * Weights 5:1:1 give a a b a c a a, not a a a a a b c.
 */
export class RoundRobin<S extends Balanced> implements Selector<S> {
  readonly #current = new Map<S, number>();

  select(candidates: readonly S[], _key: string, now: number): S {
    let total = 0;
    let best: S | undefined;
    let bestScore = -Infinity;
    for (const server of candidates) {
      const weight = effective(server, now);
      const score = (this.#current.get(server) ?? 0) + weight;
      this.#current.set(server, score);
      total += weight;
      if (score > bestScore) {
        best = server;
        bestScore = score;
      }
    }
    const chosen = best as S;
    this.#current.set(chosen, bestScore - total);
    return chosen;
  }
}

/** Fewest requests in flight relative to weight (nginx `least_conn`); ties go round robin. */
export class LeastConnections<S extends Balanced> implements Selector<S> {
  readonly #tieBreak = new RoundRobin<S>();

  select(candidates: readonly S[], key: string, now: number): S {
    let best: S[] = [];
    let bestLoad = Infinity;
    for (const server of candidates) {
      const load = server.active / effective(server, now);
      if (load < bestLoad) {
        best = [server];
        bestLoad = load;
      } else if (load === bestLoad) best.push(server);
    }
    return best.length === 1 ? (best[0] as S) : this.#tieBreak.select(best, key, now);
  }
}

/** Power of two random choices: two random candidates, the less loaded wins (Mitzenmacher). */
export class RandomTwoChoices<S extends Balanced> implements Selector<S> {
  select(candidates: readonly S[], _key: string, now: number): S {
    if (candidates.length === 1) return candidates[0] as S;
    const a = pickWeighted(candidates, now);
    let b = pickWeighted(candidates, now);
    for (let i = 0; b === a && i < 4; i++) b = pickWeighted(candidates, now);
    return a.active / effective(a, now) <= b.active / effective(b, now) ? a : b;
  }
}

function pickWeighted<S extends Balanced>(candidates: readonly S[], now: number): S {
  let total = 0;
  for (const server of candidates) total += effective(server, now);
  let point = Math.random() * total;
  for (const server of candidates) {
    point -= effective(server, now);
    if (point <= 0) return server;
  }
  return candidates[candidates.length - 1] as S;
}

function hash32(text: string): number {
  return createHash('md5').update(text).digest().readUInt32BE(0);
}

/**
 * Consistent hashing on a key (nginx `hash $key consistent`, ketama): each server owns 160 points
 * per unit of weight on a ring; a key goes to the first point at or after its hash among the
 * candidates. When one of N servers leaves, only the keys it owned (about 1/N) move.
 */
export class ConsistentHash<S extends Balanced> implements Selector<S> {
  #ring: { point: number; server: S }[] = [];
  #members: readonly S[] = [];

  #build(all: readonly S[]): void {
    const ring: { point: number; server: S }[] = [];
    for (const server of all) {
      const points = 160 * Math.max(1, Math.round(server.weight));
      for (let i = 0; i < points / 4; i++) {
        const digest = createHash('md5').update(`${server.name}-${i}`).digest();
        for (let j = 0; j < 4; j++) ring.push({ point: digest.readUInt32LE(j * 4), server });
      }
    }
    ring.sort((a, b) => a.point - b.point);
    this.#ring = ring;
    this.#members = all;
  }

  /** The ring is built over every server of the group once; unavailable ones are skipped at lookup. */
  setMembers(all: readonly S[]): void {
    this.#build(all);
  }

  select(candidates: readonly S[], key: string): S {
    if (this.#members.length === 0) this.#build(candidates);
    const ring = this.#ring;
    const h = hash32(key);
    // Binary search for the first point >= h.
    let lo = 0;
    let hi = ring.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((ring[mid] as { point: number }).point < h) lo = mid + 1;
      else hi = mid;
    }
    const allowed = candidates.length === this.#members.length ? null : new Set(candidates);
    for (let i = 0; i < ring.length; i++) {
      const entry = ring[(lo + i) % ring.length] as { server: S };
      if (!allowed || allowed.has(entry.server)) return entry.server;
    }
    return candidates[0] as S;
  }
}

/**
 * nginx `ip_hash`: the first three octets of an IPv4 address (the whole IPv6 address) pick the
 * server, so a client (and its /24) keeps its server while the set of servers is unchanged; it is
 * consistent hashing on that key, so a server leaving moves only its own clients.
 */
export class IpHash<S extends Balanced> extends ConsistentHash<S> {
  override select(candidates: readonly S[], clientAddress: string): S {
    const v4 = /^(?:::ffff:)?(\d+\.\d+\.\d+)\.\d+$/.exec(clientAddress);
    return super.select(candidates, v4 ? (v4[1] as string) : clientAddress);
  }
}

/** config/balance.ts declares the algorithms (BALANCE_ALGORITHMS); the switch below must cover each. */
export type BalanceAlgorithm = ResolvedUpstream['balance'];

export function createSelector<S extends Balanced>(algorithm: BalanceAlgorithm, all: readonly S[]): Selector<S> {
  switch (algorithm) {
    case 'round-robin':
      return new RoundRobin<S>();
    case 'least-conn':
      return new LeastConnections<S>();
    case 'random-two':
      return new RandomTwoChoices<S>();
    case 'ip-hash': {
      const selector = new IpHash<S>();
      selector.setMembers(all);
      return selector;
    }
    case 'hash': {
      const selector = new ConsistentHash<S>();
      selector.setMembers(all);
      return selector;
    }
  }
}
