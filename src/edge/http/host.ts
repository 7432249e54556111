/**
 * The Host of a request (RFC 9110 §7.2): validated and reduced to a lower-case name without port
 * or trailing dot, so virtual-host lookup compares plain strings.
 */
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
