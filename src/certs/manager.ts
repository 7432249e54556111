/**
 * The node's certificate manager (certmagic's role in Caddy): for every name of a `tls: "auto"`
 * or `"internal"` server, a certificate loaded from storage or obtained (the ACME CA, or the
 * local CA), published to the edge, and renewed on time; on-demand names join at their first
 * handshake. It runs once per node, in the supervisor; the edge workers get what it publishes
 * over the node bus (edge/listen/managed-certificates.ts).
 *
 * One order per name, however many processes: each name is obtained under its storage lock, and
 * whoever takes the lock reads storage again first, so a node (or a process) that waited finds
 * the certificate another just stored, and uses it.
 *
 * A failure (the CA down, a name that does not validate) is logged with the CA's problem document
 * and retried with a doubling delay (acme.retryDelay, up to an hour); the certificate in use, if
 * any, keeps serving meanwhile.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { request } from 'undici';
import type { ResolvedAcme, ResolvedConfig } from '../config/resolved.js';
import { log } from '../core/log.js';
import { AcmeIssuer, AcmeProblem, certificateId, type CertificatePair } from './acme.js';
import { LocalCa } from './local-ca.js';
import { ARI_CHECK_MS, fallbackRenewAt, renewAtInWindow, retryDelay } from './renewal.js';
import type { SharedRedis } from '../state/redis.js';
import { certificateStorage, storageKeys, type CertificateStorage } from './storage.js';

export type ManagedIssuer = 'acme' | 'internal';

/** What the manager tells the edge. */
export interface CertificateOutput {
  /** A certificate for `name` (new, loaded or renewed): every later handshake gets it. */
  publish(name: string, pair: CertificatePair): void;
  /** No certificate for `name` now (on demand: the ask hook said no, the rate limit, or the order failed). */
  refuse(name: string): void;
}

/** One certificate as plain data (the status views). */
export interface CertificateSnapshot {
  readonly name: string;
  readonly issuer: ManagedIssuer;
  readonly onDemand: boolean;
  readonly state: 'obtaining' | 'valid' | 'failed';
  /** The issuer's distinguished name, as the certificate says. */
  readonly issuedBy: string | null;
  readonly serial: string | null;
  readonly notBefore: string | null;
  readonly notAfter: string | null;
  readonly renewAt: string | null;
  readonly lastError: string | null;
}

interface Stored {
  readonly pair: CertificatePair;
  readonly serial: string;
  readonly issuedBy: string;
  readonly notBefore: number;
  readonly notAfter: number;
}

interface Entry {
  readonly name: string;
  readonly issuer: ManagedIssuer;
  readonly onDemand: boolean;
  current: Stored | null;
  /** When the current certificate is renewed, and (ACME) when the CA was last asked (ARI). */
  renewAt: number | null;
  renewAtFor: string | null;
  ariCheckedAt: number;
  failures: number;
  lastError: string | null;
  running: Promise<void> | null;
  timer: NodeJS.Timeout | undefined;
}

/** Node timers hold at most 2^31-1 ms. */
const TIMER_MAX_MS = 2 ** 31 - 1;
/** How long the ask hook may take. */
const ASK_TIMEOUT_MS = 10_000;
/** Ask hook answers remembered (names beyond it, least recently seen first, are asked again). */
const ASKED_NAMES_KEPT = 10_000;

/** Which names each server's certificates are for: exact names (wildcards and patterns are on demand). */
export function managedNames(config: ResolvedConfig): Map<string, ManagedIssuer> {
  const names = new Map<string, ManagedIssuer>();
  for (const server of config.servers) {
    const tls = server.tls;
    if (!tls || tls.managed === null || tls.onDemand) continue;
    for (const name of server.names) if (!name.includes('*') && !name.startsWith('~') && !names.has(name)) names.set(name, tls.managed);
  }
  return names;
}

/** Whether the config has any server whose certificates Portico manages. */
export const hasManagedTls = (config: ResolvedConfig): boolean => config.servers.some((server) => server.tls !== null && server.tls.managed !== null);

