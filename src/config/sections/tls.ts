/**
 * A server's `tls`: its certificates (PEM files, read and checked when the config loads: a
 * missing file, a file that is not PEM, or a key that does not match its certificate is a config
 * error at the field's path), strict SNI, and HSTS. Which listeners speak TLS follows from it
 * (edge/generation.ts): an address whose servers have `tls`.
 *
 * What is only suspicious (an expired certificate, one that covers none of the server's names)
 * is a warning: `portico check` prints it and `portico up` logs it, and the server still starts,
 * as nginx does, since a renewal may be on its way.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import type { ResolvedTls } from '../resolved.js';
import { duration, show } from './values.js';

const certificatePair = z.strictObject({
  /** PEM certificate file, relative to the config file's folder; it may hold the chain after the leaf. */
  cert: z.string().min(1),
  /** PEM private key file (unencrypted) of that certificate. */
  key: z.string().min(1),
});

/** TLS for a server: its listen addresses then speak HTTPS (HTTP/1.1 and HTTP/2 by ALPN). */
const tlsObject = z
  .strictObject({
    /**
     * Certificates Portico obtains and renews itself instead of files: `"auto"` orders one per
     * name from the `acme` CA (Let's Encrypt by default), `"internal"` issues them from a local CA
     * kept in `acme.dataDir` (for development: `portico trust` installs it).
     */
    mode: z.enum(['auto', 'internal']).optional(),
    /**
     * With `mode: "auto"`: names this server answers (its wildcard names, or any name for a default
     * server without names) get a certificate at their first handshake, once `acme.onDemand.ask`
     * allows each name. @default false
     */
    onDemand: z.boolean().optional(),
    /** PEM certificate file (the leaf, then the chain). With `key`; or `certs` for several pairs. */
    cert: z.string().min(1).optional(),
    /** PEM private key file of `cert`. */
    key: z.string().min(1).optional(),
    /** Several certificate/key pairs, e.g. RSA and ECDSA: the handshake picks what the client supports. */
    certs: z.array(certificatePair).min(1).optional(),
    /** Refuse the handshake when the client's SNI names no server of the address (or it sends none), instead of serving the default server's certificate. Read from the address's default server. @default false */
    strictSni: z.boolean().optional(),
    /**
     * `Strict-Transport-Security` on this server's HTTPS answers (RFC 6797): `true` for a year, or
     * `{ maxAge, includeSubDomains, preload }`. Off by default, as in Caddy: once sent, browsers
     * refuse plain HTTP for the whole `maxAge`. @default false
     */
    hsts: z
      .union([
        z.boolean(),
        z.strictObject({
          /** @default "365d" */
          maxAge: duration().optional(),
          /** @default false */
          includeSubDomains: z.boolean().optional(),
          /** @default false */
          preload: z.boolean().optional(),
        }),
      ])
      .optional(),
  })
  .superRefine((value, ctx) => {
    const single = value.cert !== undefined || value.key !== undefined;
    if (value.onDemand && value.mode !== 'auto') ctx.addIssue({ code: 'custom', path: ['onDemand'], input: value.onDemand, message: 'expected only with "mode": "auto" (on-demand certificates come from the ACME CA)' });
    if (value.mode !== undefined) {
      if (single || value.certs !== undefined) ctx.addIssue({ code: 'custom', path: ['mode'], input: value.mode, message: `expected either "mode" or certificate files ("cert"/"key", "certs"), got both` });
      return;
    }
    if (single && value.certs !== undefined) ctx.addIssue({ code: 'custom', message: 'expected either "cert" and "key" or "certs", got both' });
    else if (!single && value.certs === undefined) ctx.addIssue({ code: 'custom', message: 'expected "cert" and "key" (PEM files), or "certs"' });
    else if (single && value.cert === undefined) ctx.addIssue({ code: 'custom', path: ['cert'], input: undefined, message: 'is required with "key": expected a PEM certificate file' });
    else if (single && value.key === undefined) ctx.addIssue({ code: 'custom', path: ['key'], input: undefined, message: 'is required with "cert": expected a PEM private key file' });
  });

/** The object form, or `"auto"` / `"internal"` for `{ mode }` alone. */
export const tlsOptions = z.preprocess((value, ctx) => {
  if (value === 'auto' || value === 'internal') return { mode: value };
  if (typeof value === 'string') {
    ctx.addIssue({ code: 'custom', input: value, message: `expected "auto", "internal" or an object (certificate files, or "mode"), got ${show(value)}` });
    return z.NEVER;
  }
  return value;
}, tlsObject);

export type ParsedTls = z.output<typeof tlsObject>;

const YEAR_MS = 365 * 24 * 3600 * 1000;

/** The `Strict-Transport-Security` value, or null. */
function hstsValue(hsts: ParsedTls['hsts']): string | null {
  if (hsts === undefined || hsts === false) return null;
  const options = hsts === true ? {} : hsts;
  let value = `max-age=${Math.floor((options.maxAge ?? YEAR_MS) / 1000)}`;
  if (options.includeSubDomains) value += '; includeSubDomains';
  if (options.preload) value += '; preload';
  return value;
}

/** Reads a file for a field, or records why it cannot be used. */
function readPem(path: string, field: string, given: string, kind: 'certificate' | 'private key', problems: string[]): string | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    problems.push(`${field}: expected a PEM ${kind} file, got ${JSON.stringify(given)} (${path}: ${code === 'ENOENT' ? 'no such file' : (code ?? 'unreadable')})`);
    return null;
  }
  const label = kind === 'certificate' ? /-----BEGIN CERTIFICATE-----/ : /-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----/;
  if (!label.test(text)) {
    problems.push(`${field}: expected a PEM ${kind} file (-----BEGIN ${kind === 'certificate' ? 'CERTIFICATE' : 'PRIVATE KEY'}-----), got ${JSON.stringify(given)} (${path}: no such PEM block)`);
    return null;
  }
  return text;
}

