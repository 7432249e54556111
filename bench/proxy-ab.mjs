#!/usr/bin/env node
// A quick interleaved A/B of reverse proxies in front of one private nginx origin ("hello", 5 B):
// every server is started once, pinned to CPU 0, and measured in turn each round (wrk pinned to
// CPU 1, 64 keep-alive connections), so a round compares them at the same moment of the machine.
// Besides req/s and p99 it reports the server's CPU time per request (its /proc ticks over the
// requests wrk counted), which moves far less than req/s when other jobs share the machine.
// Before each measurement it waits (up to 90 s) for the machine to go quiet and repeats a
// measurement during which other processes used more than 12% of a CPU (up to 8 times).
// Ratios are to the first server, per round, then the median over rounds.
//
// usage: node bench/proxy-ab.mjs ROUNDS SECONDS NAME=KIND[:ARG] ...
//   KIND portico:DIR    `portico up` of the built checkout DIR (workers 1, access log off), proxy.to the origin
//        peer:KIND      bench/servers/node-proxy.mjs KIND (undici = the minimal undici proxy)
//        nginx          nginx proxy_pass with an upstream keepalive pool (the bench's reference)
// e.g.   node bench/proxy-ab.mjs 5 4 main=portico:/tmp/main this=portico:. undici=peer:undici nginx=nginx
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, portOpen, sleep } from './lib/proc.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const [roundsArg, secondsArg, ...specs] = process.argv.slice(2);
const rounds = Number(roundsArg);
const seconds = Number(secondsArg);
if (!(rounds > 0) || !(seconds > 0) || specs.length === 0) {
  process.stderr.write('usage: node bench/proxy-ab.mjs ROUNDS SECONDS NAME=KIND[:ARG] ...\n');
  process.exit(2);
}

const stat = (path) => {
  const text = readFileSync(path, 'utf8');
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
};
/** user+nice+system jiffies of all CPUs (interrupt time left out: it follows the request rate of whoever is measured). */
const busy = () => {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
  return Number(f[1]) + Number(f[2]) + Number(f[3]);
};
const ticks = (pid) => {
  try {
    const f = stat(`/proc/${pid}/stat`);
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
};
const treeTicks = (root) => {
  let sum = ticks(root);
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (Number(stat(`/proc/${name}/stat`)[1]) === root) sum += ticks(name);
    } catch {
      // gone meanwhile
    }
  }
  return sum;
};
/** CPU jiffies of this process's waited-for children (wrk). */
const childTicks = () => {
  const f = stat('/proc/self/stat');
  return Number(f[13]) + Number(f[14]);
};

const tmp = mkdtempSync(join(tmpdir(), 'portico-ab-'));
const children = [];
function start(argv, env = {}, cpu = '0') {
  const child = spawn('taskset', ['-c', cpu, ...argv], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'], detached: true });
  children.push(child);
  return child;
}
function nginxConf(dir, port, location, upstream = '') {
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'nginx.conf'),
    `worker_processes 1; daemon off; pid ${dir}/pid; error_log ${dir}/error.log warn; events { worker_connections 4096; }
http { access_log off; keepalive_timeout 120s; keepalive_requests 1000000;
  client_body_temp_path ${dir}/b; proxy_temp_path ${dir}/p; fastcgi_temp_path ${dir}/f; uwsgi_temp_path ${dir}/u; scgi_temp_path ${dir}/s;
  ${upstream}
  server { listen 127.0.0.1:${port} backlog=4096; location / { ${location} } } }\n`,
  );
  return ['nginx', '-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')];
}
async function waitPort(port) {
  for (let i = 0; i < 100 && !(await portOpen(port)); i++) await sleep(100);
}

