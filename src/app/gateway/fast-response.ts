/**
 * A lighter `Response` for Fetch apps in Portico's app workers: the global `Response` is replaced
 * by this class, which records `(body, init)` and only builds undici's Response when the app
 * touches something that needs it (`body`, `text()`, `clone()`…). The gateway then writes a
 * string / Uint8Array / ArrayBuffer body straight to the socket with a Content-Length.
 *
 * Why hand-written and why a global: measured on Node 20 (`node bench/fetch-steps.mjs`), undici's
 * `new Response('Hello', { headers })` costs about 12 µs and reading its body back through a
 * stream reader about 19 µs, where a raw node:http answer costs about 14 µs in all; the app
 * server ran at 0.21 of a raw node:http cluster. The app constructs the Response itself, so only
 * the global can be made cheaper; `@hono/node-server` does the same by default
 * (`overrideGlobalObjects`), which is how Hono on Node reaches 0.96 of raw node:http. Its code is
 * not reused as such because it logs to the console, answers errors with their message and
 * needs `hono` at run time.
 *
 * Compatibility: `instanceof Response` is true for both kinds (Symbol.hasInstance), statics
 * (`Response.json`, `redirect`, `error`) work, a subclass of Response keeps working (it extends
 * this class), and every member reads the same as on undici's Response.
 */
export const NativeResponse: typeof Response = globalThis.Response;

/** Statuses that must not carry a body (Fetch §2.2.3 "null body status"). */
function isNullBodyStatus(status: number): boolean {
  return status === 101 || status === 103 || status === 204 || status === 205 || status === 304;
}

const FAST_BODY = 1;

/** A body the gateway writes directly: null, a string, or bytes. */
function isFastBody(body: unknown): body is string | Uint8Array | ArrayBuffer | null | undefined {
  return body === null || body === undefined || typeof body === 'string' || body instanceof Uint8Array || body instanceof ArrayBuffer;
}

export class PorticoResponse {
  /** The body as given (fast kinds only; null once materialised). */
  _body: string | Uint8Array | ArrayBuffer | null = null;
  _init: ResponseInit | undefined;
  /** 1 while the fast path holds; 0 once the real Response exists (or for other body kinds). */
  _fast = 0;
  _status: number;
  _headers: Headers | null = null;
  _native: Response | null = null;

  static [Symbol.hasInstance](value: unknown): boolean {
    if (this === PorticoResponse) return value instanceof NativeResponse || Function.prototype[Symbol.hasInstance].call(this, value);
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }

  /** Fetch §7.4 `Response.json`: on the fast path too (Hono's `c.json()` does the same by hand). */
  static json(data: unknown, init?: ResponseInit): Response {
    const text = JSON.stringify(data) as string | undefined;
    if (text === undefined) throw new TypeError('Value is not JSON serializable');
    const headers = new Headers(init?.headers);
    if (!headers.has('content-type')) headers.set('content-type', 'application/json');
    return new PorticoResponse(text, { status: init?.status ?? 200, statusText: init?.statusText ?? '', headers }) as unknown as Response;
  }

  static redirect(url: string | URL, status?: number): Response {
    return (NativeResponse.redirect as (url: string | URL, status?: number) => Response)(url, status);
  }

  static error(): Response {
    return NativeResponse.error();
  }

  constructor(body?: ConstructorParameters<typeof Response>[0], init?: ResponseInit) {
    this._init = init;
    const status = init?.status ?? 200;
    this._status = status;
    if (isFastBody(body)) {
      // The checks undici's constructor makes, so a bad answer still fails where it is written.
      if (!Number.isInteger(status) || status < 200 || status > 599) throw new RangeError(`init["status"] must be in the range of 200 to 599, inclusive.`);
      if (body != null && isNullBodyStatus(status)) throw new TypeError(`Response constructor: Invalid response status code ${status}`);
      this._body = body ?? null;
      this._fast = FAST_BODY;
    } else {
      this._native = new NativeResponse(body, init);
    }
  }

  /** undici's Response for this one, built once, with the headers as they are now. */
  _materialise(): Response {
    if (this._native) return this._native;
    const init = this._init;
    const native = new NativeResponse(this._body, this._headers ? { status: this._status, statusText: init?.statusText ?? '', headers: this._headers } : init);
    this._native = native;
    this._fast = 0;
    this._body = null;
    return native;
  }

  get headers(): Headers {
    if (this._native) return this._native.headers;
    if (!this._headers) {
      const headers = new Headers(this._init?.headers);
      // What undici's extractBody adds for a string body (Fetch §5.2 "extract a body").
      if (typeof this._body === 'string' && !headers.has('content-type')) headers.set('content-type', 'text/plain;charset=UTF-8');
      this._headers = headers;
    }
    return this._headers;
  }

  get status(): number {
    return this._native ? this._native.status : this._status;
  }

  get ok(): boolean {
    const status = this.status;
    return status >= 200 && status <= 299;
  }

  get statusText(): string {
    return this._native ? this._native.statusText : (this._init?.statusText ?? '');
  }

  get body(): ReadableStream<Uint8Array> | null {
    return this._materialise().body;
  }

  get bodyUsed(): boolean {
    return this._native ? this._native.bodyUsed : false;
  }

  get type(): Response['type'] {
    return this._native ? this._native.type : 'default';
  }

  get url(): string {
    return this._native ? this._native.url : '';
  }

  get redirected(): boolean {
    return this._native ? this._native.redirected : false;
  }

  clone(): Response {
    return this._materialise().clone();
  }

  arrayBuffer(): Promise<ArrayBuffer> {
    return this._materialise().arrayBuffer();
  }

  blob(): Promise<Blob> {
    return this._materialise().blob();
  }

  bytes(): Promise<Uint8Array> {
    return (this._materialise() as Response & { bytes(): Promise<Uint8Array> }).bytes();
  }

  formData(): Promise<FormData> {
    return this._materialise().formData();
  }

  json(): Promise<unknown> {
    return this._materialise().json();
  }

  text(): Promise<string> {
    return this._materialise().text();
  }

  get [Symbol.toStringTag](): string {
    return 'Response';
  }
}

/** Replaces the global `Response` (once per process). */
export function installFastResponse(): void {
  if (globalThis.Response === (PorticoResponse as unknown as typeof Response)) return;
  Object.defineProperty(globalThis, 'Response', { value: PorticoResponse, writable: true, configurable: true, enumerable: false });
}

/** Whether `response` is a Response still on the fast path (the gateway writes its parts itself); false when it must be streamed. */
export function isFast(response: unknown): response is PorticoResponse {
  return response instanceof Object && (response as PorticoResponse)._fast === FAST_BODY;
}

/** The content-type undici would add for a fast Response's body when its headers have none, or null. */
export function defaultType(response: PorticoResponse): string | null {
  // Live headers (the app read `response.headers`) already carry the default type, or had it removed.
  return response._headers === null && typeof response._body === 'string' ? 'text/plain;charset=UTF-8' : null;
}
