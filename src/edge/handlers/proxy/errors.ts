/**
 * What an undici error means for a proxy, the reverse proxy's (proxy/) and the forward proxy's
 * (forward-proxy/) alike: which status the client gets (504 for a timeout, 502 otherwise, as
 * nginx answers), and whether nothing reached the other side (a failed connect), which makes any
 * request safe to send elsewhere (RFC 9110 §9.2.2 limits other retries to idempotent methods).
 */

/** Nothing was sent: the connection was never made (refused, unreachable, unresolvable, no such socket, connect timeout). */
const CONNECT_FAILURES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN', 'ENOENT', 'UND_ERR_CONNECT_TIMEOUT']);
/** undici's own timeouts and the reverse proxy's precise head and total timers (proxy/index.ts). */
const TIMEOUTS: ReadonlySet<string> = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ERR_PROXY_TOTAL_TIMEOUT', 'ERR_PROXY_HEADER_TIMEOUT']);

export class TotalTimeout extends Error {
  readonly code = 'ERR_PROXY_TOTAL_TIMEOUT';
}
/**
 * Our own response-head timer: undici's parser timeouts run on a coarse clock (a 300 ms
 * headersTimeout fired after about 1,000 ms here), and a configured timeout should hold.
 */
export class HeaderTimeout extends Error {
  readonly code = 'ERR_PROXY_HEADER_TIMEOUT';
}
/** The abort reason when a status in `retry.statuses` sends the request to the next server. */
export class RetryOnStatus extends Error {
  readonly code = 'ERR_PROXY_RETRY_STATUS';
}
export const RETRY_STATUS = 'ERR_PROXY_RETRY_STATUS';

/** The abort reason when the client left: not a failure of the upstream, and never answered. */
export class ClientGone extends Error {
  readonly code = 'ERR_PROXY_CLIENT_GONE';
}
export const CLIENT_GONE = 'ERR_PROXY_CLIENT_GONE';

/** The code of an undici error (undici wraps socket errors: the cause's code is the precise one). */
export function errorCode(error: unknown): string {
  const e = error as { code?: string; cause?: { code?: string } } | null;
  return e?.cause?.code ?? e?.code ?? 'UNKNOWN';
}

export interface ProxyFailure {
  readonly status: 502 | 504;
  readonly reason: 'error' | 'timeout';
  /** Nothing reached the server: any method may be retried. */
  readonly beforeSend: boolean;
  readonly code: string;
}

/** The failure an error code stands for, before any of the response was relayed. */
export function classifyFailure(code: string): ProxyFailure {
  const timeout = TIMEOUTS.has(code);
  return { status: timeout ? 504 : 502, reason: timeout ? 'timeout' : 'error', beforeSend: CONNECT_FAILURES.has(code), code };
}
