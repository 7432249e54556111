/**
 * Where managed certificates, their keys, the ACME account, pending challenges and the local CA
 * are kept, and the lock that makes one process order a certificate while the others wait (the
 * edge workers of a node, and the nodes sharing the folder: certmagic's Storage, Caddy's).
 *
 * Keys are relative paths ("certificates/acme-…/a.test/cert.pem"). FileStorage keeps them under
 * the data folder: files mode 0600 in folders mode 0700, written to a temporary file and renamed
 * over the old one (rename is atomic on POSIX), so a reader sees the old file or the new one,
 * never half of one. With `state`, RedisCertificateStorage (redis-storage.ts) keeps them in the
 * fleet's Redis instead: `certificateStorage` picks one.
 */
import { hostname } from 'node:os';
import { mkdir, open, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { dirname, join, normalize, sep } from 'node:path';
import { randomBytes } from 'node:crypto';
import { log } from '../core/log.js';
import type { SharedRedis } from '../state/redis.js';
import { RedisCertificateStorage } from './redis-storage.js';

export interface CertificateStorage {
  /** The value, or null when there is none. */
  read(key: string): Promise<string | null>;
  write(key: string, value: string): Promise<void>;
  remove(key: string): Promise<void>;
  /** Waits until this process holds `name`'s lock; resolves with its release. */
  lock(name: string): Promise<() => Promise<void>>;
}

/** A lock not refreshed for this long is taken to be left by a process that died holding it. */
const LOCK_STALE_MS = 60_000;
/** The holder refreshes the lock's mtime this often. */
const LOCK_REFRESH_MS = 10_000;
/** A waiter looks again this often. */
const LOCK_POLL_MS = 250;

export class FileStorage implements CertificateStorage {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  /** The file of a key, refused if the key would leave the folder (a key holds names and tokens that come from outside). */
  path(key: string): string {
    const path = normalize(join(this.root, key));
    if (!path.startsWith(this.root + sep)) throw new Error(`storage key outside the data folder: ${JSON.stringify(key)}`);
    return path;
  }

  async read(key: string): Promise<string | null> {
    try {
      return await readFile(this.path(key), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
  }

  async write(key: string, value: string): Promise<void> {
    const path = this.path(key);
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(temporary, value, { mode: 0o600 });
    await rename(temporary, path);
  }

  async remove(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }

  /**
   * An exclusive-create lock file (O_EXCL is atomic on local file systems and on NFSv3+), holding
   * who took it. The holder touches it every 10 s; a lock older than a minute was left by a
   * process that died, and is taken over.
   */
  async lock(name: string): Promise<() => Promise<void>> {
    const path = this.path(`locks/${name}.lock`);
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const owner = JSON.stringify({ pid: process.pid, host: hostname(), at: new Date().toISOString() });
    for (;;) {
      try {
        const handle = await open(path, 'wx', 0o600);
        await handle.writeFile(owner);
        await handle.close();
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      try {
        const info = await stat(path);
        if (Date.now() - info.mtimeMs > LOCK_STALE_MS) {
          log().warn({ lock: path }, 'certificates: taking over a stale lock (its holder stopped refreshing it)');
          await rm(path, { force: true });
          continue;
        }
      } catch {
        continue; // released meanwhile
      }
      await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS));
    }
    const refresh = setInterval(() => {
      const now = new Date();
      utimes(path, now, now).catch(() => undefined);
    }, LOCK_REFRESH_MS);
    refresh.unref();
    return async () => {
      clearInterval(refresh);
      await rm(path, { force: true });
    };
  }
}

/** The fleet's Redis when the config has `state` (every node shares what one obtained), else the data folder. */
export function certificateStorage(dataDir: string, shared: SharedRedis | null): CertificateStorage {
  return shared ? new RedisCertificateStorage(shared) : new FileStorage(dataDir);
}

/** Storage keys, in one place (the manager writes them, the edge reads the challenges). */
export const storageKeys = {
  /** An HTTP-01 token's key authorization (RFC 8555 §8.3). Tokens are base64url (checked by the reader). */
  http01: (token: string) => `challenges/http-01/${token}`,
  /** A TLS-ALPN-01 challenge certificate and key for a name (RFC 8737 §3), as JSON. */
  tlsAlpn01: (name: string) => `challenges/tls-alpn-01/${name}.json`,
  certificate: (issuer: string, name: string) => `certificates/${issuer}/${name}/cert.pem`,
  privateKey: (issuer: string, name: string) => `certificates/${issuer}/${name}/key.pem`,
  account: (issuer: string) => `accounts/${issuer}/account.json`,
  caCertificate: 'ca/root.crt',
  caKey: 'ca/root.key',
};

/** A base64url ACME token (RFC 8555 §8.1: at least 128 bits of entropy, base64url). */
export const ACME_TOKEN = /^[A-Za-z0-9_-]{16,128}$/;
/** A host name as a storage key part (the ClientHello reader passes only these characters). */
export const HOST_NAME = /^(?:\*\.)?[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/;
