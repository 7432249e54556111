/**
 * Header rules of a proxy (RFC 9110 §7.6.1): hop-by-hop fields, and the names a `Connection`
 * header lists, belong to one connection and are never forwarded in either direction. The proxy
 * adds who the client was: `X-Forwarded-For/-Proto/-Host` (de facto), `Forwarded` (RFC 7239)
 * and `Via` (RFC 9110 §7.6.3) as configured. Built as flat [name, value, …] lists, which both
 * undici (request) and node:http (response) take without conversion.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { CLIENT_ADDRESS_FIELD } from '../../../core/edge-client.js';

/** RFC 9110 §7.6.1 plus the non-standard ones proxies have always removed (Proxy-Connection, Keep-Alive). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/** Request fields this proxy sets itself (the client's values are replaced or extended). */
const SET_BY_PROXY = new Set(['host', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded', 'via', 'expect', CLIENT_ADDRESS_FIELD]);

const NOT_LISTING = new Set(['close', 'keep-alive', 'upgrade']);

/** Names listed in `Connection` (lower-case), or null when there are none besides keep-alive/close/upgrade. */
function connectionListed(value: string | string[] | undefined): Set<string> | null {
  if (value === undefined) return null;
  // The usual value, one of the three tokens, without splitting (nginx sends "keep-alive").
  if (typeof value === 'string' && value.length <= 10 && NOT_LISTING.has(value.toLowerCase())) return null;
  let listed: Set<string> | null = null;
  for (const part of (Array.isArray(value) ? value.join(',') : value).split(',')) {
    const name = part.trim().toLowerCase();
    if (name === '' || name === 'close' || name === 'keep-alive' || name === 'upgrade') continue;
    (listed ??= new Set()).add(name);
  }
  return listed;
}

export interface ForwardingOptions {
  /** `Host` sent upstream: the client's (`null`), or a fixed value (the upstream's authority or a name). */
  readonly host: string | null;
  readonly xForwarded: boolean;
  readonly forwarded: boolean;
  /** `Via` value to add ("1.1 portico"), or null. */
  readonly via: string | null;
  /**
   * Request header operations after the rules above. `remove` (lower-case) drops the client's
   * fields and the forwarding fields this proxy would add; it must include the names in `set`,
   * so that `set` replaces a value (the client's, or the proxy's own) instead of adding a second.
   */
  readonly remove: ReadonlySet<string>;
  readonly set: readonly (readonly [string, string])[];
  readonly add: readonly (readonly [string, string])[];
  /** The upstream is one of portico's own app workers: tell it the client's address (core/edge-client.ts). */
  readonly toAppWorker?: boolean;
}

/** RFC 7239 §6: IPv6 addresses are quoted and bracketed; "unknown" stays a token. */
function forwardedNode(address: string): string {
  const plain = address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
  return plain.includes(':') ? `"[${plain}]"` : plain;
}

/**
 * The Host the client asked for: the authority of an absolute-form target (RFC 9112 §3.2.2: it
 * replaces Host), else the Host header; "" for an HTTP/1.0 request without one.
 */
function requestedHost(req: IncomingMessage): string {
  const url = req.url ?? '';
  if (url.charCodeAt(0) !== 47 /* / */) {
    const authority = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/?#]*@)?([^/?#]*)/i.exec(url)?.[1];
    if (authority) return authority;
  }
  return req.headers.host ?? '';
}

/**
 * The request head sent upstream, flat. `clientAddress` is the real client IP (after trusted
 * proxies); `upstreamAuthority` is the Host sent when the client gave none (HTTP/1.0), since an
 * HTTP/1.1 request upstream needs one.
 */
export function upstreamRequestHeaders(req: IncomingMessage, clientAddress: string, scheme: string, options: ForwardingOptions, upstreamAuthority = ''): string[] {
  const raw = req.rawHeaders;
  const listed = connectionListed(req.headers.connection);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || SET_BY_PROXY.has(lower) || options.remove.has(lower) || listed?.has(lower)) continue;
    out.push(name, raw[i + 1] as string);
  }
  const headers = req.headers;
  const clientHost = requestedHost(req);
  const remove = options.remove;
  if (!remove.has('host')) out.push('host', options.host ?? (clientHost || upstreamAuthority));
  if (options.xForwarded) {
    if (!remove.has('x-forwarded-for')) {
      const prior = headers['x-forwarded-for'];
      const peer = clientAddress.startsWith('::ffff:') ? clientAddress.slice(7) : clientAddress;
      out.push('x-forwarded-for', prior ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${peer}` : peer);
    }
    if (!remove.has('x-forwarded-proto')) out.push('x-forwarded-proto', scheme);
    if (clientHost && !remove.has('x-forwarded-host')) out.push('x-forwarded-host', clientHost);
  }
  if (options.forwarded && !remove.has('forwarded')) {
    const prior = headers.forwarded;
    const element = `for=${forwardedNode(clientAddress)};proto=${scheme}${clientHost ? `;host="${clientHost.replace(/["\\]/g, '')}"` : ''}`;
    out.push('forwarded', prior ? `${prior}, ${element}` : element);
  }
  if (options.via && !remove.has('via')) {
    const prior = headers.via;
    out.push('via', prior ? `${prior}, ${options.via}` : options.via);
  }
  for (const [name, value] of options.set) out.push(name, value);
  for (const [name, value] of options.add) out.push(name, value);
  if (options.toAppWorker) out.push(CLIENT_ADDRESS_FIELD, clientAddress);
  return out;
}

/**
 * The upstream's response head for the client, flat: hop-by-hop and listed fields removed, and
 * the configured `hide` names (by default `Server` and `X-Powered-By`: the upstream's identity).
 */
export function clientResponseHeaders(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>, hide: ReadonlySet<string>): string[] {
  const listed = connectionListed(headers.connection);
  const out: string[] = [];
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || hide.has(name) || listed?.has(name)) continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const item of value) out.push(name, item);
    else out.push(name, value);
  }
  return out;
}

/** Response fields never passed on (hop-by-hop) plus `hide`: one set, built once per route. */
export function responseDropSet(hide: Iterable<string>): ReadonlySet<string> {
  return new Set([...HOP_BY_HOP, ...hide]);
}

/**
 * Field names nearly every upstream response carries, lower case. `nameOf` recognises them on the
 * received bytes (case-insensitively), so they cost no string at all; others are decoded and
 * lower-cased, which `LOWER_NAMES` remembers (names repeat, values do not).
 */
const COMMON_NAMES = [
  'server', 'date', 'content-type', 'content-length', 'connection', 'keep-alive', 'transfer-encoding', 'cache-control',
  'etag', 'last-modified', 'expires', 'vary', 'set-cookie', 'location', 'accept-ranges', 'content-encoding', 'content-language',
  'content-disposition', 'content-range', 'age', 'x-powered-by', 'strict-transport-security', 'x-content-type-options',
  'x-frame-options', 'access-control-allow-origin', 'link', 'pragma', 'via', 'www-authenticate', 'retry-after', 'upgrade', 'trailer',
];
const NAMES_BY_LENGTH: string[][] = [];
for (const name of COMMON_NAMES) (NAMES_BY_LENGTH[name.length] ??= []).push(name);
const LOWER_NAMES = new Map<string, string>();
const LOWER_NAMES_MAX = 1024;

/** A buffer's bytes as latin1, without `toString`'s encoding dispatch (Buffer's own latin1 slicer, there since Node 0.x). */
type Latin1Buffer = Buffer & { latin1Slice(start: number, end: number): string };
const latin1 = (bytes: Buffer): string => (bytes as Latin1Buffer).latin1Slice(0, bytes.length);

function nameOf(raw: Buffer | string): string {
  if (typeof raw !== 'string') {
    const candidates = NAMES_BY_LENGTH[raw.length];
    if (candidates !== undefined) {
      // `| 0x20` lower-cases ASCII letters and maps no other token character onto one (RFC 9110
      // §5.1: names are tokens, which undici's parser checked), so this compares case-insensitively.
      next: for (const name of candidates) {
        for (let i = 0; i < name.length; i++) if (((raw[i] as number) | 0x20) !== name.charCodeAt(i)) continue next;
        return name;
      }
    }
  }
  const text = typeof raw === 'string' ? raw : latin1(raw);
  let lower = LOWER_NAMES.get(text);
  if (lower === undefined) {
    lower = text.toLowerCase();
    if (LOWER_NAMES.size < LOWER_NAMES_MAX) LOWER_NAMES.set(text, lower);
  }
  return lower;
}

/**
 * `clientResponseHeaders` on the head as undici's parser gives it (`rawHeaders`: [name, value, …]
 * as bytes), without building a header object first: names lower case (as undici's own parsing
 * gives them, which the cache relies on), fields in the order received, `drop`
 * (`responseDropSet`) and the names `Connection` lists removed.
 */
export function clientResponseHeadersRaw(raw: readonly (Buffer | string)[], drop: ReadonlySet<string>): string[] {
  const out: string[] = [];
  let connection: string | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = nameOf(raw[i] as Buffer | string);
    const rawValue = raw[i + 1] as Buffer | string;
    if (drop.has(name)) {
      if (name === 'connection') {
        const value = typeof rawValue === 'string' ? rawValue : latin1(rawValue);
        connection = connection === null ? value : `${connection}, ${value}`;
      }
      continue;
    }
    out.push(name, typeof rawValue === 'string' ? rawValue : latin1(rawValue));
  }
  const listed = connectionListed(connection ?? undefined);
  if (listed === null) return out;
  const kept: string[] = [];
  for (let i = 0; i < out.length; i += 2) if (!listed.has(out[i] as string)) kept.push(out[i] as string, out[i + 1] as string);
  return kept;
}

/**
 * Whether an upstream's response head (undici's flat raw list) says `Connection: close` (RFC 9112
 * §9.6): the server will not take another request on this connection.
 */
export function saysConnectionClose(raw: readonly (Buffer | string)[]): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as Buffer | string;
    if (name.length !== 10 || nameOf(name) !== 'connection') continue;
    const value = raw[i + 1] as Buffer | string;
    for (const token of (typeof value === 'string' ? value : latin1(value)).split(',')) if (token.trim().toLowerCase() === 'close') return true;
  }
  return false;
}
