// A reverse-proxy peer to http://ORIGIN on 127.0.0.1:PORT. argv[2]:
//   undici             node:http + undici Pool.stream, hop-by-hop headers stripped (the "minimal undici proxy")
//   undici-dispatch    the same with Pool.dispatch and a lean handler (what Portico's proxy does)
//   undici-request     the same with Pool.request (a Readable body piped to the response)
//   http-agent         node:http + http.request with a keep-alive Agent
//   http-proxy         the http-proxy package, keep-alive Agent
//   fastify-http-proxy fastify + @fastify/http-proxy (undici underneath)
import { Agent, createServer, request } from 'node:http';

const kind = process.argv[2];
const port = Number(process.env.PORT) || 18080;
const origin = process.env.ORIGIN;
if (!origin) throw new Error('ORIGIN is not set');
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate', 'proxy-authorization']);
const strip = (headers) => {
  const out = {};
  for (const name in headers) if (!HOP.has(name)) out[name] = headers[name];
  return out;
};
const listen = (handler) => {
  const server = createServer(handler);
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 121_000;
  server.listen(port, '127.0.0.1', 4096);
};
if (kind === 'undici') {
  const { Pool } = await import('undici');
  const pool = new Pool(`http://${origin}`, { connections: 64, pipelining: 1, keepAliveTimeout: 120_000 });
  listen((req, res) => {
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    pool.stream(
      { path: req.url, method: req.method, headers: strip(req.headers), body: hasBody ? req : null },
      ({ statusCode, headers }) => {
        res.writeHead(statusCode, strip(headers));
        return res;
      },
      (error) => {
        if (error) {
          if (!res.headersSent) res.writeHead(502);
          res.end();
        }
      },
    );
  });
} else if (kind === 'undici-dispatch') {
  const { Pool } = await import('undici');
  const dispatcher = new Pool(`http://${origin}`, { connections: 64, pipelining: 1, keepAliveTimeout: 120_000 });
  listen((req, res) => {
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    const flat = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) if (!HOP.has(req.rawHeaders[i].toLowerCase())) flat.push(req.rawHeaders[i], req.rawHeaders[i + 1]);
    dispatcher.dispatch(
      { path: req.url, method: req.method, headers: flat, body: hasBody ? req : null },
      {
        onRequestStart() {},
        onResponseStart(_controller, statusCode, headers) {
          res.writeHead(statusCode, strip(headers));
        },
        onResponseData(controller, chunk) {
          if (!res.write(chunk)) {
            controller.pause();
            res.once('drain', () => controller.resume());
          }
        },
        onResponseEnd() {
          res.end();
        },
        onResponseError() {
          if (!res.headersSent) res.writeHead(502);
          res.end();
        },
      },
    );
  });
} else if (kind === 'undici-request') {
  const { Pool } = await import('undici');
  const pool = new Pool(`http://${origin}`, { connections: 64, pipelining: 1, keepAliveTimeout: 120_000 });
  listen(async (req, res) => {
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    try {
      const answer = await pool.request({ path: req.url, method: req.method, headers: strip(req.headers), body: hasBody ? req : null });
      res.writeHead(answer.statusCode, strip(answer.headers));
      answer.body.pipe(res);
    } catch {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    }
  });
} else if (kind === 'http-agent') {
  const [host, originPort] = origin.split(':');
  const agent = new Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 256 });
  listen((req, res) => {
    const upstream = request({ host, port: originPort, agent, method: req.method, path: req.url, headers: strip(req.headers) }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, strip(answer.headers));
      answer.pipe(res);
    });
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(upstream);
  });
} else if (kind === 'http-proxy') {
  const { default: httpProxy } = await import('http-proxy');
  const agent = new Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 256 });
  const proxy = httpProxy.createProxyServer({ target: `http://${origin}`, agent, xfwd: false });
  proxy.on('error', (_error, _req, res) => {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  });
  listen((req, res) => proxy.web(req, res));
} else if (kind === 'fastify-http-proxy') {
  const { default: Fastify } = await import('fastify');
  const { default: fastifyHttpProxy } = await import('@fastify/http-proxy');
  const app = Fastify({ logger: false, keepAliveTimeout: 120_000 });
  await app.register(fastifyHttpProxy, { upstream: `http://${origin}` });
  await app.listen({ port, host: '127.0.0.1', backlog: 4096 });
} else {
  throw new Error(`unknown kind ${kind}`);
}
process.on('SIGTERM', () => process.exit(0));
