/**
 * Ordering a certificate from an ACME CA (RFC 8555) with acme-client: the account (made once,
 * kept in storage), then per name an order, one challenge per authorization (HTTP-01 or
 * TLS-ALPN-01, in the configured preference), the CSR and the certificate. The challenge's answer
 * is written to storage, where every edge worker, and every node sharing the folder, reads it
 * when the CA comes to validate (edge/listen/acme-challenges.ts); so the node that orders need not
 * be the one the CA reaches.
 *
 * acme-client lacks ACME Renewal Information (RFC 9773); `renewalInfo` adds it here, from the
 * directory acme-client has already read.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { rootCertificates } from 'node:tls';
import * as x509 from '@peculiar/x509';
import acme from 'acme-client';
import type { ResolvedAcme } from '../config/resolved.js';
import { log } from '../core/log.js';
import type { CertificateStorage } from './storage.js';
import { storageKeys } from './storage.js';

export interface CertificatePair {
  /** PEM: the leaf, then its chain. */
  readonly cert: string;
  /** PEM (PKCS#8). */
  readonly key: string;
}

/** What the CA said when it refused (RFC 8555 §6.7 problem document), and during which challenge. */
export class AcmeProblem extends Error {
  readonly problem: { readonly type: string | null; readonly detail: string; readonly challenge: string | null; readonly name: string };
  constructor(name: string, type: string | null, detail: string, challenge: string | null) {
    super(`${name}: ${challenge ? `${challenge} challenge failed: ` : ''}${detail}${type ? ` (${type})` : ''}`);
    this.problem = { type, detail, challenge, name };
  }
}

/** The suggested renewal window of RFC 9773 §4.2, in ms since the epoch, and when to ask again. */
export interface RenewalWindow {
  readonly start: number;
  readonly end: number;
  /** The CA's Retry-After (ms), or null. */
  readonly retryAfter: number | null;
}

/** The storage folder of a CA's account and certificates: its directory's host and a hash of the URL. */
export function issuerKey(directory: string): string {
  const url = new URL(directory);
  return `acme-${url.hostname.replace(/[^a-z0-9.-]/gi, '_')}-${createHash('sha256').update(directory).digest('hex').slice(0, 8)}`;
}

/**
 * acme-client's requests go through one axios instance: the CA's extra root (`acme.ca`) is
 * trusted beside the system's, and its retries of a refused connection are kept short (three
 * tries, a second apart), since the manager retries a failed order itself, with its own backoff.
 */
function configureHttp(settings: ResolvedAcme): void {
  const extra = settings.ca ? [readFileSync(settings.ca, 'utf8')] : [];
  acme.axios.defaults.httpsAgent = new Agent({ ca: [...rootCertificates, ...extra], keepAlive: true });
  const defaults = acme.axios.defaults as typeof acme.axios.defaults & { acmeSettings: { retryMaxAttempts: number; retryDefaultDelay: number } };
  defaults.acmeSettings.retryMaxAttempts = 3;
  defaults.acmeSettings.retryDefaultDelay = 1;
  defaults.timeout = 30_000;
}

acme.setLogger((message) => log().trace({ acme: message }, 'acme-client'));

/** An ACME client bound to one config's `acme` settings and a storage. */
export class AcmeIssuer {
  readonly settings: ResolvedAcme;
  readonly issuer: string;
  readonly #storage: CertificateStorage;
  #client: Promise<acme.Client> | null = null;

  constructor(settings: ResolvedAcme, storage: CertificateStorage) {
    this.settings = settings;
    this.issuer = issuerKey(settings.directory);
    this.#storage = storage;
    configureHttp(settings);
  }

