#!/usr/bin/env node
// An interleaved A/B of the app scenario (`portico app bench/hello-fetch.mjs --workers 2`) between
// built checkouts, optionally beside the raw node:http cluster and @hono/node-server: short runs,
// many rounds, and two figures per run: req/s and the server's CPU time per request (utime+stime
// of its process tree from /proc, divided by the requests wrk counted). On a machine shared with
// other work the CPU time per request moves much less than req/s (a server that gets less of its
// CPU answers fewer requests but spends about as much CPU on each); rounds where a server got
// less than CLEAN % of its CPU are also summarised apart.
//
// usage: node bench/app-ab.mjs ROUNDS SECONDS NAME=CHECKOUT... [raw] [hono]
//   e.g. node bench/app-ab.mjs 10 3 new=. main=../main raw
// Ratios are per round against the last server named (the reference), then the median.
// env: CLEAN (default 95), CONNECTIONS (default 64), QUIET_MAX (seconds to wait for a quiet machine
// before each run, default 20). Servers on CPU 0, wrk on CPU 1, as npm run bench.
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, HZ, quietWait, runWrk, sleep, startServer, stopServer, treeRssKb, treeTicks } from './lib/proc.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const [roundsArg, secondsArg, ...specs] = process.argv.slice(2);
const rounds = Number(roundsArg);
const seconds = Number(secondsArg);
if (!(rounds > 0) || !(seconds > 0) || specs.length < 2) {
  console.error('usage: node bench/app-ab.mjs ROUNDS SECONDS NAME=CHECKOUT... [raw] [hono]');
  process.exit(2);
}
const connections = Number(process.env.CONNECTIONS) || 64;
const CLEAN = Number(process.env.CLEAN ?? 95);
const QUIET_MAX = Number(process.env.QUIET_MAX ?? 20);
const node = process.execPath;
const app = join(ROOT, 'bench', 'hello-fetch.mjs');
const servers = specs.map((spec) => {
  if (spec === 'raw') return { name: 'raw', argv: () => [node, join(ROOT, 'bench', 'servers', 'node-hello.mjs')], env: { WORKERS: '2' } };
  if (spec === 'hono') return { name: 'hono', argv: () => [node, join(ROOT, 'bench', 'hono-node-server.mjs')], env: { WORKERS: '2' } };
  const [name, checkout] = spec.split('=');
  if (!name || !checkout) throw new Error(`${spec}: expected NAME=CHECKOUT, raw or hono`);
  const root = resolve(checkout);
  return { name, argv: (port) => [node, join(root, 'bin', 'portico'), 'app', app, '--workers', '2', '--bind', `127.0.0.1:${port}`], env: {} };
});
const runs = Object.fromEntries(servers.map((s) => [s.name, []]));
for (let round = 1; round <= rounds; round++) {
  for (const s of servers) {
    await quietWait(QUIET_MAX);
    const port = await freePort();
    const proc = await startServer({ argv: s.argv(port), env: { PORT: String(port), ...s.env }, cwd: ROOT, cpus: '0', port, logFile: '/dev/null' });
    try {
      const url = `http://127.0.0.1:${port}/`;
      await runWrk({ url, seconds: 1, connections, cpus: '1', latency: false });
      await sleep(300);
      const t0 = treeTicks(proc.pid);
      const wrk = await runWrk({ url, seconds, connections, cpus: '1' });
      const t1 = treeTicks(proc.pid);
      const run = { rps: wrk.rps, p99: wrk.p99_ms, us: (((t1 - t0) / HZ) * 1e6) / wrk.requests, cpu: ((t1 - t0) / HZ / seconds) * 100, rss: treeRssKb(proc.pid) };
      runs[s.name].push(run);
      process.stderr.write(`r${round} ${s.name}: ${Math.round(run.rps)} req/s, p99 ${run.p99} ms, ${run.us.toFixed(2)} us CPU/req, server CPU ${Math.round(run.cpu)}%, RSS ${(run.rss / 1024).toFixed(1)} MiB\n`);
    } finally {
      await stopServer(proc, port);
    }
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (xs) => xs.map((x) => x.toFixed(3)).join(' ');
const ref = servers[servers.length - 1].name;
const clean = runs[ref].map((_, i) => servers.every((s) => runs[s.name][i].cpu >= CLEAN));
for (const s of servers) {
  const rps = runs[s.name].map((r, i) => r.rps / runs[ref][i].rps);
  const us = runs[s.name].map((r, i) => r.us / runs[ref][i].us);
  console.log(`${s.name}: req/s ratio to ${ref} median ${median(rps).toFixed(3)} [${fmt(rps)}]; CPU/request ratio median ${median(us).toFixed(3)} [${fmt(us)}]; ${median(runs[s.name].map((r) => r.us)).toFixed(2)} us/request, p99 ${median(runs[s.name].map((r) => r.p99))} ms, RSS ${(median(runs[s.name].map((r) => r.rss)) / 1024).toFixed(1)} MiB (medians)`);
  const cleanRps = rps.filter((_, i) => clean[i]);
  if (cleanRps.length > 0) console.log(`  rounds where every server had >= ${CLEAN}% of its CPU (${cleanRps.length}): req/s ratio median ${median(cleanRps).toFixed(3)}, CPU/request ratio median ${median(us.filter((_, i) => clean[i])).toFixed(3)}`);
}
