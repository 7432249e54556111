/**
 * Reading an upstream's HTTP/1.x response off a raw socket, for the raw transport
 * (raw-exchange.ts: HTTP to plain-HTTP servers, and uwsgi).
 * Strict, as a proxy must be about what it relays (RFC 9112 §4, §5, §6, §7.1): token field
 * names, no obs-fold, no CR, LF or NUL in values, one Content-Length, chunked framing checked
 * byte by byte and bounded.
 */

export interface ParsedHead {
  readonly status: number;
  /** Lower-case names; repeated fields as arrays. */
  readonly headers: Record<string, string | string[]>;
  /** Content-Length, or null when the body is chunked or ends with the connection. */
  readonly length: number | null;
}

export interface ParsedHttpHead extends ParsedHead {
  /** Transfer-Encoding: chunked (RFC 9112 §6.3: it overrides any Content-Length). */
  readonly chunked: boolean;
  /** The server said `Connection: close` (or answered as HTTP/1.0 without keep-alive). */
  readonly close: boolean;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// RFC 9112 §4: HTTP-version SP 3DIGIT SP [reason-phrase].
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-5]\d\d)(?: [\t\x20-\x7e\x80-\xff]*)?$/;

/**
 * A response head (without its final CRLF CRLF) from an HTTP server (`http`: interim statuses
 * and chunked framing allowed, `close` as the server said) or a uwsgi one (neither; its answer
 * ends with the connection, so `close` is true). Returns an error string on a violation.
 */
export function parseHead(text: string, http: boolean): ParsedHttpHead | string {
  const lines = text.split('\r\n');
  const match = STATUS_LINE.exec(lines[0] ?? '');
  if (!match) return 'bad status line';
  const status = Number(match[2]);
  // Interim answers: a uwsgi server has no use for them (the edge answered Expect itself, and a
  // uwsgi connection is never upgraded); over HTTP the transport passes 102/103 on and reads on.
  if (status < 200 && !http) return `interim status ${status}`;
  const headers: Record<string, string | string[]> = {};
  let length: number | null = null;
  let chunked = false;
  let connection = '';
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    const colon = line.indexOf(':');
    if (colon <= 0) return 'bad header line';
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return 'bad header name';
    const value = line.slice(colon + 1).replace(/^[\t ]+|[\t ]+$/g, '');
    if (/[\r\n\0]/.test(value)) return 'bad header value';
    const lower = name.toLowerCase();
    if (lower === 'transfer-encoding') {
      // A uwsgi body ends with the connection: a framing we would have to undo is a sign of a
      // confused server. Over HTTP only chunked alone is taken (RFC 9112 §6.1: chunked is the
      // final coding; another coding we would relay undecoded with nothing to say where it ends).
      if (!http || chunked || value.toLowerCase() !== 'chunked') return 'unsupported transfer-encoding';
      chunked = true;
      continue;
    }
    if (lower === 'content-length') {
      // RFC 9112 §6.3: differing lengths make the message invalid.
      if (!/^\d{1,15}$/.test(value) || (length !== null && length !== Number(value))) return 'bad content-length';
      length = Number(value);
      if (headers[lower] !== undefined) continue;
    }
    if (lower === 'connection') connection += `${connection ? ',' : ''}${value.toLowerCase()}`;
    const prior = headers[lower];
    headers[lower] = prior === undefined ? value : Array.isArray(prior) ? [...prior, value] : [prior, value];
  }
  if (chunked) {
    // RFC 9112 §6.3 (3): Transfer-Encoding overrides Content-Length, which must not be relayed.
    length = null;
    delete headers['content-length'];
  }
  // Only an HTTP server's answer is asked whether it keeps its connection (a uwsgi one never does).
  let close = !http;
  if (http) {
    const tokens = connection === '' ? [] : connection.split(',').map((token) => token.trim());
    close = tokens.includes('close') || (match[1] === '0' && !tokens.includes('keep-alive'));
  }
  return { status, headers, length, chunked, close };
}

