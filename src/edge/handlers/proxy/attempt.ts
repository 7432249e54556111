/**
 * What one attempt of the proxy on one server came to, whatever the transport (HTTP through
 * undici in index.ts, the uwsgi protocol in uwsgi.ts): the retry, balancing and health logic of
 * the proxy handler reads only this.
 */

export type Outcome =
  | { readonly kind: 'done' }
  | {
      readonly kind: 'failed';
      readonly status: 502 | 504;
      readonly reason: 'error' | 'timeout' | 'status';
      /** Nothing reached the server (a connect failure): any method may be retried. */
      readonly beforeSend: boolean;
      readonly code: string;
    };

export const DONE: Outcome = { kind: 'done' };