function parseStored(cert: string | null, key: string | null): Stored | null {
  if (cert === null || key === null) return null;
  try {
    const parsed = new X509Certificate(cert);
    // Written key first, then certificate: between the two writes they do not match; that reads as none.
    if (!parsed.checkPrivateKey(createPrivateKey(key))) return null;
    return { pair: { cert, key }, serial: parsed.serialNumber, issuedBy: parsed.issuer.replace(/\n/g, ', '), notBefore: Date.parse(parsed.validFrom), notAfter: Date.parse(parsed.validTo) };
  } catch {
    return null;
  }
}

export class CertificateManager {
  readonly #output: CertificateOutput;
  #settings: ResolvedAcme | null = null;
  #storage: CertificateStorage | null = null;
  #acme: AcmeIssuer | null = null;
  #local: LocalCa | null = null;
  readonly #entries = new Map<string, Entry>();
  /** The ask hook's answers, by name: asked once per name (bounded: a flood of invented names must not grow it without end). */
  readonly #asked = new LRUCache<string, Promise<boolean>>({ max: ASKED_NAMES_KEPT });
  /** When recent on-demand names were taken on (the rate limit's window). */
  #onDemandTaken: number[] = [];
  #closed = false;
  /** Orders placed by this process (a figure for the status views and the tests' logs). */
  orders = 0;

  readonly #shared: SharedRedis | null;

  /** `shared`: the fleet's Redis (`state`), where certificates and locks are kept then. */
  constructor(output: CertificateOutput, shared: SharedRedis | null = null) {
    this.#output = output;
    this.#shared = shared;
  }

