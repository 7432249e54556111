/**
 * Limits across edge worker processes: the supervisor holds the one MemoryLimitStore of the node
 * and each edge worker asks it over its IPC channel (the `process.send` channel node gives a
 * forked child). Messages are small JSON objects whose `type` starts with `portico:limit`:
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
import { MemoryLimitStore, PASS, type LimitStore, type RateCheck, type RateOutcome } from './limit-store.js';

export const LIMIT_MESSAGE_PREFIX = 'portico:limit';

type TakeMessage = { readonly type: 'portico:limit:take'; readonly id: number; readonly checks: readonly RateCheck[] };
type AcquireMessage = { readonly type: 'portico:limit:acquire'; readonly id: number; readonly zone: string; readonly key: string; readonly max: number };
type ReleaseMessage = { readonly type: 'portico:limit:release'; readonly zone: string; readonly key: string };
type ReplyMessage = { readonly type: 'portico:limit:reply'; readonly id: number; readonly outcome?: RateOutcome; readonly ok?: boolean };
export type LimitMessage = TakeMessage | AcquireMessage | ReleaseMessage | ReplyMessage;

export const isLimitMessage = (message: unknown): message is LimitMessage =>
  typeof message === 'object' && message !== null && typeof (message as { type?: unknown }).type === 'string' && (message as { type: string }).type.startsWith(LIMIT_MESSAGE_PREFIX);

/** What the worker side needs of its channel to the supervisor (`process` in a forked child). */
export interface WorkerChannel {
  send?(message: unknown): boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  on(event: 'disconnect', listener: () => void): unknown;
  readonly connected?: boolean;
}

/** The store inside an edge worker: every call is a question to the supervisor. */
export class IpcLimitStore implements LimitStore {
  readonly #channel: WorkerChannel;
  readonly #pending = new Map<number, (reply: ReplyMessage | null) => void>();
  #nextId = 1;
  #warned = false;

  constructor(channel: WorkerChannel) {
    this.#channel = channel;
    channel.on('message', (message) => {
      if (!isLimitMessage(message) || message.type !== 'portico:limit:reply') return;
      const resolve = this.#pending.get(message.id);
      if (resolve === undefined) return;
      this.#pending.delete(message.id);
      resolve(message);
    });
    channel.on('disconnect', () => {
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

  #ask(message: TakeMessage | AcquireMessage): Promise<ReplyMessage | null> {
    const id = this.#nextId++;
    return new Promise((resolve) => {
      if (!this.#send({ ...message, id })) {
        resolve(null);
        return;
      }
      this.#pending.set(id, resolve);
    });
  }

  #send(message: LimitMessage): boolean {
    try {
      if (this.#channel.send !== undefined && this.#channel.connected !== false) {
        this.#channel.send(message);
        return true;
      }
    } catch {
      // falls through: the channel closed under us
    }
    if (!this.#warned) {
      this.#warned = true;
      log().error({ code: 'ERR_LIMIT_STORE' }, 'limit state unreachable (no channel to the supervisor): limits are not enforced');
    }
    return false;
  }
}

/** What the supervisor side needs of a worker (a ChildProcess or a cluster.Worker). */
export interface SupervisorChannel {
  send(message: unknown): boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

/**
 * Answers one worker's limit messages from `store`; returns the function to call when the worker
 * is gone, which stops listening and releases every slot it still held.
 */
export function serveLimits(store: LimitStore, worker: SupervisorChannel): () => void {
  /** "zone\0key" → slots this worker holds. */
  const held = new Map<string, number>();
  let detached = false;
  const reply = (message: ReplyMessage): void => {
    try {
      worker.send(message);
    } catch {
      // The worker is gone; its exit detaches it.
    }
  };
  const onMessage = (message: unknown): void => {
    if (!isLimitMessage(message) || detached) return;
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
      default:
        return;
    }
  };
  worker.on('message', onMessage);
  return () => {
    if (detached) return;
    detached = true;
    worker.off('message', onMessage);
    for (const [slot, count] of held) {
      const split = slot.indexOf('\0');
      const zone = slot.slice(0, split);
      const key = slot.slice(split + 1);
      for (let i = 0; i < count; i++) store.release(zone, key);
    }
    held.clear();
  };
}

let nodeStore: MemoryLimitStore | null = null;

/** The one in-memory store of this process: the node's state in a supervisor or a single-process edge. */
export function nodeLimitStore(): MemoryLimitStore {
  return (nodeStore ??= new MemoryLimitStore());
}

let workerStore: IpcLimitStore | null = null;

/**
 * The store the edge of this process uses: inside an edge worker (env PORTICO_EDGE_WORKER=1, with
 * an IPC channel) the supervisor's, asked over IPC; otherwise this process's own memory.
 */
export function edgeLimitStore(): LimitStore {
  if (process.env.PORTICO_EDGE_WORKER === '1' && typeof process.send === 'function') {
    return (workerStore ??= new IpcLimitStore(process as unknown as WorkerChannel));
  }
  return nodeLimitStore();
}
