/**
 * The edge's observation seam: named `node:diagnostics_channel` channels that the request path
 * publishes to, and that observers subscribe to: the access log (edge/log/access.ts) first, then
 * metrics. Nothing on the request path knows who listens. A publisher checks `hasSubscribers`
 * before it builds a message, so a channel nobody listens to costs one property read per
 * request and allocates nothing (bench/proxy-cost.mjs measures it; docs/performance.md).
 *
 * Channels are process-wide: every EdgeServer in a process publishes to the same ones, and a
 * subscriber tells requests apart by `ctx.generation` (which server and config served them).
 */
import { channel } from 'node:diagnostics_channel';
import type { RequestContext } from './context.js';

/**
 * `portico:request:end`: once per request, when its response has closed (sent in full, or cut).
 * The message is the RequestContext itself (no wrapper to allocate); `ctx.status` is final, 499
 * when the client left before a response was sent (as nginx logs it).
 */
export const requestEnd = channel('portico:request:end');

/** `portico:upstream:attempt`: one attempt of the reverse proxy on one upstream server has ended. */
export interface UpstreamAttemptMessage {
  readonly ctx: RequestContext;
  readonly upstream: string;
  readonly server: string;
  /** 1 for the first attempt of the request, 2 for its first retry, … */
  readonly attempt: number;
  /** Whether the server answered (the response was relayed), or the attempt failed. */
  readonly ok: boolean;
  /** What failed ("ECONNREFUSED", "HTTP_503", "timeout"…), "" when ok. */
  readonly code: string;
  /** From the attempt's start to its end: the response relayed in full, or the failure. */
  readonly durationMs: number;
}
export const upstreamAttempt = channel('portico:upstream:attempt');

/** `portico:cache:status`: a cache decided how a response is served; `status` is its `Cache-Status` (RFC 9211). */
export interface CacheStatusMessage {
  readonly ctx: RequestContext;
  readonly zone: string;
  readonly status: string;
}
export const cacheStatus = channel('portico:cache:status');

/**
 * Requests of this process whose end an observer waits for: counted where the close listener is
 * added (only while someone listens), uncounted in publishRequestEnd. Read by the metrics.
 */
export const inFlight = { requests: 0 };

/** Counts a request in flight (its end will be published): called where its close listener is added. */
export function countInFlight(ctx: RequestContext): void {
  ctx.counted = true;
  inFlight.requests++;
}

/** Ends a request for the observers: 499 when nothing was sent, then `portico:request:end`. */
export function publishRequestEnd(ctx: RequestContext): void {
  if (ctx.counted) {
    ctx.counted = false;
    inFlight.requests--;
  }
  if (ctx.status === 0 && !ctx.res.headersSent) ctx.status = 499;
  requestEnd.publish(ctx);
}

/** Sets the request's Cache-Status and tells `portico:cache:status` (when anyone listens). */
export function setCacheStatus(ctx: RequestContext, zone: string, status: string): void {
  ctx.cacheStatus = status;
  if (cacheStatus.hasSubscribers) cacheStatus.publish({ ctx, zone, status } satisfies CacheStatusMessage);
}
