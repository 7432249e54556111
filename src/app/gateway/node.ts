/**
 * The Node gateway: a `(req, res)` listener (Express, Koa's callback, Connect, Fastify's routing)
 * gets the request as is. Also the shared error path of both gateways.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { log } from '../../core/log.js';
import type { NodeListener } from './types.js';

export interface GatewayOptions {
  /** Aborts the Fetch request's signal and answers 503 if nothing was sent after this long; 0 = never. */
  readonly timeoutMs: number;
  /** Writes the error response (headers not yet sent). Default: log it and answer a bare 500. */
  readonly onError?: (error: unknown, req: IncomingMessage, res: ServerResponse) => void;
  /** Receives `context.waitUntil` promises. */
  readonly waitUntil: (promise: Promise<unknown>) => void;
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

/** Serves one request with a Node listener; a sync throw or a rejected promise becomes a 500. */
export function serveNode(listener: NodeListener, req: IncomingMessage, res: ServerResponse, options: GatewayOptions): void {
  const fail = (error: unknown) => {
    if (res.headersSent) {
      log().error({ err: error, method: req.method, url: req.url }, 'app handler failed after the response began');
      res.destroy();
      return;
    }
    failRequest(error, req, res, options);
  };
  if (options.timeoutMs > 0) {
    const timer = setTimeout(() => {
      if (!res.headersSent) res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' }).end('Service Unavailable: the request timed out\n');
    }, options.timeoutMs);
    res.on('close', () => clearTimeout(timer));
  }
  try {
    const result = listener(req, res);
    if (result && typeof (result as PromiseLike<unknown>).then === 'function') (result as PromiseLike<unknown>).then(undefined, fail);
  } catch (error) {
    fail(error);
  }
}
