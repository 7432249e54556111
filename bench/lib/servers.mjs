// The servers of bench/run.mjs: Portico and its peers, each a function of the run's context that
// returns how to start it ({ argv, env }) or why it cannot run ({ unavailable }). nginx, Caddy and
// HAProxy get private configs written under the run's own temporary directory (never a
// packaged service, never state from an earlier run); all peers run one worker / one thread
// (Caddy with GOMAXPROCS=1), access logs off, long keep-alive, as in the shared bench scripts.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const node = process.execPath;

/** nginx in the foreground with a config of `mode` in its own folder. */
function nginx(ctx, name, mode, { port = ctx.port, workers = 1, tls = null } = {}) {
  if (!ctx.tools.nginx) return { unavailable: 'nginx is not installed (Debian package nginx)' };
  const dir = join(ctx.tmp, `nginx-${name}-${port}`);
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  let upstream = '';
  let location;
  switch (mode) {
    case 'hello5':
      location = 'default_type text/plain; return 200 "hello";';
      break;
    case 'hello5-cacheable':
      // The answer says it may be stored for 10 minutes (RFC 9111 §5.2.2.1), so every cache keeps it.
      location = 'default_type text/plain; add_header Cache-Control "public, max-age=600"; return 200 "hello";';
      break;
    case 'static':
      location = `root "${ctx.docroot}";`;
      break;
    case 'limit':
      // A limit every request passes (the rate and burst far above what wrk sends): the cost of the check.
      upstream = 'limit_req_zone $binary_remote_addr zone=bench:10m rate=1000000r/s;';
      location = 'limit_req zone=bench burst=1000000 nodelay; default_type text/plain; return 200 "hello";';
      break;
    case 'proxy':
      upstream = `upstream origin { server ${ctx.origin}; keepalive 32; keepalive_requests 1000000; keepalive_timeout 120s; }`;
      location = 'proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";';
      break;
    case 'gunicorn':
      // A unix socket, no keep-alive to the upstream: gunicorn's sync workers close every connection.
      location = `proxy_pass http://unix:${ctx.appSocket}:;`;
      break;
    case 'uwsgi':
      location = `include /etc/nginx/uwsgi_params; uwsgi_pass unix:${ctx.appSocket};`;
      break;
    case 'node-cluster':
      // nginx in front of a node:cluster (the nginx + PM2 setup): keep-alive to the app, as a tuned site has it.
      upstream = `upstream app { server unix:${ctx.appSocket}; keepalive 32; keepalive_requests 1000000; keepalive_timeout 120s; }`;
      location = 'proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";';
      break;
    case 'cache':
      upstream = `upstream origin { server ${ctx.origin}; keepalive 32; keepalive_requests 1000000; keepalive_timeout 120s; }
  proxy_cache_path "${dir}/cache" keys_zone=bench:10m;`;
      location = 'proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_cache bench; add_header X-Cache-Status $upstream_cache_status;';
      break;
    default:
      throw new Error(`nginx mode ${mode}`);
  }
  const mime = existsSync('/etc/nginx/mime.types') ? 'include /etc/nginx/mime.types;' : 'types { text/html html; application/octet-stream bin; }';
  writeFileSync(
    join(dir, 'nginx.conf'),
    `worker_processes ${workers};
worker_rlimit_nofile 19000;
daemon off;
pid "${dir}/nginx.pid";
error_log "${dir}/error.log" warn;
events { worker_connections 18000; }
http {
  ${mime}
  default_type application/octet-stream;
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_timeout 120s; keepalive_requests 1000000;
  client_body_temp_path "${dir}/tmp/body"; proxy_temp_path "${dir}/tmp/proxy"; fastcgi_temp_path "${dir}/tmp/fcgi";
  uwsgi_temp_path "${dir}/tmp/uwsgi"; scgi_temp_path "${dir}/tmp/scgi";
  ${upstream}
  server {
    listen 127.0.0.1:${port} backlog=4096${tls ? ` ssl${tls === 'h2' ? ' http2' : ''}` : ''};
    ${tls ? `ssl_certificate "${ctx.cert}"; ssl_certificate_key "${ctx.key}"; ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:bench:10m;` : ''}
    location / { ${location} }
  }
}
`,
  );
  return { argv: [ctx.tools.nginx, '-e', `${dir}/error.log`, '-p', dir, '-c', `${dir}/nginx.conf`] };
}

