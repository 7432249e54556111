/**
 * The keys that encrypt TLS session tickets (RFC 8446 §4.6.1; RFC 5077 for TLS 1.2): one set per
 * node, so a ticket issued by one edge worker resumes on any other. The supervisor makes them
 * (random, in memory only: never written to disk, where a stolen key would decrypt recorded
 * sessions), hands them to each worker over the bus and rotates them (every 12 hours, as Caddy
 * and Go's crypto/tls do daily-ish); a rotation applies to new handshakes at once. node keeps one
 * key set per context, so a ticket from before a rotation makes a full handshake, once.
 */
import { randomBytes } from 'node:crypto';

/** AES-128 key, HMAC key and key name: the 48 bytes node's `ticketKeys` takes. */
const KEY_BYTES = 48;

export class TicketKeys {
  #keys: Buffer;
  readonly #listeners = new Set<(keys: Buffer) => void>();

  constructor(keys: Buffer = TicketKeys.fresh()) {
    if (keys.length !== KEY_BYTES) throw new Error(`ticket keys are ${KEY_BYTES} bytes, got ${keys.length}`);
    this.#keys = keys;
  }

  static fresh(): Buffer {
    return randomBytes(KEY_BYTES);
  }

  get current(): Buffer {
    return this.#keys;
  }

  /** New keys (a rotation, or the supervisor's over the bus): every listener applies them. */
  set(keys: Buffer): void {
    if (keys.length !== KEY_BYTES) throw new Error(`ticket keys are ${KEY_BYTES} bytes, got ${keys.length}`);
    this.#keys = keys;
    for (const listener of this.#listeners) listener(keys);
  }

  onChange(listener: (keys: Buffer) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
