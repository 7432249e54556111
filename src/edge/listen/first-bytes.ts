/**
 * The first bytes of a connection, read before any protocol owns it: what a TLS listener needs
 * (the ClientHello's server name, tls.ts) and what a cleartext h2c listener needs (the HTTP/2
 * preface or not, h2.ts). Reading them is part of receiving a request head, so it has the head
 * deadline; whoever takes the connection clears it when its own phase ends (`done`).
 */
import type { Socket } from 'node:net';

/**
 * Reads `raw` until `decide(bytes)` returns a decision (not undefined), then stops reading and
 * calls `then` with the decision, the bytes read and the function that clears the deadline. A
 * connection that has not ended its first phase by `timeoutMs` is destroyed.
 */
export function readFirstBytes<T>(raw: Socket, timeoutMs: number, decide: (bytes: Buffer) => T | undefined, then: (decision: T, bytes: Buffer, done: () => void) => void): void {
  raw.on('error', () => raw.destroy());
  const deadline = setTimeout(() => raw.destroy(), timeoutMs > 0 ? timeoutMs : 60_000);
  const done = (): void => clearTimeout(deadline);
  raw.once('close', done);
  let received: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
    const decision = decide(received);
    if (decision === undefined) return;
    raw.off('data', onData);
    then(decision, received, done);
  };
  raw.on('data', onData);
}