function caddy(ctx, mode) {
  if (!ctx.tools.caddy) return { unavailable: 'caddy is not installed (Debian package caddy)' };
  const file = join(ctx.tmp, `caddy-${mode}.Caddyfile`);
  const body = mode === 'proxy' ? `reverse_proxy ${ctx.origin}` : mode === 'static' ? `root * "${ctx.docroot}"\n  file_server` : 'respond "Hello, World!" 200';
  writeFileSync(file, `{\n  admin off\n  auto_https off\n}\nhttp://127.0.0.1:${ctx.port} {\n  bind 127.0.0.1\n  ${body}\n}\n`);
  return {
    argv: [ctx.tools.caddy, 'run', '--adapter', 'caddyfile', '--config', file],
    env: { GOMAXPROCS: '1', XDG_DATA_HOME: join(ctx.tmp, 'caddy-data'), XDG_CONFIG_HOME: join(ctx.tmp, 'caddy-config') },
  };
}

function haproxy(ctx) {
  if (!ctx.tools.haproxy) return { unavailable: 'haproxy is not installed (Debian package haproxy)' };
  const file = join(ctx.tmp, 'haproxy.cfg');
  writeFileSync(
    file,
    `global
  nbthread 1
  maxconn 9000
defaults
  mode http
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  timeout http-keep-alive 120s
  option http-keep-alive
  http-reuse always
frontend fe
  bind 127.0.0.1:${ctx.port}
  default_backend be
backend be
  server o1 ${ctx.origin}
`,
  );
  return { argv: [ctx.tools.haproxy, '-db', '-f', file] };
}

/** `portico up` with a JSON config: one process, access log off, keep-alive as long and as many requests as the peers'. */
function portico(ctx, name, servers, extra = {}) {
  const file = join(ctx.tmp, `portico-${name}.json`);
  const config = {
    ...extra,
    // One process, like the one-worker peers (edge workers default to one per core).
    workers: 1,
    log: { level: 'warn', access: false },
    http: { keepAliveTimeout: '120s', maxRequestsPerConnection: 1_000_000 },
    servers: servers.map((server) => ({ listen: `127.0.0.1:${ctx.port}`, ...server })),
  };
  writeFileSync(file, JSON.stringify(config, null, 2));
  return { argv: [node, join(ctx.root, 'bin', 'portico'), 'up', '--config', file] };
}

/**
 * The Python app servers of the Flask stacks, from Debian: gunicorn with 2 sync workers and uWSGI
 * with 2 processes, serving bench/servers/flask_hello.py on `bind` (a unix socket behind a front,
 * or the scenario's port when measured alone).
 */
export function appServer(ctx, kind, bind) {
  const dir = join(ctx.root, 'bench', 'servers');
  if (kind === 'gunicorn') {
    if (!ctx.tools.gunicorn) return { unavailable: 'gunicorn is not installed (Debian packages gunicorn, python3-flask)' };
    return { argv: [ctx.tools.gunicorn, '--workers', '2', '--bind', bind, '--chdir', dir, '--log-level', 'warning', 'flask_hello:app'] };
  }
  if (!ctx.tools.uwsgi) return { unavailable: 'uwsgi is not installed (Debian packages uwsgi, uwsgi-plugin-python3, python3-flask)' };
  const socket = bind.startsWith('unix:') ? ['--uwsgi-socket', bind.slice('unix:'.length), '--chmod-socket=666'] : ['--http-socket', bind];
  return { argv: [ctx.tools.uwsgi, '--plugin', 'python3', ...socket, '--wsgi-file', join(dir, 'flask_hello.py'), '--callable', 'app', '--master', '--processes', '2', '--die-on-term', '--disable-logging'] };
}

/**
 * A front and its app server as one process tree on the server's CPU (the WSGI scenario: each
 * server brings its own app server). The app server starts first, in the background; the front
 * starts once the app's socket exists, in its place (exec), so the tree's CPU counts both and a
 * stop of the group stops both.
 */
