/**
 * htpasswd files (Apache `htpasswd`, nginx `auth_basic_user_file`): one `user:hash` per line,
 * blank lines and lines starting with `#` ignored; the first line naming a user is the one used
 * (as nginx reads the file).
 *
 * Hash schemes verified here:
 * - bcrypt: `$2y$`, `$2a$`, `$2b$` (htpasswd -B), by bcryptjs (async: it yields to the event
 *   loop between rounds, so a cost-12 hash does not stall other requests);
 * - Apache MD5: `$apr1$` (htpasswd -m, its default) and its sibling MD5-crypt `$1$`, by
 *   apache-md5;
 * - `{SHA}` base64 SHA-1 (htpasswd -s) and `{SSHA}` salted SHA-1 (nginx and OpenLDAP accept it).
 *
 * Not accepted (the file is refused at load, naming the line, so no user silently fails to log
 * in): crypt(3) DES (htpasswd -d: 13 characters, only 8 password characters count), SHA-256/512
 * crypt `$5$`/`$6$` (htpasswd -2/-5), yescrypt `$y$` and other libc crypt schemes, which nginx
 * passes to the system crypt(); and plain text (`{PLAIN}` in nginx, htpasswd -p, which Apache
 * itself accepts only on Windows and NetWare).
 *
 * Every comparison of a secret is constant-time (crypto.timingSafeEqual, bcryptjs's own
 * constant-time compare), and an unknown user costs a hash computation like a known one, so
 * timing tells neither the password nor whether the user exists.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import apacheMd5 from 'apache-md5';
import bcrypt from 'bcryptjs';

export type HtpasswdScheme = 'bcrypt' | 'apr1' | 'md5-crypt' | 'sha1' | 'ssha';

interface Entry {
  readonly scheme: HtpasswdScheme;
  readonly hash: string;
  /** For {SHA}/{SSHA}: the decoded digest (and salt after it). */
  readonly bytes: Buffer | null;
}

/** A line that cannot be used: its 1-based number and why. */
export class HtpasswdError extends Error {
  readonly line: number;
  constructor(source: string, line: number, message: string) {
    super(`${source}:${line}: ${message}`);
    this.line = line;
    this.name = 'HtpasswdError';
  }
}

const BCRYPT = /^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/;
const APR1 = /^\$apr1\$[^$]{0,8}\$[./0-9A-Za-z]{22}$/;
const MD5_CRYPT = /^\$1\$[^$]{0,8}\$[./0-9A-Za-z]{22}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

function classify(hash: string): Entry | string {
  if (BCRYPT.test(hash)) return { scheme: 'bcrypt', hash, bytes: null };
  if (APR1.test(hash)) return { scheme: 'apr1', hash, bytes: null };
  if (MD5_CRYPT.test(hash)) return { scheme: 'md5-crypt', hash, bytes: null };
  if (hash.startsWith('{SHA}')) {
    const b64 = hash.slice(5);
    const bytes = Buffer.from(b64, 'base64');
    if (!BASE64.test(b64) || bytes.length !== 20) return 'a {SHA} entry must be base64 of a 20-byte SHA-1 digest';
    return { scheme: 'sha1', hash, bytes };
  }
  if (hash.startsWith('{SSHA}')) {
    const b64 = hash.slice(6);
    const bytes = Buffer.from(b64, 'base64');
    if (!BASE64.test(b64) || bytes.length <= 20) return 'a {SSHA} entry must be base64 of a SHA-1 digest followed by a salt';
    return { scheme: 'ssha', hash, bytes };
  }
  if (hash.startsWith('$5$') || hash.startsWith('$6$')) return 'SHA-256/SHA-512 crypt ($5$/$6$, htpasswd -2/-5) is not supported: use bcrypt (htpasswd -B)';
  if (hash.startsWith('{PLAIN}')) return 'plain-text passwords are not supported: use bcrypt (htpasswd -B)';
  if (/^[./0-9A-Za-z]{13}$/.test(hash)) return 'crypt(3) DES (htpasswd -d) is not supported: it uses only 8 password characters; use bcrypt (htpasswd -B)';
  if (hash.startsWith('$')) return `unsupported hash scheme "${hash.slice(0, hash.indexOf('$', 1) + 1)}": use bcrypt (htpasswd -B), $apr1$ (htpasswd -m) or {SHA} (htpasswd -s)`;
  return 'not a supported hash (plain text or crypt(3) DES?): use bcrypt (htpasswd -B), $apr1$ (htpasswd -m) or {SHA} (htpasswd -s)';
}

