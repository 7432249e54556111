/**
 * Limits across edge worker processes: the supervisor holds the one LimitStore of the node and
 * each edge worker asks it over the node bus (core/bus.ts, the IPC channel node gives a forked
 * child). The messages are part of the bus's one union (edge/bus.ts):
 *
 *   worker → supervisor   { type: 'portico:limit:take', id, checks }          (one per rate-limited request)
 *                         { type: 'portico:limit:acquire', id, zone, key, max } (one per conn-limited request or connection)
 *                         { type: 'portico:limit:release', zone, key }         (no answer)
 *   supervisor → worker   { type: 'portico:limit:reply', id, outcome | ok }
 *
 * A worker's channel is FIFO, so a release always follows the acquire it undoes. The supervisor
 * remembers the slots each worker holds and gives them all back when that worker exits
 * (crash or stop): a dead worker cannot leak concurrency slots. Rate state belongs to the node,
 * not to workers, and survives worker crashes and reloads.
 *
 * When the channel is gone (the supervisor died: the worker is about to exit too), requests are
 * let through rather than hung: limits protect the service, they are not worth a stuck request.
 */
import { log } from './log.js';
import { PASS, type LimitStore, type RateCheck, type RateOutcome } from './limit-store.js';

export type LimitTake = { readonly type: 'portico:limit:take'; readonly id: number; readonly checks: readonly RateCheck[] };
export type LimitAcquire = { readonly type: 'portico:limit:acquire'; readonly id: number; readonly zone: string; readonly key: string; readonly max: number };
export type LimitRelease = { readonly type: 'portico:limit:release'; readonly zone: string; readonly key: string };
export type LimitReply = { readonly type: 'portico:limit:reply'; readonly id: number; readonly outcome?: RateOutcome; readonly ok?: boolean };
/** Worker → supervisor. */
export type LimitRequest = LimitTake | LimitAcquire | LimitRelease;

/** What limits need of the worker's end of the bus (core/bus.ts; the whole union is wider). */
export interface LimitClientBus {
  send(message: LimitRequest): boolean;
  on(type: 'portico:limit:reply', listener: (message: LimitReply) => void): () => void;
  onDisconnect(listener: () => void): void;
}

/** What limits need of the supervisor's end of one worker's bus. */
export interface LimitServerBus {
  send(message: LimitReply): boolean;
  on(type: LimitRequest['type'], listener: (message: LimitRequest) => void): () => void;
}

const LIMIT_REQUESTS: readonly LimitRequest['type'][] = ['portico:limit:take', 'portico:limit:acquire', 'portico:limit:release'];

/** The store inside an edge worker: every call is a question to the supervisor. */
export class IpcLimitStore implements LimitStore {
  readonly #bus: LimitClientBus;
  readonly #pending = new Map<number, (reply: LimitReply | null) => void>();
  #nextId = 1;
  #warned = false;

  constructor(bus: LimitClientBus) {
    this.#bus = bus;
    bus.on('portico:limit:reply', (message) => {
      const resolve = this.#pending.get(message.id);
      if (resolve === undefined) return;
      this.#pending.delete(message.id);
      resolve(message);
    });
    bus.onDisconnect(() => {
      for (const resolve of this.#pending.values()) resolve(null);
      this.#pending.clear();
    });
  }

  take(checks: readonly RateCheck[]): Promise<RateOutcome> {
    return this.#ask({ type: 'portico:limit:take', id: 0, checks }).then((reply) => reply?.outcome ?? PASS);
  }

  acquire(zone: string, key: string, max: number): Promise<boolean> {
    return this.#ask({ type: 'portico:limit:acquire', id: 0, zone, key, max }).then((reply) => reply?.ok ?? true);
  }

  release(zone: string, key: string): void {
    this.#send({ type: 'portico:limit:release', zone, key });
  }

  /** Requests waiting for the supervisor's answer (tests). */
  get pending(): number {
    return this.#pending.size;
  }

  #ask(message: LimitTake | LimitAcquire): Promise<LimitReply | null> {
    const id = this.#nextId++;
    return new Promise((resolve) => {
      if (!this.#send({ ...message, id })) {
        resolve(null);
        return;
      }
      this.#pending.set(id, resolve);
    });
  }

  #send(message: LimitRequest): boolean {
    if (this.#bus.send(message)) return true;
    if (!this.#warned) {
      this.#warned = true;
      log().error({ code: 'ERR_LIMIT_STORE' }, 'limit state unreachable (no channel to the supervisor): limits are not enforced');
    }
    return false;
  }
}

/**
 * Answers one worker's limit messages from `store`; returns the function to call when the worker
 * is gone, which stops listening and releases every slot it still held.
 */
export function serveLimits(store: LimitStore, bus: LimitServerBus): () => void {
  /** "zone\0key" → slots this worker holds. */
  const held = new Map<string, number>();
  let detached = false;
  const reply = (message: LimitReply): void => {
    // The worker may be gone; its exit detaches it.
    bus.send(message);
  };
  const onMessage = (message: LimitRequest): void => {
    if (detached) return;
    switch (message.type) {
      case 'portico:limit:take': {
        const outcome = store.take(message.checks);
        if (outcome instanceof Promise) outcome.then((value) => reply({ type: 'portico:limit:reply', id: message.id, outcome: value }), () => reply({ type: 'portico:limit:reply', id: message.id, outcome: PASS }));
        else reply({ type: 'portico:limit:reply', id: message.id, outcome });
        return;
      }
      case 'portico:limit:acquire': {
        const slot = `${message.zone}\0${message.key}`;
        const record = (ok: boolean): void => {
          if (ok) {
            if (detached) store.release(message.zone, message.key);
            else held.set(slot, (held.get(slot) ?? 0) + 1);
          }
          reply({ type: 'portico:limit:reply', id: message.id, ok });
        };
        const ok = store.acquire(message.zone, message.key, message.max);
        if (ok instanceof Promise) ok.then(record, () => record(true));
        else record(ok);
        return;
      }
      case 'portico:limit:release': {
        const slot = `${message.zone}\0${message.key}`;
        const count = held.get(slot);
        if (count === undefined) return; // not this worker's: ignore rather than free another's slot
        if (count <= 1) held.delete(slot);
        else held.set(slot, count - 1);
        store.release(message.zone, message.key);
        return;
      }
    }
  };
  const unsubscribe = LIMIT_REQUESTS.map((type) => bus.on(type, onMessage));
  return () => {
    if (detached) return;
    detached = true;
    for (const off of unsubscribe) off();
    for (const [slot, count] of held) {
      const split = slot.indexOf('\0');
      const zone = slot.slice(0, split);
      const key = slot.slice(split + 1);
      for (let i = 0; i < count; i++) store.release(zone, key);
    }
    held.clear();
  };
}
