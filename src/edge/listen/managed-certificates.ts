/**
 * The certificates Portico manages itself (`tls: "auto"` / `"internal"`) as this process holds
 * them: PEM pairs by name, each made into a secure context at its first handshake. They arrive
 * from the node's certificate manager (src/certs/manager.ts, in the supervisor): directly when the
 * edge runs in the supervisor, over the node bus in an edge worker (`portico:tls:certificate`).
 * A renewal replaces a pair here, so the next handshake gets the new certificate with no reload;
 * connections already open keep the one they have.
 *
 * On demand: a handshake for a name with no certificate yet, that may get one, asks (`want`) and
 * waits; the manager answers with the certificate, or a refusal (`portico:tls:refused`).
 */
import type { SecureContext } from 'node:tls';
import type { CertificatePair } from '../../certs/acme.js';
import type { ManagedIssuer } from '../../certs/manager.js';
import type { TicketKeys } from './ticket-keys.js';
import { secureContextFor } from './tls-context.js';

export class ManagedCertificates {
  readonly #ticketKeys: TicketKeys;
  readonly #pairs = new Map<string, { pair: CertificatePair; context: SecureContext | null }>();
  readonly #waiting = new Map<string, ((context: SecureContext | null) => void)[]>();
  readonly #listeners = new Set<(name: string, pair: CertificatePair) => void>();
  /** Asks for a certificate for a name this process has none for (set by whoever can obtain one). */
  asker: ((name: string, issuer: ManagedIssuer) => void) | null = null;

  constructor(ticketKeys: TicketKeys) {
    this.#ticketKeys = ticketKeys;
    // Contexts hold the ticket keys they were made with: after a rotation they are made again.
    ticketKeys.onChange(() => {
      for (const entry of this.#pairs.values()) entry.context = null;
    });
  }

  /** A certificate for `name`, new or renewed: every later handshake gets it. */
  set(name: string, pair: CertificatePair): void {
    const current = this.#pairs.get(name);
    if (current && current.pair.cert === pair.cert && current.pair.key === pair.key) return;
    this.#pairs.set(name, { pair, context: null });
    this.#settle(name, this.context(name) ?? null);
    for (const listener of this.#listeners) listener(name, pair);
  }

  /** No certificate for `name` (the ask hook said no, the rate limit, or the CA failed): its handshakes waiting fail. */
  refuse(name: string): void {
    this.#settle(name, null);
  }

  /** The secure context for `name`, or undefined when there is no certificate for it. */
  context(name: string): SecureContext | undefined {
    const entry = this.#pairs.get(name);
    if (!entry) return undefined;
    entry.context ??= secureContextFor([entry.pair.cert], [entry.pair.key], this.#ticketKeys.current);
    return entry.context;
  }

  /** Asks for a certificate for `name` and resolves with its context, or null if none comes. */
  want(name: string, issuer: ManagedIssuer): Promise<SecureContext | null> {
    const existing = this.context(name);
    if (existing) return Promise.resolve(existing);
    return new Promise((resolve) => {
      const waiting = this.#waiting.get(name);
      if (waiting) {
        waiting.push(resolve);
        return;
      }
      this.#waiting.set(name, [resolve]);
      if (this.asker) this.asker(name, issuer);
      else this.#settle(name, null);
    });
  }

  /** Every pair held (a new edge worker is sent them all). */
  pairs(): [string, CertificatePair][] {
    return [...this.#pairs].map(([name, entry]) => [name, entry.pair]);
  }

  /** Listens to new pairs (the supervisor relays them to its edge workers). */
  onChange(listener: (name: string, pair: CertificatePair) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #settle(name: string, context: SecureContext | null): void {
    const waiting = this.#waiting.get(name);
    if (!waiting) return;
    this.#waiting.delete(name);
    for (const resolve of waiting) resolve(context);
  }
}
