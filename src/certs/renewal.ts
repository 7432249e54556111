/**
 * When a certificate is renewed. With ACME Renewal Information (RFC 9773 §4.2) the CA says: a
 * time picked at random in its suggested window (so that a CA's many clients do not all come at
 * once), or now when the window has begun. Without it: at two thirds of the lifetime, or half of
 * it for certificates shorter than ten days (Caddy's and certbot's rule of thumb: a week-long
 * certificate then has three days left to retry in).
 */
import type { RenewalWindow } from './acme.js';

const DAY_MS = 24 * 3600 * 1000;
/** ARI is asked again this often (RFC 9773 §4.3 suggests checking at least daily; the issue asks twice a day). */
export const ARI_CHECK_MS = 12 * 3600 * 1000;

export function fallbackRenewAt(notBefore: number, notAfter: number): number {
  const lifetime = notAfter - notBefore;
  return notBefore + (lifetime < 10 * DAY_MS ? lifetime / 2 : (lifetime * 2) / 3);
}

/** RFC 9773 §4.2: a uniformly random time in the window; a window already begun means now. */
export function renewAtInWindow(window: RenewalWindow, now: number, random: () => number = Math.random): number {
  if (window.start <= now) return now;
  return window.start + random() * (window.end - window.start);
}

/** The wait after `failures` failed attempts: `first`, doubling, at most an hour (or `first`, if longer). */
export function retryDelay(first: number, failures: number): number {
  const cap = Math.max(3600_000, first);
  return Math.min(cap, first * 2 ** Math.max(0, failures - 1));
}
