// A raw node:http server answering every request with "Hello, World!" (13 bytes), the reference of
// the app scenario. env: PORT, WORKERS (> 1: a node:cluster of that many processes).
import cluster from 'node:cluster';
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
  server.listen(port, '127.0.0.1', 4096);
  process.on('SIGTERM', () => process.exit(0));
}
