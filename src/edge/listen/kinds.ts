/**
 * What each kind of listener serves, wired onto its server's events: phase 0 of the pipeline
 * (edge/pipeline.ts), after node:http parsed a request head and before anything routes it.
 *
 *   site      the virtual servers' pipeline: requests, `Upgrade` (WebSocket), `Expect`, and a
 *             501 for CONNECT (an origin server does not tunnel, RFC 9110 §9.3.6, §15.6.2)
 *   forward   the forward proxy (edge/handlers/forward-proxy/): absolute-form requests and
 *             CONNECT tunnels, never the virtual servers' pipeline
 *
 * The admin API will be a third kind. A listener's kind comes from the generation
 * (generation.ts `listeners`), never from the shape of its key.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Server as NetServer, Socket } from 'node:net';
import { log } from '../../core/log.js';
import type { ListenerKind } from '../bus.js';
import { RequestContext, type ListenerInfo } from '../context.js';
import type { Generation } from '../generation.js';
import { handleConnect, handleForwardRequest, type ForwardRuntime } from '../handlers/forward-proxy/index.js';
import { framingRefusal, upgradeProtocols, type FramingRefusal } from '../http/framing.js';
import { normaliseH2Request, rememberTls } from '../http/h2.js';
import { admitOnConnection, expectationRefusal, expectsContinue, headRefusal, watchBody, type HeadRefusal } from '../http/limits.js';
import { closeAfterResponse, responseOnSocket, sendStatus } from '../http/respond.js';
import { publishRequestEnd, requestEnd } from '../observe.js';
import { handleRequest, handleUpgrade } from '../pipeline.js';
import { ACME_CHALLENGE_PATH } from './acme-challenges.js';
import { answerRaw } from './http1.js';
import type { H2Listener } from './h2.js';

/** What a listener needs of the edge server that owns it. */
export interface ListenerHost {
  /** The current generation: read per request, so a reload applies to the next request on every socket. */
  readonly generation: Generation;
  /** The forward proxy's state across generations (open tunnels, its own ports). */
  readonly forward: ForwardRuntime;
  /** Upgraded connections leave node:http's tracking: the server ends them on stop. */
  trackTunnel(key: string, socket: Socket): void;
}

export interface Listener {
  readonly kind: ListenerKind;
  /** The HTTP/1.1 server (http1.ts): its requests, upgrades and expectations. */
  readonly server: Server;
  /** What listens: `server` itself in cleartext; for HTTPS the TLS socket server, which hands it its HTTP/1.1 connections. */
  readonly socketServer: NetServer;
  /** A listener that speaks HTTP/2 (HTTPS: tls.ts; cleartext h2c: h2.ts): what listens and its HTTP/2 server; null for HTTP/1.1 only. */
  readonly h2: H2Listener | null;
  info: ListenerInfo;
  /** Closing (a stop, or its address left the config): answers carry `Connection: close`. */
  draining: boolean;
}

/** Wires `listener`'s server to what its kind serves. */
export function serveKind(listener: Listener, host: ListenerHost): void {
  if (listener.kind === 'forward') serveForward(listener, host);
  else serveSite(listener, host);
}

function serveForward(listener: Listener, host: ListenerHost): void {
  const server = listener.server;
  server.on('request', function onForwardRequest(req: IncomingMessage, res: ServerResponse) {
    if (listener.draining) closeAfterResponse(res);
    if (!admitted(host.generation, listener.info, req, res)) return;
    handleForwardRequest(host.generation, host.forward, listener.info, req, res);
  });
  server.on('connect', function onForwardConnect(req: IncomingMessage, socket: Socket, head: Buffer) {
    handleConnect(host.generation, host.forward, listener.info, req, socket, head);
  });
}

