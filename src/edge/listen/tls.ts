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
import { readFileSync } from 'node:fs';
import { createServer as createNetServer, type Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import { HOST_NAME } from '../../certs/storage.js';
import type { ResolvedConfig, ResolvedTls } from '../../config/resolved.js';
import { log } from '../../core/log.js';
import { HostTable } from '../route/hosts.js';
import type { CompiledServer } from '../route/router.js';
import { ACME_TLS_ALPN, type AcmeChallenges } from './acme-challenges.js';
import { readClientHello } from './client-hello.js';
import { readFirstBytes } from './first-bytes.js';
import { createH2Sessions, type H2Listener } from './h2.js';
import type { ManagedCertificates } from './managed-certificates.js';
import { secureContextFor } from './tls-context.js';

type HttpSettings = ResolvedConfig['http'];

/** ALPN (RFC 7301): HTTP/2 first (RFC 9113 §3.2), HTTP/1.1 for the rest. */
const ALPN = ['h2', 'http/1.1'];

/** A secure context with a server's certificate files, read now (each generation reads them again). */
function contextFor(tls: ResolvedTls, ticketKeys: Buffer): SecureContext {
  return secureContextFor(
    tls.certs.map((pair) => readFileSync(pair.cert, 'utf8')),
    tls.certs.map((pair) => readFileSync(pair.key, 'utf8')),
    ticketKeys,
  );
}

/** What a handshake is made with: a context now, one that comes later (an on-demand certificate), or null to refuse it. */
export type Selected = SecureContext | null | Promise<SecureContext | null>;

/**
 * The certificates of one HTTPS address in one generation: a secure context per server, found
 * by SNI with the virtual hosts' own rules (exact, then wildcard), else the default server's.
 * A server with managed certificates (`tls: "auto"` / `"internal"`) has one per name, from
 * `managed`, which renewals update without a new generation.
 */
export class TlsTable {
  readonly #hosts: HostTable;
  readonly #contexts = new Map<string, SecureContext>();
  readonly #all: SecureContext[];
  readonly #managed: ManagedCertificates;
  /** The answers to TLS-ALPN-01 validations, when a server here orders certificates from an ACME CA. */
  readonly challenges: AcmeChallenges | null;
  readonly #ticketKeys: () => Buffer;
  /** Refuse a handshake whose SNI names no server here, or that sends none (the default server's `tls.strictSni`). */
  readonly strictSni: boolean;

  constructor(servers: readonly CompiledServer[], ticketKeys: () => Buffer, managed: ManagedCertificates, challenges: AcmeChallenges | null) {
    this.#hosts = new HostTable(servers);
    for (const server of servers) {
      const tls = server.config.tls;
      if (tls && tls.managed === null) this.#contexts.set(server.id, contextFor(tls, ticketKeys()));
    }
    this.#all = [...this.#contexts.values()];
    this.#managed = managed;
    this.challenges = servers.some((server) => server.config.tls?.managed === 'acme') ? challenges : null;
    this.#ticketKeys = ticketKeys;
    this.strictSni = (this.#hosts.defaultServer.config.tls as ResolvedTls).strictSni;
  }

  get ticketKeys(): Buffer {
    return this.#ticketKeys();
  }

  /** A rotation: new handshakes' tickets are made (and read) with `keys` (what tls.Server#setTicketKeys does to its context). */
  setTicketKeys(keys: Buffer): void {
    for (const context of this.#all) (context as SecureContext & { context: { setTicketKeys(keys: Buffer): void } }).context.setTicketKeys(keys);
  }

  /**
   * The context for a ClientHello's server name (RFC 6066 §3: case-insensitive), the default
   * server's for none or an unknown one, or null when strict SNI refuses it.
   */
  select(servername: string | null): Selected {
    const name = servername === null ? null : servername.toLowerCase();
    const server = name === null ? undefined : this.#hosts.lookup(name);
    if (server) return this.#forServer(server, name, true);
    return this.strictSni ? null : this.#forServer(this.#hosts.defaultServer, name, false);
  }

  /**
   * A server's context for a name. A managed server serves the name's own certificate; a name it
   * has none for is obtained now when the server takes names on demand (`onDemand`, or a local
   * CA's wildcard the name matched). A name the server has but whose certificate is not there
   * (yet) is refused rather than served another name's; a handshake that reached the default
   * server without matching it (no SNI, an unknown name) gets the certificate of its first name.
   */
  #forServer(server: CompiledServer, name: string | null, matched: boolean): Selected {
    const tls = server.config.tls as ResolvedTls;
    if (tls.managed === null) return this.#contexts.get(server.id) ?? null;
    const own = name === null ? undefined : this.#managed.context(name);
    if (own) return own;
    const onDemand = tls.onDemand || (tls.managed === 'internal' && matched);
    if (name !== null && onDemand && HOST_NAME.test(name)) return this.#managed.want(name, tls.managed);
    return matched ? null : (this.#managed.context(server.primaryName) ?? null);
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
  const hello = (bytes: Buffer): { name: string | null; alpn: readonly string[] } | undefined => {
    const read = readClientHello(bytes);
    return read.done ? { name: read.servername, alpn: read.alpn } : undefined;
  };
  readFirstBytes(raw, http.headersTimeout, hello, ({ name, alpn }, received, done) => {
    raw.pause();
    const current = table();
    // RFC 8737 §3: a TLS-ALPN-01 validation offers `acme-tls/1` alone.
    if (alpn.length === 1 && alpn[0] === ACME_TLS_ALPN && current.challenges) {
      const challenges = current.challenges;
      challenges.tlsAlpn01(name, current.ticketKeys).then(
        (context) => handshake(raw, received, context, [ACME_TLS_ALPN], done, (socket) => socket.end()),
        (error: unknown) => {
          log().error({ err: error }, 'acme: cannot read a TLS-ALPN-01 challenge');
          raw.destroy();
        },
      );
      return;
    }
    const selected = current.select(name);
    if (selected instanceof Promise) selected.then((context) => handshake(raw, received, context, ALPN, done, onSecure), () => raw.destroy());
    else handshake(raw, received, selected, ALPN, done, onSecure);
  });
}

/** The TLS socket over `raw` with `context`, or the connection closed before any handshake when there is none. */
function handshake(raw: Socket, received: Buffer, context: SecureContext | null, protocols: string[], done: () => void, onSecure: (socket: TLSSocket) => void): void {
  if (raw.destroyed) return;
  if (context === null) {
    // No certificate for that name: strictSni refused it, or a managed one is not there (yet).
    log().debug('tls: refused a handshake (no certificate for its server name)');
    raw.destroy();
    return;
  }
  // The bytes read so far go back: the TLS socket reads them first (node feeds a wrapped socket's buffer to TLS).
  raw.unshift(received);
  const socket = new TLSSocket(raw, { isServer: true, secureContext: context, ALPNProtocols: protocols }) as ConnectingSocket;
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
}

/** `secureConnecting` is node's own flag (not in its types): true until the handshake is done. */
type ConnectingSocket = TLSSocket & { secureConnecting: boolean };
