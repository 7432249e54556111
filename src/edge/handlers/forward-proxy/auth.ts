/**
 * Proxy authentication (RFC 9110 §11.7): `Proxy-Authorization: Basic base64(user:password)`
 * (RFC 7617) checked against an htpasswd file; a client without valid credentials gets 407 with
 * `Proxy-Authenticate: Basic realm="…"` (RFC 9110 §11.7.1).
 *
 * A browser sends the same credentials on every request, and a bcrypt check costs tens of
 * milliseconds of CPU: a credential that verified is remembered for a while (by a SHA-256 of the
 * header, never the password itself), so only new or wrong credentials pay for a hash. Failures
 * are never remembered: each guess costs the guesser a full check.
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { Htpasswd } from '../../../core/htpasswd.js';

/** How long a verified credential is trusted without hashing again (a reload forgets them all). */
const VERIFIED_TTL_MS = 5 * 60_000;

export class ProxyAuth {
  readonly #users: Htpasswd;
  readonly #verified = new LRUCache<string, string>({ max: 1024, ttl: VERIFIED_TTL_MS });
  /** The `Proxy-Authenticate` value of a 407. */
  readonly challenge: string;

  constructor(users: Htpasswd, realm: string) {
    this.#users = users;
    // RFC 7617 §2.1: announcing UTF-8 tells clients how to encode the user and password.
    this.challenge = `Basic realm="${realm}", charset="UTF-8"`;
  }

  static load(path: string, realm: string): ProxyAuth {
    return new ProxyAuth(Htpasswd.load(path), realm);
  }

  /** The user the `Proxy-Authorization` value proves, or null (absent, malformed, unknown user, wrong password). */
  async verify(header: string | undefined): Promise<string | null> {
    if (header === undefined) return null;
    // RFC 9110 §11.1: the scheme name is case-insensitive; one space, then the token68.
    const space = header.indexOf(' ');
    if (space === -1 || header.slice(0, space).toLowerCase() !== 'basic') return null;
    const token = header.slice(space + 1).trim();
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(token)) return null;
    const key = createHash('sha256').update(header).digest('base64');
    const known = this.#verified.get(key);
    if (known !== undefined) return known;
    const decoded = Buffer.from(token, 'base64');
    // RFC 7617 §2: the user-id cannot contain a colon; the password may.
    const colon = decoded.indexOf(0x3a);
    if (colon <= 0) return null;
    const user = decoded.subarray(0, colon).toString('utf8');
    if (!(await this.#users.verify(user, decoded.subarray(colon + 1)))) return null;
    this.#verified.set(key, user);
    return user;
  }
}

/** The user name in a Basic `Proxy-Authorization` value, unverified (for the access log), or null. */
export function basicUser(header: string | undefined): string | null {
  if (header === undefined || !/^basic /i.test(header)) return null;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon <= 0 ? null : decoded.slice(0, colon);
}
