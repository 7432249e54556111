/**
 * The TLS listener socket: one TCP server per HTTPS address. It reads the ClientHello's server
 * name (client-hello.ts), picks that server's certificates from the current generation (SNI, with
 * the virtual hosts' own name rules), makes the TLS socket, and once the handshake is done hands
 * the connection to the HTTP/1.1 server of http1.ts (ALPN `http/1.1`, or none) or to an HTTP/2
 * server (`h2`). Neither of those listens: both get their connections from here, so HTTP/1.1 over
 * TLS is byte for byte the cleartext path (limits, clientError answers) and both protocols feed
 * the same pipeline (kinds.ts).
 *
 * Why not `http2.createSecureServer({ allowHTTP1: true })`: its HTTP/1.1 fallback is node:http's
 * connection listener on a server whose limits (head timeouts, clientError) are not the ones
 * http1.ts sets up, and its SNICallback cannot switch to a certificate of another key type
 * (client-hello.ts says why).
 *
 * Certificates are read per generation: a reload serves the new ones to new handshakes, and
 * connections already open keep theirs. Session ticket keys come from the node (the supervisor
 * makes them, so a ticket from one edge worker resumes on another) and are in every context.
 */
import { constants as cryptoConstants } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createNetServer, type Socket } from 'node:net';
import { createSecureContext, TLSSocket, type SecureContext } from 'node:tls';
import type { ResolvedConfig, ResolvedTls } from '../../config/resolved.js';
import { log } from '../../core/log.js';
import { HostTable } from '../route/hosts.js';
import type { CompiledServer } from '../route/router.js';
import { readClientHello } from './client-hello.js';
import { readFirstBytes } from './first-bytes.js';
import { createH2Sessions, type H2Listener } from './h2.js';

type HttpSettings = ResolvedConfig['http'];

/** TLS 1.2 and 1.3 only (RFC 8996 deprecates 1.0 and 1.1). */
const MIN_VERSION = 'TLSv1.2';
/** ALPN (RFC 7301): HTTP/2 first (RFC 9113 §3.2), HTTP/1.1 for the rest. */
const ALPN = ['h2', 'http/1.1'];
/**
 * TLS 1.2 suites: ECDHE (forward secret) with AEAD ciphers only, Mozilla's "intermediate" list.
 * node's default list also offers CBC suites (ECDHE-ECDSA-AES128-SHA256…), which testssl.sh
 * flags as LUCKY13 (CVE-2013-0169); every client that speaks TLS 1.2 has one of these. TLS 1.3's
 * suites (all AEAD) are node's defaults.
 */
const TLS12_CIPHERS = ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305'].join(':');

/** A secure context with a server's certificates (RSA and ECDSA pairs side by side: the handshake picks what the client supports). */
function contextFor(tls: ResolvedTls, ticketKeys: Buffer): SecureContext {
  return createSecureContext({
    cert: tls.certs.map((pair) => readFileSync(pair.cert, 'utf8')),
    key: tls.certs.map((pair) => readFileSync(pair.key, 'utf8')),
    minVersion: MIN_VERSION,
    ciphers: TLS12_CIPHERS,
    // No renegotiation (TLS 1.3 has none): a client-initiated one costs the server a handshake
    // per request of the client's choosing, a denial-of-service lever (testssl.sh flags it).
    secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION,
    ticketKeys,
  });
}

/**
 * The certificates of one HTTPS address in one generation: a secure context per server, found
 * by SNI with the virtual hosts' own rules (exact, then wildcard), else the default server's.
 */
export class TlsTable {
  readonly #hosts: HostTable;
  readonly #contexts = new Map<string, SecureContext>();
  readonly #defaultContext: SecureContext;
  readonly #all: SecureContext[];
  /** Refuse a handshake whose SNI names no server here, or that sends none (the default server's `tls.strictSni`). */
  readonly strictSni: boolean;

