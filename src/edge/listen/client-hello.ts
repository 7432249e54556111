/**
 * The server name a TLS ClientHello asks for (RFC 6066 §3, server_name extension), read from the
 * first bytes of a connection before any TLS state exists.
 *
 * Hand-written because node's own SNICallback cannot switch certificates of another key type: it
 * adds the chosen context's certificate to the connection next to the default one
 * (UseSNIContext), and under TLS 1.3 a client that prefers ECDSA is then served the default
 * server's ECDSA certificate for a name whose server has an RSA one (seen here with node 20:
 * `-servername b.test` answered with a.test's certificate). Choosing the context before the TLS
 * socket exists gives each connection exactly its server's certificates, and lets strict SNI
 * refuse before any handshake.
 */

/** Bytes kept while waiting for a whole ClientHello (one is rarely over 2 KiB; 16 KiB is a full record). */
export const CLIENT_HELLO_MAX = 16 * 1024 + 5;

export type ClientHelloRead =
  /** Not all of it has arrived yet. */
  | { readonly done: false }
  /** `servername` is null when the hello names none, or the bytes are not a ClientHello (the handshake will then fail on its own). */
  | { readonly done: true; readonly servername: string | null };

const MORE: ClientHelloRead = { done: false };
const NONE: ClientHelloRead = { done: true, servername: null };

/**
 * Reads the server name from the bytes received so far. A ClientHello may span several
 * handshake records (RFC 8446 §5.1): their fragments are joined.
 */
export function readClientHello(data: Buffer): ClientHelloRead {
  // RFC 8446 §5.1: ContentType handshake(22), legacy_record_version, length, fragment.
  let offset = 0;
  const fragments: Buffer[] = [];
  let handshakeLength = -1;
  let have = 0;
  for (;;) {
    if (data.length < offset + 5) return data.length >= CLIENT_HELLO_MAX ? NONE : MORE;
    if (data[offset] !== 22 || data[offset + 1] !== 3) return NONE;
    const length = data.readUInt16BE(offset + 3);
    if (data.length < offset + 5 + length) return data.length >= CLIENT_HELLO_MAX ? NONE : MORE;
    const fragment = data.subarray(offset + 5, offset + 5 + length);
    fragments.push(fragment);
    have += fragment.length;
    offset += 5 + length;
    if (handshakeLength < 0 && have >= 4) {
      const head = fragments.length === 1 ? fragment : Buffer.concat(fragments);
      // HandshakeType client_hello(1), uint24 length.
      if (head[0] !== 1) return NONE;
      handshakeLength = head.readUIntBE(1, 3);
    }
    if (handshakeLength >= 0 && have >= handshakeLength + 4) break;
    if (offset >= CLIENT_HELLO_MAX) return NONE;
  }
  const hello = fragments.length === 1 ? (fragments[0] as Buffer) : Buffer.concat(fragments);
  return { done: true, servername: serverName(hello.subarray(4, 4 + handshakeLength)) };
}

/** RFC 8446 §4.1.2 ClientHello → the host_name of its server_name extension, or null. */
function serverName(body: Buffer): string | null {
  let at = 2 + 32; // legacy_version, random
  if (body.length < at + 1) return null;
  at += 1 + (body[at] as number); // legacy_session_id
  if (body.length < at + 2) return null;
  at += 2 + body.readUInt16BE(at); // cipher_suites
  if (body.length < at + 1) return null;
  at += 1 + (body[at] as number); // legacy_compression_methods
  if (body.length < at + 2) return null;
  const end = Math.min(body.length, at + 2 + body.readUInt16BE(at));
  at += 2;
  while (at + 4 <= end) {
    const type = body.readUInt16BE(at);
    const length = body.readUInt16BE(at + 2);
    at += 4;
    if (type === 0 /* server_name */) {
      // ServerNameList: uint16 length, then entries of NameType(1) + uint16 length + name.
      let entry = at + 2;
      const listEnd = Math.min(at + length, end);
      while (entry + 3 <= listEnd) {
        const nameType = body[entry] as number;
        const nameLength = body.readUInt16BE(entry + 1);
        if (nameType === 0 /* host_name */ && entry + 3 + nameLength <= listEnd) {
          const name = body.toString('latin1', entry + 3, entry + 3 + nameLength);
          // A DNS host name (RFC 6066 §3: no trailing dot; ASCII, A-labels for IDNs).
          return /^[a-z0-9_.-]+$/i.test(name) ? name.replace(/\.$/, '') : null;
        }
        entry += 3 + nameLength;
      }
      return null;
    }
    at += length;
  }
  return null;
}