const stopAll = () => {
  for (const child of children) {
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
};
process.on('SIGINT', () => {
  stopAll();
  process.exit(1);
});

try {
  const originPort = await freePort();
  const origin = start(nginxConf(join(tmp, 'origin'), originPort, 'default_type text/plain; return 200 "hello";'), {}, '1');
  await waitPort(originPort);
  const servers = [];
  for (const spec of specs) {
    const [name, kindArg] = spec.split(/=(.*)/s);
    const [kind, arg] = kindArg.split(/:(.*)/s);
    const port = await freePort();
    let argv;
    let env = {};
    if (kind === 'portico') {
      const config = join(tmp, `portico-${port}.json`);
      writeFileSync(config, JSON.stringify({ workers: 1, log: { level: 'warn', access: false }, http: { keepAliveTimeout: '120s', maxRequestsPerConnection: 1_000_000 }, servers: [{ listen: `127.0.0.1:${port}`, routes: [{ prefix: '/', proxy: { to: `http://127.0.0.1:${originPort}` } }] }] }));
      argv = [process.execPath, join(resolve(arg), 'bin', 'portico'), 'up', '--config', config];
    } else if (kind === 'peer') {
      argv = [process.execPath, join(ROOT, 'bench', 'servers', 'node-proxy.mjs'), arg];
      env = { PORT: String(port), ORIGIN: `127.0.0.1:${originPort}` };
    } else if (kind === 'nginx') {
      argv = nginxConf(join(tmp, `nginx-${port}`), port, 'proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";', `upstream origin { server 127.0.0.1:${originPort}; keepalive 32; keepalive_requests 1000000; keepalive_timeout 120s; }`);
    } else throw new Error(`unknown kind ${kind}`);
    const child = start(argv, env);
    await waitPort(port);
    servers.push({ name, port, pid: child.pid, rps: [], p99: [], cpu: [] });
  }
  const wrk = (port, secs, latency) => spawnSync('taskset', ['-c', '1', 'wrk', '-t1', '-c64', `-d${secs}s`, ...(latency ? ['--latency'] : []), `http://127.0.0.1:${port}/`], { encoding: 'utf8' }).stdout;
  for (const s of servers) wrk(s.port, 2, false);
  for (let r = 0; r < rounds; r++) {
    // Alternate the order so no server always runs right after the same one.
    for (const s of r % 2 ? [...servers].reverse() : servers) {
      wrk(s.port, 1, false);
      let out = '';
      let cpu = NaN;
      for (let attempt = 0; attempt < 8; attempt++) {
        for (let w = 0; w < 90; w++) {
          const b = busy();
          await sleep(1000);
          if (busy() - b < 10) break;
        }
        const o0 = treeTicks(origin.pid);
        const b0 = busy();
        const c0 = childTicks();
        const s0 = treeTicks(s.pid);
        out = wrk(s.port, seconds, true);
        const s1 = treeTicks(s.pid);
        const foreign = Math.max(0, (busy() - b0 - (treeTicks(origin.pid) - o0) - (childTicks() - c0) - (s1 - s0)) / seconds);
        cpu = ((s1 - s0) * 10_000) / (Number(/(\d+) requests in/.exec(out)?.[1]) || 1);
        if (foreign < 12) break;
        process.stderr.write(`  ${s.name}: other processes used ${foreign.toFixed(0)}% of a CPU meanwhile, repeating\n`);
      }
      const m = /99%\s+([\d.]+)(us|ms|s)/.exec(out);
      s.rps.push(Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]));
      s.p99.push(m ? Number(m[1]) * (m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1) : NaN);
      s.cpu.push(cpu);
      if (/Non-2xx|Socket errors/.test(out)) process.stdout.write(`  ${s.name}: ${/(Non-2xx.*|Socket errors.*)/.exec(out)[0]}\n`);
    }
    process.stdout.write(`round ${r + 1}: ${servers.map((s) => `${s.name} ${Math.round(s.rps[r])} req/s (p99 ${s.p99[r].toFixed(2)} ms, ${s.cpu[r].toFixed(1)} µs CPU/req)`).join('  ')}\n`);
  }
  const median = (values) => {
    const v = [...values].sort((a, b) => a - b);
    return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  };
  const ref = servers[0];
  for (const s of servers) {
    const ratios = s.rps.map((v, i) => v / ref.rps[i]);
    const cpuRatio = median(s.cpu.map((v, i) => v / ref.cpu[i]));
    process.stdout.write(
      `${s.name.padEnd(16)} ${String(Math.round(median(s.rps))).padStart(6)} req/s  ratio to ${ref.name} ${median(ratios).toFixed(3)} (${Math.min(...ratios).toFixed(3)}–${Math.max(...ratios).toFixed(3)})  p99 ${median(s.p99).toFixed(2)} ms (×${median(s.p99.map((v, i) => v / ref.p99[i])).toFixed(2)})  CPU/req ${median(s.cpu).toFixed(1)} µs (×${cpuRatio.toFixed(3)})\n`,
    );
  }
} finally {
  stopAll();
  await sleep(500);
  rmSync(tmp, { recursive: true, force: true });
}