/** Whether a certificate's names (SAN, else CN) cover a host name, wildcards as RFC 6125 §6.4.3. */
function covers(certificate: X509Certificate, name: string): boolean {
  // A server name "*.example.com" is covered by the same wildcard, or by any name it stands for: check a sample.
  const host = name.startsWith('*.') ? `portico-check.${name.slice(2)}` : name;
  return isIP(host) === 0 ? certificate.checkHost(host) !== undefined : certificate.checkIP(host) !== undefined;
}

/**
 * Checks and resolves a server's `tls`: paths absolute, every file read and parsed, each key
 * matched to its certificate. `warnings` gets what is suspicious but served.
 */
export function resolveTls(parsed: ParsedTls, names: readonly string[], baseDir: string, field: string, problems: string[], warnings: string[]): ResolvedTls {
  if (parsed.mode !== undefined) return resolveManaged(parsed, names, field, problems, warnings);
  const pairs = parsed.certs ?? [{ cert: parsed.cert as string, key: parsed.key as string }];
  const certs = pairs.map((pair, i) => {
    const at = parsed.certs ? `${field}.certs[${i}]` : field;
    const cert = resolvePath(baseDir, pair.cert);
    const key = resolvePath(baseDir, pair.key);
    const certText = readPem(cert, `${at}.cert`, pair.cert, 'certificate', problems);
    const keyText = readPem(key, `${at}.key`, pair.key, 'private key', problems);
    if (certText !== null && keyText !== null) checkPair(certText, keyText, names, at, pair, problems, warnings);
    return { cert, key };
  });
  return { certs, managed: null, onDemand: false, strictSni: parsed.strictSni ?? false, hsts: hstsValue(parsed.hsts) };
}

/**
 * `mode: "auto"` / `"internal"`: which names can have a certificate. HTTP-01 and TLS-ALPN-01
 * cannot validate a wildcard (RFC 8555 §7.1.3: wildcards need DNS-01, which Portico does not
 * answer), so a wildcard name is served only on demand, one certificate per name met.
 */
function resolveManaged(parsed: ParsedTls, names: readonly string[], field: string, problems: string[], warnings: string[]): ResolvedTls {
  const managed = parsed.mode === 'auto' ? 'acme' : 'internal';
  const onDemand = parsed.onDemand ?? false;
  const wildcards = names.filter((name) => name.includes('*') || name.startsWith('~'));
  if (managed === 'acme' && !onDemand) {
    if (names.length === 0) problems.push(`${field}.mode: expected the server to have "names" to order certificates for (or "onDemand": true), got none`);
    else if (wildcards.length > 0) problems.push(`${field}.mode: expected names an ACME CA can validate by HTTP-01 or TLS-ALPN-01, got ${wildcards.map((name) => JSON.stringify(name)).join(', ')} (a wildcard needs DNS-01; use "onDemand": true for a certificate per name)`);
  }
  if (managed === 'internal' && wildcards.some((name) => !name.startsWith('*.'))) problems.push(`${field}.mode: expected host names or "*.domain" wildcards for the local CA, got ${wildcards.map((name) => JSON.stringify(name)).join(', ')}`);
  if (managed === 'acme') {
    const local = names.filter((name) => isIP(name) !== 0 || name === 'localhost' || name.endsWith('.localhost'));
    if (local.length > 0) warnings.push(`${field}: ${local.map((name) => JSON.stringify(name)).join(', ')} cannot get a certificate from a public ACME CA (an IP address or localhost); use "mode": "internal" for it`);
  }
  return { certs: [], managed, onDemand, strictSni: parsed.strictSni ?? false, hsts: hstsValue(parsed.hsts) };
}

function checkPair(certText: string, keyText: string, names: readonly string[], at: string, given: { cert: string; key: string }, problems: string[], warnings: string[]): void {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(certText);
  } catch (error) {
    problems.push(`${at}.cert: expected a PEM certificate, got ${JSON.stringify(given.cert)} (${(error as Error).message})`);
    return;
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(keyText);
  } catch (error) {
    problems.push(`${at}.key: expected an unencrypted PEM private key, got ${JSON.stringify(given.key)} (${(error as Error).message})`);
    return;
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    problems.push(`${at}.key: expected the private key of ${JSON.stringify(given.cert)}, got a key that does not match it (${JSON.stringify(given.key)})`);
    return;
  }
  const now = Date.now();
  if (Date.parse(certificate.validTo) < now) warnings.push(`${at}.cert: the certificate expired on ${new Date(certificate.validTo).toISOString()} (${JSON.stringify(given.cert)}); clients will refuse it`);
  else if (Date.parse(certificate.validFrom) > now) warnings.push(`${at}.cert: the certificate is not valid before ${new Date(certificate.validFrom).toISOString()} (${JSON.stringify(given.cert)})`);
  const uncovered = names.filter((name) => !covers(certificate, name));
  if (names.length > 0 && uncovered.length === names.length) {
    warnings.push(`${at}.cert: the certificate (${certificate.subjectAltName ?? certificate.subject.replace(/\n/g, ', ')}) covers none of the server's names (${names.join(', ')}); clients will refuse it`);
  }
}
