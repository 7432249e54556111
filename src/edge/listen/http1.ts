/**
 * The HTTP/1.1 listener socket: one node:http server per listen address, with the protocol limits
 * that node:http enforces while parsing (head size → 414/431, head/request timeouts → 408,
 * malformed → 400; edge/http/limits.ts) and the answers to what it could not parse. This is the
 * one file that knows node:http's connection internals; the pipeline sees only requests and
 * responses. A TLS/HTTP/2 listener is a sibling of this file feeding the same kinds (kinds.ts).
 */
import { createServer, STATUS_CODES, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { ResolvedConfig } from '../../config/resolved.js';
import { log } from '../../core/log.js';
import { closeAfterResponse } from '../http/respond.js';
import { disableNodeLimits, overflowStatus, parserOptions } from '../http/limits.js';
import { watchSends } from '../http/send-timeout.js';

type HttpSettings = ResolvedConfig['http'];

/** A node:http server with Portico's parser settings; `clientError` answered as below. */
export function createHttp1Server(http: HttpSettings, serverHeader: () => string | null, settings: () => HttpSettings, onAnswered?: ParserAnswered): Server {
  const server = createServer({
    // Head size, head/request deadlines, keep-alive idle time: edge/http/limits.ts.
    ...parserOptions(http),
    // The pipeline answers a missing Host itself (RFC 9112 §3.2: 400), through sendStatus, so
    // that answer gets the Server header and an access-log line like every other 400;
    // node's own answer here would have neither.
    requireHostHeader: false,
    // Strict parsing whatever NODE_OPTIONS says (--insecure-http-parser would accept CL with TE,
    // bare LF, obs-fold...: RFC 9112 §11.2 request smuggling).
    insecureHTTPParser: false,
    noDelay: true,
  });
  disableNodeLimits(server);
  // Cleartext connections, and HTTPS ones that speak HTTP/1.1 (the TLS listener emits them here).
  server.on('connection', (socket: Socket) => watchSends(socket, () => settings().sendTimeout));
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => onClientError(error, socket, serverHeader(), settings(), onAnswered));
  return server;
}

function clientErrorStatus(code: string | undefined): number {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return 431; // RFC 6585 §5
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'ERR_HTTP_HEADERS_TIMEOUT':
      return 408; // RFC 9110 §15.5.9
    default:
      return 400;
  }
}

const CLOSE_AFTER_RESPONSE = Symbol('portico.closeAfterResponse');
type ClosingSocket = Socket & { [CLOSE_AFTER_RESPONSE]?: true };

/**
 * The response node:http is writing on `socket`, if any. node:http keeps it as `_httpMessage`
 * (not public API): read here, in the HTTP/1.1 listener, and nowhere else. Tracking it ourselves
 * per request would cost a write on the hot path and could not tell the response being written
 * from ones queued behind it for pipelined requests, which node:http can.
 */
function responseInFlight(socket: Socket): ServerResponse | null {
  return (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage ?? null;
}

/**
 * Answers a request node:http could not parse, then closes: the connection's framing is lost.
 * `serverHeader` is the generation's `http.serverHeader`, so these answers carry (or hide) the
 * same Server header as every other response.
 *
 * When the error is in bytes after a request that was received whole (pipelined garbage, data
 * after `Connection: close`), that request is still being answered: its response goes out, marked
 * to close, and nothing after it is read (RFC 9112 §9.6). Writing a 400 in its place would answer
 * a request the upstream may already have processed with a status it never produced.
 */
/** Told of each answer the parser made (400, 408, 414, 431): the access log writes a line for it, as nginx does. */
export type ParserAnswered = (socket: Socket, status: number, bodyBytes: number) => void;

function onClientError(error: NodeJS.ErrnoException, socket: Socket, serverHeader: string | null, http: HttpSettings, onAnswered?: ParserAnswered): void {
  const inFlight = responseInFlight(socket);
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  if (inFlight && (inFlight.req?.complete || inFlight.headersSent)) {
    if (inFlight.writableEnded) {
      // Its whole answer is written (a framing refusal, say): let it drain, then close.
      socket.destroySoon();
    } else if (inFlight.req?.complete) {
      // node:http reports the error again for every later read: close once, on the first.
      if (!(socket as ClosingSocket)[CLOSE_AFTER_RESPONSE]) {
        (socket as ClosingSocket)[CLOSE_AFTER_RESPONSE] = true;
        closeAfterResponse(inFlight);
        inFlight.once('finish', () => socket.destroySoon());
      }
    } else {
      // Mid-response to a request whose own body broke: the only honest signal is a cut connection.
      socket.destroy();
    }
    log().debug({ code: error.code }, 'client error after a request in flight');
    return;
  }
  // A head over node's size limit: in the request line → 414, in the header fields → 431.
  const status = error.code === 'HPE_HEADER_OVERFLOW' ? overflowStatus(error, http) : clientErrorStatus(error.code);
  const bodyBytes = answerRaw(socket, status, serverHeader);
  onAnswered?.(socket, status, bodyBytes);
  log().debug({ code: error.code, status }, 'client error');
}

/** A short status answer written straight to a socket node:http no longer manages, then close; returns its body's length. */
export function answerRaw(socket: Socket, status: number, serverHeader: string | null): number {
  const body = `${status} ${STATUS_CODES[status]}\n`;
  // Written raw here (writeHead would refuse a CR/LF, this would not): never let one through.
  const server = serverHeader === null || /[\r\n\0]/.test(serverHeader) ? '' : `Server: ${serverHeader}\r\n`;
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${server}Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
  return body.length;
}
