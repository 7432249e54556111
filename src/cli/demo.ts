/**
 * The embedded default config: what `portico up` (and `npm start`) runs when no
 * `portico.config.*` is found. A small site on http://127.0.0.1:8080 that shows static files,
 * a redirect, a rewrite, a fixed response, a reverse-proxied API (a second server on the next
 * port plays the upstream, and `/api/` on the site is proxied to it, as nginx's `proxy_pass`),
 * and an app (demo/app.mjs) on 2 worker processes at `/app/`, balanced by the edge.
 */
import { fileURLToPath } from 'node:url';
import type { UserConfig } from '../config/schema.js';

/** The package's demo folder (dist/cli/demo.js → demo/). */
export const DEMO_DIR = fileURLToPath(new URL('../../demo/', import.meta.url));

export function demoConfig(port = 8080, host = '127.0.0.1'): UserConfig {
  const bracketed = host.includes(':') ? `[${host}]` : host;
  const apiPort = port === 0 ? 0 : port + 1;
  return {
    log: { access: { format: 'combined', path: 'stdout' } },
    // The gunicorn half: a Fetch app on 2 pre-forked workers, which the edge balances over.
    apps: { demo: { module: 'app.mjs', workers: 2 } },
    upstreams: {
      // The demo's "backend": in real life a Node app, gunicorn, or any HTTP server.
      api: { servers: [`http://127.0.0.1:${apiPort}`], keepAlive: { idleTimeout: '30s' } },
    },
    servers: [
      {
        listen: `${bracketed}:${port}`,
        static: { root: 'public', maxAge: '5m' },
        headers: { set: { 'X-Content-Type-Options': 'nosniff' } },
        routes: [
          // Static files: index.html, CSS, precompressed siblings, ranges, conditional requests.
          { prefix: '/' },
          // Hashed assets: cached for a year, immutable.
          { prefix: '/assets/', skipRegex: true, static: { maxAge: '365d', immutable: true } },
          // A redirect: the client is told to go elsewhere (the URL bar changes).
          { regex: '^/old-docs/(.*)$', redirect: { to: '/docs/$1', status: 301 } },
          // A rewrite: served from another file, the client never sees it (the URL bar stays).
          { prefix: '/blog/', rewrite: [{ from: '^/blog/([a-z0-9-]+)$', to: '/posts/$1.html', flag: 'last' }] },
          // A fixed response, like nginx `return 200 "ok"`.
          { exact: '/healthz', respond: { status: 200, body: 'ok\n' }, accessLog: false },
          // A reverse proxy: /api/... goes to the upstream as /..., with X-Forwarded-* added.
          { prefix: '/api/', proxy: { to: 'api', via: true } },
          // An app: /app/... is answered by one of the demo app's workers (the least busy).
          { prefix: '/app/', app: 'demo' },
        ],
      },
      {
        // The upstream the demo proxies to, on loopback only.
        listen: `127.0.0.1:${apiPort}`,
        accessLog: false,
        routes: [
          {
            prefix: '/api/',
            respond: {
              contentType: 'application/json',
              body: '{"service":"demo api","path":"$uri","client":"$http_x_forwarded_for","via":"$http_via"}\n',
            },
          },
        ],
      },
    ],
  };
}
