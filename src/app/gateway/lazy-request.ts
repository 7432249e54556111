/**
 * The Fetch `Request` a Fetch app receives, built lazily over the IncomingMessage (srvx's
 * `NodeRequest`, `@hono/node-server`'s `newRequest`): `method` and `url` are plain strings,
 * `headers` becomes a Headers on first read, `signal` an AbortController on first read, and
 * undici's Request (URL parsing, WebIDL conversions, the body stream) is only built when the app
 * touches its body or another member that needs it.
 *
 * Why: undici's `new Request(url, { headers, signal })` costs about 13 µs on Node 20
 * (`node bench/fetch-steps.mjs`), about what a whole raw node:http answer costs; most handlers
 * read only the method, the URL and a header or two.
 *
 * It is a Request for the app: `instanceof Request` holds (its prototype chain includes
 * Request.prototype), and the places that need undici's own object get it: the global `Request`
 * constructor (`new Request(request, init)`) and `fetch(request)` are wrapped, once per process,
 * to unwrap a lazy one first.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { inspect } from 'node:util';
import type { Deadline } from '../../core/deadline-queue.js';

export const NativeRequest: typeof Request = globalThis.Request;

/** A path and query that WHATWG URL parsing leaves exactly as they are (no dot segments, nothing to escape). */
const PLAIN_TARGET = /^\/[\w\-.~!$&()*+,;=:@/%?]*$/;
/** A Host that URL parsing leaves as it is: lower case, no default port. */
const PLAIN_HOST = /^[a-z0-9.-]+(?::\d{1,5})?$/;
const HOST_CHARS = /^[\w.:[\]-]+$/;

/**
 * The request's absolute URL, as undici's Request would serialise it. RFC 9112 §3.3: the origin
 * comes from Host; the scheme is http, or https when the request reached the edge over TLS
 * (`secure`: the gateway trusts the edge's X-Forwarded-Proto only behind it); absolute-form
 * (§3.2.2) is taken as is. Throws (a TypeError) for a target that is not a URL.
 */
export function requestUrl(req: IncomingMessage, secure = false): string {
  const target = req.url ?? '/';
  const rawHost = req.headers.host;
  const scheme = secure ? 'https://' : 'http://';
  // URL serialisation drops the scheme's default port (WHATWG URL, "special schemes").
  const defaultPort = secure ? ':443' : ':80';
  // The common case first, with the fewest tests (this runs for every request): origin-form, a
  // plain Host (PLAIN_HOST is a subset of HOST_CHARS), nothing URL parsing would change.
  if (target.charCodeAt(0) === 47 /* / */ && rawHost !== undefined && PLAIN_HOST.test(rawHost) && PLAIN_TARGET.test(target) && !rawHost.endsWith(defaultPort) && !target.includes('/.') && (!target.includes('%') || !/%2e/i.test(target))) {
    return `${scheme}${rawHost}${target}`;
  }
  if (/^https?:\/\//i.test(target)) return new URL(target).href;
  const host = rawHost && HOST_CHARS.test(rawHost) ? rawHost : 'localhost';
  // The common case needs no URL parser: the serialisation is the concatenation itself.
  if (PLAIN_TARGET.test(target) && PLAIN_HOST.test(host) && !host.endsWith(defaultPort) && !target.includes('/.') && !/%2e/i.test(target)) return `${scheme}${host}${target}`;
  return new URL(`${scheme}${host}${target.startsWith('/') ? target : `/${target}`}`).href;
}

/** The request's fields as a Headers (HTTP/2 pseudo-headers left out). */
export function requestHeaders(req: IncomingMessage): Headers {
  const headers = new Headers();
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.charCodeAt(0) === 58 /* : */) continue; // HTTP/2 pseudo-headers are not fields (RFC 9113 §8.3)
    try {
      headers.append(name, raw[i + 1] as string);
    } catch {
      // A value undici refuses (Node's parser is more lenient) is dropped rather than failing the request.
    }
  }
  return headers;
}

