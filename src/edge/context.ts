/**
 * The state of one request as it moves through the pipeline: one object per request, created in
 * pipeline.ts, with a fixed shape (a class, so V8 keeps one hidden class). Phases read and update
 * it; handlers answer through `ctx.res` via `sendHead` (response filters) so every response gets
 * the same header treatment.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { CompiledRoute, CompiledServer } from './route/router.js';
import type { Generation } from './generation.js';

export interface ListenerInfo {
  readonly scheme: 'http' | 'https';
  /** The port clients connected to (for `$server_port` and redirects). */
  readonly port: number;
  /** "127.0.0.1:8080" or "unix:/path": which generation table serves this socket. */
  readonly key: string;
}

/** What the forward proxy adds to an access-log line (edge/handlers/forward-proxy/). */
export interface ForwardInfo {
  /** The address connected to, "93.184.216.34:443" or "[2001:db8::1]:80"; "" when none was. */
  destination: string;
  /** Bytes from the client to the destination (a request body, or a tunnel's upstream direction). */
  bytesUp: number;
  /** The authenticated proxy user, or null. */
  user: string | null;
  /** "http://host:port" of an http:// request once checked (the cache key's origin, port explicit); "" otherwise. */
  origin: string;
  /**
   * The response is the destination's (relayed, or from the cache), not the proxy's own: it keeps
   * its own `Server` field and the proxy adds none (it names itself in `Via`, RFC 9110 §7.6.3).
   */
  relayed: boolean;
}

export class RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly generation: Generation;
  readonly listener: ListenerInfo;
  readonly startedAt: number;
  /** Normalised Host name (no port), or "" when the request had none (HTTP/1.0). */
  host = '';
  server: CompiledServer | null = null;
  route: CompiledRoute | null = null;
  /** The current decoded, normalised path (nginx `$uri`); rewrites change it. */
  uri = '/';
  /** Query without "?" (nginx `$args`); rewrites may change it. */
  query = '';
  hasQuery = false;
  /** Captures of the last regex that matched (route or rewrite), for `$1`… */
  captures: RegExpExecArray | null = null;
  /** Internal redirects so far (rewrite `last`, try-files fallback); bounded to stop loops. */
  internalRedirects = 0;
  /** Rate and concurrency limits were applied (once per request, whatever route it ends on). */
  rateLimited = false;
  connLimited = false;
  /** nginx `$limit_req_status`: "PASSED", "DELAYED", "REJECTED", or "" when no rate limit applied. */
  limitReqStatus = '';
  /** A rewrite changed the URI (a proxy then sends the rewritten URI, not the one received). */
  rewritten = false;
  /** The client's address: the peer, or the one trusted proxies name (nginx realip `$remote_addr`). */
  clientAddress: string;
  /** For an `Upgrade` request (WebSocket): the raw socket and the bytes read past the head. */
  upgrade: { readonly socket: Duplex; readonly head: Buffer } | null = null;
  /** Status sent (for the access log). */
  status = 0;
  /** Body bytes the response carries (nginx `$body_bytes_sent`, as planned; a cut connection sends fewer). */
  bodyBytes = 0;
  /** Set for requests and tunnels of the forward proxy (logged with the destination and bytes each way). */
  forward: ForwardInfo | null = null;
  /** The `Cache-Status` (RFC 9211) a cache gave the response, for the access log; "" when no cache took part. */
  cacheStatus = '';
  /**
   * nginx `$upstream_addr`, `$upstream_status`, `$upstream_response_time`: one entry per attempt,
   * ", "-separated. Filled by the access log from `portico:upstream:attempt`, only when a format uses them.
   */
  upstreamAddr = '';
  /** Counted in flight for the observers (observe.ts countInFlight) until its end is published. */
  counted = false;
  upstreamStatus = '';
  upstreamTime = '';

  constructor(req: IncomingMessage, res: ServerResponse, generation: Generation, listener: ListenerInfo) {
    this.req = req;
    this.res = res;
    this.generation = generation;
    this.listener = listener;
    this.startedAt = performance.now();
    this.clientAddress = req.socket.remoteAddress ?? '';
  }

  /**
   * nginx `$request_uri`: the original path and query as received, never rewritten. For an
   * absolute-form target ("GET http://host/p?q", RFC 9112 §3.2.2) it is the part after the
   * authority, as in nginx, so "https://$host$request_uri" and canonical redirects stay URLs.
   */
  get requestUri(): string {
    const url = this.req.url ?? '/';
    if (url.charCodeAt(0) === 47 /* / */ || url === '*') return url;
    const match = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(url);
    if (!match) return url;
    const rest = url.slice(match[0].length);
    return rest === '' || rest.charCodeAt(0) === 63 /* ? */ ? `/${rest}` : rest;
  }

  get remoteAddress(): string {
    return this.req.socket.remoteAddress ?? '';
  }
}
