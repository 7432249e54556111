// A static-file peer for DOCROOT on 127.0.0.1:PORT. argv[2]: sirv (production mode) |
// serve-static (no express) | fastify-static (fastify + @fastify/static).
import { createServer } from 'node:http';

const kind = process.argv[2];
const port = Number(process.env.PORT) || 18080;
const root = process.env.DOCROOT;
if (!root) throw new Error('DOCROOT is not set');
const notFound = (_req, res) => {
  res.statusCode = 404;
  res.end();
};
const listen = (handler) => {
  const server = createServer(handler);
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 121_000;
  server.listen(port, '127.0.0.1', 4096);
};
if (kind === 'sirv') {
  const { default: sirv } = await import('sirv');
  const serve = sirv(root, { dev: false });
  listen((req, res) => serve(req, res, () => notFound(req, res)));
} else if (kind === 'serve-static') {
  const { default: serveStatic } = await import('serve-static');
  const serve = serveStatic(root);
  listen((req, res) => serve(req, res, () => notFound(req, res)));
} else if (kind === 'fastify-static') {
  const { default: Fastify } = await import('fastify');
  const { default: fastifyStatic } = await import('@fastify/static');
  const app = Fastify({ logger: false, keepAliveTimeout: 120_000 });
  await app.register(fastifyStatic, { root });
  await app.listen({ port, host: '127.0.0.1', backlog: 4096 });
} else {
  throw new Error(`unknown kind ${kind}`);
}
process.on('SIGTERM', () => process.exit(0));
