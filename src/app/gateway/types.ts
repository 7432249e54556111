/**
 * The gateway interface: Portico's WSGI. What an app module may export, and what Portico hands
 * to it. This file is the contract (docs/apps.md documents the same rules); it is type-only
 * and exported from the package root.
 *
 * An app module's default export is one of:
 * - a Fetch handler: `{ fetch(request, context) }` or `(request, context) => Response`, the
 *   convention of Hono, Bun, Deno and Cloudflare Workers;
 * - a Node request listener `(req, res)`: Express, Connect, Koa's `app.callback()`, a plain
 *   `http.createServer` callback (an `http.Server` itself is accepted too);
 * - a Koa application (its `callback()` is used) or a Fastify instance (`ready()`, then `routing`).
 *
 * `export const gateway = 'fetch' | 'node'` overrides the detection (see load-app.ts for the rule).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** What a Fetch handler receives next to the Request. */
export interface AppContext {
  /**
   * The client's IP address: behind `portico up`'s edge, the address the edge accepted the
   * client's connection from (passed by the edge; a client cannot set it); under
   * `portico app --bind`, the socket's peer. No X-Forwarded-For is trusted here.
   */
  readonly clientAddress: string;
  /** Alias of `clientAddress` (the name Node and srvx use). */
  readonly remoteAddress: string;
  readonly remotePort: number | undefined;
  /**
   * Keeps work alive after the response is sent (the Workers API): a graceful stop or a recycle
   * waits for these promises (up to the graceful timeout). A rejection is logged, not thrown.
   */
  waitUntil(promise: Promise<unknown>): void;
  /** Aborted when the client goes away or the request times out (the same as `request.signal`). */
  readonly signal: AbortSignal;
}

/** A Fetch handler as a function. */
export type FetchHandler = (request: Request, context: AppContext) => Response | Promise<Response>;

/** A Fetch handler as an object (Hono apps, `export default { fetch }`). */
export interface FetchApp {
  fetch: FetchHandler;
}

/** A Node request listener (Express, Connect, Koa's `callback()`, `http.createServer`'s callback). */
export type NodeListener = (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => unknown;

/** The part of a Fastify instance Portico uses. */
export interface FastifyLike {
  ready(): PromiseLike<unknown>;
  routing(req: IncomingMessage, res: ServerResponse): void;
  server: unknown;
}

/** The explicit override: `export const gateway = 'fetch'` or `'node'`. */
export type GatewayKind = 'fetch' | 'node';

/** The shape of an app module, for authors who want the type checked. */
export interface AppModule {
  default: FetchApp | FetchHandler | NodeListener | FastifyLike;
  gateway?: GatewayKind;
}

/** An app after detection: what the worker serves. */
export type LoadedApp =
  | { readonly kind: 'fetch'; readonly file: string; readonly via: string; readonly fetch: FetchHandler }
  | { readonly kind: 'node'; readonly file: string; readonly via: string; readonly listener: NodeListener };
