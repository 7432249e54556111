/**
 * Canonical-URL redirects of a server (`canonical: { https, www, trailingSlash }`), answered
 * before routing: the sugar for what nginx users write as `return 301 https://$host$request_uri`
 * and friends. A 301/302 becomes 308/307 for methods other than GET and HEAD, so the method and
 * body survive the redirect (RFC 9110 §15.4.2/3 allow clients to change them to GET).
 */
import type { ResolvedServer } from '../../config/resolve.js';
import type { RequestContext } from '../context.js';
import { sendRedirect } from '../http/respond.js';

export type CompiledCanonical = (ctx: RequestContext) => boolean;

function statusFor(method: string | undefined, status: number): number {
  if (method === 'GET' || method === 'HEAD') return status;
  return status === 301 ? 308 : status === 302 ? 307 : status;
}

/** The Host header's ":port" part, kept so a redirect stays on the port the client used. */
function portSuffix(ctx: RequestContext): string {
  const host = ctx.req.headers.host ?? '';
  const colon = host.lastIndexOf(':');
  return colon !== -1 && !host.endsWith(']') ? host.slice(colon) : '';
}

export function compileCanonical(config: ResolvedServer['canonical']): CompiledCanonical | null {
  const { https, www, trailingSlash, status } = config;
  if (!https && www === null && trailingSlash === null) return null;
  return function canonicalRedirect(ctx) {
    let scheme = ctx.listener.scheme;
    let host = ctx.host;
    let port = portSuffix(ctx);
    const raw = ctx.requestUri;
    const q = raw.indexOf('?');
    let path = q === -1 ? raw : raw.slice(0, q);
    const query = q === -1 ? '' : raw.slice(q);
    let changed = false;
    if (https && scheme === 'http') {
      scheme = 'https';
      port = '';
      changed = true;
    }
    if (host !== '' && www === 'add' && !host.startsWith('www.')) {
      host = `www.${host}`;
      changed = true;
    } else if (www === 'remove' && host.startsWith('www.')) {
      host = host.slice(4);
      changed = true;
    }
    if (trailingSlash === 'add' && !path.endsWith('/') && !/\.[^/]*$/.test(path)) {
      path += '/';
      changed = true;
    } else if (trailingSlash === 'remove' && path.length > 1 && path.endsWith('/')) {
      path = path.replace(/\/+$/, '') || '/';
      changed = true;
    }
    if (!changed) return false;
    const sameOrigin = scheme === ctx.listener.scheme && host === ctx.host;
    sendRedirect(ctx, statusFor(ctx.req.method, status), sameOrigin ? path + query : `${scheme}://${host}${port}${path}${query}`);
    return true;
  };
}