/** A uwsgi server's response head (without its final CRLF CRLF): no interim status, no Transfer-Encoding. Returns an error string on a violation. */
export function parseResponseHead(text: string): ParsedHead | string {
  const parsed = parseHead(text, false);
  return typeof parsed === 'string' ? parsed : { status: parsed.status, headers: parsed.headers, length: parsed.length };
}

/** An HTTP server's response head (without its final CRLF CRLF); interim statuses and chunked framing allowed. Returns an error string on a violation. */
export function parseHttpResponseHead(text: string): ParsedHttpHead | string {
  return parseHead(text, true);
}

/** The longest chunk-size line (size and extensions) and trailer section taken. */
const MAX_CHUNK_LINE = 4096;
const MAX_TRAILERS = 64 * 1024;
// RFC 9112 §7.1: chunk-size [ chunk-ext ]; 13 hex digits keep a size within 2^52.
const CHUNK_SIZE_LINE = /^([0-9A-Fa-f]{1,13})[\t ]*(?:;[\t\x20-\x7e\x80-\xff]*)?$/;

const enum ChunkState {
  Size,
  Data,
  DataEnd,
  Trailers,
  Done,
}

/**
 * Decodes a chunked body (RFC 9112 §7.1) as it arrives. Trailer fields are read and dropped
 * (§7.1.2 lets a recipient discard them; the proxy sends the client a body of its own framing).
 */
export class ChunkedDecoder {
  #state = ChunkState.Size;
  #line = '';
  #remaining = 0;
  #trailerBytes = 0;

  get done(): boolean {
    return this.#state === ChunkState.Done;
  }

  /**
   * Feeds bytes; `emit` gets each piece of data. Returns null, or an error string on a framing
   * violation. Bytes after the last chunk's end are an error too (a server that sends more than
   * its framing says is confused).
   */
  push(input: Buffer, emit: (data: Buffer) => void): string | null {
    let at = 0;
    while (at < input.length) {
      switch (this.#state) {
        case ChunkState.Data: {
          const take = Math.min(this.#remaining, input.length - at);
          emit(input.subarray(at, at + take));
          at += take;
          this.#remaining -= take;
          if (this.#remaining === 0) this.#state = ChunkState.DataEnd;
          break;
        }
        case ChunkState.DataEnd:
        case ChunkState.Size:
        case ChunkState.Trailers: {
          const lf = input.indexOf(10, at);
          const end = lf === -1 ? input.length : lf + 1;
          this.#line += input.toString('latin1', at, end);
          at = end;
          if (lf === -1) {
            if (this.#line.length > (this.#state === ChunkState.Trailers ? MAX_TRAILERS : MAX_CHUNK_LINE)) return 'chunk line too long';
            break;
          }
          const line = this.#line;
          this.#line = '';
          if (!line.endsWith('\r\n')) return 'bare LF in chunked framing';
          const content = line.slice(0, -2);
          if (this.#state === ChunkState.DataEnd) {
            if (content !== '') return 'chunk data longer than its size';
            this.#state = ChunkState.Size;
          } else if (this.#state === ChunkState.Size) {
            const match = CHUNK_SIZE_LINE.exec(content);
            if (!match) return 'bad chunk size';
            this.#remaining = parseInt(match[1] as string, 16);
            this.#state = this.#remaining === 0 ? ChunkState.Trailers : ChunkState.Data;
          } else {
            // A trailer field, or the empty line that ends the message.
            if (content === '') {
              this.#state = ChunkState.Done;
              break;
            }
            this.#trailerBytes += line.length;
            if (this.#trailerBytes > MAX_TRAILERS) return 'trailers too large';
            if (content.indexOf(':') <= 0 || /[\0\r]/.test(content)) return 'bad trailer field';
          }
          break;
        }
        case ChunkState.Done:
          return 'data after the last chunk';
      }
    }
    return null;
  }
}