  /** Follows a config (the first, and each reload): names added are obtained, names gone are dropped. */
  configure(config: ResolvedConfig): void {
    const settings = config.acme;
    if (JSON.stringify(settings) !== JSON.stringify(this.#settings)) {
      // Another CA or data folder: everything is looked up again there.
      for (const entry of this.#entries.values()) clearTimeout(entry.timer);
      this.#entries.clear();
      this.#asked.clear();
      this.#settings = settings;
      this.#storage = certificateStorage(settings.dataDir, this.#shared);
      this.#acme = null;
      this.#local = null;
    }
    const wanted = managedNames(config);
    const onDemandLeft = config.servers.some((server) => server.tls !== null && server.tls.managed !== null && (server.tls.onDemand || server.tls.managed === 'internal'));
    for (const [name, entry] of this.#entries) {
      if (wanted.get(name) === entry.issuer || (entry.onDemand && onDemandLeft)) continue;
      clearTimeout(entry.timer);
      this.#entries.delete(name);
    }
    for (const [name, issuer] of wanted) if (!this.#entries.has(name)) this.#ensure(this.#add(name, issuer, false));
  }

  /** A handshake wants a certificate for a name there is none for yet (on-demand TLS, or a local CA's wildcard). */
  want(name: string, issuer: ManagedIssuer): void {
    const entry = this.#entries.get(name);
    if (entry) {
      if (entry.current) this.#output.publish(name, entry.current.pair);
      else if (entry.running === null) this.#output.refuse(name);
      return;
    }
    void this.#admit(name, issuer).then(
      (admitted) => {
        if (this.#closed) return;
        if (!admitted) return this.#output.refuse(name);
        this.#ensure(this.#entries.get(name) ?? this.#add(name, issuer, true));
      },
      (error: unknown) => {
        log().error({ err: error, name }, 'certificates: on-demand check failed');
        this.#output.refuse(name);
      },
    );
  }

  /**
   * Whether an on-demand name may be obtained: the ask hook allows it (asked once per name; only a
   * definite answer is kept, so a hook that was down is asked again), and the rate limit has room.
   */
  async #admit(name: string, issuer: ManagedIssuer): Promise<boolean> {
    const settings = this.#settings as ResolvedAcme;
    if (issuer === 'acme') {
      const onDemand = settings.onDemand;
      if (onDemand === null) return false;
      let answer = this.#asked.get(name);
      if (!answer) {
        answer = ask(onDemand.ask, name);
        this.#asked.set(name, answer);
        answer.catch(() => this.#asked.delete(name));
      }
      if (!(await answer)) {
        log().info({ name }, 'certificates: the on-demand ask hook refused a name');
        return false;
      }
    }
    if (this.#entries.has(name)) return true;
    const now = Date.now();
    const burst = settings.onDemand?.burst ?? 10;
    const interval = settings.onDemand?.interval ?? 60_000;
    this.#onDemandTaken = this.#onDemandTaken.filter((at) => now - at < interval);
    if (this.#onDemandTaken.length >= burst) {
      log().warn({ name, burst, intervalMs: interval }, 'certificates: on-demand rate limit reached; the handshake fails');
      return false;
    }
    this.#onDemandTaken.push(now);
    return true;
  }

  snapshot(): CertificateSnapshot[] {
    const iso = (ms: number | null | undefined) => (ms === null || ms === undefined ? null : new Date(ms).toISOString());
    return [...this.#entries.values()].map((entry) => ({
      name: entry.name,
      issuer: entry.issuer,
      onDemand: entry.onDemand,
      state: entry.current ? 'valid' : entry.running ? 'obtaining' : 'failed',
      issuedBy: entry.current?.issuedBy ?? null,
      serial: entry.current?.serial ?? null,
      notBefore: iso(entry.current?.notBefore),
      notAfter: iso(entry.current?.notAfter),
      renewAt: iso(entry.renewAt),
      lastError: entry.lastError,
    }));
  }

  close(): void {
    this.#closed = true;
    for (const entry of this.#entries.values()) clearTimeout(entry.timer);
  }

  #add(name: string, issuer: ManagedIssuer, onDemand: boolean): Entry {
    const entry: Entry = { name, issuer, onDemand, current: null, renewAt: null, renewAtFor: null, ariCheckedAt: 0, failures: 0, lastError: null, running: null, timer: undefined };
    this.#entries.set(name, entry);
    return entry;
  }

  #ensure(entry: Entry): void {
    if (entry.running || this.#closed) return;
    clearTimeout(entry.timer);
    entry.running = this.#run(entry).finally(() => (entry.running = null));
  }

  #issuerKey(entry: Entry): string {
    return entry.issuer === 'internal' ? 'local' : (this.#acmeIssuer().issuer);
  }

  #acmeIssuer(): AcmeIssuer {
    this.#acme ??= new AcmeIssuer(this.#settings as ResolvedAcme, this.#storage as CertificateStorage);
    return this.#acme;
  }

  async #load(entry: Entry): Promise<Stored | null> {
    const storage = this.#storage as CertificateStorage;
    const issuer = this.#issuerKey(entry);
    const [cert, key] = await Promise.all([storage.read(storageKeys.certificate(issuer, entry.name)), storage.read(storageKeys.privateKey(issuer, entry.name))]);
    return parseStored(cert, key);
  }

