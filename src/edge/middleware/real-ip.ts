/**
 * The client's real address behind trusted proxies (nginx `set_real_ip_from` + `real_ip_header
 * X-Forwarded-For` + `real_ip_recursive on`): only when the peer itself is trusted, walk
 * X-Forwarded-For from the right, skipping trusted addresses; the first untrusted one is the
 * client. An untrusted peer's X-Forwarded-For is ignored, so nobody can claim another address.
 */
import { isIP } from 'node:net';
import { IpSet } from '../../core/ip-list.js';
import type { RequestContext } from '../context.js';

export type RealIp = (ctx: RequestContext) => void;

export function compileRealIp(trusted: readonly string[]): RealIp | null {
  if (trusted.length === 0) return null;
  const list = new IpSet(trusted);
  const isTrusted = (address: string): boolean => list.has(address);
  return function realIp(ctx) {
    const header = ctx.req.headers['x-forwarded-for'];
    if (header === undefined || !isTrusted(ctx.clientAddress)) return;
    const hops = (Array.isArray(header) ? header.join(',') : header).split(',');
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = (hops[i] as string).trim();
      if (isIP(hop) === 0) return; // garbage: keep what we know
      ctx.clientAddress = hop;
      if (!isTrusted(hop)) return;
    }
  };
}