  constructor(servers: readonly CompiledServer[], ticketKeys: Buffer) {
    this.#hosts = new HostTable(servers);
    for (const server of servers) {
      const tls = server.config.tls;
      if (tls) this.#contexts.set(server.id, contextFor(tls, ticketKeys));
    }
    this.#defaultContext = this.#contexts.get(this.#hosts.defaultServer.id) as SecureContext;
    this.#all = [...this.#contexts.values()];
    this.strictSni = (this.#hosts.defaultServer.config.tls as ResolvedTls).strictSni;
  }

  /** A rotation: new handshakes' tickets are made (and read) with `keys` (what tls.Server#setTicketKeys does to its context). */
  setTicketKeys(keys: Buffer): void {
    for (const context of this.#all) (context as SecureContext & { context: { setTicketKeys(keys: Buffer): void } }).context.setTicketKeys(keys);
  }

  /**
   * The context for a ClientHello's server name (RFC 6066 §3: case-insensitive), the default
   * server's for none or an unknown one, or null when strict SNI refuses it.
   */
  select(servername: string | null): SecureContext | null {
    const server = servername === null ? undefined : this.#hosts.lookup(servername.toLowerCase());
    const context = server ? this.#contexts.get(server.id) : undefined;
    if (context) return context;
    return this.strictSni ? null : this.#defaultContext;
  }
}

/**
 * The TLS socket server of an address and its HTTP/2 server; `http1` (http1.ts) takes the
 * connections that do not negotiate h2. `table()` is the current generation's TlsTable.
 */
export function createTlsListener(settings: () => HttpSettings, table: () => TlsTable, http1: { emit(event: 'connection', socket: TLSSocket): boolean }): H2Listener {
  const { h2, sessions } = createH2Sessions(settings);
  const onSecure = (socket: TLSSocket): void => {
    if (socket.alpnProtocol === 'h2') h2.emit('connection', socket);
    else http1.emit('connection', socket);
  };
  const socketServer = createNetServer({ noDelay: true }, (raw: Socket) => acceptTls(raw, settings(), table, onSecure));
  return { socketServer, h2, sessions };
}

/**
 * One connection: its ClientHello's server name, then the TLS socket with that server's
 * certificates. The handshake (ClientHello included) must end within `headersTimeout`: it is part
 * of receiving a request, and a client that opens connections and stays silent holds them.
 */
function acceptTls(raw: Socket, http: HttpSettings, table: () => TlsTable, onSecure: (socket: TLSSocket) => void): void {
  // readClientHello is "done" (with no name) at the latest once CLIENT_HELLO_MAX bytes are in.
  const servername = (bytes: Buffer): { name: string | null } | undefined => {
    const hello = readClientHello(bytes);
    return hello.done ? { name: hello.servername } : undefined;
  };
  readFirstBytes(raw, http.headersTimeout, servername, ({ name }, received, done) => {
    raw.pause();
    const context = table().select(name);
    if (context === null) {
      // tls.strictSni: no server has that name; close before any handshake.
      log().debug({ servername: name }, 'tls: refused a handshake for an unknown name (strictSni)');
      raw.destroy();
      return;
    }
    // The bytes read so far go back: the TLS socket reads them first (node feeds a wrapped socket's buffer to TLS).
    raw.unshift(received);
    const socket = new TLSSocket(raw, { isServer: true, secureContext: context, ALPNProtocols: ALPN }) as ConnectingSocket;
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // A failed handshake (plain HTTP to the port, an old protocol version, no shared cipher) is the client's: debug only.
      if (socket.secureConnecting) log().debug({ code: error.code, reason: error.message }, 'tls handshake failed');
      socket.destroy();
    });
    socket.once('secure', () => {
      done();
      // What tls.Server does for the sockets it makes (onServerSocketSecure): node:http2 waits
      // for 'secureConnect' on a TLS socket that still says it is connecting.
      socket.secureConnecting = false;
      onSecure(socket);
    });
  });
}

/** `secureConnecting` is node's own flag (not in its types): true until the handshake is done. */
type ConnectingSocket = TLSSocket & { secureConnecting: boolean };
