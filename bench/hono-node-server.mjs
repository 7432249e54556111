// The same Fetch app on @hono/node-server, in a node:cluster of WORKERS processes (default 2), so it
// compares with `portico app --workers 2` and a raw node:http cluster of 2.
import cluster from 'node:cluster';
import { serve } from '@hono/node-server';
import app from './hello-fetch.mjs';

const workers = Number(process.env.WORKERS) || 2;
const port = Number(process.env.PORT) || 18080;
if (cluster.isPrimary && workers > 1) {
  for (let i = 0; i < workers; i++) cluster.fork();
  process.on('SIGTERM', () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.kill('SIGTERM');
    process.exit(0);
  });
} else {
  serve({ fetch: app.fetch, port, hostname: '127.0.0.1' });
  process.on('SIGTERM', () => process.exit(0));
}
