/**
 * Conditional requests (RFC 9110 §13) for a selected representation with a validator pair.
 * Evaluation order is §13.2.2: If-Match, else If-Unmodified-Since → 412; then If-None-Match,
 * else If-Modified-Since (GET/HEAD) → 304 (412 for other methods on If-None-Match).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { parseHttpDate } from '../../http/date.js';

export const PROCEED = 0;

/**
 * Splits an entity-tag list ("a", W/"b", *) into tags; commas inside quotes are kept. Empty list
 * elements (`"a", , "b"`) are skipped, as RFC 9110 §5.6.1.2 requires of a recipient: without that,
 * the tags after an empty element were lost and a matching If-None-Match answered 200.
 */
function tags(header: string): string[] {
  const out: string[] = [];
  const re = /[\s,]*((?:W\/)?"[^"]*"|\*)\s*(?:,|$)/gy;
  for (let m = re.exec(header); m && m[0] !== ''; m = re.exec(header)) out.push(m[1] as string);
  return out;
}

const opaque = (tag: string): string => (tag.startsWith('W/') ? tag.slice(2) : tag);

/** §8.8.3.2 strong comparison: both strong and identical. */
function strongMatch(header: string, etag: string): boolean {
  if (etag.startsWith('W/')) return header.trim() === '*';
  for (const tag of tags(header)) if (tag === '*' || tag === etag) return true;
  return false;
}

/** §8.8.3.2 weak comparison: opaque parts identical. */
function weakMatch(header: string, etag: string): boolean {
  const mine = opaque(etag);
  for (const tag of tags(header)) if (tag === '*' || opaque(tag) === mine) return true;
  return false;
}

/** HTTP-date → whole seconds, or NaN (an invalid date makes the condition ignored, §13.1.3/4). */
const seconds = (date: string): number => Math.floor(parseHttpDate(date) / 1000);

/**
 * Returns PROCEED (0), 304 or 412. `etag` null = no entity tag; `mtimeMs` null = no Last-Modified.
 * (Precondition failures for a representation that does not exist are the handler's 404.)
 */
export function evaluatePreconditions(method: string, headers: IncomingHttpHeaders, etag: string | null, mtimeMs: number | null): 0 | 304 | 412 {
  const ifMatch = headers['if-match'];
  const modified = mtimeMs === null ? NaN : Math.floor(mtimeMs / 1000);
  if (ifMatch !== undefined) {
    // §13.1.1: without a current representation tag, only "*" could match (and it exists here).
    if (etag === null ? ifMatch.trim() !== '*' : !strongMatch(ifMatch, etag)) return 412;
  } else {
    const ius = headers['if-unmodified-since'];
    if (ius !== undefined && !Number.isNaN(modified)) {
      const since = seconds(ius);
      if (!Number.isNaN(since) && modified > since) return 412;
    }
  }
  const safe = method === 'GET' || method === 'HEAD';
  const ifNoneMatch: string | undefined = headers['if-none-match'];
  if (ifNoneMatch !== undefined) {
    if (etag !== null ? weakMatch(ifNoneMatch, etag) : ifNoneMatch.trim() === '*') return safe ? 304 : 412;
  } else if (safe) {
    const ims = headers['if-modified-since'];
    if (ims !== undefined && !Number.isNaN(modified)) {
      const since = seconds(ims);
      if (!Number.isNaN(since) && modified <= since) return 304;
    }
  }
  return PROCEED;
}

/**
 * §13.1.5 If-Range: the Range applies only when the validator still matches. An entity tag must
 * match strongly; a date must equal Last-Modified exactly (and be a strong validator, which a
 * second-granular mtime is only when the file was not modified within that second; we accept it
 * as nginx does).
 */
export function ifRangeAllows(headers: IncomingHttpHeaders, etag: string | null, lastModified: string | null): boolean {
  const ifRange = headers['if-range'] as string | undefined;
  if (ifRange === undefined) return true;
  const value = ifRange.trim();
  if (value.startsWith('"') || value.startsWith('W/')) return etag !== null && !value.startsWith('W/') && value === etag;
  return lastModified !== null && value === lastModified;
}
