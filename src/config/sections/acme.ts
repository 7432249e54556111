/**
 * The top-level `acme` section: the account and CA that `tls: "auto"` servers get their
 * certificates from (Caddy's automatic HTTPS), the data folder where account, keys, certificates
 * and the local CA of `tls: "internal"` live, and on-demand TLS's ask hook and rate.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import type { ResolvedAcme } from '../resolved.js';
import { duration, show } from './values.js';

/** Let's Encrypt's directories (RFC 8555 §7.1.1), by the names `directory` accepts. */
export const ACME_DIRECTORIES = {
  production: 'https://acme-v02.api.letsencrypt.org/directory',
  staging: 'https://acme-staging-v02.api.letsencrypt.org/directory',
} as const;

/** The challenges Portico answers itself: on the cleartext listener, and on the TLS listener (RFC 8737). */
export const ACME_CHALLENGES = ['http-01', 'tls-alpn-01'] as const;

export const acmeSection = z.strictObject({
  /** The account's contact (RFC 8555 §7.3): the CA writes here about expiring certificates and policy changes. */
  email: z.email().optional(),
  /**
   * The CA's ACME directory URL, or `"production"` / `"staging"` for Let's Encrypt's.
   * @default "production"
   */
  directory: z
    .union([z.enum(['production', 'staging']), z.url({ protocol: /^https?$/, error: (issue) => `expected "production", "staging" or the CA's directory URL, got ${show(issue.input)}` })])
    .optional(),
  /** A PEM file with an extra root trusted for the directory's HTTPS (a private CA, Pebble's), relative to the config file. */
  ca: z.string().min(1).optional(),
  /** External Account Binding (RFC 8555 §7.3.4), for CAs that require it (ZeroSSL, Google): the key id and its base64url HMAC key. */
  eab: z.strictObject({ kid: z.string().min(1), hmacKey: z.string().min(1) }).optional(),
  /** The challenges offered, in order of preference. @default ["http-01", "tls-alpn-01"] */
  challenges: z.array(z.enum(ACME_CHALLENGES)).min(1).optional(),
  /**
   * Where the account, keys, certificates and the local CA are kept (files mode 0600, written
   * atomically); nodes sharing it order each certificate once (a lock file per name).
   * @default "/var/lib/portico" for root, "$XDG_DATA_HOME/portico" (or "~/.local/share/portico") for a user
   */
  dataDir: z.string().min(1).optional(),
  /** The first wait after a failed order; it doubles on each failure up to 1 hour (or this, if longer). @default "1m" */
  retryDelay: duration().optional(),
  /** On-demand TLS (`tls: { mode: "auto", onDemand: true }`): a certificate is obtained at a name's first handshake. */
  onDemand: z
    .strictObject({
      /** Asked `GET ask?domain=NAME` before each new name; only a 2xx answer lets the certificate be ordered. */
      ask: z.url({ protocol: /^https?$/, error: (issue) => `expected an http:// or https:// URL, got ${show(issue.input)}` }),
      /** At most `burst` new names per `interval` (Caddy's on-demand rate limit). @default 10 */
      burst: z.number().int().min(1).optional(),
      /** @default "1m" */
      interval: duration().optional(),
    })
    .optional(),
});

export type ParsedAcme = z.output<typeof acmeSection>;

/** The data folder when the config does not say: the system's for root, the user's own otherwise (as Caddy's XDG data home). */
export function defaultDataDir(): string {
  if (process.getuid?.() === 0) return '/var/lib/portico';
  const xdg = process.env.XDG_DATA_HOME;
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.local', 'share'), 'portico');
}

export function resolveAcme(parsed: ParsedAcme | undefined, baseDir: string, problems: string[]): ResolvedAcme {
  const acme = parsed ?? {};
  const ca = acme.ca !== undefined ? resolvePath(baseDir, acme.ca) : null;
  if (ca !== null) {
    try {
      if (!readFileSync(ca, 'utf8').includes('-----BEGIN CERTIFICATE-----')) problems.push(`acme.ca: expected a PEM certificate file, got ${JSON.stringify(acme.ca)} (${ca}: no CERTIFICATE block)`);
    } catch (error) {
      problems.push(`acme.ca: expected a PEM certificate file, got ${JSON.stringify(acme.ca)} (${ca}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`);
    }
  }
  const directory = acme.directory === undefined ? ACME_DIRECTORIES.production : acme.directory === 'production' || acme.directory === 'staging' ? ACME_DIRECTORIES[acme.directory] : acme.directory;
  return {
    email: acme.email ?? null,
    directory,
    ca,
    eab: acme.eab ?? null,
    challenges: acme.challenges ? [...new Set(acme.challenges)] : [...ACME_CHALLENGES],
    dataDir: acme.dataDir !== undefined ? resolvePath(baseDir, acme.dataDir) : defaultDataDir(),
    retryDelay: acme.retryDelay ?? 60_000,
    onDemand: acme.onDemand ? { ask: acme.onDemand.ask, burst: acme.onDemand.burst ?? 10, interval: acme.onDemand.interval ?? 60_000 } : null,
  };
}