  /**
   * The account: read from storage, else registered (RFC 8555 §7.3; with External Account
   * Binding when configured) and stored. Callers hold the account lock, so nodes sharing the
   * folder register one account.
   */
  #account(): Promise<acme.Client> {
    this.#client ??= (async () => {
      const key = storageKeys.account(this.issuer);
      const release = await this.#storage.lock(`account-${this.issuer}`);
      try {
        const stored = await this.#storage.read(key);
        const options = {
          directoryUrl: this.settings.directory,
          // Status polls: 0.5 s at first, backing off to 5 s, for about a minute.
          backoffAttempts: 15,
          backoffMin: 500,
          backoffMax: 5000,
          ...(this.settings.eab ? { externalAccountBinding: { kid: this.settings.eab.kid, hmacKey: this.settings.eab.hmacKey } } : {}),
        };
        if (stored) {
          const account = JSON.parse(stored) as { key: string; url: string };
          return new acme.Client({ ...options, accountKey: account.key, accountUrl: account.url });
        }
        const accountKey = (await acme.crypto.createPrivateEcdsaKey()).toString();
        const client = new acme.Client({ ...options, accountKey });
        await client.createAccount({ termsOfServiceAgreed: true, ...(this.settings.email ? { contact: [`mailto:${this.settings.email}`] } : {}) });
        await this.#storage.write(key, JSON.stringify({ key: accountKey, url: client.getAccountUrl(), email: this.settings.email }));
        log().info({ directory: this.settings.directory, account: client.getAccountUrl() }, 'acme: account registered');
        return client;
      } finally {
        await release();
      }
    })();
    // A failure (the CA down) is not kept: the next order tries again.
    this.#client.catch(() => (this.#client = null));
    return this.#client;
  }

  /** Orders a certificate for `name`; `replaces` is the RFC 9773 certificate id of the one it renews. */
  async obtain(name: string, replaces: string | null): Promise<CertificatePair> {
    const client = await this.#account();
    const directory = await directoryOf(client);
    // RFC 9773 §5: "replaces" only where the CA announces ARI; other CAs would refuse the field.
    const order = await client.createOrder({ identifiers: [{ type: 'dns', value: name }], ...(replaces && directory.renewalInfo ? { replaces } : {}) });
    const authorizations = await client.getAuthorizations(order);
    for (const authz of authorizations) {
      if (authz.status === 'valid') continue;
      await this.#validate(client, order, authz, name);
    }
    const key = (await acme.crypto.createPrivateEcdsaKey()).toString();
    const [, csr] = await acme.crypto.createCsr({ commonName: name, altNames: [name] }, key);
    const finalized = await client.finalizeOrder(order, csr);
    const cert = await client.getCertificate(finalized);
    return { cert, key };
  }

  async #validate(client: acme.Client, order: acme.Order, authz: acme.Authorization, name: string): Promise<void> {
    const challenge = this.settings.challenges.map((type) => authz.challenges.find((c) => c.type === type)).find((c) => c !== undefined);
    if (!challenge) throw new AcmeProblem(name, null, `the CA offers none of the configured challenges (${this.settings.challenges.join(', ')}); it offers ${authz.challenges.map((c) => c.type).join(', ')}`, null);
    const keyAuthorization = await client.getChallengeKeyAuthorization(challenge);
    const stored = challenge.type === 'http-01' ? storageKeys.http01(challenge.token) : storageKeys.tlsAlpn01(name);
    if (challenge.type === 'http-01') await this.#storage.write(stored, keyAuthorization);
    else {
      const [alpnKey, alpnCert] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization, await acme.crypto.createPrivateEcdsaKey());
      await this.#storage.write(stored, JSON.stringify({ cert: alpnCert.toString(), key: alpnKey.toString() }));
    }
    try {
      await client.completeChallenge(challenge);
      await client.waitForValidStatus(challenge);
    } catch (error) {
      // The CA's problem document is on the challenge (RFC 8555 §8: "error"), read it again to log it whole.
      const again = (await client.getAuthorizations(order).catch(() => [])).find((a) => a.identifier.value === authz.identifier.value);
      const failed = again?.challenges.find((c) => c.type === challenge.type) as (typeof challenge & { error?: { type?: string; detail?: string } }) | undefined;
      throw new AcmeProblem(name, failed?.error?.type ?? null, failed?.error?.detail ?? (error as Error).message, challenge.type);
    } finally {
      await this.#storage.remove(stored).catch(() => undefined);
    }
  }

  /** The CA's suggested renewal window for a certificate (RFC 9773 §4.2), or null when the CA has no ARI. */
  async renewalInfo(certPem: string): Promise<RenewalWindow | null> {
    const client = await this.#account();
    const directory = await directoryOf(client);
    if (typeof directory.renewalInfo !== 'string') return null;
    const response = await acme.axios.get(`${directory.renewalInfo.replace(/\/$/, '')}/${certificateId(certPem)}`, { validateStatus: () => true });
    if (response.status !== 200) throw new Error(`renewalInfo: ${response.status}`);
    const data = response.data as { suggestedWindow?: { start?: string; end?: string } };
    const start = Date.parse(data.suggestedWindow?.start ?? '');
    const end = Date.parse(data.suggestedWindow?.end ?? '');
    if (!Number.isFinite(start) || !Number.isFinite(end) || end < start) throw new Error('renewalInfo: no valid suggestedWindow');
    const retryAfter = Number(response.headers['retry-after']);
    return { start, end, retryAfter: Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : null };
  }
}

/** The directory acme-client read (it keeps it; RFC 9773's `renewalInfo` is not in its types). */
function directoryOf(client: acme.Client): Promise<Record<string, unknown>> {
  return (client as unknown as { http: { getDirectory(): Promise<Record<string, unknown>> } }).http.getDirectory();
}

const base64url = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');

/**
 * RFC 9773 §4.1 certificate identifier: base64url of the Authority Key Identifier's keyIdentifier,
 * ".", base64url of the serial number's DER integer bytes (with its leading zero when the high bit
 * is set, as DER writes it).
 */
export function certificateId(certPem: string): string {
  const parsed = new x509.X509Certificate(certPem);
  const aki = parsed.getExtension(x509.AuthorityKeyIdentifierExtension);
  if (!aki?.keyId) throw new Error('certificate has no Authority Key Identifier');
  let serial = new X509Certificate(certPem).serialNumber;
  if (serial.length % 2 === 1) serial = `0${serial}`;
  if (parseInt(serial.slice(0, 2), 16) >= 0x80) serial = `00${serial}`;
  return `${base64url(Buffer.from(aki.keyId, 'hex'))}.${base64url(Buffer.from(serial, 'hex'))}`;
}
