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
  /**
   * `servername` is null when the hello names none, or the bytes are not a ClientHello (the
   * handshake will then fail on its own); `alpn` is the protocols it offers (RFC 7301), empty for none.
   */
  | { readonly done: true; readonly servername: string | null; readonly alpn: readonly string[] };

const MORE: ClientHelloRead = { done: false };
const NONE: ClientHelloRead = { done: true, servername: null, alpn: [] };

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
  return helloExtensions(hello.subarray(4, 4 + handshakeLength));
}

/** RFC 8446 §4.1.2 ClientHello → the host_name of its server_name extension (or null), and the protocols of its ALPN extension. */
function helloExtensions(body: Buffer): ClientHelloRead {
  let servername: string | null = null;
  const alpn: string[] = [];
  const done = (): ClientHelloRead => ({ done: true, servername, alpn });
  let at = 2 + 32; // legacy_version, random
  if (body.length < at + 1) return done();
  at += 1 + (body[at] as number); // legacy_session_id
  if (body.length < at + 2) return done();
  at += 2 + body.readUInt16BE(at); // cipher_suites
  if (body.length < at + 1) return done();
  at += 1 + (body[at] as number); // legacy_compression_methods
  if (body.length < at + 2) return done();
  const end = Math.min(body.length, at + 2 + body.readUInt16BE(at));
  at += 2;
  while (at + 4 <= end) {
    const type = body.readUInt16BE(at);
    const length = body.readUInt16BE(at + 2);
    at += 4;
    if (type === 0 /* server_name */) servername = hostName(body, at, Math.min(at + length, end));
    else if (type === 16 /* application_layer_protocol_negotiation */) {
      // RFC 7301 §3.1: ProtocolNameList, uint16 length, then entries of uint8 length + name.
      const listEnd = Math.min(at + length, end);
      for (let entry = at + 2; entry < listEnd; ) {
        const nameLength = body[entry] as number;
        if (entry + 1 + nameLength > listEnd) break;
        alpn.push(body.toString('latin1', entry + 1, entry + 1 + nameLength));
        entry += 1 + nameLength;
      }
    }
    at += length;
  }
  return done();
}

/** A ServerNameList (RFC 6066 §3: uint16 length, then NameType(1) + uint16 length + name) → its host_name, or null. */
function hostName(body: Buffer, at: number, listEnd: number): string | null {
  let entry = at + 2;
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
