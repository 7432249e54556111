#!/usr/bin/env node
// The reverse proxy's own cost per request, in one process and without sockets, so that a change
// of a few percent of it can be seen on a busy machine (the minimum of many short runs is what a
// quiet CPU gives). Each request is a real IncomingMessage/ServerResponse pair (node:http's, no
// socket) through Portico's request phases as edge/server.ts runs them (head and framing checks,
// then the pipeline: target, host, route, the proxy handler, sendHead), against an upstream pool
// replaced by a dispatcher that answers at once, in a microtask, with nginx's head for "hello"
// (Server, Date, Content-Type, Content-Length, Connection) and its 5 bytes. Handlers of undici's
// newer form go through undici's own adapter (UnwrapHandler), as Dispatcher.dispatch does.
// The peers are the minimal proxies of bench/servers/node-proxy.mjs on the same fake pool:
// "undici stream" (the bench's "undici minimal proxy") and "undici dispatch" (a lean handler).
// What is not in here: undici's client (request serialisation, its parser), node:http's parser
// and the kernel (most of a real request); see bench/proxy-ab.mjs for whole requests.
//
// usage: node bench/proxy-cost.mjs [CHECKOUT...]   (default: this checkout; each needs dist/)
//   e.g. node bench/proxy-cost.mjs /tmp/main .    env: ROUNDS (15), N (20000 requests a round)
import { createRequire } from 'node:module';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(join(ROOT, 'package.json'));
const { Dispatcher } = require('undici');
const UnwrapHandler = require('undici/lib/handler/unwrap-handler.js');
const checkouts = process.argv.slice(2).length > 0 ? process.argv.slice(2) : [ROOT];
const rounds = Number(process.env.ROUNDS) || 15;
const n = Number(process.env.N) || 20_000;

const RAW_HEAD = ['Server', 'nginx/1.22.1', 'Date', 'Tue, 24 Nov 2026 17:00:00 GMT', 'Content-Type', 'text/plain', 'Content-Length', '5', 'Connection', 'keep-alive'].map((s) => Buffer.from(s, 'latin1'));
const BODY = Buffer.from('hello');
const noop = () => undefined;

/** An upstream pool that answers every request at once (in a microtask), as undici calls a handler. */
class FakePool extends Dispatcher {
  dispatch(_opts, handler) {
    const h = UnwrapHandler.unwrap(handler);
    queueMicrotask(() => {
      h.onConnect(noop);
      if (h.onHeaders(200, RAW_HEAD.slice(), noop, 'OK') === false) return;
      h.onData(BODY);
      h.onComplete([]);
    });
    return true;
  }
  close() {
    return Promise.resolve();
  }
  destroy() {
    return Promise.resolve();
  }
}

const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate', 'proxy-authorization']);
const strip = (headers) => {
  const out = {};
  for (const name in headers) if (!HOP.has(name)) out[name] = headers[name];
  return out;
};
const peerPool = new FakePool();
const subjects = [
  {
    name: 'undici stream (minimal proxy)',
    listener: (req, res) => {
      peerPool.stream(
        { path: req.url, method: req.method, headers: strip(req.headers), body: null },
        ({ statusCode, headers }) => {
          res.writeHead(statusCode, strip(headers));
          return res;
        },
        (error) => {
          if (error) res.destroy();
        },
      );
    },
  },
  {
    name: 'undici dispatch (lean handler)',
    listener: (req, res) => {
      const flat = [];
      for (let i = 0; i < req.rawHeaders.length; i += 2) if (!HOP.has(req.rawHeaders[i].toLowerCase())) flat.push(req.rawHeaders[i], req.rawHeaders[i + 1]);
      peerPool.dispatch(
        { path: req.url, method: req.method, headers: flat, body: null },
        {
          onRequestStart() {},
          onResponseStart(_c, statusCode, headers) {
            res.writeHead(statusCode, strip(headers));
          },
          onResponseData(_c, chunk) {
            res.write(chunk);
          },
          onResponseEnd() {
            res.end();
          },
          onResponseError() {
            res.destroy();
          },
        },
      );
    },
  },
];

