/**
 * Address matching over IPv4/IPv6 addresses and CIDR blocks, for every feature that decides by
 * client address: trusted proxies (edge realip), access `allow`/`deny`, forward-proxy ACLs.
 *
 * Built on node:net BlockList (a native matcher), once per config generation. IPv4-mapped IPv6
 * addresses (`::ffff:192.0.2.1`, what a dual-stack socket reports for an IPv4 client) are
 * matched as the IPv4 address they carry, both in rules and in the addresses checked, so
 * `10.0.0.0/8` matches a client seen as `::ffff:10.1.2.3` (nginx does the same).
 */
import { BlockList, isIP } from 'node:net';

export type IpFamily = 'ipv4' | 'ipv6';

/** An address or block, parsed. `prefix` is the CIDR length (32/128 for a single address). */
export interface IpBlock {
  readonly address: string;
  readonly prefix: number;
  readonly family: IpFamily;
}

const MAPPED = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;

/** `::ffff:1.2.3.4` → `1.2.3.4`; anything else unchanged. Cheap on the common (unmapped) path. */
export function unmapIpv4(address: string): string {
  if (address.length < 14 || (address.charCodeAt(0) !== 58 /* : */ && address.charCodeAt(0) !== 48 /* 0 */)) return address;
  const match = MAPPED.exec(address);
  return match ? (match[1] as string) : address;
}

/**
 * Parses `"192.0.2.1"`, `"10.0.0.0/8"`, `"::1"`, `"2001:db8::/32"`, `"::ffff:10.0.0.0/104"`.
 * Returns null for anything else (a host name, a bad prefix, host bits are allowed as nginx does:
 * `10.1.2.3/8` means `10.0.0.0/8`).
 */
export function parseIpBlock(text: string): IpBlock | null {
  const slash = text.indexOf('/');
  const rawAddress = slash === -1 ? text : text.slice(0, slash);
  const version = isIP(rawAddress);
  if (version === 0) return null;
  let family: IpFamily = version === 6 ? 'ipv6' : 'ipv4';
  const max = family === 'ipv6' ? 128 : 32;
  let prefix = max;
  if (slash !== -1) {
    const digits = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(digits)) return null;
    prefix = Number(digits);
    if (prefix > max) return null;
  }
  let address = rawAddress;
  const mapped = family === 'ipv6' ? MAPPED.exec(rawAddress) : null;
  if (mapped && prefix >= 96) {
    // A mapped block is the IPv4 block it covers: the addresses checked are unmapped too.
    address = mapped[1] as string;
    family = 'ipv4';
    prefix -= 96;
  }
  return { address, prefix, family };
}

/** A set of addresses and blocks (e.g. trusted proxies). Build once; `has` is allocation-free for plain addresses. */
export class IpSet {
  readonly #list = new BlockList();
  #ipv4All = false;
  #ipv6All = false;
  #empty = true;

  /** @throws TypeError naming the entry when one is not an address or CIDR block. */
  constructor(entries: Iterable<string | IpBlock> = []) {
    for (const entry of entries) this.add(entry);
  }

  add(entry: string | IpBlock): this {
    const block = typeof entry === 'string' ? parseIpBlock(entry) : entry;
    if (!block) throw new TypeError(`not an IP address or CIDR block: ${JSON.stringify(entry)}`);
    this.#empty = false;
    // BlockList.addSubnet with prefix 0 works, but a flag is cheaper and reads better.
    if (block.prefix === 0) {
      if (block.family === 'ipv4') this.#ipv4All = true;
      else this.#ipv6All = true;
    } else if (block.prefix === (block.family === 'ipv4' ? 32 : 128)) {
      this.#list.addAddress(block.address, block.family);
    } else {
      this.#list.addSubnet(block.address, block.prefix, block.family);
    }
    return this;
  }

  get empty(): boolean {
    return this.#empty;
  }

  /** Whether `address` (as a socket reports it, mapped or not) is in the set; false for a non-address. */
  has(address: string): boolean {
    const ip = unmapIpv4(address);
    const version = isIP(ip);
    if (version === 4) return this.#ipv4All || this.#list.check(ip, 'ipv4');
    if (version === 6) return this.#ipv6All || this.#list.check(ip, 'ipv6');
    return false;
  }
}

export type IpAction = 'allow' | 'deny';

/**
 * One access rule as written in config: `{ allow: "10.0.0.0/8" }`, `{ deny: "all" }`. `all` means
 * every address, IPv4 and IPv6; `unix:` means clients on a unix socket (nginx's spelling), which
 * have no address.
 */
export type IpRule = { readonly allow: string } | { readonly deny: string };

interface RuleGroup {
  readonly action: IpAction;
  readonly set: IpSet;
  readonly unix: boolean;
}

/**
 * nginx `allow`/`deny` (ngx_http_access_module): rules are checked in order and the first that
 * matches decides; when none matches the address is allowed. Consecutive rules with the same
 * action are merged into one native BlockList (their order among themselves cannot change the
 * outcome), so a long allow list followed by `deny all` costs two checks.
 */
export class IpAccessList {
  readonly #groups: RuleGroup[] = [];

  /** @throws TypeError naming the rule (by index) when its address is not an address, block, `all` or `unix:`. */
  constructor(rules: readonly IpRule[]) {
    rules.forEach((rule, index) => {
      const action: IpAction = 'allow' in rule ? 'allow' : 'deny';
      const target = 'allow' in rule ? rule.allow : rule.deny;
      let group = this.#groups.at(-1);
      if (!group || group.action !== action) {
        group = { action, set: new IpSet(), unix: false };
        this.#groups.push(group);
      }
      if (target === 'unix:') {
        (group as { unix: boolean }).unix = true;
      } else if (target === 'all') {
        // nginx adds `all` to its IPv4, IPv6 and unix rule lists alike.
        (group as { unix: boolean }).unix = true;
        group.set.add({ address: '0.0.0.0', prefix: 0, family: 'ipv4' }).add({ address: '::', prefix: 0, family: 'ipv6' });
      } else {
        const block = parseIpBlock(target);
        if (!block) throw new TypeError(`rule ${index}: expected an IP address, a CIDR block, "all" or "unix:", got ${JSON.stringify(target)}`);
        group.set.add(block);
      }
    });
  }

  /**
   * The decision for a client `address` ('' for a unix-socket client): the first matching rule's
   * action, or 'allow' when no rule matches (nginx's default: access rules only restrict).
   */
  check(address: string): IpAction {
    const unix = address === '';
    for (const group of this.#groups) {
      if (unix ? group.unix : group.set.has(address)) return group.action;
    }
    return 'allow';
  }
}
