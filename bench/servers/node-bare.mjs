// Bare Node servers answering DOCROOT/1k.bin from memory on 127.0.0.1:PORT: the ceiling Node
// itself sets for the static scenarios, beside which Portico's own cost is read.
// argv[2]: http (node:http, cleartext) | https (node:https) | h2-compat (node:http2,
// request/response API) | h2-stream (node:http2, the stream API: 'stream' + respond()).
// argv[3], argv[4]: cert and key files (the TLS kinds).
import { readFileSync } from 'node:fs';
import { createServer as createCleartextServer } from 'node:http';
import { createSecureServer } from 'node:http2';
import { createServer } from 'node:https';
import { join } from 'node:path';

const [kind, certFile, keyFile] = process.argv.slice(2);
const port = Number(process.env.PORT) || 18443;
const root = process.env.DOCROOT;
if (!root || (kind !== 'http' && (!certFile || !keyFile))) throw new Error('DOCROOT, and for TLS a certificate and a key, are needed');
const body = readFileSync(join(root, '1k.bin'));
const tls = kind === 'http' ? null : { cert: readFileSync(certFile), key: readFileSync(keyFile), minVersion: 'TLSv1.2' };
const headers = { 'content-type': 'application/octet-stream', 'content-length': String(body.length) };

if (kind === 'http') {
  const server = createCleartextServer((_req, res) => {
    res.writeHead(200, headers);
    res.end(body);
  });
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 121_000;
  server.listen(port, '127.0.0.1', 4096);
} else if (kind === 'https') {
  const server = createServer(tls, (_req, res) => {
    res.writeHead(200, headers);
    res.end(body);
  });
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 121_000;
  server.listen(port, '127.0.0.1', 4096);
} else if (kind === 'h2-compat' || kind === 'h2-stream') {
  const server = createSecureServer({ ...tls, allowHTTP1: true, settings: { maxConcurrentStreams: 128 } });
  // HTTP/1.1 (the harness's probe) through the compatibility API in both.
  server.on('request', (_req, res) => {
    res.writeHead(200, headers);
    res.end(body);
  });
  if (kind === 'h2-stream') {
    // A 'request' listener makes node:http2 route every stream through its compatibility layer
    // (a 'stream' listener it adds); the stream API takes HTTP/2 streams back here.
    server.removeAllListeners('stream');
    const streamHeaders = { ':status': 200, ...headers };
    server.on('stream', (stream) => {
      stream.respond(streamHeaders);
      stream.end(body);
    });
  }
  server.listen(port, '127.0.0.1', 4096);
} else {
  throw new Error(`unknown kind ${kind}`);
}
process.on('SIGTERM', () => process.exit(0));