function serveSite(listener: Listener, host: ListenerHost): void {
  const server = listener.server;
  server.on('request', function onSiteRequest(req: IncomingMessage, res: ServerResponse) {
    // While draining, a keep-alive client is told this answer is the last (RFC 9112 §9.6), so
    // it opens its next request elsewhere instead of racing our close of the idle connection.
    if (listener.draining) closeAfterResponse(res);
    const generation = host.generation;
    if (!admitted(generation, listener.info, req, res)) return;
    // An ACME CA's HTTP-01 validation is answered before any route, rewrite or limit (acme-challenges.ts).
    if (generation.acmeChallenges !== null && (req.url as string).startsWith(ACME_CHALLENGE_PATH)) {
      generation.acmeChallenges.answerHttp01(req, res, () => handleRequest(generation, listener.info, req, res));
      return;
    }
    handleRequest(generation, listener.info, req, res);
  });
  server.on('upgrade', function onSiteUpgrade(req: IncomingMessage, socket: Socket, head: Buffer) {
    host.trackTunnel(listener.info.key, socket);
    onUpgrade(host.generation, listener.info, req, socket, head);
  });
  // `Expect: 100-continue`: the 100 is sent once the route's body limit allows the body
  // (edge/http/limits.ts limitBody); a body over it is refused without being sent at all.
  server.on('checkContinue', function onSiteContinue(req: IncomingMessage, res: ServerResponse) {
    expectsContinue(req);
    if (listener.draining) closeAfterResponse(res);
    const generation = host.generation;
    if (admitted(generation, listener.info, req, res)) handleRequest(generation, listener.info, req, res);
  });
  server.on('checkExpectation', function onSiteExpectation(req: IncomingMessage, res: ServerResponse) {
    if (!(req.socket as CheckedSocket)[FRAMING_LOST]) refuseFraming(host.generation, listener.info, req, res, expectationRefusal(req));
  });
  // CONNECT asks for a tunnel, which only a forward proxy gives: an origin server does not
  // implement it (RFC 9110 §9.3.6, §15.6.2). Without this listener node:http would drop the
  // connection with no answer at all.
  server.on('connect', function onSiteConnect(_req: IncomingMessage, socket: Socket) {
    socket.on('error', () => socket.destroy());
    answerRaw(socket, 501, host.generation.serverHeader);
  });
  if (listener.h2) serveSiteH2(listener, listener.h2, host);
}

/**
 * HTTP/2 streams (HTTPS, or h2c on a cleartext listener that allows it), through node:http2's
 * compatibility request and response, into the same pipeline. What HTTP/1.1 needs at phase 0 and
 * HTTP/2 does not: the request count per connection (a session ends with GOAWAY instead) and the
 * framing checks (nghttp2 frames the messages and refuses Transfer-Encoding, RFC 9113 §8.2.2). A
 * CONNECT stream gets 405 from node:http2 itself (no 'connect' listener): an origin server does
 * not tunnel, and RFC 8441's extended CONNECT is not offered.
 */
function serveSiteH2(listener: Listener, parts: H2Listener, host: ListenerHost): void {
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const generation = host.generation;
    if (admittedH2(generation, listener.info, req, res)) handleRequest(generation, listener.info, req, res);
  };
  parts.h2.on('request', onRequest as never);
  parts.h2.on('checkContinue', ((req: IncomingMessage, res: ServerResponse) => {
    expectsContinue(req);
    onRequest(req, res);
  }) as never);
}

/** Phase 0 for an HTTP/2 request: its head as the pipeline reads heads, the head limits, the body watch. */
function admittedH2(generation: Generation, info: ListenerInfo, req: IncomingMessage, res: ServerResponse): boolean {
  const http = generation.config.http;
  // A stream with a request body (a GET has none: no listener) answered before the body was read
  // (a refusal, a redirect, an upstream that did not read it) is reset with NO_ERROR once the answer is complete, so the client stops
  // sending (RFC 9113 §8.1); left open, its flow-control window stalls it until a timeout.
  if (!(req as IncomingMessage & { stream: { endAfterHeaders: boolean } }).stream.endAfterHeaders) res.once('finish', resetUnreadStream);
  if (generation.accessLog !== null) rememberTls(req);
  const refusal = normaliseH2Request(req) ?? headRefusal(req, http);
  if (refusal) {
    refuse(generation, info, req, res, refusal);
    return false;
  }
  watchBody(req, res, http);
  return true;
}

function resetUnreadStream(this: ServerResponse): void {
  const stream = (this as ServerResponse & { stream?: { closed: boolean; readableEnded: boolean; close(code: number): void } }).stream;
  if (stream && !stream.closed && !stream.readableEnded) setImmediate(() => stream.closed || stream.close(0 /* NGHTTP2_NO_ERROR */));
}

