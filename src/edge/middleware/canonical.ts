/**
 * Canonical-URL redirects of a server (`canonical: { https, www, trailingSlash }`), answered
 * before routing: the sugar for what nginx users write as `return 301 https://$host$request_uri`
 * and friends. A 301/302 becomes 308/307 for methods other than GET and HEAD, so the method and
 * body survive the redirect (RFC 9110 §15.4.2/3 allow clients to change them to GET).
 */
import type { ResolvedServer } from '../../config/resolved.js';
import type { RequestContext } from '../context.js';
import { sendRedirect } from '../http/respond.js';

export type CompiledCanonical = (ctx: RequestContext) => boolean;

function statusFor(method: string | undefined, status: number): number {
  if (method === 'GET' || method === 'HEAD') return status;
  return status === 301 ? 308 : status === 302 ? 307 : status;
}

/**
 * The ":port" of the authority the client used, kept so a redirect stays on that port: from an
 * absolute-form target when there is one (it replaces Host, RFC 9112 §3.2.2), else from Host.
 */
function portSuffix(ctx: RequestContext): string {
  const url = ctx.req.url ?? '';
  const absolute = url.charCodeAt(0) === 47 /* / */ ? null : /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(url);
  const host = absolute ? (absolute[1] as string) : (ctx.req.headers.host ?? '');
  const colon = host.lastIndexOf(':');
  return colon !== -1 && !host.endsWith(']') ? host.slice(colon) : '';
}

/** IPv4 dotted quad or a bracketed IPv6 literal, as normaliseHost leaves them. */
const IP_LITERAL = /^(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:.]+\])$/i;

/**
 * The ":port" an `https` redirect names: the HTTPS port of the config's server for these names
 * (one with `tls` sharing a name, else the first with `tls`), none for 443 or when no server
 * has TLS here (the site's HTTPS is then elsewhere, behind the default port).
 */
export function httpsPortSuffix(server: ResolvedServer, servers: readonly ResolvedServer[]): string {
  const secure = servers.filter((other) => other.tls !== null);
  const target = secure.find((other) => other.names.some((name) => server.names.includes(name))) ?? secure[0];
  const address = target?.listen.find((listen) => listen.kind === 'tcp');
  if (!address || address.kind !== 'tcp' || address.port === 443 || address.port === 0) return '';
  return `:${address.port}`;
}

export function compileCanonical(config: ResolvedServer['canonical'], httpsPort = ''): CompiledCanonical | null {
  const { https, www, trailingSlash, status } = config;
  if (!https && www === null && trailingSlash === null) return null;
  return function canonicalRedirect(ctx) {
    let scheme = ctx.listener.scheme;
    let host = ctx.host;
    let port = portSuffix(ctx);
    const raw = ctx.requestUri;
    const q = raw.indexOf('?');
    // Slashes at the start are merged, as routing merges them: a same-origin Location of
    // "//evil.test/x/" would be a network-path reference (RFC 3986 §4.2) to another host, an
    // open redirect; "/evil.test/x/" is the canonical form of what was asked.
    let path = (q === -1 ? raw : raw.slice(0, q)).replace(/^[/\\]+/, '/');
    const query = q === -1 ? '' : raw.slice(q);
    let changed = false;
    if (https && scheme === 'http') {
      scheme = 'https';
      port = httpsPort;
      changed = true;
    }
    // An IP address has no "www." form (RFC 3986 §3.2.2): a request by address (health checks,
    // the default server) is served, not sent to "www.127.0.0.1".
    if (host !== '' && www === 'add' && !host.startsWith('www.') && !IP_LITERAL.test(host)) {
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
