/**
 * Request-target validation and normalisation (RFC 9112 §3.2, RFC 3986 §5.2.4). Runs before
 * routing, so every later phase sees one canonical decoded path (nginx's `$uri`): percent-decoded
 * once, UTF-8 checked strictly, dot segments removed, repeated slashes merged. A target that
 * cannot be made canonical, or that climbs above "/", is a 400: no later phase ever has to think
 * about traversal again. The decoded path may hold any character but NUL (a "%0A" is data): what
 * writes it into a header or a request line encodes it again (respond.ts sendRedirect, the proxy). Double encoding is safe by construction: "%252e" decodes once to the
 * literal name "%2e", never to ".".
 */
import { ErrorCodes, HttpError } from '../../core/errors.js';

export interface RequestTarget {
  /** Decoded, normalised path ("/a/b c/"), or "*" for `OPTIONS *`. */
  readonly path: string;
  /** Query without "?", undecoded; "" when none. */
  readonly query: string;
  readonly hasQuery: boolean;
  /** Host of an absolute-form target (RFC 9112 §3.2.2: it replaces Host), else null. */
  readonly authority: string | null;
}

const bad = (why: string): HttpError => new HttpError(400, ErrorCodes.ERR_REQUEST_TARGET, `bad request target: ${why}`);

// Anything that needs the slow path: escapes, dot segments, repeated slashes, backslashes,
// fragments. Everything else (most real traffic) is already canonical.
const NEEDS_WORK = /%|\/\.|\/\/|\\|#|[^\x21-\x7e]/;
// RFC 3986 §2: a target is ASCII; other bytes must arrive percent-encoded.
const NOT_URI_CHAR = /[^\x21-\x7e]/;
// RFC 9112 §3.2.2 absolute-form: scheme "://" authority [path-abempty] ["?" query]
const ABSOLUTE_FORM = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)(.*)$/i;
// eslint-disable-next-line no-control-regex -- matching control bytes is the point
const CONTROL = /[\x00-\x1f\x7f]/;

/** Parses the request target; throws HttpError(400) for anything unsafe or malformed. */
export function parseTarget(raw: string, method: string): RequestTarget {
  if (raw.charCodeAt(0) === 47 /* / */) return originForm(raw, null);
  if (raw === '*') {
    if (method !== 'OPTIONS') throw bad('"*" is only for OPTIONS');
    return { path: '*', query: '', hasQuery: false, authority: null };
  }
  const absolute = ABSOLUTE_FORM.exec(raw);
  if (absolute) {
    const authority = absolute[1] as string;
    if (authority === '' || authority.includes('@')) throw bad('absolute-form without a usable authority');
    // RFC 3986 §6.2.3 and RFC 9112 §3.3: an empty path of an http(s) URI is "/", also when a
    // query follows ("http://host?x" is "/?x", not the empty path no route matches).
    const rest = absolute[2] as string;
    return originForm(rest.startsWith('/') ? rest : `/${rest}`, authority);
  }
  throw bad('expected a path starting with "/"');
}

function originForm(raw: string, authority: string | null): RequestTarget {
  const q = raw.indexOf('?');
  const rawPath = q === -1 ? raw : raw.slice(0, q);
  const query = q === -1 ? '' : raw.slice(q + 1);
  if (query !== '' && (query.includes('#') || CONTROL.test(query))) throw bad('fragment or control character in query');
  const path = NEEDS_WORK.test(rawPath) ? canonicalPath(rawPath) : rawPath;
  return { path, query, hasQuery: q !== -1, authority };
}

/** Decodes and normalises a path; exported for the static handler's tests and try-files. */
export function canonicalPath(rawPath: string): string {
  if (rawPath.includes('#')) throw bad('fragment in target');
  if (NOT_URI_CHAR.test(rawPath)) throw bad('raw control, space or non-ASCII byte (percent-encode it)');
  let decoded: string;
  try {
    // decodeURIComponent rejects malformed escapes and invalid UTF-8, overlong forms included
    // (%C0%AE is not "."), as RFC 3629 §3 requires.
    decoded = decodeURIComponent(rawPath);
  } catch {
    throw bad('malformed percent-encoding or invalid UTF-8');
  }
  // Percent-encoded bytes are data: "%09", "%0A" or "%7F" name a file no one has (404) and go
  // upstream encoded as they came, as in nginx, Caddy and HAProxy. NUL stays refused (nginx does
  // too): file system calls stop at it, so "/a.php%00.txt" would name another file than it shows.
  if (decoded.includes('\0')) throw bad('NUL in path');
  return removeDotSegments(decoded);
}

/**
 * RFC 3986 §5.2.4 on a decoded path, plus merging of empty segments (nginx `merge_slashes`).
 * Climbing above the root is an error, not a clamp, as in nginx.
 */
export function removeDotSegments(path: string): string {
  const segments = path.split('/');
  const out: string[] = [];
  const last = segments.length - 1;
  let trailingSlash = false;
  for (let i = 1; i <= last; i++) {
    const segment = segments[i] as string;
    if (segment === '' || segment === '.') {
      if (i === last) trailingSlash = true;
      continue;
    }
    if (segment === '..') {
      if (out.length === 0) throw bad('path climbs above the root');
      out.pop();
      if (i === last) trailingSlash = true;
      continue;
    }
    out.push(segment);
  }
  if (out.length === 0) return '/';
  return `/${out.join('/')}${trailingSlash ? '/' : ''}`;
}