function frontWithApp(ctx, kind, frontName, socketName) {
  const socket = join(ctx.tmp, `${socketName}.sock`);
  // 'node-cluster': the raw node:http cluster of 2 (bench/servers/node-hello.mjs) on the socket.
  const app = kind === 'node-cluster' ? { argv: ['/usr/bin/env', `SOCKET=${socket}`, 'WORKERS=2', node, join(ctx.root, 'bench', 'servers', 'node-hello.mjs')] } : appServer(ctx, kind, `unix:${socket}`);
  const front = nginx({ ...ctx, appSocket: socket }, frontName, kind);
  if (app.unavailable || front.unavailable) return { unavailable: app.unavailable ?? front.unavailable };
  // The socket of an earlier round goes first, so the wait below sees this round's app listen.
  const script = `rm -f "${socket}"; app=("\${@:1:${app.argv.length}}"); shift ${app.argv.length}; "\${app[@]}" & for i in $(seq 200); do [ -S "${socket}" ] && break; sleep 0.05; done; exec "$@"`;
  return { argv: ['bash', '-c', script, 'bash', ...app.argv, ...front.argv] };
}

const nodePeer = (ctx, script, ...args) => ({ argv: [node, join(ctx.root, 'bench', 'servers', script), ...args] });

/**
 * The scenarios: what is requested, the body size every server must return, the reference the
 * ratios are taken to, the goal (issues #8, #14, #19), the bare Node server that is Node's own
 * ceiling there (`ceiling`, where there is one), and the servers in the order they run in a round.
 */
