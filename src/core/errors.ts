/**
 * One error catalog for the whole program. Each failure has a stable `code`; an error that ends
 * a request is an HttpError carrying the status the client gets. Errors are wrapped once, at the
 * top of the pipeline (edge/pipeline.ts), never in the middle.
 */

export const ErrorCodes = {
  // config/
  ERR_CONFIG_INVALID: 'ERR_CONFIG_INVALID',
  ERR_CONFIG_NOT_FOUND: 'ERR_CONFIG_NOT_FOUND',
  ERR_CONFIG_LOAD: 'ERR_CONFIG_LOAD',
  // edge/http: the request itself is malformed (RFC 9112 §3, RFC 9110 §15.5)
  ERR_REQUEST_TARGET: 'ERR_REQUEST_TARGET',
  ERR_REQUEST_HOST: 'ERR_REQUEST_HOST',
  ERR_REQUEST_HEADER_TOO_LARGE: 'ERR_REQUEST_HEADER_TOO_LARGE',
  ERR_REQUEST_TIMEOUT: 'ERR_REQUEST_TIMEOUT',
  ERR_REQUEST_PARSE: 'ERR_REQUEST_PARSE',
  // edge/http/limits.ts: protocol limits (RFC 9110 §15.5.9, §15.5.14)
  ERR_LIMIT_BODY_SIZE: 'ERR_LIMIT_BODY_SIZE',
  ERR_LIMIT_BODY_TIMEOUT: 'ERR_LIMIT_BODY_TIMEOUT',
  // edge/route
  ERR_ROUTE_NO_HOST: 'ERR_ROUTE_NO_HOST',
  ERR_ROUTE_NOT_FOUND: 'ERR_ROUTE_NOT_FOUND',
  ERR_ROUTE_LOOP: 'ERR_ROUTE_LOOP',
  // handlers
  ERR_STATIC_NOT_FOUND: 'ERR_STATIC_NOT_FOUND',
  ERR_STATIC_FORBIDDEN: 'ERR_STATIC_FORBIDDEN',
  ERR_STATIC_METHOD: 'ERR_STATIC_METHOD',
  ERR_HANDLER: 'ERR_HANDLER',
  // edge/handlers/proxy
  ERR_UPSTREAM_UNAVAILABLE: 'ERR_UPSTREAM_UNAVAILABLE',
  ERR_UPSTREAM_FAILED: 'ERR_UPSTREAM_FAILED',
  ERR_UPSTREAM_TIMEOUT: 'ERR_UPSTREAM_TIMEOUT',
  // edge/middleware: access (allow/deny 403, basic auth 401) and limits (rate 429, concurrency 503)
  ERR_ACCESS_DENIED: 'ERR_ACCESS_DENIED',
  ERR_AUTH_REQUIRED: 'ERR_AUTH_REQUIRED',
  ERR_LIMIT_RATE: 'ERR_LIMIT_RATE',
  ERR_LIMIT_CONN: 'ERR_LIMIT_CONN',
  ERR_LIMIT_STORE: 'ERR_LIMIT_STORE',
  // listeners
  ERR_LISTEN: 'ERR_LISTEN',
  // supervisor: an edge worker process could not start (other than a listen failure)
  ERR_EDGE_WORKER: 'ERR_EDGE_WORKER',
  // apps run by `portico up`: workers crash-looped at start (exit 1), a module that exports no app (exit 2)
  ERR_APP_START: 'ERR_APP_START',
  ERR_APP_INVALID: 'ERR_APP_INVALID',
  // cli: `portico status` could not reach or read the admin API
  ERR_ADMIN: 'ERR_ADMIN',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class PorticoError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'PorticoError';
  }
}

/**
 * An error that ends a request with `status`. Its `message` is for the error log only: the client
 * gets the status page (edge/pipeline.ts `fail`, edge/http/status.ts), never the message, which may name an
 * upstream's address or a file path.
 */
export class HttpError extends PorticoError {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>> | undefined;
  constructor(status: number, code: ErrorCode, message: string, options?: { cause?: unknown; headers?: Record<string, string> }) {
    super(code, message, options);
    this.status = status;
    this.headers = options?.headers;
    this.name = 'HttpError';
  }
}
