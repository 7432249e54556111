/**
 * nginx `limit_req` on a route: each request is counted against the route's rate limits in the
 * node's LimitStore (core/limit-store.ts has the leaky-bucket arithmetic); it then passes, waits
 * (burst paced at the rate), or is rejected with the limit's status (429 by default) and a
 * `Retry-After` (RFC 6585 §4, RFC 9110 §10.2.3) saying when it would fit. A key that evaluates
 * to "" is not limited (nginx skips empty keys). Applied once per request: an internal redirect
 * to another route does not count the request again (nginx: `r->main->limit_req_status`).
 */
import type { ResolvedConfig, ResolvedRateLimit } from '../../config/resolved.js';
import { ErrorCodes, HttpError } from '../../core/errors.js';
import { log } from '../../core/log.js';
import type { LimitStore, RateCheck, RateOutcome } from '../../core/limit-store.js';
import type { RequestContext } from '../context.js';
import { compileTemplate, type Template } from '../variables.js';

interface Limit {
  readonly key: Template;
  readonly status: number;
  /** The check sent to the store; only `key` changes per request. */
  readonly check: { zone: string; key: string; rate: number; burst: number; delay: number };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function compileRateLimit(limits: readonly ResolvedRateLimit[], zones: ResolvedConfig['limits']['rateZones'], store: LimitStore): ((ctx: RequestContext) => void | Promise<void>) | null {
  if (limits.length === 0) return null;
  const compiled: Limit[] = limits.map((limit) => {
    const zone = zones[limit.zone];
    if (!zone) throw new Error(`unknown rate zone ${limit.zone}`); // resolve.ts refuses this
    return {
      key: compileTemplate(zone.key),
      status: limit.status,
      // nodelay: nothing within the burst is delayed (nginx sets delay past any excess).
      check: { zone: limit.zone, key: '', rate: zone.rate, burst: limit.burst * 1000, delay: limit.nodelay ? Number.MAX_SAFE_INTEGER : limit.delay * 1000 },
    };
  });
  // Reused per request: a store reads the checks synchronously (the memory store computes, the
  // IPC store serialises), so one array per route serves every request without allocating.
  const active: RateCheck[] = [];
  const activeLimits: Limit[] = [];

  const decide = (ctx: RequestContext, outcome: RateOutcome, limitsNow: readonly Limit[]): void | Promise<void> => {
    if (outcome.action === 'pass') {
      ctx.limitReqStatus = 'PASSED';
      return;
    }
    const limit = limitsNow[outcome.index] ?? (limitsNow[0] as Limit);
    if (outcome.action === 'reject') {
      ctx.limitReqStatus = 'REJECTED';
      const seconds = Math.max(1, Math.ceil(outcome.retryAfterMs / 1000));
      log().info({ code: ErrorCodes.ERR_LIMIT_RATE, zone: limit.check.zone, client: ctx.clientAddress, route: ctx.route?.id }, 'limiting requests');
      throw new HttpError(limit.status, ErrorCodes.ERR_LIMIT_RATE, `rate limit of zone "${limit.check.zone}" exceeded`, { headers: { 'Retry-After': String(seconds) } });
    }
    ctx.limitReqStatus = 'DELAYED';
    return sleep(outcome.delayMs).then(() => {
      // The client left while waiting (nginx ngx_http_test_reading): serve nothing.
      if (ctx.req.socket.destroyed) throw new HttpError(499, ErrorCodes.ERR_LIMIT_RATE, 'client closed the connection while its request was delayed');
    });
  };

  return function rateLimit(ctx) {
    if (ctx.rateLimited) return;
    active.length = 0;
    activeLimits.length = 0;
    for (const limit of compiled) {
      const key = limit.key(ctx);
      if (key === '') continue;
      limit.check.key = key;
      active.push(limit.check);
      activeLimits.push(limit);
    }
    // Counted once per request, once a limit applied: a route whose keys were all empty leaves
    // the request free to be counted by the route an internal redirect lands on (nginx sets
    // r->main->limit_req_status only when a limit took part).
    if (active.length === 0) return;
    ctx.rateLimited = true;
    const outcome = store.take(active);
    if (!(outcome instanceof Promise)) return decide(ctx, outcome, activeLimits);
    // Asynchronous store: the scratch arrays are reused by the next request, keep this one's limits.
    const mine = activeLimits.slice();
    return outcome.then((settled) => decide(ctx, settled, mine));
  };
}
