/**
 * Access control and limits: the zones (top-level `limits`, nginx `limit_req_zone`/`limit_conn_zone`)
 * and the settings a server or route carries (`access`, `basicAuth`, `rateLimit`, `connLimit`),
 * inherited from server to route as nginx does.
 */
import { resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import { parseIpBlock } from '../../core/ip-list.js';
import { Htpasswd } from '../../core/htpasswd.js';
import type { ResolvedAccess, ResolvedConfig } from '../resolved.js';
import { show, template } from './values.js';

/** A zone name of `limits.rateZones` / `limits.connZones`. */
const zoneName = z.string().regex(/^[A-Za-z0-9_.-]+$/, 'expected a name of letters, digits, "_", "." or "-"');

/** An IP access rule (nginx `allow`/`deny`): an address, a CIDR block, "all", or "unix:" (clients on a unix socket). */
const ipTarget = z.string().superRefine((text, ctx) => {
  if (text !== 'all' && text !== 'unix:' && !parseIpBlock(text)) ctx.addIssue({ code: 'custom', message: `expected an IP address, a CIDR block like "10.0.0.0/8" or "2001:db8::/32", "all" or "unix:", got ${show(text)}` });
});
const ipRule = z.union([z.strictObject({ allow: ipTarget }), z.strictObject({ deny: ipTarget })], {
  error: (issue) => `expected { allow: "…" } or { deny: "…" }, got ${show(issue.input)}`,
});

/** One rate limit on a server or route (nginx `limit_req zone=… burst=… [nodelay | delay=…]`). */
const rateLimitRef = z
  .strictObject({
    /** A zone of `limits.rateZones` (its key and rate). */
    zone: zoneName,
    /** Requests over the rate that are delayed (or, with `nodelay`/`delay`, passed) rather than rejected. @default 0 */
    burst: z.number().int().min(0).max(1_000_000).optional(),
    /** Serve the burst at once instead of pacing it at the rate. @default false */
    nodelay: z.literal(true).optional(),
    /** Two-stage limiting: the first `delay` requests of the burst pass at once, the rest are paced. @default 0 */
    delay: z.number().int().min(0).max(1_000_000).optional(),
    /** Status of a rejected request (nginx `limit_req_status`); it carries `Retry-After`. */
    status: z.number().int().min(400).max(599).prefault(429),
  })
  .superRefine((value, ctx) => {
    if (value.nodelay !== undefined && value.delay !== undefined) ctx.addIssue({ code: 'custom', path: ['delay'], input: value.delay, message: 'expected either "nodelay" or "delay", not both' });
  });

/** One concurrency limit on a server or route (nginx `limit_conn zone N`). */
const connLimitRef = z.strictObject({
  /** A zone of `limits.connZones` (its key). */
  zone: zoneName,
  /** Requests in flight at once per key. */
  max: z.number().int().min(1).max(1_000_000),
  /** Status of a request over the limit (nginx `limit_conn_status`, whose default is 503); it carries `Retry-After: 1`. */
  status: z.number().int().min(400).max(599).prefault(503),
});

/** Access settings shared by servers (inherited) and routes (a route's own replace the server's; `false` turns one off). */
export const accessFields = {
  /**
   * IP rules in order, the first that matches decides (nginx `allow`/`deny`): `[{ allow:
   * "10.0.0.0/8" }, { allow: "::1" }, { deny: "all" }]`. A denied client gets 403; no matching rule
   * allows. The client address is the real one (after `http.trustedProxies`).
   */
  access: z.union([z.literal(false), z.array(ipRule)]).optional(),
  /** HTTP basic authentication (RFC 7617, nginx `auth_basic`): 401 with `WWW-Authenticate` until a user of the htpasswd file gives its password. */
  basicAuth: z
    .union([
      z.literal(false),
      z.strictObject({
        /** Shown by browsers in the login prompt (the `realm` of `WWW-Authenticate: Basic`). */
        realm: z.string().min(1).regex(/^[\x20-\x7e]+$/, 'expected printable ASCII'),
        /** An htpasswd file (Apache `htpasswd`): bcrypt (`-B`), `$apr1$` (`-m`) or `{SHA}` (`-s`) entries; relative to the config file. */
        htpasswd: z.string().min(1),
      }),
    ])
    .optional(),
  /** Request rate limits (nginx `limit_req`): one or several, each naming a zone of `limits.rateZones`. */
  rateLimit: z.union([z.literal(false), rateLimitRef, z.array(rateLimitRef).min(1)]).optional(),
  /** Concurrency limits (nginx `limit_conn`): requests in flight per key of a zone of `limits.connZones`. */
  connLimit: z.union([z.literal(false), connLimitRef, z.array(connLimitRef).min(1)]).optional(),
};

/** "10r/s", "300r/m": an nginx rate, whole requests per second or per minute. */
const rate = z.string().superRefine((text, ctx) => {
  const match = /^(\d{1,9})r\/(s|m)$/.exec(text);
  if (!match || Number(match[1]) === 0) ctx.addIssue({ code: 'custom', message: `expected a rate like "10r/s" or "300r/m" (whole requests, more than 0), got ${show(text)}` });
});

/** Zones of rate and concurrency limits, referenced by `rateLimit`/`connLimit` of servers and routes (nginx `limit_req_zone`, `limit_conn_zone`). */
export const limitsSection = z.strictObject({
  /** Rate zones by name: `{ key, rate }`. The key is a template ("$remote_addr", "$http_x_api_key", "$route", "$remote_addr:$route"); an empty key is not limited. */
  rateZones: z
    .record(
      zoneName,
      z.strictObject({
        /** What is counted separately: a template. */
        key: template(),
        /** "10r/s" or "300r/m". */
        rate,
      }),
    )
    .prefault({}),
  /** Concurrency zones by name: `{ key }` (a template, as for rate zones). */
  connZones: z.record(zoneName, z.strictObject({ key: template() })).prefault({}),
});

export type ParsedLimits = z.output<typeof limitsSection>;
type AccessSettings = { [K in keyof typeof accessFields]?: z.output<(typeof accessFields)[K]> };

/** The zones routes may name, for checking references. */
export interface ZoneNames {
  readonly rate: ReadonlySet<string>;
  readonly conn: ReadonlySet<string>;
}

/**
 * A route's access settings: each of `access`, `basicAuth`, `rateLimit`, `connLimit` is the
 * route's own when it has one (`false` turns it off), else the server's, as nginx inherits
 * `allow`/`deny`, `auth_basic`, `limit_req` and `limit_conn` from server to location (a
 * location's own list replaces the server's, it is not appended). Problems are reported at the
 * path where the setting is written.
 */
export function resolveAccess(server: AccessSettings, route: AccessSettings, serverId: string, routeId: string, baseDir: string, zones: ZoneNames, problems: string[], checked: Set<string>): ResolvedAccess {
  const pick = <K extends keyof AccessSettings>(key: K): { value: AccessSettings[K]; at: string } =>
    route[key] !== undefined ? { value: route[key], at: `${routeId}.${key}` } : { value: server[key], at: `${serverId}.${key}` };
  // A server's setting is checked once, not once per route that inherits it.
  const report = (at: string, message: string): void => {
    if (checked.has(at + message)) return;
    checked.add(at + message);
    problems.push(`${at}${message}`);
  };

  const rules = pick('access');
  const auth = pick('basicAuth');
  let basicAuth: ResolvedAccess['basicAuth'] = null;
  if (auth.value) {
    const path = resolvePath(baseDir, auth.value.htpasswd);
    try {
      Htpasswd.load(path);
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? `${path}: no such file` : (error as Error).message;
      report(`${auth.at}.htpasswd`, `: expected a readable htpasswd file of bcrypt, $apr1$ or {SHA} entries, got ${JSON.stringify(auth.value.htpasswd)} (${reason})`);
    }
    basicAuth = { realm: auth.value.realm, htpasswd: path };
  }

  const refs = <T extends { zone: string }>(value: false | T | T[] | undefined, at: string, known: ReadonlySet<string>, kind: string): { ref: T; at: string }[] => {
    if (value === undefined || value === false) return [];
    const list = Array.isArray(value) ? value.map((ref, i) => ({ ref, at: `${at}[${i}]` })) : [{ ref: value, at }];
    const seen = new Set<string>();
    for (const { ref, at: where } of list) {
      if (!known.has(ref.zone)) {
        const names = [...known].map((n) => `"${n}"`).join(', ');
        report(`${where}.zone`, `: expected a zone of limits.${kind}${names ? ` (${names})` : ', which has none'}, got ${JSON.stringify(ref.zone)}`);
      } else if (seen.has(ref.zone)) {
        report(`${where}.zone`, `: expected each zone once per list (nginx: "is duplicate"), got ${JSON.stringify(ref.zone)} again`);
      }
      seen.add(ref.zone);
    }
    return list;
  };
  const rate = pick('rateLimit');
  const conn = pick('connLimit');
  return {
    rules: rules.value === false || rules.value === undefined ? [] : rules.value,
    basicAuth,
    rateLimit: refs(rate.value, rate.at, zones.rate, 'rateZones').map(({ ref }) => ({
      zone: ref.zone,
      burst: ref.burst ?? 0,
      delay: ref.nodelay ? (ref.burst ?? 0) : (ref.delay ?? 0),
      nodelay: ref.nodelay ?? false,
      status: ref.status,
    })),
    connLimit: refs(conn.value, conn.at, zones.conn, 'connZones').map(({ ref }) => ({ zone: ref.zone, max: ref.max, status: ref.status })),
  };
}

/** "10r/s" → 10000 milli-requests per second; "300r/m" → 5000 (nginx: rate * 1000 / scale, in integers). */
export function parseRate(text: string): number {
  const match = /^(\d+)r\/(s|m)$/.exec(text);
  if (!match) return 0;
  return Math.trunc((Number(match[1]) * 1000) / (match[2] === 'm' ? 60 : 1));
}


/** The zones, rates in milli-requests per second, and their names for checking references. */
export function resolveLimits(limits: ParsedLimits): { zones: ResolvedConfig['limits']; names: ZoneNames } {
  const rateZones = Object.fromEntries(Object.entries(limits.rateZones).map(([name, zone]) => [name, { key: zone.key, rate: parseRate(zone.rate) }]));
  const connZones = Object.fromEntries(Object.entries(limits.connZones).map(([name, zone]) => [name, { key: zone.key }]));
  return { zones: { rateZones, connZones }, names: { rate: new Set(Object.keys(rateZones)), conn: new Set(Object.keys(connZones)) } };
}
