/**
 * nginx `limit_conn` on a route: a request takes one slot of its key in each of the route's
 * concurrency zones for as long as it is in flight (from the access phase until its response
 * closes, a WebSocket tunnel included), and one over `max` is answered with the limit's status:
 * nginx's `limit_conn_status` default, 503, with `Retry-After: 1` (RFC 9110 §10.2.3). nginx counts
 * connections whose request head was read, which for HTTP/1.1 is one request in flight per
 * connection: counting requests in flight is the same number. An empty key is not limited.
 * Applied once per request, like nginx (`r->main->limit_conn_status`).
 */
import type { Server as NetServer, Socket } from 'node:net';
import type { ResolvedConfig, ResolvedConnLimit } from '../../config/resolved.js';
import { ErrorCodes, HttpError } from '../../core/errors.js';
import { log } from '../../core/log.js';
import type { LimitStore } from '../../core/limit-store.js';
import type { RequestContext } from '../context.js';
import { compileTemplate, type Template } from '../variables.js';

interface Limit {
  readonly zone: string;
  readonly key: Template;
  readonly max: number;
  readonly status: number;
}

const RETRY = { 'Retry-After': '1' };

export function compileConnLimit(limits: readonly ResolvedConnLimit[], zones: ResolvedConfig['limits']['connZones'], store: LimitStore): ((ctx: RequestContext) => void | Promise<void>) | null {
  if (limits.length === 0) return null;
  const compiled: Limit[] = limits.map((limit) => {
    const zone = zones[limit.zone];
    if (!zone) throw new Error(`unknown conn zone ${limit.zone}`); // resolve.ts refuses this
    return { zone: limit.zone, key: compileTemplate(zone.key), max: limit.max, status: limit.status };
  });

  const refuse = (ctx: RequestContext, limit: Limit): never => {
    log().info({ code: ErrorCodes.ERR_LIMIT_CONN, zone: limit.zone, client: ctx.clientAddress, route: ctx.route?.id }, 'limiting connections');
    throw new HttpError(limit.status, ErrorCodes.ERR_LIMIT_CONN, `concurrency limit of zone "${limit.zone}" reached`, { headers: RETRY });
  };

  return function connLimit(ctx) {
    if (ctx.connLimited) return;
    ctx.connLimited = true;
    // Slots held by this request, given back once when its response closes (or at once if it
    // closed while a slot was being taken).
    const held: { zone: string; key: string }[] = [];
    let closed = false;
    ctx.res.once('close', () => {
      closed = true;
      for (const slot of held) store.release(slot.zone, slot.key);
      held.length = 0;
    });
    const take = (index: number): void | Promise<void> => {
      for (let i = index; i < compiled.length; i++) {
        const limit = compiled[i] as Limit;
        const key = limit.key(ctx);
        if (key === '') continue;
        const ok = store.acquire(limit.zone, key, limit.max);
        if (ok instanceof Promise) {
          return ok.then((granted) => {
            if (granted) {
              if (closed) store.release(limit.zone, key);
              else held.push({ zone: limit.zone, key });
            } else refuse(ctx, limit);
            return take(i + 1);
          });
        }
        if (!ok) refuse(ctx, limit);
        held.push({ zone: limit.zone, key });
      }
    };
    return take(0);
  };
}

/** The node-wide count of open client connections (`http.maxConnections`) lives in this zone of the store. */
export const NODE_CONNECTIONS_ZONE = 'portico:connections';
const NODE_KEY = 'node';
/** How long a refused connection may take to read our answer before it is destroyed. */
const REFUSED_LINGER_MS = 1_000;

function refuseConnection(socket: Socket, serverHeader: string | null): void {
  const body = '503 Service Unavailable: too many connections\n';
  const server = serverHeader === null || /[\r\n\0]/.test(serverHeader) ? '' : `Server: ${serverHeader}\r\n`;
  socket.on('error', () => socket.destroy());
  // Read and discard what the client sends, so closing does not turn into a reset that could
  // destroy our answer in flight (RFC 9112 §9.6: a server closes in stages).
  socket.resume();
  socket.end(`HTTP/1.1 503 Service Unavailable\r\n${server}Retry-After: 1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
  setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
}

/**
 * The global cap on open client connections per node (`http.maxConnections`), checked when a
 * connection is accepted, before node:http reads anything from it: the server's own
 * `connection` listeners (node:http's parser setup) are moved behind the check. A connection
 * over the cap is answered `503` with `Retry-After: 1` and `Connection: close` and closed without
 * its request being read or parsed; a status tells clients and load balancers what happened, where
 * a bare close would look like a network fault. The count is in the node's LimitStore, so with
 * several edge workers it is one count for the node; a connection gives its slot back when it
 * closes. `cap()` is read per connection, so a reload changes it for new connections.
 */
export function gateConnections(server: NetServer, cap: () => number, store: LimitStore, serverHeader: () => string | null, encrypted = false): void {
  // Over TLS no HTTP can be written before a handshake: a refused connection is closed at once
  // (the client sees the connection refused before TLS, as nginx's limit at accept does).
  const refuse = encrypted ? (socket: Socket): void => void socket.destroy() : (socket: Socket): void => refuseConnection(socket, serverHeader());
  const listeners = server.listeners('connection') as ((this: NetServer, socket: Socket) => void)[];
  server.removeAllListeners('connection');
  const admit = (socket: Socket): void => {
    for (const listener of listeners) listener.call(server, socket);
  };
  const release = (): void => store.release(NODE_CONNECTIONS_ZONE, NODE_KEY);
  server.on('connection', (socket: Socket) => {
    const max = cap();
    if (max === 0) {
      admit(socket);
      return;
    }
    const granted = store.acquire(NODE_CONNECTIONS_ZONE, NODE_KEY, max);
    if (!(granted instanceof Promise)) {
      if (!granted) return refuse(socket);
      socket.once('close', release);
      admit(socket);
      return;
    }
    // The answer comes over IPC: hold the bytes that arrive meanwhile (node:http takes them
    // from the stream buffer once admitted).
    socket.pause();
    granted.then((ok) => {
      if (!ok) return refuse(socket);
      if (socket.destroyed) return release();
      socket.once('close', release);
      admit(socket);
      socket.resume();
    }, () => admit(socket));
  });
}