export const SCENARIOS = {
  'static-1k': {
    title: 'static 1 KiB file',
    path: '/1k.bin',
    bytes: 1024,
    reference: 'nginx',
    goal: { ratio: 0.9 },
    ceiling: 'node:http (file in memory)',
    servers: {
      portico: (ctx) => portico(ctx, 'static', [{ static: { root: ctx.docroot } }]),
      // The same with the admin listener, so metrics count every request (issue #16's A/B).
      'portico metrics': (ctx) => portico(ctx, 'static-metrics', [{ static: { root: ctx.docroot } }], { admin: { listen: `unix:${join(ctx.tmp, 'admin-static.sock')}` } }),
      nginx: (ctx) => nginx(ctx, 'static', 'static'),
      // Node's own ceiling (issue #19): a bare node:http server answering the file from memory.
      'node:http (file in memory)': (ctx) => nodePeer(ctx, 'node-bare.mjs', 'http'),
      caddy: (ctx) => caddy(ctx, 'static'),
      sirv: (ctx) => nodePeer(ctx, 'node-static.mjs', 'sirv'),
      'serve-static': (ctx) => nodePeer(ctx, 'node-static.mjs', 'serve-static'),
      '@fastify/static': (ctx) => nodePeer(ctx, 'node-static.mjs', 'fastify-static'),
    },
  },
  // HTTPS: the same certificate (ECDSA P-256, made for the run) for both; TLS 1.3 by default.
  'https-static-1k': {
    title: 'static 1 KiB file over TLS (HTTP/1.1)',
    path: '/1k.bin',
    bytes: 1024,
    tls: true,
    reference: 'nginx',
    goal: { ratio: 0.8 },
    ceiling: 'node:https',
    servers: {
      portico: (ctx) => portico(ctx, 'static-tls', [{ tls: { cert: ctx.cert, key: ctx.key }, static: { root: ctx.docroot } }]),
      nginx: (ctx) => nginx(ctx, 'static-tls', 'static', { tls: 'h1' }),
      // Node's own ceiling: a bare node:https server answering the file from memory.
      'node:https': (ctx) => nodePeer(ctx, 'node-bare.mjs', 'https', ctx.cert, ctx.key),
    },
  },
  // HTTP/2 with h2load (nghttp2-client): 16 connections × 8 concurrent streams.
  'h2-static-1k': {
    title: 'static 1 KiB file over HTTP/2 (h2load, 16 connections × 8 streams)',
    path: '/1k.bin',
    bytes: 1024,
    tls: true,
    client: 'h2load',
    reference: 'nginx',
    goal: { ratio: 0.6 },
    ceiling: 'node:http2 (stream)',
    servers: {
      portico: (ctx) => portico(ctx, 'static-h2', [{ tls: { cert: ctx.cert, key: ctx.key }, static: { root: ctx.docroot } }]),
      nginx: (ctx) => nginx(ctx, 'static-h2', 'static', { tls: 'h2' }),
      // Node's own ceilings: bare node:http2 servers answering the file from memory, through the
      // compatibility API (req, res) and through the stream API (respond()).
      'node:http2 (compat)': (ctx) => nodePeer(ctx, 'node-bare.mjs', 'h2-compat', ctx.cert, ctx.key),
      'node:http2 (stream)': (ctx) => nodePeer(ctx, 'node-bare.mjs', 'h2-stream', ctx.cert, ctx.key),
    },
  },
  'static-1m': {
    title: 'static 1 MiB file',
    path: '/1m.bin',
    bytes: 1024 * 1024,
    reference: 'nginx',
    goal: { ratio: 0.7 },
    servers: {
      portico: (ctx) => portico(ctx, 'static', [{ static: { root: ctx.docroot } }]),
      nginx: (ctx) => nginx(ctx, 'static', 'static'),
      caddy: (ctx) => caddy(ctx, 'static'),
      sirv: (ctx) => nodePeer(ctx, 'node-static.mjs', 'sirv'),
      'serve-static': (ctx) => nodePeer(ctx, 'node-static.mjs', 'serve-static'),
      '@fastify/static': (ctx) => nodePeer(ctx, 'node-static.mjs', 'fastify-static'),
    },
  },
  proxy: {
    title: 'reverse proxy, 5-byte answer, keep-alive upstream',
    path: '/',
    bytes: 5,
    origin: 'hello5',
    reference: 'nginx',
    goal: { ratio: 0.75 },
    ceiling: 'node:http bare proxy',
    servers: {
      portico: (ctx) => portico(ctx, 'proxy', [{ routes: [{ prefix: '/', proxy: { to: `http://${ctx.origin}` } }] }]),
      'portico metrics': (ctx) => portico(ctx, 'proxy-metrics', [{ routes: [{ prefix: '/', proxy: { to: `http://${ctx.origin}` } }] }], { admin: { listen: `unix:${join(ctx.tmp, 'admin-proxy.sock')}` } }),
      nginx: (ctx) => nginx(ctx, 'proxy', 'proxy'),
      haproxy: (ctx) => haproxy(ctx),
      caddy: (ctx) => caddy(ctx, 'proxy'),
      // Node's own ceiling: a bare node:http proxy on kept-alive raw sockets (bench/servers/node-bare-proxy.mjs).
      'node:http bare proxy': (ctx) => ({ ...nodePeer(ctx, 'node-bare-proxy.mjs'), env: { ORIGIN: ctx.origin } }),
      'undici minimal proxy': (ctx) => ({ ...nodePeer(ctx, 'node-proxy.mjs', 'undici'), env: { ORIGIN: ctx.origin } }),
      'node:http + http.Agent': (ctx) => ({ ...nodePeer(ctx, 'node-proxy.mjs', 'http-agent'), env: { ORIGIN: ctx.origin } }),
      'http-proxy': (ctx) => ({ ...nodePeer(ctx, 'node-proxy.mjs', 'http-proxy'), env: { ORIGIN: ctx.origin } }),
      '@fastify/http-proxy': (ctx) => ({ ...nodePeer(ctx, 'node-proxy.mjs', 'fastify-http-proxy'), env: { ORIGIN: ctx.origin } }),
    },
  },
  'proxy-transports': {
    title: 'proxy transports (minimal Node proxies, 5-byte answer)',
    optional: true,
    path: '/',
    bytes: 5,
    origin: 'hello5',
    reference: 'nginx',
    goal: {},
    servers: {
      portico: (ctx) => portico(ctx, 'proxy', [{ routes: [{ prefix: '/', proxy: { to: `http://${ctx.origin}` } }] }]),
      nginx: (ctx) => nginx(ctx, 'proxy', 'proxy'),
      'undici Pool.dispatch, lean handler': (ctx) => ({ ...nodePeer(ctx, 'node-proxy.mjs', 'undici-dispatch'), env: { ORIGIN: ctx.origin } }),
      'undici Pool.stream': (ctx) => ({ ...nodePeer(ctx, 'node-proxy.mjs', 'undici'), env: { ORIGIN: ctx.origin } }),
      'undici Pool.request': (ctx) => ({ ...nodePeer(ctx, 'node-proxy.mjs', 'undici-request'), env: { ORIGIN: ctx.origin } }),
      'node:http + http.Agent': (ctx) => ({ ...nodePeer(ctx, 'node-proxy.mjs', 'http-agent'), env: { ORIGIN: ctx.origin } }),
    },
  },
  // Issue #17: what a rate limit costs when its state is in Redis (`state`), beside the node's own
  // memory store and nginx's limit_req; every request passes the limit.
  'rate-limit': {
    title: 'rate limit on every request (all pass), 5-byte answer; its state in memory or in Redis',
    optional: true,
    path: '/',
    bytes: 5,
    origin: 'redis',
    reference: 'nginx limit_req',
    goal: {},
    servers: {
      'portico, no limit': (ctx) => portico(ctx, 'nolimit', [{ routes: [{ prefix: '/', respond: { status: 200, body: 'hello' } }] }]),
      'portico, limit in memory': (ctx) => portico(ctx, 'limit', [{ routes: [{ prefix: '/', rateLimit: { zone: 'bench', burst: 1_000_000, nodelay: true }, respond: { status: 200, body: 'hello' } }] }], { limits: { rateZones: { bench: { key: '$remote_addr', rate: '1000000r/s' } } } }),
      'portico, limit in Redis': (ctx) =>
        portico(ctx, 'limit-redis', [{ routes: [{ prefix: '/', rateLimit: { zone: 'bench', burst: 1_000_000, nodelay: true }, respond: { status: 200, body: 'hello' } }] }], {
          limits: { rateZones: { bench: { key: '$remote_addr', rate: '1000000r/s' } } },
          state: { redis: { url: `redis://${ctx.origin}` } },
        }),
      'nginx limit_req': (ctx) => nginx(ctx, 'limit', 'limit'),
    },
  },
  'cache-hit': {
    title: 'cache hit (proxy cache)',
    path: '/',
    bytes: 5,
    origin: 'hello5-cacheable',
    reference: 'nginx proxy_cache',
    goal: { ratio: 0.8 },
    servers: {
      // Memory tier only (no `dir`), as nginx's hot entries come from its page-cached files; the
      // check after the warm-up makes sure the measured answers are hits.
      portico: (ctx) => ({
        ...portico(ctx, 'cache', [{ routes: [{ prefix: '/', proxy: { to: `http://${ctx.origin}` }, cache: true }] }]),
        hit: { header: 'cache-status', pattern: /hit/i },
      }),
      'nginx proxy_cache': (ctx) => ({ ...nginx(ctx, 'cache', 'cache'), hit: { header: 'x-cache-status', pattern: /^HIT$/ } }),
    },
  },
  'app-hello': {
    title: 'app hello world, 2 workers',
    path: '/',
    bytes: 13,
    reference: 'node:http cluster',
    goal: { ratio: 0.9 },
    servers: {
      'portico app': (ctx) => ({ argv: [node, join(ctx.root, 'bin', 'portico'), 'app', join(ctx.root, 'bench', 'hello-fetch.mjs'), '--workers', '2', '--bind', `127.0.0.1:${ctx.port}`] }),
      'node:http cluster': (ctx) => ({ ...nodePeer(ctx, 'node-hello.mjs'), env: { WORKERS: '2' } }),
      '@hono/node-server cluster': (ctx) => ({ argv: [node, join(ctx.root, 'bench', 'hono-node-server.mjs')], env: { WORKERS: '2' } }),
    },
  },
  // The classic stack (issue #19): browser → front → gunicorn/uWSGI → Flask. The app server runs
  // for the whole scenario on the server's CPU 0 (a small box: front and app share a core), wrk
  // with 32 connections on CPU 1; the app server alone, on the port, is the ceiling.
  'gunicorn-flask': {
    title: 'Flask on gunicorn (2 sync workers, unix socket), front and app on one CPU',
    path: '/',
    bytes: 13,
    app: 'gunicorn',
    connections: 32,
    reference: 'nginx',
    goal: { ratio: 0.95 },
    ceiling: 'node:http bare front',
    servers: {
      portico: (ctx) => portico(ctx, 'gunicorn', [{ routes: [{ prefix: '/', proxy: { to: `unix:${ctx.appSocket}` } }] }]),
      nginx: (ctx) => nginx(ctx, 'gunicorn', 'gunicorn'),
      // Node's own ceiling: a bare node:http front, one raw socket per request (bench/servers/node-front.mjs).
      'node:http bare front': (ctx) => nodePeer(ctx, 'node-front.mjs', 'http', ctx.appSocket),
      'gunicorn alone': (ctx) => ({ ...appServer(ctx, 'gunicorn', `127.0.0.1:${ctx.port}`) }),
    },
  },
  'uwsgi-flask': {
    title: 'Flask on uWSGI (2 processes, uwsgi protocol on a unix socket), front and app on one CPU',
    path: '/',
    bytes: 13,
    app: 'uwsgi',
    connections: 32,
    reference: 'nginx',
    goal: { ratio: 0.95 },
    ceiling: 'node:http bare front',
    servers: {
      portico: (ctx) => portico(ctx, 'uwsgi', [{ routes: [{ prefix: '/', proxy: { to: `uwsgi+unix:${ctx.appSocket}` } }] }]),
      nginx: (ctx) => nginx(ctx, 'uwsgi', 'uwsgi'),
      'node:http bare front': (ctx) => nodePeer(ctx, 'node-front.mjs', 'uwsgi', ctx.appSocket),
      'uwsgi alone (--http-socket)': (ctx) => ({ ...appServer(ctx, 'uwsgi', `127.0.0.1:${ctx.port}`) }),
    },
  },
  // One program instead of three (issue #18): the Flask app on Portico's own WSGI workers behind
  // its edge, beside nginx in front of gunicorn and of uWSGI. Each server brings its app server:
  // front and app share CPU 0 (one process tree), wrk runs on CPU 1.
  'wsgi-flask': {
    title: 'Flask on 2 workers: Portico WSGI workers behind its edge vs nginx → gunicorn (2 sync) and nginx uwsgi_pass → uWSGI (2 processes), all on one CPU',
    path: '/',
    bytes: 13,
    connections: 32,
    reference: 'nginx → uWSGI',
    goal: { ratio: 1.0 },
    servers: {
      'portico (WSGI workers)': (ctx) =>
        portico(ctx, 'wsgi', [{ routes: [{ prefix: '/', app: 'flask' }] }], { apps: { flask: { wsgi: 'flask_hello:app', python: '/usr/bin/python3', cwd: join(ctx.root, 'bench', 'servers'), workers: 2 } } }),
      'nginx → uWSGI': (ctx) => frontWithApp(ctx, 'uwsgi', 'wsgi-uwsgi', 'wsgi-uwsgi'),
      'nginx → gunicorn': (ctx) => frontWithApp(ctx, 'gunicorn', 'wsgi-gunicorn', 'wsgi-gunicorn'),
    },
  },
  // The Node team's stack (issue #19): one program (`portico up`, its edge and 2 app workers)
  // beside two (nginx → a node:http cluster of 2, the nginx + PM2 setup), the same (req, res)
  // hello app in both; each server brings its app: one process tree on CPU 0, wrk on CPU 1.
  'node-stack': {
    title: 'Node app on 2 workers: portico up (edge + app workers) vs nginx → node:http cluster of 2, all on one CPU',
    path: '/',
    bytes: 13,
    reference: 'nginx → node:http cluster',
    goal: { ratio: 1.0 },
    servers: {
      'portico up': (ctx) => portico(ctx, 'node-stack', [{ routes: [{ prefix: '/', app: 'hello' }] }], { apps: { hello: { module: join(ctx.root, 'bench', 'hello-listener.mjs'), workers: 2 } } }),
      'nginx → node:http cluster': (ctx) => frontWithApp(ctx, 'node-cluster', 'node-stack', 'node-stack'),
    },
  },
  idle: {
    title: '10,000 idle keep-alive connections',
    path: '/index.html',
    kind: 'idle',
    reference: 'nginx',
    goal: { kibPerConnection: 4 },
    ceiling: 'node:http',
    servers: {
      portico: (ctx) => portico(ctx, 'idle', [{ static: { root: ctx.docroot } }]),
      nginx: (ctx) => nginx(ctx, 'static', 'static'),
      'node:http': (ctx) => nodePeer(ctx, 'node-hello.mjs'),
      // The floor for any Node server: a bare net.Socket per connection, no HTTP at all.
      'node:net (no HTTP)': (ctx) => nodePeer(ctx, 'net-hello.mjs'),
      caddy: (ctx) => caddy(ctx, 'static'),
    },
  },
};

/** The origin of the proxy scenarios: a private nginx answering "hello", pinned beside wrk. */
export function originServer(ctx, mode) {
  if (mode === 'redis') {
    // Debian's redis-server as the shared state of the `state` scenarios, in memory only.
    const binary = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((candidate) => existsSync(candidate));
    if (!binary) return { unavailable: 'redis-server is not installed (Debian package redis-server)' };
    const [host, port] = ctx.origin.split(':');
    return { argv: [binary, '--bind', host, '--port', port, '--save', '', '--appendonly', 'no'] };
  }
  return nginx(ctx, 'origin', mode, { port: Number(ctx.origin.split(':')[1]) });
}
