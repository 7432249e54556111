/**
 * Certificate storage in the fleet's Redis (`state`): certificates, keys, the ACME account,
 * pending challenges and the local CA under `<prefix>certs:<key>`, so every node serves the
 * certificates one node obtained and answers the CA's challenges for any of them (certmagic's
 * Redis storage does the same for Caddy). The issuance lock is `SET NX PX` with a token only its
 * holder knows, renewed while held and released by a compare-and-delete script (Redis's own
 * single-instance lock pattern); a holder that dies stops renewing, and the lock expires.
 */
import { randomBytes } from 'node:crypto';
import type { SharedRedis } from '../state/redis.js';
import { RedisScript } from '../state/script.js';
import type { CertificateStorage } from './storage.js';

/** A lock not renewed for this long was left by a holder that died. */
const LOCK_TTL_MS = 60_000;
const LOCK_RENEW_MS = 10_000;
const LOCK_POLL_MS = 250;

/** Deletes (ARGV[2] "del") or renews (ARGV[2] "renew", ARGV[3] ms) the lock KEYS[1] only while it still holds this holder's token ARGV[1]. */
const IF_HELD = new RedisScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == 'del' then return redis.call('DEL', KEYS[1]) end
return redis.call('PEXPIRE', KEYS[1], ARGV[3])
`);

export class RedisCertificateStorage implements CertificateStorage {
  readonly #redis: SharedRedis;

  constructor(redis: SharedRedis) {
    this.#redis = redis;
  }

  #key(key: string): string {
    return this.#redis.key('certs', key);
  }

  async read(key: string): Promise<string | null> {
    return this.#redis.client.get(this.#key(key));
  }

  async write(key: string, value: string): Promise<void> {
    await this.#redis.client.set(this.#key(key), value);
  }

  async remove(key: string): Promise<void> {
    await this.#redis.client.del(this.#key(key));
  }

  async lock(name: string): Promise<() => Promise<void>> {
    const key = this.#key(`locks/${name}`);
    const token = randomBytes(16).toString('hex');
    for (;;) {
      const taken = await this.#redis.client.set(key, token, { condition: 'NX', expiration: { type: 'PX', value: LOCK_TTL_MS } }).catch(() => null);
      if (taken === 'OK') break;
      await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS));
    }
    const renew = setInterval(() => {
      IF_HELD.run(this.#redis.client, [key], [token, 'renew', String(LOCK_TTL_MS)]).catch(() => undefined);
    }, LOCK_RENEW_MS);
    renew.unref();
    return async () => {
      clearInterval(renew);
      await IF_HELD.run(this.#redis.client, [key], [token, 'del']).catch(() => undefined);
    };
  }
}
