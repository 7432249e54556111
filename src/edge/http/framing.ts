/**
 * Request framing checks (RFC 9112 §6.1, §6.3, §11.2: request smuggling), run on every request
 * before routing. node:http's parser (llhttp, strict: edge/server.ts pins `insecureHTTPParser:
 * false`) already refuses, through clientError, the classic ambiguities: Content-Length together
 * with Transfer-Encoding, repeated or non-decimal Content-Length, a Transfer-Encoding whose final
 * coding is not chunked, bad chunk sizes, bare CR or LF, obs-fold. What it accepts and an edge must
 * not pass on:
 *
 *   - Transfer-Encoding in an HTTP/1.0 request: llhttp reads a chunked body and, with
 *     `Connection: keep-alive`, goes on to the next request; RFC 9112 §6.1 says the framing of
 *     such a message is faulty (an HTTP/1.0 recipient reads it to the close).
 *   - A Transfer-Encoding other than the single coding "chunked" ("gzip, chunked", "identity,
 *     chunked", ", chunked", chunked split over two fields): the proxy forwards bodies without
 *     their transfer codings, so any other coding would be lost; RFC 9112 §6.1: 501. Only exactly
 *     "chunked" is accepted, as nginx does, so no two parsers on the path can disagree about it.
 *   - Versions other than 1.x (llhttp reads "GET / HTTP/2.0" and HTTP/0.9 "GET /"): 505.
 *
 * Content-Length and Transfer-Encoding together and a malformed Content-Length are checked here
 * too, for the day llhttp is lenient (an `--insecure-http-parser` somewhere): a refusal here
 * always closes the connection, so whatever the parser made of the rest is never served.
 */
import type { IncomingMessage } from 'node:http';

export interface FramingRefusal {
  readonly status: 400 | 501 | 505;
  readonly reason: string;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const DIGITS = /^[0-9]+$/;

/** Why this request cannot be framed unambiguously, or null when it can. */
export function framingRefusal(req: IncomingMessage): FramingRefusal | null {
  if (req.httpVersionMajor !== 1) return { status: 505, reason: `HTTP/${req.httpVersion} request` };
  const headers = req.headers;
  const transferEncoding = headers['transfer-encoding'];
  const contentLength = headers['content-length'];
  if (transferEncoding === undefined && contentLength === undefined) return null;

  // node joins repeated Transfer-Encoding fields and keeps only the first Content-Length: count
  // the fields as received.
  const raw = req.rawHeaders;
  const codingFields: string[] = [];
  const lengthFields: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') codingFields.push(raw[i + 1] as string);
    else if (name.length === 14 && name.toLowerCase() === 'content-length') lengthFields.push(raw[i + 1] as string);
  }

  if (codingFields.length > 0) {
    // RFC 9112 §6.3 ¶3: both present is a smuggling attempt until proven otherwise.
    if (lengthFields.length > 0) return { status: 400, reason: 'Content-Length with Transfer-Encoding' };
    // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
    if (req.httpVersionMinor === 0) return { status: 400, reason: 'Transfer-Encoding in an HTTP/1.0 request' };
    if (codingFields.length === 1 && (codingFields[0] as string).toLowerCase() === 'chunked') return null;
    const codings = codingFields.join(',').split(',').map((coding) => coding.trim().toLowerCase());
    // §6.3 ¶4: chunked last, and (§6.1) applied once; then a coding before it that this server
    // does not implement is a 501 (§6.1). Anything else is malformed.
    const chunkedOnceLast = codings.indexOf('chunked') === codings.length - 1;
    if (chunkedOnceLast && codings.length > 1 && codings.every((coding) => TOKEN.test(coding))) {
      return { status: 501, reason: `transfer coding not implemented: ${codingFields.join(', ')}` };
    }
    return { status: 400, reason: 'Transfer-Encoding is not exactly "chunked"' };
  }

  // RFC 9112 §6.3 ¶5, RFC 9110 §8.6: one Content-Length, decimal digits only.
  if (lengthFields.length !== 1 || !DIGITS.test(lengthFields[0] as string)) return { status: 400, reason: 'invalid or repeated Content-Length' };
  return null;
}

/** The protocols an `Upgrade` field lists, lower-case, without versions ("websocket", "h2c"). */
export function upgradeProtocols(value: string | undefined): string[] {
  if (value === undefined) return [];
  return value
    .split(',')
    .map((item) => (item.split('/')[0] as string).trim().toLowerCase())
    .filter((item) => item !== '');
}
