/**
 * HTTP/2 sessions of a listener: the node:http2 server that takes the connections a TLS listener
 * negotiated `h2` on (tls.ts), or that open with the HTTP/2 preface on a cleartext listener that
 * allows h2c (below). It never listens itself. Its bounds are the abuse limits of RFC 9113 §10.5.
 */
import { constants, createServer as createH2Server, type Http2Server, type Http2ServerResponse, type ServerHttp2Session } from 'node:http2';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { ResolvedConfig } from '../../config/resolved.js';
import { log } from '../../core/log.js';
import { H2Response } from '../http/h2-response.js';
import { readFirstBytes } from './first-bytes.js';

type HttpSettings = ResolvedConfig['http'];

/**
 * The receive window of an HTTP/2 connection (all its streams together). The protocol's initial
 * 65,535 bytes caps a connection's uploads at one window per round trip (nodejs/node#31084);
 * nginx raises it likewise (http2_body_preread_size + its connection window of 2^31-1 less).
 */
const SESSION_WINDOW = 16 * 1024 * 1024;
/** Streams a client may have open at once (RFC 9113 §6.5.2; nginx 128, Caddy/Go 250, h2o 100). */
export const MAX_CONCURRENT_STREAMS = 128;

/** A listener whose connections may be HTTP/2: what listens, the HTTP/2 server, and its open sessions. */
export interface H2Listener {
  /** The socket that listens (TCP). */
  readonly socketServer: NetServer;
  /** HTTP/2 sessions; it never listens itself. */
  readonly h2: Http2Server;
  /** Open HTTP/2 sessions: a stop or a listener's removal sends each a GOAWAY. */
  readonly sessions: Set<ServerHttp2Session>;
}

/** The HTTP/2 server of a listener, with its bounds, and the set of its open sessions. */
export function createH2Sessions(settings: () => HttpSettings): { h2: Http2Server; sessions: Set<ServerHttp2Session> } {
  const http = settings();
  const h2 = createH2Server({
    // Portico's answers, with a cheaper head and no empty trailing DATA frame (http/h2-response.ts).
    Http2ServerResponse: H2Response as typeof Http2ServerResponse,
    // RFC 9113 §10.5: bounds on what one client may make the server hold.
    maxSessionMemory: 16, // MiB of nghttp2 state per session (default 10); beyond it new streams are refused
    maxHeaderListPairs: http.maxHeaders + 8, // header fields plus pseudo-headers; more → the stream is refused
    maxSettings: 32,
    maxSessionInvalidFrames: 100,
    maxSessionRejectedStreams: 100,
    settings: {
      maxConcurrentStreams: MAX_CONCURRENT_STREAMS,
      // The decoded header list (RFC 9113 §6.5.2): the request line's target and the fields, as HTTP/1.1 allows.
      maxHeaderListSize: http.maxUriLength + http.maxHeaderSize,
      initialWindowSize: 1024 * 1024,
    },
  });
  const sessions = new Set<ServerHttp2Session>();
  h2.on('session', (session: ServerHttp2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    // A session error (a protocol violation, a reset socket) ends that session only.
    session.on('error', (error: NodeJS.ErrnoException) => log().debug({ code: error.code }, 'http2 session error'));
    session.on('connect', () => {
      try {
        session.setLocalWindowSize(SESSION_WINDOW);
      } catch {
        // The session closed during its handshake.
      }
    });
    // nginx keepalive_timeout for HTTP/2: a session with no frames for this long is closed (GOAWAY).
    const idle = settings().keepAliveTimeout;
    if (idle > 0) session.setTimeout(idle, () => session.close());
    limitPings(session);
  });
  return { h2, sessions };
}

/** PINGs a session may send per window before it is ended (browsers send a few per minute; gRPC keepalives one per 10 s or more). */
const PING_BURST = 1000;
const PING_WINDOW_MS = 10_000;

/**
 * A PING flood (RFC 9113 §10.5: "excessive" control frames): each PING costs an ACK, and a client
 * that never reads them makes them pile up in the socket's write buffer, which nghttp2's own
 * limit on queued ACKs does not see. Past PING_BURST in one window the session gets GOAWAY with
 * ENHANCE_YOUR_CALM and is closed.
 */
function limitPings(session: ServerHttp2Session): void {
  let count = 0;
  let windowStart = 0;
  session.on('ping', () => {
    const now = Date.now();
    if (now - windowStart > PING_WINDOW_MS) {
      windowStart = now;
      count = 0;
    }
    if (++count === PING_BURST + 1) {
      log().debug({ pings: count }, 'http2: PING flood, ending the session');
      session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM);
      session.destroy();
    }
  });
}

/** RFC 9113 §3.4: the client connection preface, which a prior-knowledge HTTP/2 client sends first. */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/**
 * A cleartext listener that takes both HTTP/1.1 and HTTP/2 with prior knowledge (h2c, RFC 9113
 * §3.3): the first bytes decide. No HTTP/1.1 request line can begin with the preface's "PRI *
 * HTTP/2.0", so a connection whose first bytes differ from it goes to `http1` at once.
 */
export function createH2cListener(settings: () => HttpSettings, http1: { emit(event: 'connection', socket: Socket): boolean }): H2Listener {
  const { h2, sessions } = createH2Sessions(settings);
  const isPreface = (bytes: Buffer): boolean | undefined => {
    const compared = Math.min(bytes.length, PREFACE.length);
    const same = bytes.subarray(0, compared).equals(PREFACE.subarray(0, compared));
    return same && bytes.length < PREFACE.length ? undefined : same;
  };
  const socketServer = createNetServer({ noDelay: true }, (raw: Socket) => {
    readFirstBytes(raw, settings().headersTimeout, isPreface, (isH2, received, done) => {
      done();
      if (isH2) {
        // node:http2 reads what a socket has buffered before its own reads (nodejs/node#35475).
        raw.pause();
        raw.unshift(received);
        h2.emit('connection', raw);
      } else {
        // node:http's parser reads the socket's handle directly, never its buffer: the bytes
        // already read are handed to it as the 'data' event it listens to, before any later read.
        http1.emit('connection', raw);
        raw.emit('data', received);
      }
    });
  });
  return { socketServer, h2, sessions };
}

/** GOAWAY to every session (RFC 9113 §6.8): streams in flight finish, no new ones start. */
export function closeSessions(parts: H2Listener): void {
  for (const session of parts.sessions) if (!session.closed) session.close();
}

/** What is left after the grace: every session destroyed. */
export function destroySessions(parts: H2Listener): void {
  for (const session of parts.sessions) session.destroy();
}
