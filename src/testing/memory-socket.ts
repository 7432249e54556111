/**
 * A connection without a socket: two Duplex streams wired to each other, each with what node:http
 * reads of a net.Socket (addresses, setTimeout, setNoDelay, destroySoon). node:http documents that
 * any Duplex may be handed to a server's 'connection' event and returned by a request's
 * `createConnection`, so the server side runs node:http's own parser and Portico's whole pipeline,
 * and the client side node:http's own client: only the kernel's socket is left out.
 */
import { Duplex } from 'node:stream';

export interface MemoryAddresses {
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly serverAddress: string;
  readonly serverPort: number;
}

export class MemorySocket extends Duplex {
  peer: MemorySocket | null = null;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteFamily: string;
  #idleMs = 0;
  #idleTimer: NodeJS.Timeout | null = null;

  constructor(remote: [string, number], local: [string, number]) {
    super({ allowHalfOpen: true });
    [this.remoteAddress, this.remotePort] = remote;
    [this.localAddress, this.localPort] = local;
    this.remoteFamily = remote[0].includes(':') ? 'IPv6' : 'IPv4';
  }

  override _read(): void {
    /* data arrives when the peer writes */
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#touch();
    const peer = this.peer;
    if (peer === null || peer.destroyed) {
      callback(new Error('the connection is closed'));
      return;
    }
    peer.#touch();
    peer.push(chunk);
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.peer?.push(null);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    const peer = this.peer;
    // A reset reaches the other end as a close, as a TCP RST or FIN would.
    if (peer !== null && !peer.destroyed) setImmediate(() => peer.destroy());
    callback(error);
  }

  /** As net.Socket: 'timeout' after `ms` without reads or writes (node:http's keep-alive timeout uses it). */
  setTimeout(ms: number, listener?: () => void): this {
    this.#idleMs = ms;
    if (listener) this.once('timeout', listener);
    this.#touch();
    return this;
  }

  #touch(): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = this.#idleMs > 0 && !this.destroyed ? setTimeout(() => this.emit('timeout'), this.#idleMs).unref() : null;
  }

  setNoDelay(): this {
    return this;
  }

  setKeepAlive(): this {
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  /** As net.Socket: end, then destroy once the data written is flushed. */
  destroySoon(): void {
    if (this.writable) {
      this.once('finish', () => this.destroy());
      this.end();
    } else this.destroy();
  }

  address(): { address: string; port: number; family: string } {
    return { address: this.localAddress, port: this.localPort, family: this.remoteFamily };
  }
}

/** A connected pair: [the client's end, the server's end]. */
export function memoryConnection(addresses: MemoryAddresses): [MemorySocket, MemorySocket] {
  const client = new MemorySocket([addresses.serverAddress, addresses.serverPort], [addresses.clientAddress, addresses.clientPort]);
  const server = new MemorySocket([addresses.clientAddress, addresses.clientPort], [addresses.serverAddress, addresses.serverPort]);
  client.peer = server;
  server.peer = client;
  return [client, server];
}
