/**
 * The `admin` section: where the admin API, the metrics and the dashboard listen (Caddy's
 * `admin`, HAProxy's stats socket), and the token that guards them. An admin endpoint can reload
 * the config and drain servers: on a TCP address other than loopback a token is required (the
 * config is refused without one), and loopback or a unix socket is the default.
 */
import { z } from 'zod';
import type { ResolvedAdmin } from '../resolved.js';
import { listenAddress, parseListen, show, type ListenAddress } from './values.js';

export const adminSection = z.strictObject({
  /** `"127.0.0.1:2019"`, `"[::1]:2019"` or `"unix:/run/portico-admin.sock"`. @default "127.0.0.1:2019" */
  listen: listenAddress.optional(),
  /**
   * A bearer token (`Authorization: Bearer TOKEN`) every admin request must carry. Required on a
   * TCP address that is not loopback; optional otherwise (then a state-changing request must be
   * sent as JSON, which a cross-site form cannot do).
   */
  token: z.string().min(16, { error: (issue) => `expected a token of at least 16 characters, got ${show(issue.input)}` }).optional(),
});

export type ParsedAdmin = z.output<typeof adminSection>;

/** A host that only this machine reaches. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export function resolveAdmin(parsed: ParsedAdmin | undefined, problems: string[]): ResolvedAdmin | null {
  if (parsed === undefined) return null;
  const listen = parseListen(parsed.listen ?? '127.0.0.1:2019') as ListenAddress;
  const token = parsed.token ?? null;
  if (listen.kind === 'tcp' && !isLoopbackHost(listen.host) && token === null) {
    problems.push(`admin.token: expected a token when admin.listen is not loopback (${JSON.stringify(parsed.listen)}): anyone who reaches that address could reload the config and drain servers`);
  }
  return { listen, token };
}
