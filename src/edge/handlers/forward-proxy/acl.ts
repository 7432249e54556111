/**
 * The forward proxy's access control, compiled once per config generation and checked before
 * any connection to a destination is made:
 *
 *   - who may use the proxy (client addresses; default loopback only, so it is never an open
 *     proxy by accident);
 *   - which ports (CONNECT: Squid's `SSL_ports`, 443 only; `http://`: Squid's HTTP `Safe_ports`);
 *   - which destinations: `denyDest` (names, wildcards, addresses, CIDR blocks) always refused;
 *     `allowDest` reachable even inside the ranges refused by default; those default ranges are
 *     the ones a request from outside must never reach through us (SSRF): private, loopback,
 *     link-local (cloud metadata 169.254.169.254 among them), CGNAT, unique-local IPv6 (AWS's
 *     fd00:ec2::254), multicast and reserved space.
 *
 * A host name is resolved once, here (node:dns lookup, every address), and every address is
 * checked; the caller connects only to an address this returned. Connecting by name instead
 * would resolve again, and a name that answers a public address to the check and 127.0.0.1 to
 * the connection (DNS rebinding) would get through: the check and the use must see the same
 * answer (time-of-check to time-of-use).
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { LRUCache } from 'lru-cache';
import type { ResolvedForward } from '../../../config/resolved.js';
import { IpSet, parseIpBlock, unmapIpv4 } from '../../../core/ip-list.js';

/**
 * Address space refused by default, with the name given in a 403. Order matters only for the
 * name: metadata addresses come before the link-local block that holds them.
 */
