/**
 * Request header names the edge does not pass on (nginx `underscores_in_headers off`,
 * `ignore_invalid_headers on`). RFC 9110 §5.1 allows any token as a field name, but a backend
 * that builds a CGI/WSGI environ (RFC 3875 §4.1.18) maps `-` to `_`: a `Content_Length` or
 * `Transfer_Encoding` sent beside the framing this edge checked becomes a second
 * CONTENT_LENGTH/TRANSFER_ENCODING there, and `X_Forwarded_For` a second X-Forwarded-For. So, by
 * default, a name is dropped when it holds anything but letters, digits and `-` (`_` allowed only
 * with `underscoresInHeaders`), or when it is a lookalike of a framing field: its letters spell
 * Content-Length or Transfer-Encoding but its separators differ (`Transfer--Encoding`,
 * `-Content-Length`). Dropped means gone for every phase, as in nginx: routing variables, the
 * cache key, the proxy and the app see the request without them.
 */
import type { IncomingMessage } from 'node:http';
import type { ResolvedConfig } from '../../config/resolved.js';

/** Removes the dropped fields from a request, in place. */
export type HeaderNameFilter = (req: IncomingMessage) => void;

// The common case costs one test per name: a name of letters, digits and single inner dashes
// passes without further work.
const SUSPECT = /[^A-Za-z0-9-]|--|^-|-$/;
const INVALID_STRICT = /[^A-Za-z0-9-]/;
const INVALID_WITH_UNDERSCORES = /[^A-Za-z0-9_-]/;
const FRAMING_LETTERS = new Set(['contentlength', 'transferencoding']);

/** Whether a suspect name is a framing lookalike: its letters and digits alone spell a framing field. */
const isFramingLookalike = (name: string): boolean => FRAMING_LETTERS.has(name.replace(/[^A-Za-z0-9]/g, '').toLowerCase());

export function compileHeaderNameFilter(http: ResolvedConfig['http']): HeaderNameFilter | null {
  if (!http.ignoreInvalidHeaders && http.underscoresInHeaders) return null;
  const invalid = http.underscoresInHeaders ? INVALID_WITH_UNDERSCORES : INVALID_STRICT;
  const ignoreInvalid = http.ignoreInvalidHeaders;
  const drops = (name: string): boolean => {
    // Underscores alone (underscoresInHeaders false, ignoreInvalidHeaders false): nginx still drops them.
    if (!ignoreInvalid) return name.includes('_');
    return invalid.test(name) || isFramingLookalike(name);
  };
  return function dropHeaderNames(req) {
    const raw = req.rawHeaders;
    let first = -1;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i] as string;
      if (SUSPECT.test(name) && drops(name)) {
        first = i;
        break;
      }
    }
    if (first === -1) return;
    // Rare: rebuild both views (rawHeaders in place, so an HTTP/2 compat request's array changes too).
    const headers = req.headers;
    let kept = first;
    for (let i = first; i < raw.length; i += 2) {
      const name = raw[i] as string;
      if (SUSPECT.test(name) && drops(name)) {
        // A dropped name's lower-case form contains the offending character or separators, so no
        // kept field shares its key in `headers`.
        delete headers[name.toLowerCase()];
        continue;
      }
      raw[kept] = name;
      raw[kept + 1] = raw[i + 1] as string;
      kept += 2;
    }
    raw.length = kept;
  };
}
