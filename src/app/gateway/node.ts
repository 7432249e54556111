/**
 * The Node gateway: a `(req, res)` listener (Express, Koa's callback, Connect, Fastify's routing)
 * gets the request as is. Also the shared error path of both gateways.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { log } from '../../core/log.js';
import { DeadlineQueue, type Deadline } from '../../core/deadline-queue.js';
import type { NodeListener } from './types.js';

export interface GatewayOptions {
  /** Aborts the Fetch request's signal and answers 503 if nothing was sent after this long; 0 = never. */
  readonly timeoutMs: number;
  /** Writes the error response (headers not yet sent). Default: log it and answer a bare 500. */
  readonly onError?: (error: unknown, req: IncomingMessage, res: ServerResponse) => void;
  /** Receives `context.waitUntil` promises. */
  readonly waitUntil: (promise: Promise<unknown>) => void;
  /**
   * Called once per response when it closes (sent, or the client left), from the gateway's own
   * 'close' listener: a server that tracks its requests in flight needs no listener of its own.
   */
  readonly onResponseClose?: (res: ServerResponse) => void;
  /**
   * The worker is reached only by the edge, over its private unix socket (`portico up`): the
   * client's address is the edge's `portico-client-address` field (core/edge-client.ts), not the
   * socket's peer. False when the worker serves a public address (`portico app --bind`).
   */
  readonly behindEdge?: boolean;
}

/** Logs `error` and answers 500 (RFC 9110 §15.6.1) without telling the client why. */
export function failRequest(error: unknown, req: IncomingMessage, res: ServerResponse, options: GatewayOptions): void {
  if (options.onError) {
    options.onError(error, req, res);
    return;
  }
  log().error({ err: error, method: req.method, url: req.url }, 'app handler failed');
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8', 'content-length': '22' }).end('Internal Server Error\n');
}

/** A response waiting for its deadline (`timeoutMs`). */
class Exchange implements Deadline {
  readonly res: ServerResponse;
  _deadline = 0;
  _prev: Deadline | null = null;
  _next: Deadline | null = null;
  _queued = false;

  constructor(res: ServerResponse) {
    this.res = res;
  }
}

const STATE = Symbol('portico.node');
type TrackedResponse = ServerResponse & { [STATE]?: Exchange };

function onTimeout(exchange: Exchange): void {
  const res = exchange.res;
  if (!res.headersSent) res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' }).end('Service Unavailable: the request timed out\n');
}

/**
 * The request listener of a Node app: a sync throw or a rejected promise becomes a 500. Its own
 * per-request work is one deadline (one queue, core/deadline-queue.ts, not a timer per request) and one
 * shared 'close' listener, only when there is a timeout or an `onResponseClose`.
 */
export function nodeListener(listener: NodeListener, options: GatewayOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const deadlines = options.timeoutMs > 0 ? new DeadlineQueue<Exchange>(options.timeoutMs, onTimeout) : null;
  const onResponseClose = options.onResponseClose;
  function onClose(this: TrackedResponse): void {
    const exchange = this[STATE];
    if (exchange) deadlines?.remove(exchange);
    onResponseClose?.(this);
  }
  const tracked = deadlines !== null || onResponseClose !== undefined;
  return (req, res) => {
    if (tracked) {
      if (deadlines) {
        const exchange = new Exchange(res);
        (res as TrackedResponse)[STATE] = exchange;
        deadlines.add(exchange);
      }
      res.on('close', onClose);
    }
    serveNode(listener, req, res, options);
  };
}

/** Serves one request with a Node listener; a sync throw or a rejected promise becomes a 500. */
function serveNode(listener: NodeListener, req: IncomingMessage, res: ServerResponse, options: GatewayOptions): void {
  const fail = (error: unknown) => {
    if (res.headersSent) {
      log().error({ err: error, method: req.method, url: req.url }, 'app handler failed after the response began');
      res.destroy();
      return;
    }
    failRequest(error, req, res, options);
  };
  try {
    const result = listener(req, res);
    if (result && typeof (result as PromiseLike<unknown>).then === 'function') (result as PromiseLike<unknown>).then(undefined, fail);
  } catch (error) {
    fail(error);
  }
}
