#!/usr/bin/env node
// The Fetch gateway's own cost per request, in one process and without sockets, so that a change
// of a few percent of it can be seen on a busy machine (the minimum of many short runs is what a
// quiet CPU gives): real IncomingMessage/ServerResponse objects (node:http's, no socket), the
// hello app of bench/hello-fetch.mjs through `createAppListener` (30 s timeout, an
// onResponseClose hook as the worker has), then 'finish' and 'close' as if the socket took it
// all. "raw" is the raw node:http answer of bench/servers/node-hello.mjs on the same objects: the
// difference is what the gateway adds. The kernel's share of a real request (writev on loopback,
// most of it) is not in here: see `npm run bench` and bench/app-ab.mjs for whole requests.
//
// usage: node bench/gateway-cost.mjs [CHECKOUT...]   (default: this checkout; each needs dist/)
//   e.g. node bench/gateway-cost.mjs . ../main      env: ROUNDS (15), N (20000 requests a round)
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const checkouts = process.argv.slice(2).length > 0 ? process.argv.slice(2) : [ROOT];
const rounds = Number(process.env.ROUNDS) || 15;
const n = Number(process.env.N) || 20_000;

const body = Buffer.from('Hello, World!');
const subjects = [{ name: 'raw node:http listener', listener: (req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length });
  res.end(body);
} }];
const { default: app } = await import(pathToFileURL(join(ROOT, 'bench', 'hello-fetch.mjs')).href);
for (const checkout of checkouts) {
  const dir = resolve(checkout);
  // A query per checkout: each gets its own module instances.
  const { createAppListener } = await import(`${pathToFileURL(join(dir, 'dist', 'app', 'gateway', 'listener.js')).href}?${encodeURIComponent(dir)}`);
  let inFlight = 0;
  const listener = createAppListener({ kind: 'fetch', file: 'hello-fetch.mjs', via: 'fetch method', fetch: app.fetch.bind(app) }, {
    timeoutMs: 30_000,
    waitUntil: () => undefined,
    onResponseClose: () => (inFlight -= 1),
  });
  subjects.push({ name: checkout, listener: (req, res) => {
    inFlight += 1;
    listener(req, res);
  } });
}

const socket = new Socket();
function request(listener) {
  const req = new IncomingMessage(socket);
  req.method = 'GET';
  req.url = '/';
  req.rawHeaders = ['Host', '127.0.0.1:8080', 'User-Agent', 'wrk'];
  void req.headers; // node:http's server reads Host of every HTTP/1.1 request, which builds them
  const res = new ServerResponse(req);
  listener(req, res);
  // As if the socket had taken it all: finished when it closes.
  res.outputData = [];
  res.outputSize = 0;
  res.emit('finish');
  res.emit('close');
}

const best = subjects.map(() => Infinity);
for (let round = 0; round < rounds; round++) {
  subjects.forEach((subject, i) => {
    const started = process.hrtime.bigint();
    for (let k = 0; k < n; k++) request(subject.listener);
    best[i] = Math.min(best[i], Number(process.hrtime.bigint() - started) / n);
  });
}
const raw = best[0];
subjects.forEach((subject, i) => console.log(`${subject.name}: ${Math.round(best[i])} ns a request${i > 0 ? `, ${Math.round(best[i] - raw)} ns more than raw` : ''} (best of ${rounds} rounds of ${n})`));
