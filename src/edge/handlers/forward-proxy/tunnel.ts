/**
 * CONNECT tunnels (RFC 9110 §9.3.6): once the destination accepts a TCP connection the client
 * gets `200 Connection established` and the proxy relays bytes both ways, blind, with
 * back-pressure (stream pipes: a slow reader pauses the other side's socket, so a tunnel holds
 * at most a socket buffer or two of memory), an idle timeout, and half-close: a side that sends
 * FIN has it passed on while the other direction goes on, and the tunnel ends when both
 * directions have ended or either side fails (RFC 9110 §9.3.6: "A tunnel is closed when a tunnel
 * intermediary detects that either side has closed its connection"; a FIN only closes one
 * direction, a reset or error closes both).
 */
import { connect, type Socket } from 'node:net';

export interface TunnelOutcome {
  /** The address the tunnel reached, or null when no address accepted. */
  readonly connected: string | null;
  /** For a failure before the 200: 502 (refused, unreachable) or 504 (timed out), and why. */
  readonly failure: { readonly status: 502 | 504; readonly reason: string } | null;
}

export const formatAddress = (address: string, port: number): string => (address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`);

/**
 * Connects to the first address that accepts (in the resolver's order), within `timeoutMs` each.
 * Resolves the socket, or the failure of the last address tried.
 */
export function connectFirst(addresses: readonly string[], port: number, timeoutMs: number, clientGone: () => boolean): Promise<{ socket: Socket; address: string } | { status: 502 | 504; reason: string }> {
  return new Promise((resolve) => {
    const attempt = (index: number, last: { status: 502 | 504; reason: string } | null): void => {
      const address = addresses[index];
      if (address === undefined || clientGone()) {
        resolve(last ?? { status: 502, reason: 'no address to connect to' });
        return;
      }
      // allowHalfOpen: a FIN from the destination ends one direction only (half-close).
      const socket = connect({ host: address, port, allowHalfOpen: true, noDelay: true });
      const timer = setTimeout(() => {
        socket.destroy();
        attempt(index + 1, { status: 504, reason: `connecting to ${formatAddress(address, port)} timed out` });
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve({ socket, address });
      });
      socket.once('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        socket.destroy();
        attempt(index + 1, { status: 502, reason: `cannot connect to ${formatAddress(address, port)} (${error.code ?? 'error'})` });
      });
    };
    attempt(0, null);
  });
}

/**
 * Relays bytes between the client and the destination until both directions have ended, either
 * side fails, or neither has moved a byte for `idleMs`. `head` is what the client sent after its
 * CONNECT head (already read by node:http). Resolves once both sockets are closed, with the
 * bytes each way.
 */
export function relay(client: Socket, upstream: Socket, head: Buffer, idleMs: number): Promise<{ up: number; down: number }> {
  return new Promise((resolve) => {
    let open = 2;
    const fail = () => {
      client.destroy();
      upstream.destroy();
    };
    const closed = () => {
      if (--open === 0) resolve({ up: upstream.bytesWritten, down: upstream.bytesRead });
    };
    for (const socket of [client, upstream]) {
      // Idle in both directions: a socket's timer restarts on any read or write on it, and each
      // direction reads one socket and writes the other, so either timer firing means silence.
      socket.setTimeout(idleMs, fail);
      socket.on('error', fail);
      // A clean close of one side (both its directions done) leaves the other to flush what it
      // still has to write; a close after an error ends both at once.
      socket.once('close', (hadError: boolean) => {
        if (hadError) fail();
        closed();
      });
    }
    if (head.length > 0) upstream.write(head);
    // pipe: back-pressure both ways, and `end()` of the writer when the reader ends (half-close).
    client.pipe(upstream);
    upstream.pipe(client);
  });
}
