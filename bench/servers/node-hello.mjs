// A raw node:http server answering every request with "Hello, World!" (13 bytes), the reference of
// the app scenario. env: PORT, SOCKET (a unix socket path instead of the port: behind nginx in the
// node-stack scenario), WORKERS (> 1: a node:cluster of that many processes).
import cluster from 'node:cluster';
import { chmodSync } from 'node:fs';
import { createServer } from 'node:http';

const port = Number(process.env.PORT) || 18080;
const workers = Number(process.env.WORKERS) || 1;
if (workers > 1 && cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  process.on('SIGTERM', () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.kill('SIGTERM');
    process.exit(0);
  });
} else {
  const body = Buffer.from('Hello, World!');
  const server = createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length });
    res.end(body);
  });
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 121_000;
  // nginx's workers run as another user (nobody): the socket must be writable by them, as uWSGI's --chmod-socket=666 makes it.
  if (process.env.SOCKET) server.listen(process.env.SOCKET, 4096, () => chmodSync(process.env.SOCKET, 0o666));
  else server.listen(port, '127.0.0.1', 4096);
  process.on('SIGTERM', () => process.exit(0));
}