  async #run(entry: Entry): Promise<void> {
    const storage = this.#storage as CertificateStorage;
    try {
      let stored = await this.#load(entry);
      if (stored === null || (await this.#renewAt(entry, stored)) <= Date.now()) {
        const issuer = this.#issuerKey(entry);
        const release = await storage.lock(`${issuer}-${entry.name}`);
        try {
          // Another process may have stored it while this one waited for the lock.
          stored = await this.#load(entry);
          if (stored === null || (await this.#renewAt(entry, stored)) <= Date.now()) {
            stored = await this.#obtain(entry, stored, issuer);
          }
        } finally {
          await release();
        }
      }
      if (this.#closed || this.#entries.get(entry.name) !== entry) return;
      this.#adopt(entry, stored);
      entry.failures = 0;
      entry.lastError = null;
      this.#schedule(entry, await this.#renewAt(entry, stored));
    } catch (error) {
      if (this.#closed || this.#entries.get(entry.name) !== entry) return;
      entry.failures++;
      entry.lastError = (error as Error).message;
      const wait = retryDelay((this.#settings as ResolvedAcme).retryDelay, entry.failures);
      const problem = error instanceof AcmeProblem ? error.problem : undefined;
      log().error({ name: entry.name, issuer: entry.issuer, ...(problem ? { problem } : { err: error }), retryInMs: wait, serving: entry.current !== null }, `certificates: could not obtain a certificate for ${entry.name}; retrying in ${Math.round(wait / 1000)} s`);
      if (!entry.current) this.#output.refuse(entry.name);
      this.#schedule(entry, Date.now() + wait);
    }
  }

  async #obtain(entry: Entry, previous: Stored | null, issuer: string): Promise<Stored> {
    const storage = this.#storage as CertificateStorage;
    log().info({ name: entry.name, issuer: entry.issuer, renewing: previous?.serial ?? null }, previous ? 'certificates: renewing' : 'certificates: obtaining');
    let pair: CertificatePair;
    if (entry.issuer === 'internal') {
      this.#local ??= new LocalCa(storage);
      pair = await this.#local.issue(entry.name);
    } else {
      let replaces: string | null = null;
      try {
        replaces = previous ? certificateId(previous.pair.cert) : null;
      } catch {
        // No Authority Key Identifier: the order is made without "replaces".
      }
      pair = await this.#acmeIssuer().obtain(entry.name, replaces);
    }
    this.orders++;
    await storage.write(storageKeys.privateKey(issuer, entry.name), pair.key);
    await storage.write(storageKeys.certificate(issuer, entry.name), pair.cert);
    const stored = parseStored(pair.cert, pair.key);
    if (stored === null) throw new Error(`${entry.name}: the issued certificate does not match its key`);
    return stored;
  }

  #adopt(entry: Entry, stored: Stored): void {
    if (entry.current?.serial === stored.serial) return;
    const renewed = entry.current !== null;
    entry.current = stored;
    log().info({ name: entry.name, serial: stored.serial, issuedBy: stored.issuedBy, notAfter: new Date(stored.notAfter).toISOString() }, renewed ? 'certificates: renewed certificate serving' : 'certificates: certificate serving');
    this.#output.publish(entry.name, stored.pair);
  }

  /** When `stored` is to be renewed: the CA's window (ARI), asked at most every 12 hours, else the lifetime rule. */
  async #renewAt(entry: Entry, stored: Stored): Promise<number> {
    const now = Date.now();
    if (entry.renewAtFor === stored.serial && entry.renewAt !== null && (entry.issuer === 'internal' || now - entry.ariCheckedAt < ARI_CHECK_MS)) return entry.renewAt;
    let at = fallbackRenewAt(stored.notBefore, stored.notAfter);
    if (entry.issuer === 'acme') {
      entry.ariCheckedAt = now;
      try {
        const window = await this.#acmeIssuer().renewalInfo(stored.pair.cert);
        if (window) at = renewAtInWindow(window, now);
      } catch (error) {
        log().warn({ name: entry.name, err: error }, 'certificates: renewal information (ARI) unavailable; renewing by lifetime');
      }
    }
    entry.renewAt = at;
    entry.renewAtFor = stored.serial;
    return at;
  }

  /** The next look at `entry`: at `at`, and (ACME) at least every 12 hours, for the CA's renewal information. */
  #schedule(entry: Entry, at: number): void {
    clearTimeout(entry.timer);
    if (this.#closed) return;
    const next = entry.issuer === 'acme' ? Math.min(at, Date.now() + ARI_CHECK_MS) : at;
    const wait = Math.min(TIMER_MAX_MS, Math.max(1000, next - Date.now()));
    entry.timer = setTimeout(() => this.#ensure(entry), wait);
    entry.timer.unref();
  }
}

/** The on-demand ask hook (Caddy's): `GET ask?domain=NAME`, allowed on a 2xx answer; throws when it cannot be asked. */
async function ask(url: string, name: string): Promise<boolean> {
  const target = new URL(url);
  target.searchParams.set('domain', name);
  const response = await request(target, { method: 'GET', headersTimeout: ASK_TIMEOUT_MS, bodyTimeout: ASK_TIMEOUT_MS });
  await response.body.dump();
  return response.statusCode >= 200 && response.statusCode < 300;
}
