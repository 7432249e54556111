import type { Dispatcher } from 'undici';
import type { Deadline } from '../../../core/deadline-queue.js';
import type { HeadWait } from './index.js';
import { log } from '../../../core/log.js';
import { sendHead, sendInterim } from '../../http/respond.js';
import { DONE, type BodySink, type Outcome } from './attempt.js';
import { CLIENT_GONE, ClientGone, HeaderTimeout, RETRY_STATUS, RetryOnStatus, TotalTimeout, classifyFailure, errorCode } from './errors.js';
import { clientResponseHeadersRaw, saysConnectionClose } from './headers.js';
import type { ProxyRequest } from './request.js';
import type { UpstreamServer } from './upstream.js';

/**
 * One HTTP attempt on one server, as undici's dispatch handler. It uses undici's handler methods
 * that take the response head as received (`onConnect`/`onHeaders`/`onData`/`onComplete`/
 * `onError`, the ones undici's own `request` and `stream` use): given the newer
 * `onRequestStart`/`onResponseStart` form, undici wraps each request in an adapter that makes a
 * controller and parses the head and the trailers into objects, which this proxy would only turn
 * back into a flat list. The attempt is its own deadline entry (core/deadline-queue.ts) and its methods are
 * on the prototype: a request allocates this object, one listener and the dispatch options.
 */
export class HttpAttempt implements HeadWait {
  readonly #request: ProxyRequest;
  readonly #server: UpstreamServer;
  /** Where the response goes: the client's ServerResponse, or the cache's sink. */
  readonly #res: BodySink;
  /** Where the body goes: `#res`, or the route's compressor (sendHead says which). */
  #out: BodySink;
  #abort: ((error: Error) => void) | null = null;
  #resume: (() => void) | null = null;
  #responded = false;
  #settled = false;
  #totalTimer: NodeJS.Timeout | undefined = undefined;
  _deadline = 0;
  _prev: Deadline | null = null;
  _next: Deadline | null = null;
  _queued = false;

  constructor(request: ProxyRequest, server: UpstreamServer) {
    this.#request = request;
    this.#server = server;
    const res = request.exchange?.sink ?? request.ctx.res;
    this.#res = res;
    this.#out = res;
  }

  /** The client went away: stop the upstream request too (its connection is not reused). */
  readonly #onClientClose = (): void => {
    if (!this.#res.writableFinished) this.#abort?.(new ClientGone('client closed the connection'));
    this.#settle(DONE);
  };

  dispatch(path: string, headers: string[]): void {
    const request = this.#request;
    const group = request.proxy.group.config;
    this.#res.on('close', this.#onClientClose);
    // The total timer is off by default (`timeout` 0), so it stays a plain timer.
    if (group.timeout > 0) this.#totalTimer = setTimeout(expireTotal, group.timeout, this);
    this.#server.pool.dispatch(
      {
        path,
        method: request.method,
        headers,
        body: request.hasBody ? request.ctx.req : null,
        idempotent: false,
        blocking: true,
      } as Dispatcher.DispatchOptions,
      this as unknown as Dispatcher.DispatchHandler,
    );
  }

  #settle(outcome: Outcome): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#request.proxy.headDeadlines?.remove(this);
    clearTimeout(this.#totalTimer);
    this.#res.off('close', this.#onClientClose);
    this.#request.finish(this.#server, outcome);
  }

  /**
   * A timeout: before the request has a connection (it waits in the pool) the attempt settles at
   * once (nothing was sent); later, aborting the dispatch reports through onError. The error is
   * made only now: an Error captures a stack, and made per request up front it was 10% of the
   * proxy's CPU profile (bench/profile-summary.mjs).
   */
  timeout(error: TotalTimeout | HeaderTimeout): void {
    if (this.#abort) this.#abort(error);
    else this.#settle({ kind: 'failed', status: 504, reason: 'timeout', beforeSend: true, code: error.code });
  }

  /** The response-head deadline passed (core/deadline-queue.ts). */
  expireHead(): void {
    this.timeout(new HeaderTimeout('response head timeout'));
  }

  onConnect(abort: (error: Error) => void): void {
    this.#abort = abort;
    if (this.#settled) abort(new ClientGone('client closed the connection'));
    else this.#request.proxy.headDeadlines?.add(this);
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    // An interim response (103 Early Hints, 102): passed on to the client (RFC 9110 §15.2), never
    // to the cache. undici gives no 100 here (it never sends Expect; node:http answered the client's).
    if (statusCode < 200) {
      sendInterim(this.#request.ctx, statusCode, clientResponseHeadersRaw(rawHeaders, this.#request.proxy.drop));
      return true;
    }
    const request = this.#request;
    const proxy = request.proxy;
    proxy.headDeadlines?.remove(this);
    const server = this.#server;
    // A server that closes every connection is better served on raw connections, one per request (raw-exchange.ts).
    if (server.direct !== null && saysConnectionClose(rawHeaders)) server.closesConnections = true;
    const statuses = proxy.group.config.retry.statuses;
    if (statuses.length > 0 && statuses.includes(statusCode) && request.mayRetryAfter(false)) {
      this.#abort?.(new RetryOnStatus(`status ${statusCode}`));
      this.#settle({ kind: 'failed', status: statusCode === 504 ? 504 : 502, reason: 'status', beforeSend: false, code: `HTTP_${statusCode}` });
      return true;
    }
    this.#responded = true;
    this.#resume = resume;
    const headers = clientResponseHeadersRaw(rawHeaders, proxy.drop);
    const sink = request.exchange?.sink;
    if (sink) sink.head(statusCode, headers);
    else this.#out = sendHead(request.ctx, statusCode, headers);
    return true;
  }

  /** Back-pressure: false pauses undici's parser until the consumer drains. */
  onData(chunk: Buffer): boolean {
    this.#request.ctx.bodyBytes += chunk.length;
    if (this.#out.write(chunk)) return true;
    this.#out.once('drain', this.#resume as () => void);
    return false;
  }

  onComplete(): void {
    this.#out.end();
    this.#settle(DONE);
  }

  onError(error: Error): void {
    const code = errorCode(error);
    if (code === RETRY_STATUS || code === CLIENT_GONE) return;
    if (this.#responded) {
      // Headers are gone: the only honest signal left is a cut connection.
      const group = this.#request.proxy.group;
      log().warn({ upstream: group.name, server: this.#server.name, code }, 'upstream failed mid-response');
      this.#res.destroy();
      this.#settle(DONE);
      return;
    }
    this.#settle({ kind: 'failed', ...classifyFailure(code) });
  }
}

function expireTotal(attempt: HttpAttempt): void {
  attempt.timeout(new TotalTimeout('total timeout'));
}