export class LazyRequest implements Deadline {
  readonly method: string;
  readonly url: string;
  readonly _incoming: IncomingMessage;
  _headers: Headers | null = null;
  _controller: AbortController | null = null;
  /** Why the request was aborted before anyone asked for the signal. */
  _abortReason: unknown = undefined;
  _aborted = false;
  _native: Request | null = null;
  /** The response the gateway writes for it (the timeout answers on it). */
  _response: ServerResponse | null = null;
  // Its place in the gateway's deadline queue (core/deadline-queue.ts): kept here, not in an object of its own per request.
  _deadline = 0;
  _prev: Deadline | null = null;
  _next: Deadline | null = null;
  _queued = false;

  constructor(incoming: IncomingMessage, secure = false) {
    this._incoming = incoming;
    this.method = incoming.method ?? 'GET';
    this.url = requestUrl(incoming, secure);
  }

  get headers(): Headers {
    return (this._headers ??= requestHeaders(this._incoming));
  }

  get signal(): AbortSignal {
    let controller = this._controller;
    if (!controller) {
      controller = new AbortController();
      this._controller = controller;
      if (this._aborted) controller.abort(this._abortReason);
    }
    return controller.signal;
  }

  /** The client left or the request timed out: the signal (now or when first read) is aborted. */
  _abort(reason: unknown): void {
    if (this._aborted) return;
    this._aborted = true;
    this._abortReason = reason;
    this._controller?.abort(reason);
  }

  /** undici's Request for this one, built once; its body streams from the socket. */
  _materialise(): Request {
    if (this._native) return this._native;
    const method = this.method;
    const init: RequestInit & { duplex?: 'half' } = { method, headers: this.headers, signal: this.signal };
    if (method !== 'GET' && method !== 'HEAD') {
      init.body = Readable.toWeb(this._incoming) as unknown as ReadableStream<Uint8Array>;
      init.duplex = 'half'; // required by undici for a streamed request body
    }
    this._native = new NativeRequest(this.url, init);
    return this._native;
  }

  [inspect.custom](depth: number, options: object): string {
    return `Request ${inspect({ method: this.method, url: this.url, headers: this.headers }, { ...options, depth: depth - 1 })}`;
  }
}

// Every other member of Request is undici's, read from the real one.
for (const name of ['body', 'bodyUsed', 'cache', 'credentials', 'destination', 'duplex', 'integrity', 'isHistoryNavigation', 'isReloadNavigation', 'keepalive', 'mode', 'redirect', 'referrer', 'referrerPolicy']) {
  Object.defineProperty(LazyRequest.prototype, name, {
    get(this: LazyRequest) {
      if (name === 'bodyUsed' && !this._native) return false;
      return (this._materialise() as unknown as Record<string, unknown>)[name];
    },
    configurable: true,
  });
}
for (const name of ['arrayBuffer', 'blob', 'bytes', 'clone', 'formData', 'json', 'text']) {
  Object.defineProperty(LazyRequest.prototype, name, {
    value(this: LazyRequest) {
      const native = this._materialise() as unknown as Record<string, () => unknown>;
      return (native[name] as () => unknown).call(native);
    },
    configurable: true,
    writable: true,
  });
}
Object.defineProperty(LazyRequest.prototype, Symbol.toStringTag, { value: 'Request', configurable: true });
Object.setPrototypeOf(LazyRequest.prototype, NativeRequest.prototype);

/** The global Request: unwraps a lazy request given as input (`new Request(request, init)`). */
class PorticoRequest extends NativeRequest {
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (this === PorticoRequest) return value instanceof NativeRequest;
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }

  constructor(input: ConstructorParameters<typeof Request>[0], init?: RequestInit) {
    super(input instanceof LazyRequest ? input._materialise() : input, init);
  }
}

/** Makes `new Request(lazy)` and `fetch(lazy)` work (once per process). */
export function installLazyRequest(): void {
  if (globalThis.Request === PorticoRequest) return;
  const nativeFetch = globalThis.fetch;
  Object.defineProperty(globalThis, 'Request', { value: PorticoRequest, writable: true, configurable: true, enumerable: false });
  globalThis.fetch = function fetch(input: ConstructorParameters<typeof Request>[0], init?: RequestInit): Promise<Response> {
    return nativeFetch(input instanceof LazyRequest ? input._materialise() : input, init);
  };
}