for (const checkout of checkouts) {
  const dir = resolve(checkout);
  // A query per checkout: each gets its own module instances.
  const load = (file) => import(`${pathToFileURL(join(dir, 'dist', file)).href}?${encodeURIComponent(dir)}`);
  const [{ validateConfig }, { buildGeneration }, { handleRequest }, limits, framing] = await Promise.all([load('config/load.js'), load('edge/generation.js'), load('edge/pipeline.js'), load('edge/http/limits.js'), load('edge/http/framing.js')]);
  const config = validateConfig({ workers: 1, log: { level: 'warn', access: false }, servers: [{ listen: '127.0.0.1:8080', routes: [{ prefix: '/', proxy: { to: 'http://127.0.0.1:9' } }] }] }, dir, null);
  // Checkouts from before the EdgeEnvironment (issue #13) build a generation from the config alone.
  const environment = await load('edge/environment.js').catch(() => null);
  const generation = environment ? buildGeneration(config, environment.createEdgeEnvironment()) : buildGeneration(config);
  for (const group of generation.upstreams.values()) {
    for (const server of group.servers) {
      void server.pool.destroy();
      Object.defineProperty(server, 'pool', { value: new FakePool() });
    }
  }
  const info = { scheme: 'http', port: 8080, key: [...(generation.listeners ?? generation.listenAddresses).keys()][0] };
  const http = config.http;
  subjects.push({
    name: `portico ${checkout}`,
    // Phase 0 (edge/listen/kinds.ts admitted), then the pipeline.
    listener: (req, res) => {
      if (!limits.admitOnConnection(req, res, http)) return;
      if (limits.headRefusal(req, http) ?? framing.framingRefusal(req)) throw new Error('refused');
      limits.watchBody(req, res, http);
      handleRequest(generation, info, req, res);
    },
  });
}

// One connection per batch of 64 (Portico counts requests per connection, nginx keepalive_requests).
let socket = new Socket();
function request(listener) {
  const req = new IncomingMessage(socket);
  req.method = 'GET';
  req.url = '/';
  req.httpVersionMajor = 1;
  req.httpVersionMinor = 1;
  req.httpVersion = '1.1';
  // As node:http's parser hands them over (this also sets the count the lazy `headers` reads).
  req._addHeaderLines(['Host', '127.0.0.1:8080', 'User-Agent', 'wrk'], 4);
  req.complete = true;
  void req.headers; // node:http's server reads Host of every HTTP/1.1 request, which builds them
  const res = new ServerResponse(req);
  res.once('finish', () => res.emit('close'));
  listener(req, res);
  return res;
}

async function run({ name, listener }) {
  // 64 requests at a time, as wrk's 64 connections, then their microtasks and the next batch.
  for (let k = 0; k < n; k += 64) {
    const batch = [];
    socket = new Socket();
    for (let j = 0; j < 64; j++) batch.push(request(listener));
    await new Promise(setImmediate);
    for (const res of batch) {
      if (res.statusCode !== 200) throw new Error(`${name} answered ${res.statusCode}`);
      if (!res.writableEnded) unanswered.set(name, (unanswered.get(name) ?? 0) + 1);
      // As if the socket had taken it all.
      res.outputData = [];
      res.outputSize = 0;
      res.emit('finish');
    }
  }
}

/** Requests not answered by the end of their batch's turn of the loop (counted, not timed). */
const unanswered = new Map();
const best = subjects.map(() => Infinity);
for (let round = 0; round < rounds; round++) {
  for (const [i, subject] of subjects.entries()) {
    const started = process.hrtime.bigint();
    await run(subject);
    best[i] = Math.min(best[i], Number(process.hrtime.bigint() - started) / n);
  }
}
const ref = best[0];
subjects.forEach((subject, i) => console.log(`${subject.name}: ${Math.round(best[i])} ns a request${i > 0 ? ` (${best[i] >= ref ? '+' : ''}${Math.round(best[i] - ref)} ns against the minimal proxy)` : ''} (best of ${rounds} rounds of ${n})`));
for (const [name, count] of unanswered) console.log(`${name}: ${count} requests still unanswered at the end of their turn`);
process.exit(0);
