/**
 * The local CA of `tls: "internal"` (Caddy's `tls internal`): a root made once in the data folder
 * (ECDSA P-256, ten years), which signs short-lived leaf certificates for development names
 * (`localhost`, `*.test`). `portico trust` installs the root where the system's clients look.
 *
 * Certificates are built with @peculiar/x509 (acme-client's own X.509 library) on node's
 * WebCrypto; node:crypto reads certificates but cannot make them.
 */
import { webcrypto, randomBytes, createPrivateKey } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';
import type { CertificatePair } from './acme.js';
import { storageKeys, type CertificateStorage } from './storage.js';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto as never);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 3600 * 1000;
/** Leaves live a week (renewed at half their life, see renewal.ts): short enough that a leaked development key soon stops working. */
export const LOCAL_LEAF_LIFETIME_MS = 7 * DAY_MS;
const ROOT_LIFETIME_MS = 3650 * DAY_MS;

const pem = (label: string, der: ArrayBuffer): string => `-----BEGIN ${label}-----\n${Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n?$/, '\n')}-----END ${label}-----\n`;

async function keyPair(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function privatePem(key: CryptoKey): Promise<string> {
  return pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', key));
}

/** A positive 16-byte serial (RFC 5280 §4.1.2.2: at most 20 octets, positive). */
const serial = (): string => {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] as number) & 0x7f;
  return bytes.toString('hex');
};

export class LocalCa {
  readonly #storage: CertificateStorage;
  #root: Promise<{ cert: x509.X509Certificate; key: CryptoKey; pem: string }> | null = null;

  constructor(storage: CertificateStorage) {
    this.#storage = storage;
  }

  /** The root (PEM), made and stored at the first use; nodes sharing the folder make one (the lock). */
  async rootPem(): Promise<string> {
    return (await this.#loadRoot()).pem;
  }

  #loadRoot(): Promise<{ cert: x509.X509Certificate; key: CryptoKey; pem: string }> {
    this.#root ??= (async () => {
      const release = await this.#storage.lock('local-ca');
      try {
        const [certPem, keyPem] = await Promise.all([this.#storage.read(storageKeys.caCertificate), this.#storage.read(storageKeys.caKey)]);
        if (certPem && keyPem) {
          const der = createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'der' });
          const key = await webcrypto.subtle.importKey('pkcs8', der, ALGORITHM, false, ['sign']);
          return { cert: new x509.X509Certificate(certPem), key, pem: certPem };
        }
        const keys = await keyPair();
        const now = Date.now();
        const name = `CN=Portico Local CA ${randomBytes(3).toString('hex')}, O=Portico (development)`;
        const cert = await x509.X509CertificateGenerator.createSelfSigned({
          serialNumber: serial(),
          name,
          notBefore: new Date(now - 3600_000),
          notAfter: new Date(now + ROOT_LIFETIME_MS),
          keys,
          signingAlgorithm: ALGORITHM,
          extensions: [
            new x509.BasicConstraintsExtension(true, 0, true),
            new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
            await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
          ],
        });
        const certText = cert.toString('pem') + '\n';
        await this.#storage.write(storageKeys.caKey, await privatePem(keys.privateKey));
        await this.#storage.write(storageKeys.caCertificate, certText);
        return { cert, key: keys.privateKey, pem: certText };
      } finally {
        await release();
      }
    })();
    this.#root.catch(() => (this.#root = null));
    return this.#root;
  }

  /** A leaf for `name` (a host name, a `*.domain` wildcard or an IP address), with the root after it. */
  async issue(name: string): Promise<CertificatePair> {
    const root = await this.#loadRoot();
    const keys = await keyPair();
    const now = Date.now();
    const san = isIP(name) !== 0 ? { type: 'ip' as const, value: name } : { type: 'dns' as const, value: name };
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${name}`,
      issuer: root.cert.subject,
      notBefore: new Date(now - 3600_000),
      notAfter: new Date(now + LOCAL_LEAF_LIFETIME_MS),
      publicKey: keys.publicKey,
      signingKey: root.key,
      signingAlgorithm: ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
        new x509.SubjectAlternativeNameExtension([san], false),
        await x509.AuthorityKeyIdentifierExtension.create(root.cert, false),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    return { cert: `${leaf.toString('pem')}\n${root.pem}`, key: await privatePem(keys.privateKey) };
  }
}
