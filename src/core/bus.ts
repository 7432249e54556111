/**
 * The node bus: one typed message channel between two processes of a node (the supervisor and
 * one of its edge workers), over the IPC channel node gives a forked child (`process` on the
 * worker side, the `cluster.Worker` or `ChildProcess` on the supervisor side).
 *
 * Every message is a JSON object whose `type` names it; the whole union is declared once
 * (edge/bus.ts) and each side subscribes by type. One `message` listener per channel dispatches
 * through a map, so adding a protocol adds an entry, not another listener that looks at every
 * message. Messages that are not the bus's (node:cluster's own travel apart, as internal
 * messages; anything without a known `type`) are ignored.
 *
 * A side that finds its channel gone (the supervisor died; the worker is about to exit too) gets
 * `false` from `send` and its `onDisconnect` listeners run once: callers decide what a lost
 * answer means (limits let the request through rather than hang it).
 */

export interface BusMessage {
  readonly type: string;
}

/** What the bus needs of an IPC channel: `process` in a forked child, a `cluster.Worker` or `ChildProcess` in the parent. */
export interface IpcChannel {
  send?(message: unknown): boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  on(event: 'disconnect', listener: () => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'disconnect', listener: () => void): unknown;
  readonly connected?: boolean;
  isConnected?(): boolean;
}

type Listener = (message: never) => void;

/** One end of a bus, as its users see it: sends `Out`, receives `In` by type. */
export interface Bus<Out extends BusMessage, In extends BusMessage> {
  readonly connected: boolean;
  send(message: Out): boolean;
  on<T extends In['type']>(type: T, listener: (message: Extract<In, { readonly type: T }>) => void): () => void;
  onDisconnect(listener: () => void): void;
}

/** One end of the bus over an IPC channel. */
export class NodeBus<Out extends BusMessage, In extends BusMessage> implements Bus<Out, In> {
  readonly #channel: IpcChannel;
  readonly #listeners = new Map<string, Set<Listener>>();
  readonly #onDisconnect = new Set<() => void>();
  #closed = false;

  constructor(channel: IpcChannel) {
    this.#channel = channel;
    channel.on('message', this.#dispatch);
    channel.on('disconnect', this.#disconnected);
  }

  /** The channel is open (a send may arrive). */
  get connected(): boolean {
    if (this.#closed) return false;
    const channel = this.#channel;
    if (channel.isConnected) return channel.isConnected();
    return channel.connected !== false && channel.send !== undefined;
  }

  /** Sends `message`; false when the channel is gone (nothing was sent). */
  send(message: Out): boolean {
    if (!this.connected) return false;
    try {
      // node's send returns false when its queue is long, but the message is still queued: sent.
      (this.#channel.send as (message: unknown) => boolean)(message);
      return true;
    } catch {
      // The channel closed between the check and the write.
      return false;
    }
  }

  /** Calls `listener` for every message of `type`; returns the unsubscriber. */
  on<T extends In['type']>(type: T, listener: (message: Extract<In, { readonly type: T }>) => void): () => void {
    let set = this.#listeners.get(type);
    if (!set) this.#listeners.set(type, (set = new Set()));
    const listeners = set;
    listeners.add(listener as Listener);
    return () => {
      listeners.delete(listener as Listener);
    };
  }

  /** Runs once when the channel closes. */
  onDisconnect(listener: () => void): void {
    this.#onDisconnect.add(listener);
  }

  /** Stops listening to the channel (the other process is gone, or this end is done). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#channel.off('message', this.#dispatch);
    this.#channel.off('disconnect', this.#disconnected);
    this.#listeners.clear();
  }

  readonly #dispatch = (message: unknown): void => {
    if (typeof message !== 'object' || message === null) return;
    const type = (message as { type?: unknown }).type;
    if (typeof type !== 'string') return;
    const listeners = this.#listeners.get(type);
    if (!listeners) return;
    for (const listener of listeners) listener(message as never);
  };

  readonly #disconnected = (): void => {
    for (const listener of this.#onDisconnect) listener();
    this.#onDisconnect.clear();
  };
}

/**
 * A numbered question over a bus: sends `message` and resolves with the first message of type
 * `replyType` that carries the same `seq`, or null when none comes within `timeoutMs` (or the
 * message could not be sent). Each side numbers what it asks from its own counter.
 */
export function ask<Out extends BusMessage, In extends BusMessage, T extends In['type']>(bus: Bus<Out, In>, message: Out & { readonly seq: number }, replyType: T, timeoutMs: number): Promise<Extract<In, { readonly type: T }> | null> {
  type Reply = Extract<In, { readonly type: T }>;
  return new Promise((resolve) => {
    const settle = (reply: Reply | null): void => {
      clearTimeout(timer);
      detach();
      resolve(reply);
    };
    const timer = setTimeout(() => settle(null), timeoutMs);
    // TypeScript cannot narrow the union by a generic type name: the listener gets the messages of `replyType`.
    const detach = bus.on(replyType, ((reply: Reply & { readonly seq?: number }) => {
      if (reply.seq === message.seq) settle(reply);
    }) as never);
    if (!bus.send(message)) settle(null);
  });
}
