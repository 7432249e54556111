/**
 * `http.sendTimeout` (nginx `send_timeout`): a client that takes nothing of its response for that
 * long is disconnected, so a reader that stalls (slowhttptest -X, a dead peer behind a full
 * window) does not hold its connection, its file and its buffer for ever.
 *
 * What node lets us see: a socket's `writableLength` (bytes handed to it and not yet taken by the
 * kernel) and `bytesWritten`. A write completes only when all its bytes are taken, so a client
 * that reads a few bytes now and then shows no progress either until a whole write is through:
 * it is judged stalled too (nginx resets its timer on any partial send). One sweep per process
 * checks every open HTTP/1.1 connection a few times per timeout, off the request path; a socket
 * with nothing pending costs one comparison.
 */
import type { Socket } from 'node:net';

interface Watched {
  pending: number;
  written: number;
  /** When the pending bytes were first seen unchanged (ms), 0 while nothing is pending. */
  since: number;
}

const sockets = new Map<Socket, Watched>();
let timeoutMs = () => 0;
let timer: NodeJS.Timeout | null = null;

/** The sweep's period: four checks per timeout, between 250 ms and 5 s. */
const period = (timeout: number): number => Math.min(5_000, Math.max(250, Math.floor(timeout / 4)));

function sweep(): void {
  timer = null;
  const timeout = timeoutMs();
  if (sockets.size === 0) return;
  if (timeout > 0) {
    const now = Date.now();
    for (const [socket, watched] of sockets) {
      const pending = socket.writableLength;
      if (pending === 0) {
        watched.since = 0;
        continue;
      }
      const written = socket.bytesWritten;
      if (watched.since === 0 || pending !== watched.pending || written !== watched.written) {
        watched.since = now;
        watched.pending = pending;
        watched.written = written;
      } else if (now - watched.since >= timeout) {
        sockets.delete(socket);
        socket.destroy();
      }
    }
  }
  schedule(timeout);
}

function schedule(timeout: number): void {
  if (timer !== null) return;
  timer = setTimeout(sweep, period(timeout > 0 ? timeout : 60_000));
  timer.unref();
}

/** Watches an HTTP/1.1 client connection until it closes; `timeout` reads the current config's value (a reload changes it). */
export function watchSends(socket: Socket, timeout: () => number): void {
  timeoutMs = timeout;
  sockets.set(socket, { pending: 0, written: 0, since: 0 });
  socket.once('close', () => sockets.delete(socket));
  schedule(timeout());
}