/**
 * apache-md5 hashes JavaScript strings with Node's "ascii" encoding (one byte per UTF-16 unit)
 * and counts `password.length` in units: handing it the password's UTF-8 bytes as a latin1
 * string makes both byte-exact, as Apache computes it over the bytes the client sent.
 */
const asByteString = (password: Buffer): string => password.toString('latin1');

/** A fixed apr1 hash an unknown user is checked against, so the answer takes as long as for a known one. */
const DECOY: Entry = { scheme: 'apr1', hash: '$apr1$portico0$q5Jh1tnnMDAUIPUjonFes0', bytes: null };

function sameString(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  // timingSafeEqual needs equal lengths; hash lengths are public (fixed per scheme).
  return left.length === right.length && timingSafeEqual(left, right);
}

export class Htpasswd {
  readonly #users = new Map<string, Entry>();
  /** Where it was read from (for messages). */
  readonly source: string;

  private constructor(source: string) {
    this.source = source;
  }

  /** @throws HtpasswdError for the first line that is not `user:supported-hash`. */
  static parse(text: string, source = 'htpasswd'): Htpasswd {
    const file = new Htpasswd(source);
    const lines = text.split(/\r?\n/);
    for (let i = 0; i < lines.length; i++) {
      const line = (lines[i] as string).trim();
      if (line === '' || line.startsWith('#')) continue;
      const colon = line.indexOf(':');
      if (colon <= 0) throw new HtpasswdError(source, i + 1, 'expected "user:hash"');
      const user = line.slice(0, colon);
      // Apache's htpasswd may append ":comment" fields after the hash; nginx ignores them too.
      const rest = line.slice(colon + 1);
      const end = rest.indexOf(':');
      const hash = end === -1 ? rest : rest.slice(0, end);
      const entry = classify(hash);
      if (typeof entry === 'string') throw new HtpasswdError(source, i + 1, `user "${user}": ${entry}`);
      if (!file.#users.has(user)) file.#users.set(user, entry);
    }
    return file;
  }

  /** Reads and parses a file (once per config generation; a reload reads it again). */
  static load(path: string): Htpasswd {
    return Htpasswd.parse(readFileSync(path, 'utf8'), path);
  }

  get size(): number {
    return this.#users.size;
  }

  has(user: string): boolean {
    return this.#users.has(user);
  }

  /** The scheme of a user's entry (for diagnostics), or undefined. */
  scheme(user: string): HtpasswdScheme | undefined {
    return this.#users.get(user)?.scheme;
  }

  /**
   * Whether `password` (the bytes the client sent, RFC 7617 §2: no charset is implied unless the
   * server announced one) is right for `user`. Resolves false for an unknown user, after the
   * same kind of work.
   */
  async verify(user: string, password: Buffer | string): Promise<boolean> {
    const bytes = typeof password === 'string' ? Buffer.from(password, 'utf8') : password;
    const entry = this.#users.get(user);
    const ok = await check(entry ?? DECOY, bytes);
    return ok && entry !== undefined;
  }
}

async function check(entry: Entry, password: Buffer): Promise<boolean> {
  switch (entry.scheme) {
    case 'bcrypt':
      // bcryptjs hashes the UTF-8 of a string; a password that is not valid UTF-8 cannot match
      // a bcrypt entry made from typed text anyway. Its compare is constant-time.
      return bcrypt.compare(password.toString('utf8'), entry.hash);
    case 'apr1':
    case 'md5-crypt':
      return sameString(apacheMd5(asByteString(password), entry.hash), entry.hash);
    case 'sha1': {
      const digest = createHash('sha1').update(password).digest();
      return timingSafeEqual(digest, entry.bytes as Buffer);
    }
    case 'ssha': {
      const stored = entry.bytes as Buffer;
      const salt = stored.subarray(20);
      const digest = createHash('sha1').update(password).update(salt).digest();
      return timingSafeEqual(digest, stored.subarray(0, 20));
    }
  }
}
