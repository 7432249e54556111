/**
 * What one attempt of the proxy on one server came to, whatever the transport (HTTP through
 * undici in index.ts, the uwsgi protocol in uwsgi.ts): the retry, balancing and health logic of
 * the proxy handler reads only this.
 */

export type Outcome =
  | { readonly kind: 'done' }
  | {
      readonly kind: 'failed';
      readonly status: 502 | 504;
      readonly reason: 'error' | 'timeout' | 'status';
      /** Nothing reached the server (a connect failure; raw-exchange.ts: an idempotent request it never read): it may be retried where one that reached a server may not. */
      readonly beforeSend: boolean;
      readonly code: string;
    };

export const DONE: Outcome = { kind: 'done' };

/** A failed attempt's Outcome (the transports' one way of saying it). */
export function failed(status: 502 | 504, reason: 'error' | 'timeout' | 'status', beforeSend: boolean, code: string): Outcome {
  return { kind: 'failed', status, reason, beforeSend, code };
}

/**
 * Where a transport writes a response body: the client's ServerResponse, or a sink of the cache
 * (which tees it to the client and a store, or keeps it for a background revalidation). The
 * subset of ServerResponse the transports use. `close` means the consumer is gone: the
 * transport stops the upstream request.
 */
export interface BodySink {
  write(chunk: Buffer): boolean;
  end(): void;
  destroy(): void;
  on(event: 'close' | 'drain', listener: () => void): unknown;
  once(event: 'close' | 'drain', listener: () => void): unknown;
  off(event: 'close' | 'drain', listener: () => void): unknown;
  readonly writableFinished: boolean;
}

/** A BodySink that also takes the response head (instead of sendHead on the client). */
export interface ResponseSink extends BodySink {
  head(status: number, headers: string[]): void;
}

/**
 * How the cache changes one exchange with the upstream: a HEAD sent as GET (the answer can be
 * stored, nginx `proxy_cache_convert_head`), the client's conditional and range fields dropped
 * (the cache evaluates them on the full response itself, as nginx clears them with a cache), its
 * own validators added for a revalidation (RFC 9111 §4.3.1), and the response going to `sink`.
 */
export interface Exchange {
  readonly method: string;
  /** `none`: the request as received; `range`: Range and If-Range dropped (a full response can be stored); `all`: the conditionals too (the cache sends its own validators). */
  readonly strip: 'none' | 'range' | 'all';
  readonly add: readonly (readonly [string, string])[];
  readonly sink: ResponseSink;
}

/** Request fields a cache replaces with its own when it validates a stored response (RFC 9111 §4.3.1). */
export const CONDITIONAL_FIELDS: readonly string[] = ['if-none-match', 'if-modified-since', 'if-range', 'range'];
/** A cache asks for whole responses (it stores no partial ones, RFC 9111 §3.3). */
export const RANGE_FIELDS: readonly string[] = ['if-range', 'range'];
