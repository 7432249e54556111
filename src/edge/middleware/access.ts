/**
 * Phase 6 of the pipeline, per route, compiled once per generation: IP allow/deny (403), rate
 * limits (429 + Retry-After, or a delay), concurrency limits (503), basic auth (401). A route
 * with none of them gets no access function at all, so it pays nothing.
 *
 * The order is nginx's: its preaccess phase (limit_req, then limit_conn) runs before its access
 * phase (allow/deny, auth_basic). Here allow/deny, which needs no state and no CPU, comes first so a
 * denied address never spends a key's budget; the limits come before basic auth because checking
 * a password is deliberately expensive (bcrypt): unthrottled, it is both a brute-force oracle and
 * a way to burn the edge's CPU. Rate and concurrency limits apply once per request (nginx marks
 * `r->main`); allow/deny and auth run again for the route an internal redirect lands on.
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { ResolvedAccess, ResolvedConfig } from '../../config/resolved.js';
import { ErrorCodes, HttpError } from '../../core/errors.js';
import { Htpasswd } from '../../core/htpasswd.js';
import { IpAccessList } from '../../core/ip-list.js';
import type { LimitStore } from '../../core/limit-store.js';
import type { RequestContext } from '../context.js';
import { compileConnLimit } from './conn-limit.js';
import { compileRateLimit } from './rate-limit.js';

export type AccessStep = (ctx: RequestContext) => void | Promise<void>;

/** nginx `allow`/`deny`: the first matching rule decides; 403 for a denied client. */
export function compileIpRules(rules: ResolvedAccess['rules']): AccessStep | null {
  if (rules.length === 0) return null;
  const list = new IpAccessList(rules);
  return function ipAccess(ctx) {
    if (list.check(ctx.clientAddress) === 'deny') throw new HttpError(403, ErrorCodes.ERR_ACCESS_DENIED, `access forbidden by rule, client: ${ctx.clientAddress}`);
  };
}

/** A quoted-string (RFC 9110 §5.6.4): backslash-escape `"` and `\`. */
const quoted = (text: string): string => `"${text.replace(/["\\]/g, '\\$&')}"`;

/** Credentials from `Authorization: Basic …` (RFC 7617 §2), or null when absent or malformed. */
function credentials(header: string | undefined): { user: string; password: Buffer } | null {
  // RFC 9110 §11.1: the scheme is case-insensitive; one or more spaces before the token68.
  if (header === undefined || header.length < 7 || header.slice(0, 6).toLowerCase() !== 'basic ') return null;
  const token = header.slice(6).trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(token)) return null;
  const decoded = Buffer.from(token, 'base64');
  // RFC 7617 §2: the user-id cannot contain ":"; the password is everything after the first one.
  const colon = decoded.indexOf(0x3a);
  if (colon === -1) return null;
  return { user: decoded.subarray(0, colon).toString('utf8'), password: decoded.subarray(colon + 1) };
}

/**
 * Basic auth (RFC 7617) against an htpasswd file read once per generation (a reload reads it
 * again). Verified credentials are remembered for the generation, by a SHA-256 of the header
 * (never the password itself), so a client sending the same header on every request pays the
 * bcrypt cost once; wrong ones are checked every time.
 */
export function compileBasicAuth(auth: NonNullable<ResolvedAccess['basicAuth']>): AccessStep {
  const users = Htpasswd.load(auth.htpasswd);
  // RFC 7617 §2.1: charset="UTF-8" tells clients to send the UTF-8 bytes, which is what
  // htpasswd entries of non-ASCII passwords are made from.
  const challenge = { 'WWW-Authenticate': `Basic realm=${quoted(auth.realm)}, charset="UTF-8"` };
  const verified = new LRUCache<string, true>({ max: 1024 });
  const refuse = (reason: string): never => {
    throw new HttpError(401, ErrorCodes.ERR_AUTH_REQUIRED, reason, { headers: challenge });
  };
  return function basicAuth(ctx) {
    const header = ctx.req.headers.authorization;
    const given = credentials(header);
    if (given === null) return refuse(header === undefined ? 'no credentials' : 'malformed Basic credentials');
    const digest = createHash('sha256').update(header as string).digest('base64');
    if (verified.has(digest)) return;
    return users.verify(given.user, given.password).then((ok) => {
      if (!ok) refuse(`user "${given.user}": wrong password or unknown user`);
      verified.set(digest, true);
    });
  };
}

/** Runs steps in order, synchronously while they are, continuing after the first that returns a promise. */
function chain(steps: readonly AccessStep[]): AccessStep | null {
  if (steps.length === 0) return null;
  if (steps.length === 1) return steps[0] as AccessStep;
  const from = (ctx: RequestContext, start: number): void | Promise<void> => {
    for (let i = start; i < steps.length; i++) {
      const pending = (steps[i] as AccessStep)(ctx);
      if (pending) return pending.then(() => from(ctx, i + 1));
    }
  };
  return function access(ctx) {
    return from(ctx, 0);
  };
}

/** The access phase of one route, or null when it has nothing to check. */
export function compileAccess(access: ResolvedAccess, limits: ResolvedConfig['limits'], store: LimitStore): AccessStep | null {
  const steps: AccessStep[] = [];
  const ip = compileIpRules(access.rules);
  if (ip) steps.push(ip);
  const rate = compileRateLimit(access.rateLimit, limits.rateZones, store);
  if (rate) steps.push(rate);
  const conn = compileConnLimit(access.connLimit, limits.connZones, store);
  if (conn) steps.push(conn);
  if (access.basicAuth) steps.push(compileBasicAuth(access.basicAuth));
  return chain(steps);
}