const DEFAULT_DENY: readonly (readonly [string, readonly string[]])[] = [
  ['cloud metadata', ['169.254.169.254', '169.254.170.2', 'fd00:ec2::254', '100.100.100.200']],
  ['loopback', ['127.0.0.0/8', '::1/128']],
  ['private', ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16']],
  ['link-local', ['169.254.0.0/16', 'fe80::/10']],
  ['carrier-grade NAT', ['100.64.0.0/10']],
  ['unique-local', ['fc00::/7', 'fec0::/10']],
  // "This network" (0.0.0.0 reaches the local host on Linux), IETF protocol assignments,
  // benchmarking, reserved and broadcast; IPv4-compatible IPv6 (deprecated) and unspecified.
  ['reserved', ['0.0.0.0/8', '192.0.0.0/24', '198.18.0.0/15', '240.0.0.0/4', '::/96']],
  ['multicast', ['224.0.0.0/4', 'ff00::/8']],
];

export type DestinationDecision =
  | { readonly ok: true; readonly addresses: readonly string[] }
  | { readonly ok: false; readonly status: 403 | 502; readonly reason: string };

export interface PortRanges {
  has(port: number): boolean;
}

function portRanges(ranges: readonly (readonly [number, number])[]): PortRanges {
  const bits = new Uint8Array(65536);
  for (const [low, high] of ranges) bits.fill(1, low, high + 1);
  return { has: (port) => bits[port] === 1 };
}

/** Lower case, no trailing dot: the form names are compared in. */
export const normaliseName = (name: string): string => (name.endsWith('.') ? name.slice(0, -1) : name).toLowerCase();

class NameSet {
  readonly #exact = new Set<string>();
  /** ".example.com" for "*.example.com": matches any name below it, not the name itself. */
  readonly #suffixes: string[] = [];

  add(pattern: string): void {
    const name = normaliseName(pattern);
    if (name.startsWith('*.')) this.#suffixes.push(name.slice(1));
    else this.#exact.add(name);
  }

  has(name: string): boolean {
    if (this.#exact.has(name)) return true;
    for (const suffix of this.#suffixes) if (name.length > suffix.length && name.endsWith(suffix)) return true;
    return false;
  }
}

function isAddressOrBlock(text: string): boolean {
  return parseIpBlock(text) !== null;
}

/** Expands an IPv6 address into its 8 groups; null when it is not one. */
function ipv6Groups(address: string): number[] | null {
  if (isIP(address) !== 6) return null;
  let text = address.split('%')[0] as string;
  // A trailing dotted quad is two groups.
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const fill = tail === undefined ? [] : new Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...fill, ...right].map((group) => parseInt(group, 16));
}

/**
 * The IPv4 address an IPv6 address stands for, when it carries one that a router will use:
 * IPv4-mapped (::ffff:a.b.c.d), NAT64 (64:ff9b::/96, RFC 6052) and 6to4 (2002::/16, RFC 3056).
 * A denied IPv4 range must stay denied when spelt as IPv6.
 */
export function embeddedIpv4(address: string): string | null {
  const groups = ipv6Groups(address);
  if (!groups) return null;
  const quad = (high: number, low: number): string => `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
  const zeros = (from: number, to: number): boolean => groups.slice(from, to).every((g) => g === 0);
  if (zeros(0, 5) && groups[5] === 0xffff) return quad(groups[6] as number, groups[7] as number);
  if (groups[0] === 0x64 && groups[1] === 0xff9b && zeros(2, 6)) return quad(groups[6] as number, groups[7] as number);
  if (groups[0] === 0x2002) return quad(groups[1] as number, groups[2] as number);
  return null;
}

export interface NameResolver {
  /** Every address of a name (A and AAAA), in the order to try them. */
  resolve(name: string): Promise<string[]>;
}

/** Resolves names to all their addresses, briefly cached (concurrent lookups of one name share one). */
export class Resolver implements NameResolver {
  readonly #cache: LRUCache<string, Promise<string[]>> | null;
  constructor(ttlMs: number) {
    this.#cache = ttlMs > 0 ? new LRUCache({ max: 4096, ttl: ttlMs }) : null;
  }

  resolve(name: string): Promise<string[]> {
    const cached = this.#cache?.get(name);
    if (cached) return cached;
    const pending = lookup(name, { all: true, verbatim: true }).then((records) => records.map((record) => record.address));
    if (this.#cache) {
      this.#cache.set(name, pending);
      // A failure is not remembered: the next request asks again.
      pending.catch(() => this.#cache?.delete(name));
    }
    return pending;
  }
}

export class ForwardAcl {
  readonly #clients: IpSet;
  readonly #allowNames = new NameSet();
  readonly #denyNames = new NameSet();
  readonly #allowIps: IpSet;
  readonly #denyIps: IpSet;
  readonly #defaultDeny: readonly (readonly [string, IpSet])[];
  readonly #onlyAllowed: boolean;
  readonly connectPorts: PortRanges;
  readonly httpPorts: PortRanges;
  readonly #resolver: NameResolver;

  constructor(config: ResolvedForward, resolver: NameResolver = new Resolver(config.dnsCacheTtl)) {
    this.#clients = new IpSet(config.allow);
    this.#allowIps = new IpSet(config.allowDest.filter(isAddressOrBlock));
    this.#denyIps = new IpSet(config.denyDest.filter(isAddressOrBlock));
    for (const entry of config.allowDest) if (!isAddressOrBlock(entry)) this.#allowNames.add(entry);
    for (const entry of config.denyDest) if (!isAddressOrBlock(entry)) this.#denyNames.add(entry);
    this.#defaultDeny = DEFAULT_DENY.map(([name, blocks]) => [name, new IpSet(blocks)] as const);
    this.#onlyAllowed = config.onlyAllowDest;
    this.connectPorts = portRanges(config.connectPorts);
    this.httpPorts = portRanges(config.httpPorts);
    this.#resolver = resolver;
  }

  /** Whether this client (the peer address of the connection) may use the proxy. */
  clientAllowed(address: string): boolean {
    return this.#clients.has(address);
  }

  /** Why an address may not be reached (`nameAllowed`: the name it came from is in `allowDest`), or null. */
  #addressRefusal(address: string, nameAllowed: boolean): string | null {
    const ip = unmapIpv4(address);
    const inner = isIP(ip) === 6 ? embeddedIpv4(ip) : null;
    const denied = (set: IpSet): boolean => set.has(ip) || (inner !== null && set.has(inner));
    if (denied(this.#denyIps)) return `destination ${ip} is denied`;
    if (nameAllowed || this.#allowIps.has(ip)) return null;
    if (this.#onlyAllowed) return `destination ${ip} is not in the allowed destinations`;
    for (const [range, set] of this.#defaultDeny) if (denied(set)) return `destination ${ip} is in a denied range (${range})`;
    return null;
  }

  /**
   * Checks a destination host (a name, or an address without brackets) and resolves it: the
   * addresses that may be connected to, or why not (403 denied, 502 the name does not resolve).
   */
  async check(host: string): Promise<DestinationDecision> {
    if (isIP(host) !== 0) {
      const refusal = this.#addressRefusal(host, false);
      return refusal ? { ok: false, status: 403, reason: refusal } : { ok: true, addresses: [host] };
    }
    const name = normaliseName(host);
    if (this.#denyNames.has(name)) return { ok: false, status: 403, reason: `destination ${name} is denied` };
    const nameAllowed = this.#allowNames.has(name);
    if (this.#onlyAllowed && !nameAllowed && this.#allowIps.empty) return { ok: false, status: 403, reason: `destination ${name} is not in the allowed destinations` };
    let resolved: string[];
    try {
      resolved = await this.#resolver.resolve(name);
    } catch (error) {
      return { ok: false, status: 502, reason: `cannot resolve ${name} (${(error as NodeJS.ErrnoException).code ?? 'error'})` };
    }
    // Every address is checked; only those that pass are used. A name answering both a public
    // and a private address reaches only the public one.
    const addresses: string[] = [];
    let firstRefusal: string | null = null;
    for (const address of resolved) {
      const refusal = this.#addressRefusal(address, nameAllowed);
      if (refusal === null) addresses.push(address);
      else firstRefusal ??= refusal;
    }
    if (addresses.length === 0) return { ok: false, status: firstRefusal ? 403 : 502, reason: firstRefusal ? `${name} resolves to a refused address: ${firstRefusal}` : `${name} has no address` };
    return { ok: true, addresses };
  }
}
