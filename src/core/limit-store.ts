/**
 * Where rate and concurrency limits keep their state: a small interface with one in-process
 * implementation here (MemoryLimitStore), an IPC client for edge worker processes
 * (core/limit-ipc.ts) that asks the supervisor's MemoryLimitStore, and room for a Redis store
 * shared by several nodes later. The edge never touches a store's data, only these calls.
 *
 * Rate limiting is nginx's ngx_http_limit_req_module, integer for integer: a leaky bucket per key
 * whose `excess` counts milli-requests (1000 = one request) and drains at `rate` milli-requests
 * per second; a request adds 1000. A request whose excess would pass `burst` is rejected (and
 * changes nothing); one whose excess passes `delay` waits (excess - delay) / rate; otherwise it
 * passes at once. With several limits on one request, all are checked first and only then
 * accounted, and the longest delay wins, as nginx does.
 */

/** One `rateLimit` of a route: a zone (its name and rate) and the route's burst/delay for it. */
export interface RateCheck {
  readonly zone: string;
  /** The key's value for this request (a non-empty string). */
  readonly key: string;
  /** Milli-requests per second (nginx: "10r/s" → 10000, "300r/m" → 5000). */
  readonly rate: number;
  /** Milli-requests of excess allowed before rejecting (nginx `burst=N` → N * 1000). */
  readonly burst: number;
  /** Milli-requests of excess passed without delay (nginx `delay=N` → N * 1000; `nodelay` → Infinity). */
  readonly delay: number;
}

export type RateAction = 'pass' | 'delay' | 'reject';

export interface RateOutcome {
  readonly action: RateAction;
  /** How long to hold the request before serving it (action 'delay'). */
  readonly delayMs: number;
  /** For 'reject': after how long the same request would fit (for Retry-After). */
  readonly retryAfterMs: number;
  /** Which check decided (rejected, or gave the longest delay); -1 when all passed at once. */
  readonly index: number;
}

/**
 * The state behind all limits of a node. Calls may answer synchronously (memory) or with a
 * promise (IPC, Redis); callers handle both without awaiting a plain value, so the in-process
 * case stays allocation-free.
 */
export interface LimitStore {
  /** Counts one request against every check (all or none), nginx `limit_req`. */
  take(checks: readonly RateCheck[]): RateOutcome | Promise<RateOutcome>;
  /** Takes one of `max` concurrency slots of `key` in `zone`; false when all are taken (nginx `limit_conn`). */
  acquire(zone: string, key: string, max: number): boolean | Promise<boolean>;
  /** Gives back a slot taken by `acquire`. */
  release(zone: string, key: string): void;
}

export const PASS: RateOutcome = Object.freeze({ action: 'pass', delayMs: 0, retryAfterMs: 0, index: -1 });

interface RateNode {
  /** Milli-requests of excess at `last`. */
  excess: number;
  /** ms timestamp of the last accounted request. */
  last: number;
  /** The zone's rate when last accounted (to tell when it has drained, for expiry). */
  rate: number;
}

/** nginx forgets a key that has drained fully and was idle for a minute. */
const IDLE_EXPIRY_MS = 60_000;

/** Milliseconds elapsed, clamped as nginx clamps a clock that went backwards. */
function elapsed(now: number, last: number): number {
  const ms = now - last;
  if (ms < -60_000) return 1;
  return ms < 0 ? 0 : ms;
}

/** nginx's leak: `excess - rate * ms / 1000 + 1000` in integers, never below 0. */
function nextExcess(node: RateNode, rate: number, ms: number): number {
  const excess = node.excess - Math.trunc((rate * ms) / 1000) + 1000;
  return excess < 0 ? 0 : excess;
}

/** Ms a rejected request must wait until its excess would be within burst again (at least 1 s for Retry-After). */
function retryAfter(excess: number, check: RateCheck): number {
  return Math.ceil(((excess - check.burst) * 1000) / check.rate);
}

export interface MemoryLimitStoreOptions {
  /** Keys kept per zone; past it the least recently used is dropped (nginx: when the zone's memory is full). @default 100000 */
  readonly maxKeys?: number;
  /** The clock, in ms (tests pass a fake one). @default a monotonic clock */
  readonly now?: () => number;
}

/**
 * The state in this process's memory. Used directly by a single-process `portico up`, and by
 * the supervisor on behalf of all its edge workers (supervisor/limit-state.ts).
 */