/** Set on a socket once a request on it was refused for its framing: nothing after it is served. */
const FRAMING_LOST = Symbol('portico.framingLost');
type CheckedSocket = Socket & { [FRAMING_LOST]?: true };

/**
 * Phase 0 for a request node:http parsed: the connection's request count, then framing checks
 * (RFC 9112 §6); false when the request is not to be served (refused here, or behind a refusal).
 */
function admitted(generation: Generation, info: ListenerInfo, req: IncomingMessage, res: ServerResponse): boolean {
  // A request behind one refused for its framing: its framing came from that one's, so it is
  // never served; the refusal's `Connection: close` ends the connection once it is written.
  if ((req.socket as CheckedSocket)[FRAMING_LOST]) return false;
  const http = generation.config.http;
  // Past `maxRequestsPerConnection`: pipelined behind the last one, which closes the connection.
  if (!admitOnConnection(req, res, http)) return false;
  const refusal = headRefusal(req, http) ?? framingRefusal(req);
  if (refusal) {
    refuseFraming(generation, info, req, res, refusal);
    return false;
  }
  watchBody(req, res, http);
  return true;
}

/**
 * Answers a request whose framing cannot be trusted (edge/http/framing.ts) and closes the
 * connection (RFC 9112 §6.3, §11.2). node:http may already have parsed, and will still emit,
 * requests pipelined behind it, framed by its own reading of this one: the socket is marked so
 * that none of them is routed. The answer goes through sendStatus (Server header, access log),
 * before routing, so no handler and no upstream ever sees the request.
 */
function refuseFraming(generation: Generation, listener: ListenerInfo, req: IncomingMessage, res: ServerResponse, refusal: FramingRefusal | HeadRefusal): void {
  (req.socket as CheckedSocket)[FRAMING_LOST] = true;
  refuse(generation, listener, req, res, refusal);
}

/** A refusal before routing, through sendStatus (Server header, access log); on HTTP/1.1 the connection closes after it. */
function refuse(generation: Generation, listener: ListenerInfo, req: IncomingMessage, res: ServerResponse, refusal: FramingRefusal | HeadRefusal): void {
  const ctx = new RequestContext(req, res, generation, listener);
  if (requestEnd.hasSubscribers) res.once('close', () => publishRequestEnd(ctx));
  closeAfterResponse(res);
  log().debug({ status: refusal.status, reason: refusal.reason }, 'request framing refused');
  try {
    sendStatus(ctx, refusal.status, { Connection: 'close' });
  } catch (error) {
    log().error({ err: error }, 'could not send a framing refusal');
    res.destroy();
  }
}

/**
 * An `Upgrade` request: node:http stops parsing and hands over the socket with the bytes it read
 * past the head, unparsed. Those bytes reach an upstream only if it switches protocols.
 *   - A body declared on it (Content-Length, Transfer-Encoding) is in those unparsed bytes:
 *     nothing can frame it, so 400 and close (RFC 9112 §6.3).
 *   - `h2c` (RFC 9113 §3.1: deprecated) is ignored, as RFC 9110 §7.8 allows: the request is
 *     served as plain HTTP/1.1 and the connection closes. Tunnelled, an upstream's 101 would
 *     open a channel for requests the edge never routes (h2c smuggling).
 */
function onUpgrade(generation: Generation, info: ListenerInfo, req: IncomingMessage, socket: Socket, head: Buffer): void {
  if ((req.socket as CheckedSocket)[FRAMING_LOST]) {
    socket.end();
    return;
  }
  const refusal: FramingRefusal | HeadRefusal | null =
    headRefusal(req, generation.config.http) ??
    framingRefusal(req) ??
    (req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0' ? { status: 400, reason: 'a body on an Upgrade request' } : null);
  if (refusal) {
    refuseFraming(generation, info, req, responseOnSocket(req, socket), refusal);
    return;
  }
  if (upgradeProtocols(req.headers.upgrade).includes('h2c')) {
    handleRequest(generation, info, req, responseOnSocket(req, socket));
    return;
  }
  handleUpgrade(generation, info, req, socket, head);
}
