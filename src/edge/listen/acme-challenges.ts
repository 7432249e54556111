/**
 * Answers to an ACME CA's validation requests, read from the certificate storage where the node
 * that placed the order wrote them (src/certs/acme.ts): so any edge worker of any node sharing the
 * data folder answers, whichever the CA reaches.
 *
 *   HTTP-01 (RFC 8555 §8.3)       GET /.well-known/acme-challenge/TOKEN on a site listener, before
 *                                 any route, rewrite or limit: 200 with the key authorization. An
 *                                 unknown token goes on through the pipeline (a site may serve its
 *                                 own files there).
 *   TLS-ALPN-01 (RFC 8737 §3)     a ClientHello offering only `acme-tls/1`: the handshake is made
 *                                 with the challenge certificate for its server name, then closed.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SecureContext } from 'node:tls';
import { ACME_TOKEN, HOST_NAME, certificateStorage, storageKeys, type CertificateStorage } from '../../certs/storage.js';
import type { SharedRedis } from '../../state/redis.js';
import { log } from '../../core/log.js';
import { secureContextFor } from './tls-context.js';

export const ACME_CHALLENGE_PATH = '/.well-known/acme-challenge/';
/** RFC 8737 §6.2: the ALPN protocol of TLS-ALPN-01. */
export const ACME_TLS_ALPN = 'acme-tls/1';

export class AcmeChallenges {
  readonly #storage: CertificateStorage;

  /** `shared`: the fleet's Redis (`state`), where the challenges are then kept. */
  constructor(dataDir: string, shared: SharedRedis | null = null) {
    this.#storage = certificateStorage(dataDir, shared);
  }

  /**
   * An HTTP-01 request (its path starts with ACME_CHALLENGE_PATH): answered when its token is
   * pending, else `next()` (the pipeline) serves it.
   */
  answerHttp01(req: IncomingMessage, res: ServerResponse, next: () => void): void {
    const token = (req.url as string).slice(ACME_CHALLENGE_PATH.length);
    if (!ACME_TOKEN.test(token) || (req.method !== 'GET' && req.method !== 'HEAD')) return next();
    this.#storage.read(storageKeys.http01(token)).then(
      (keyAuthorization) => {
        if (keyAuthorization === null) return next();
        log().info({ token }, 'acme: answered an HTTP-01 challenge');
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': Buffer.byteLength(keyAuthorization), 'Cache-Control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : keyAuthorization);
      },
      (error: unknown) => {
        log().error({ err: error }, 'acme: cannot read an HTTP-01 challenge');
        next();
      },
    );
  }

  /** The TLS-ALPN-01 challenge certificate's context for a name, or null when none is pending. */
  async tlsAlpn01(name: string | null, ticketKeys: Buffer): Promise<SecureContext | null> {
    if (name === null || !HOST_NAME.test(name)) return null;
    const stored = await this.#storage.read(storageKeys.tlsAlpn01(name));
    if (stored === null) return null;
    const pair = JSON.parse(stored) as { cert: string; key: string };
    log().info({ name }, 'acme: answering a TLS-ALPN-01 challenge');
    return secureContextFor([pair.cert], [pair.key], ticketKeys);
  }
}