export class MemoryLimitStore implements LimitStore {
  /** zone → key → bucket; a Map keeps insertion order, which serves as the LRU order (lookups re-insert). */
  readonly #rates = new Map<string, Map<string, RateNode>>();
  /** zone → key → slots held. */
  readonly #slots = new Map<string, Map<string, number>>();
  readonly #maxKeys: number;
  readonly #now: () => number;
  /** Scratch for the checks' computed excess, reused across calls (no allocation per request). */
  #scratch: number[] = [];

  constructor(options: MemoryLimitStoreOptions = {}) {
    this.#maxKeys = options.maxKeys ?? 100_000;
    this.#now = options.now ?? (() => Math.floor(performance.now()));
  }

  take(checks: readonly RateCheck[]): RateOutcome {
    const now = this.#now();
    const excesses = this.#scratch;
    // Phase 1 (nginx lookup): compute every check's excess; reject on the first over its burst,
    // changing nothing (nginx leaves a rejected key's bucket as it was).
    for (let i = 0; i < checks.length; i++) {
      const check = checks[i] as RateCheck;
      const node = this.#node(check.zone, check.key);
      const excess = node === null ? 0 : nextExcess(node, check.rate, elapsed(now, node.last));
      if (excess > check.burst) return { action: 'reject', delayMs: 0, retryAfterMs: retryAfter(excess, check), index: i };
      excesses[i] = excess;
    }
    // Phase 2 (nginx account): store them all, and find the longest delay.
    let delayMs = 0;
    let index = -1;
    for (let i = 0; i < checks.length; i++) {
      const check = checks[i] as RateCheck;
      const excess = excesses[i] as number;
      const zone = this.#zone(this.#rates, check.zone);
      const node = zone.get(check.key);
      if (node === undefined) {
        this.#insert(zone, check.key, { excess: 0, last: now, rate: check.rate }, now);
        continue;
      }
      // nginx moves `last` only when time moved, so sub-millisecond bursts leak nothing.
      if (now !== node.last) node.last = now;
      node.excess = excess;
      node.rate = check.rate;
      if (excess <= check.delay) continue;
      const wait = Math.trunc(((excess - check.delay) * 1000) / check.rate);
      if (wait > delayMs) {
        delayMs = wait;
        index = i;
      }
    }
    return delayMs > 0 ? { action: 'delay', delayMs, retryAfterMs: 0, index } : PASS;
  }

  acquire(zone: string, key: string, max: number): boolean {
    const slots = this.#zone(this.#slots, zone);
    const held = slots.get(key) ?? 0;
    if (held >= max) return false;
    slots.set(key, held + 1);
    return true;
  }

  release(zone: string, key: string): void {
    const slots = this.#slots.get(zone);
    const held = slots?.get(key);
    if (slots === undefined || held === undefined) return;
    if (held <= 1) slots.delete(key);
    else slots.set(key, held - 1);
  }

  /** Slots held for `key` in `zone` (tests, diagnostics). */
  held(zone: string, key: string): number {
    return this.#slots.get(zone)?.get(key) ?? 0;
  }

  /** Keys tracked in a rate zone (tests, diagnostics). */
  rateKeys(zone: string): number {
    return this.#rates.get(zone)?.size ?? 0;
  }

  #zone<T>(zones: Map<string, Map<string, T>>, name: string): Map<string, T> {
    let zone = zones.get(name);
    if (zone === undefined) zones.set(name, (zone = new Map()));
    return zone;
  }

  /** The bucket of a key, bumped to most recently used; null when the key is new. */
  #node(zoneName: string, key: string): RateNode | null {
    const zone = this.#rates.get(zoneName);
    const node = zone?.get(key);
    if (zone === undefined || node === undefined) return null;
    zone.delete(key);
    zone.set(key, node);
    return node;
  }

  #insert(zone: Map<string, RateNode>, key: string, node: RateNode, now: number): void {
    // nginx expires up to two idle, fully drained keys on each new one, and the oldest by force
    // when its memory is full; here the bound is a key count.
    let checked = 0;
    for (const [oldKey, old] of zone) {
      if (checked++ >= 2) break;
      const idle = now - old.last;
      if (idle < IDLE_EXPIRY_MS || old.excess - (old.rate * idle) / 1000 > 0) break;
      zone.delete(oldKey);
    }
    if (zone.size >= this.#maxKeys) {
      const oldest = zone.keys().next();
      if (!oldest.done) zone.delete(oldest.value);
    }
    zone.set(key, node);
  }
}
