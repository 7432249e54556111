/**
 * The secure context every HTTPS certificate is served with (files, or managed ones): the TLS
 * versions, the TLS 1.2 suites, no renegotiation, and the node's session ticket keys.
 */
import { constants as cryptoConstants } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';

/** TLS 1.2 and 1.3 only (RFC 8996 deprecates 1.0 and 1.1). */
const MIN_VERSION = 'TLSv1.2';
/**
 * TLS 1.2 suites: ECDHE (forward secret) with AEAD ciphers only, Mozilla's "intermediate" list.
 * node's default list also offers CBC suites (ECDHE-ECDSA-AES128-SHA256…), which testssl.sh
 * flags as LUCKY13 (CVE-2013-0169); every client that speaks TLS 1.2 has one of these. TLS 1.3's
 * suites (all AEAD) are node's defaults.
 */
const TLS12_CIPHERS = ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305'].join(':');

/** A context with certificate/key pairs (PEM; RSA and ECDSA side by side: the handshake picks what the client supports). */
export function secureContextFor(certs: string[], keys: string[], ticketKeys: Buffer): SecureContext {
  return createSecureContext({
    cert: certs,
    key: keys,
    minVersion: MIN_VERSION,
    ciphers: TLS12_CIPHERS,
    // No renegotiation (TLS 1.3 has none): a client-initiated one costs the server a handshake
    // per request of the client's choosing, a denial-of-service lever (testssl.sh flags it).
    secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION,
    ticketKeys,
  });
}
