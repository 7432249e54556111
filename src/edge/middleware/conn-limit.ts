/**
 * nginx `limit_conn` on a route: a request takes one slot of its key in each of the route's
 * concurrency zones for as long as it is in flight (from the access phase until its response
 * closes, a WebSocket tunnel included), and one over `max` is answered with the limit's status:
 * nginx's `limit_conn_status` default, 503, with `Retry-After: 1` (RFC 9110 §10.2.3). nginx counts
 * connections whose request head was read, which for HTTP/1.1 is one request in flight per
 * connection: counting requests in flight is the same number. An empty key is not limited.
 * Applied once per request, like nginx (`r->main->limit_conn_status`).
 */
import type { ResolvedConfig, ResolvedConnLimit } from '../../config/resolve.js';
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
