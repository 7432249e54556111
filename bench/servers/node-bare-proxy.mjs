// A bare Node reverse proxy on 127.0.0.1:PORT to ORIGIN (host:port): the ceiling a Node proxy on
// node:http sets in the proxy scenario (issue #19). Kept-alive raw sockets to the origin (a stack
// of idle ones, one request at a time on each), the request written in one write, the answer's
// head split once and its body framed by Content-Length only (what the origin sends here), then
// writeHead + end. No header rules, no chunked bodies, no timeouts, no retries: the least a Node
// proxy can do per request; no client library (undici's own minimal proxy is a peer of its own).
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { splitHead } from './bare-head.mjs';

const port = Number(process.env.PORT) || 18080;
const [host, originPort] = (process.env.ORIGIN ?? '').split(':');
if (!host || !originPort) throw new Error('ORIGIN=host:port is needed');

const idle = [];

/** Calls `done({ status, headers, body })` once a whole answer came on `socket`, or `done(null)` when the socket failed. */
function exchange(socket, request, done) {
  let buffered = null;
  let needed = -1;
  let headEnd = -1;
  let head = null;
  const finish = (result) => {
    socket.off('data', onData);
    socket.off('error', onFail);
    socket.off('close', onFail);
    done(result);
  };
  const onFail = () => finish(null);
  const onData = (chunk) => {
    buffered = buffered === null ? chunk : Buffer.concat([buffered, chunk]);
    if (headEnd === -1) {
      headEnd = buffered.indexOf('\r\n\r\n');
      if (headEnd === -1) return;
      head = splitHead(buffered, headEnd);
      needed = headEnd + 4 + head.length;
    }
    if (buffered.length < needed) return;
    finish({ status: head.status, headers: head.headers, body: buffered.subarray(headEnd + 4, needed) });
  };
  socket.on('data', onData);
  socket.on('error', onFail);
  socket.on('close', onFail);
  socket.write(request);
}

const ignore = () => {};
function originSocket() {
  for (let socket = idle.pop(); socket; socket = idle.pop()) if (!socket.destroyed) return socket;
  // An idle socket the origin closes errors with nobody listening: this keeps that from throwing.
  return connect({ host, port: Number(originPort), noDelay: true }).on('error', ignore);
}

const server = createServer((req, res) => {
  const socket = originSocket();
  exchange(socket, `${req.method} ${req.url} HTTP/1.1\r\nHost: ${process.env.ORIGIN}\r\n\r\n`, (answer) => {
    if (answer === null) {
      socket.destroy();
      res.writeHead(502).end();
      return;
    }
    idle.push(socket);
    answer.headers.push('Content-Length', String(answer.body.length));
    res.writeHead(answer.status, answer.headers);
    res.end(answer.body);
  });
});
server.keepAliveTimeout = 120_000;
server.headersTimeout = 121_000;
server.listen(port, '127.0.0.1', 4096);
process.on('SIGTERM', () => process.exit(0));
