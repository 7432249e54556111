/**
 * The Host of a request (RFC 9110 §7.2): validated and reduced to a lower-case name without port
 * or trailing dot, so virtual-host lookup compares plain strings.
 */
import type { IncomingMessage } from 'node:http';
import { ErrorCodes, HttpError } from '../../core/errors.js';

// reg-name / IPv4 / IP-literal (RFC 3986 §3.2.2), then an optional port.
const HOST = /^(\[[0-9a-f:.]+\]|[a-z0-9._~!$&'()*+,;=%-]+)(?::(\d{0,5}))?$/i;

/**
 * The last Host seen and its name: consecutive requests nearly always name the same host, and
 * the comparison of two short strings is cheaper than the match (which allocates its result).
 */
let lastValue = '';
let lastName = '';

/** Returns the normalised host name, or throws 400 for a malformed Host. */
export function normaliseHost(value: string): string {
  if (value === lastValue && value !== '') return lastName;
  const match = HOST.exec(value);
  if (!match || value.includes('..')) throw new HttpError(400, ErrorCodes.ERR_REQUEST_HOST, 'malformed Host header');
  let name = (match[1] as string).toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  lastValue = value;
  lastName = name;
  return name;
}

/**
 * Host from an absolute-form target (RFC 9112 §3.2.2: it replaces Host) or the single Host header.
 * The Host header is checked either way: RFC 9112 §3.2 requires a 400 for any request with more
 * than one Host line or an invalid one, absolute-form included.
 */
export function requestHost(req: IncomingMessage, authority: string | null): string {
  const host = req.headers.host;
  let name = '';
  if (host === undefined) {
    // RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400 (HTTP/1.0 may omit it).
    if (req.httpVersionMajor === 1 && req.httpVersionMinor >= 1) throw new HttpError(400, ErrorCodes.ERR_REQUEST_HOST, 'HTTP/1.1 request without Host');
  } else {
    const raw = req.rawHeaders;
    let seen = 0;
    for (let i = 0; i < raw.length; i += 2) {
      const header = raw[i] as string;
      if (header.length === 4 && header.toLowerCase() === 'host' && ++seen > 1) throw new HttpError(400, ErrorCodes.ERR_REQUEST_HOST, 'more than one Host header');
    }
    name = normaliseHost(host);
  }
  return authority !== null ? normaliseHost(authority) : name;
}
