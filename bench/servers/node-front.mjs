// Bare Node fronts for the Flask stacks (issue #19): the ceiling Node itself sets when it stands
// where nginx does in front of gunicorn or uWSGI. A node:http server on 127.0.0.1:PORT; for each
// request, one fresh unix-socket connection to the app server (both close every connection), the
// request written in one write, the whole answer read until the app server closes, its head split
// once and the answer sent with writeHead + end. No routing, no limits, no header rules, no
// streaming, no timeouts: the least a Node front can do per request, to read Portico's cost beside.
// argv[2]: http (HTTP/1.1 to gunicorn, as nginx proxy_pass http://unix:…) | uwsgi (the uwsgi
// protocol, as nginx uwsgi_pass). argv[3]: the app server's unix socket.
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { splitHead } from './bare-head.mjs';

const [kind, socketPath] = process.argv.slice(2);
const port = Number(process.env.PORT) || 18080;
if ((kind !== 'http' && kind !== 'uwsgi') || !socketPath) throw new Error('usage: node-front.mjs http|uwsgi SOCKET');

/** The uwsgi packet of a body-less request (https://uwsgi-docs.readthedocs.io/en/latest/Protocol.html). */
function uwsgiPacket(req) {
  const url = req.url ?? '/';
  const query = url.indexOf('?');
  const vars = [
    ['REQUEST_METHOD', req.method ?? 'GET'],
    ['REQUEST_URI', url],
    ['PATH_INFO', query === -1 ? url : url.slice(0, query)],
    ['QUERY_STRING', query === -1 ? '' : url.slice(query + 1)],
    ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ['SERVER_NAME', '127.0.0.1'],
    ['SERVER_PORT', String(port)],
    ['REMOTE_ADDR', req.socket.remoteAddress ?? ''],
    ['HTTP_HOST', req.headers.host ?? ''],
  ];
  let size = 0;
  for (const [key, value] of vars) size += 4 + Buffer.byteLength(key, 'latin1') + Buffer.byteLength(value, 'latin1');
  const packet = Buffer.allocUnsafe(4 + size);
  packet[0] = 0;
  packet.writeUInt16LE(size, 1);
  packet[3] = 0;
  let at = 4;
  for (const [key, value] of vars) {
    at = packet.writeUInt16LE(key.length, at);
    at += packet.write(key, at, 'latin1');
    at = packet.writeUInt16LE(value.length, at);
    at += packet.write(value, at, 'latin1');
  }
  return packet;
}

function httpRequest(req) {
  return `${req.method} ${req.url} HTTP/1.1\r\nHost: ${req.headers.host ?? ''}\r\nConnection: close\r\n\r\n`;
}

const server = createServer((req, res) => {
  const chunks = [];
  const upstream = connect(socketPath);
  upstream.on('data', (chunk) => chunks.push(chunk));
  upstream.on('error', () => {
    if (!res.headersSent) res.writeHead(502).end();
    else res.destroy();
  });
  upstream.on('end', () => {
    const answer = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    const headEnd = answer.indexOf('\r\n\r\n');
    if (headEnd === -1) {
      res.writeHead(502).end();
      return;
    }
    const { status, headers } = splitHead(answer, headEnd);
    const body = answer.subarray(headEnd + 4);
    headers.push('Content-Length', String(body.length));
    res.writeHead(status, headers);
    res.end(body);
  });
  // write, not end: the app server closes when it has answered (a half-close first is not what nginx does).
  upstream.write(kind === 'uwsgi' ? uwsgiPacket(req) : httpRequest(req));
});
server.keepAliveTimeout = 120_000;
server.headersTimeout = 121_000;
server.listen(port, '127.0.0.1', 4096);
process.on('SIGTERM', () => process.exit(0));
