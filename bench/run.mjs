#!/usr/bin/env node
// `npm run bench`: Portico side by side with nginx, Caddy, HAProxy and Node peers (issue #8).
//
// usage: npm run bench [-- OPTIONS]
//   --quick              short run: 1 round, 3 s measured after 1 s warm-up, no repeats
//   --only A[,B]         scenarios: static-1k https-static-1k h2-static-1k static-1m proxy cache-hit app-hello
//                        gunicorn-flask uwsgi-flask wsgi-flask node-stack idle (default: these),
//                        proxy-transports (undici Pool.dispatch / .stream / .request, http.Agent; on request),
//                        rate-limit (a limit in memory, in Redis with `state`, nginx limit_req; on request)
//   --servers A[,B]      only these servers (their names as printed; the reference is always kept)
//   --rounds N           interleaved rounds (default 3)        --duration S   measured seconds (default 8)
//   --warmup S           wrk warm-up before each run (2)       --connections N wrk connections (64)
//   --idle-connections N idle scenario (10000)                 --quiet-max S  wait for a quiet machine (60)
//   --max-foreign PCT    repeat a run (twice at most) when other processes used more CPU than this (8)
//   --no-install         never apt-get install missing peers   --out DIR      results folder (bench/results)
//   --profile            run Portico under `node --cpu-prof` (its workers too) and print each profile's
//                        summary (bench/profile-summary.mjs); profiles go to bench/results/profiles/ (not
//                        committed). Profiling slows the server: its req/s are then not comparable.
//   --compare DIR        also run the Portico servers of another built checkout (e.g. main before a
//                        change), as "portico… (baseline)", interleaved with this one: an A/B run
//
// Every run starts one server pinned to CPU 0 (`taskset -c 0`; its workers too), checks one
// answer (status 200, exact body size), warms it up, runs `wrk --latency` pinned to CPU 1 with
// 64 keep-alive connections, records req/s, p50/p99, the server's process-tree RSS and CPU, and
// stops it by PID. Servers are interleaved A B C, A B C over the rounds, and each is compared
// with the scenario's reference (nginx; a raw node:http cluster for the app server) *in the same
// round*: read the ratios, not the absolute numbers. Peers that cannot run (package missing, not
// root) are reported as such. nginx, Caddy, HAProxy and wrk are installed from Debian when
// missing and running as root (their packaged services are kept from starting). Everything the
// run writes is under a fresh temporary directory (removed at the end) and the results folder:
// <date>.json (every run), <date>.md (the tables) and <date>.svg (the chart), copied to
// latest.json / latest.md / latest.svg.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { busyTicks, freePort, HZ, probe, quietWait, runH2load, runWrk, sleep, startServer, stopServer, treeRssKb, treeTicks } from './lib/proc.mjs';
import { chart, goals, summarise, table } from './lib/report.mjs';
import { appServer, originServer, SCENARIOS } from './lib/servers.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function parseArgs(argv) {
  const opts = { quick: false, only: null, servers: null, rounds: 3, duration: 8, warmup: 2, connections: 64, idleConnections: 10_000, quietMax: 60, maxForeign: 8, install: true, out: join(ROOT, 'bench', 'results'), compare: null, profile: false };
  const given = new Set();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    const number = () => {
      const v = Number(value());
      if (!Number.isFinite(v) || v < 0) throw new Error(`${arg} needs a number`);
      return v;
    };
    given.add(arg);
    if (arg === '--quick') opts.quick = true;
    else if (arg === '--only') opts.only = value().split(',');
    else if (arg === '--servers') opts.servers = value().split(',');
    else if (arg === '--rounds') opts.rounds = number();
    else if (arg === '--duration') opts.duration = number();
    else if (arg === '--warmup') opts.warmup = number();
    else if (arg === '--connections') opts.connections = number();
    else if (arg === '--idle-connections') opts.idleConnections = number();
    else if (arg === '--quiet-max') opts.quietMax = number();
    else if (arg === '--max-foreign') opts.maxForeign = number();
    else if (arg === '--no-install') opts.install = false;
    else if (arg === '--out') opts.out = value();
    else if (arg === '--compare') opts.compare = value();
    else if (arg === '--profile') opts.profile = true;
    else if (arg === '-h' || arg === '--help') {
      const head = readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1).filter((l) => l.startsWith('//'));
      console.log(head.map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
      process.exit(0);
    } else throw new Error(`unknown option ${arg} (--help lists them)`);
  }
  if (opts.quick) {
    if (!given.has('--rounds')) opts.rounds = 1;
    if (!given.has('--duration')) opts.duration = 3;
    if (!given.has('--warmup')) opts.warmup = 1;
    if (!given.has('--quiet-max')) opts.quietMax = 5;
    if (!given.has('--max-foreign')) opts.maxForeign = Infinity;
  }
  for (const name of opts.only ?? []) if (!SCENARIOS[name]) throw new Error(`unknown scenario ${name} (known: ${Object.keys(SCENARIOS).join(' ')})`);
  return opts;
}

const say = (text) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${text}\n`);

function which(command) {
  const r = spawnSync('bash', ['-c', `PATH="$PATH:/usr/sbin:/sbin" command -v ${command}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/**
 * nginx, Caddy, HAProxy and wrk from Debian when missing (as root, with apt-get): service starts
 * are denied while installing (a temporary policy-rc.d), so the packaged services never take
 * port 80; the benchmark runs private instances.
 */
function ensureTools(install) {
  const wanted = { nginx: 'nginx', caddy: 'caddy', haproxy: 'haproxy', wrk: 'wrk', taskset: 'util-linux', h2load: 'nghttp2-client', openssl: 'openssl', gunicorn: 'gunicorn', uwsgi: 'uwsgi' };
  const missing = Object.entries(wanted).filter(([command]) => !which(command)).map(([, pkg]) => pkg);
  // The Flask stacks: Flask for Debian's python3, and uWSGI's python3 plugin.
  if (spawnSync('/usr/bin/python3', ['-c', 'import flask'], { stdio: 'ignore' }).status !== 0) missing.push('python3-flask');
  if (!existsSync('/usr/lib/uwsgi/plugins/python3_plugin.so')) missing.push('uwsgi-plugin-python3');
  if (missing.length > 0 && install && process.getuid?.() === 0 && which('apt-get')) {
    say(`installing Debian packages: ${missing.join(' ')} (service starts denied meanwhile)`);
    const policy = '/usr/sbin/policy-rc.d';
    const saved = existsSync(policy) ? readFileSync(policy) : null;
    writeFileSync(policy, '#!/bin/sh\n# temporary, from Portico bench/run.mjs: no service may start while packages install\nexit 101\n', { mode: 0o755 });
    try {
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
      spawnSync('apt-get', ['update'], { stdio: 'inherit', env });
      spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { stdio: 'inherit', env });
    } finally {
      if (saved) writeFileSync(policy, saved, { mode: 0o755 });
      else rmSync(policy, { force: true });
    }
  } else if (missing.length > 0) {
    say(`missing: ${missing.join(' ')} (${install ? 'run as root with apt-get to install them' : '--no-install'}); their peers are reported as unable to run`);
  }
  return { nginx: which('nginx'), caddy: which('caddy'), haproxy: which('haproxy'), wrk: which('wrk'), taskset: which('taskset'), h2load: which('h2load'), openssl: which('openssl'), gunicorn: which('gunicorn'), uwsgi: which('uwsgi') };
}

function versionOf(argv, pattern) {
  if (!argv[0]) return 'not installed';
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  return pattern.exec(text)?.[1] ?? 'unknown';
}

function machine(tools) {
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  return {
    cpu: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    kernel: spawnSync('uname', ['-r'], { encoding: 'utf8' }).stdout.trim(),
    node: process.versions.node,
    nginx: versionOf([tools.nginx, '-v'], /nginx\/(\S+)/),
    caddy: versionOf([tools.caddy, 'version'], /v?(\d+\.\d+\.\d+)/),
    haproxy: versionOf([tools.haproxy, '-v'], /version (\S+)/),
    wrk: versionOf([tools.wrk, '-v'], /wrk (\S+)/),
  };
}

/** Node peers need the devDependencies (npm ci). */
function missingPackages() {
  const need = ['sirv', 'serve-static', '@fastify/static', 'fastify', '@fastify/http-proxy', 'http-proxy', 'undici', '@hono/node-server', 'hono'];
  return need.filter((name) => !existsSync(join(ROOT, 'node_modules', name, 'package.json')));
}

/** Whether a peer needs packages that are missing. */
function packageProblem(argv, missing) {
  if (missing.length === 0 || !argv) return null;
  const script = argv.join(' ');
  if (/node-static|node-proxy|hono-node-server/.test(script)) return `devDependencies missing (${missing.join(', ')}): run npm ci`;
  return null;
}

async function measure(ctx, scenario, name, def, round, opts, originPid) {
  // Over TLS the URL names localhost (the certificate's name) at the loopback address.
  const url = scenario.tls ? `https://localhost:${ctx.port}${scenario.path}` : `http://127.0.0.1:${ctx.port}${scenario.path}`;
  const load = (seconds, latency) => (scenario.client === 'h2load' ? runH2load({ url, seconds, cpus: '1' }) : runWrk({ url, seconds, connections: scenario.connections ?? opts.connections, cpus: '1', latency }));
  for (let attempt = 1; ; attempt++) {
    const waited = await quietWait(opts.quietMax);
    if (waited > 0) say(`waited ${waited} s for other load to settle`);
    const logFile = join(ctx.logs, `${scenario.name}.${name.replace(/[^\w.-]+/g, '_')}.r${round}.log`);
    const proc = await startServer({ argv: def.argv, env: { PORT: String(ctx.port), DOCROOT: ctx.docroot, ...def.env }, cwd: ROOT, cpus: '0', port: ctx.port, logFile });
    try {
      const check = await probe(ctx.port, scenario.path, scenario.tls === true);
      if (check.status !== 200 || check.bytes !== scenario.bytes) throw new Error(`GET ${scenario.path} answered ${check.status} with ${check.bytes} bytes, expected 200 with ${scenario.bytes}`);
      if (opts.warmup > 0) await load(opts.warmup, false);
      if (def.hit) {
        // A cache scenario measures hits: after the warm-up the answer must come from the cache.
        const again = await probe(ctx.port, scenario.path);
        const value = String(again.headers[def.hit.header] ?? '');
        if (!def.hit.pattern.test(value)) throw new Error(`not served from the cache after the warm-up: ${def.hit.header}: "${value}"`);
      }
      await sleep(500);
      const s0 = treeTicks(proc.pid);
      const o0 = originPid ? treeTicks(originPid) : 0;
      const b0 = busyTicks();
      const wrk = await load(opts.duration, true);
      const s1 = treeTicks(proc.pid);
      const o1 = originPid ? treeTicks(originPid) : 0;
      const b1 = busyTicks();
      const rss = treeRssKb(proc.pid);
      const seconds = opts.duration;
      const foreign = Math.max(0, ((b1 - b0 - (s1 - s0) - (o1 - o0) - wrk.ticks) / HZ / seconds) * 100);
      if (!(wrk.rps > 0)) throw new Error(`${scenario.client ?? 'wrk'} measured no answers: ${wrk.text.slice(0, 300)}`);
      const row = {
        scenario: scenario.name,
        round,
        server: name,
        rps: wrk.rps,
        p50_ms: wrk.p50_ms,
        p99_ms: wrk.p99_ms,
        ...(wrk.mean_ms !== undefined ? { mean_ms: wrk.mean_ms } : {}),
        requests: wrk.requests,
        errors: wrk.errors,
        non2xx: wrk.non2xx,
        rss_kb: rss,
        srv_cpu_pct: Math.round(((s1 - s0) / HZ / seconds) * 100),
        wrk_cpu_pct: Math.round((wrk.ticks / HZ / seconds) * 100),
        foreign_pct: Math.round(foreign),
        attempt,
      };
      if (row.foreign_pct > opts.maxForeign && attempt < 3) {
        say(`${scenario.name} ${name} r${round}: other processes used ${row.foreign_pct}% of a CPU meanwhile (${Math.round(wrk.rps)} req/s): repeating`);
        continue;
      }
      return row;
    } finally {
      await stopServer(proc, ctx.port);
    }
  }
}

/** Memory per idle keep-alive connection: RSS growth of the server's process tree once N connections each made one request and stay open. */
async function measureIdle(ctx, scenario, name, def, round, opts) {
  await quietWait(opts.quietMax);
  const logFile = join(ctx.logs, `${scenario.name}.${name.replace(/[^\w.-]+/g, '_')}.r${round}.log`);
  const proc = await startServer({ argv: def.argv, env: { PORT: String(ctx.port), DOCROOT: ctx.docroot, ...def.env }, cwd: ROOT, cpus: '0', port: ctx.port, logFile });
  let client = null;
  try {
    const check = await probe(ctx.port, scenario.path);
    if (check.status !== 200 || !check.headers['content-length']) throw new Error(`GET ${scenario.path} answered ${check.status} without a Content-Length`);
    await runWrk({ url: `http://127.0.0.1:${ctx.port}${scenario.path}`, seconds: 1, connections: 8, cpus: '1', latency: false });
    await sleep(2000);
    const base = treeRssKb(proc.pid);
    client = spawn('bash', ['-c', 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec taskset -c 1 "$@"', 'bash', process.execPath, join(ROOT, 'bench', 'idle-client.mjs'), String(opts.idleConnections), String(ctx.port), scenario.path], {
      env: { ...process.env, HOLD_S: '120' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const ready = await new Promise((resolve) => {
      let out = '';
      const timer = setTimeout(() => resolve(null), 180_000);
      client.stdout.on('data', (chunk) => {
        out += chunk;
        const match = /^(READY|TIMEOUT) ok=(\d+) failed=(\d+)/m.exec(out);
        if (match) {
          clearTimeout(timer);
          resolve({ ok: Number(match[2]), failed: Number(match[3]) });
        }
      });
      client.once('exit', () => resolve(null));
    });
    if (!ready) throw new Error('the idle client did not finish opening its connections');
    await sleep(3000);
    const rss = treeRssKb(proc.pid);
    return {
      scenario: scenario.name,
      round,
      server: name,
      conns_ok: ready.ok,
      conns_failed: ready.failed,
      rss_base_kb: base,
      rss_kb: rss,
      kib_per_conn: ready.ok > 0 ? (rss - base) / ready.ok : NaN,
    };
  } finally {
    if (client && client.exitCode === null) {
      client.kill('SIGTERM');
      await new Promise((resolve) => client.once('exit', resolve));
    }
    await stopServer(proc, ctx.port);
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) throw new Error('dist/ is missing: run npm ci (or npm run build) first');
  if (opts.compare && !existsSync(join(opts.compare, 'dist', 'cli', 'main.js'))) throw new Error(`--compare ${opts.compare}: no built checkout there (dist/cli/main.js)`);
  const tools = ensureTools(opts.install);
  if (!tools.wrk || !tools.taskset) throw new Error('wrk and taskset are needed (Debian packages wrk, util-linux); run as root to install them');
  if (cpus().length < 2) say('warning: fewer than 2 CPUs: the server and wrk share one');
  const missing = missingPackages();
  const date = new Date();
  const stamp = date.toISOString().replace(/:/g, '').replace(/\..*/, 'Z');
  const tmp = mkdtempSync(join(tmpdir(), 'portico-bench-'));
  // nginx's workers run as an unprivileged user: they must be able to read the docroot.
  chmodSync(tmp, 0o755);
  const docroot = join(tmp, 'www');
  mkdirSync(docroot);
  writeFileSync(join(docroot, '1k.bin'), randomBytes(1024));
  writeFileSync(join(docroot, '1m.bin'), randomBytes(1024 * 1024));
  writeFileSync(join(docroot, 'index.html'), '<!doctype html><title>bench</title><p>hello</p>\n');
  const logs = join(tmp, 'logs');
  mkdirSync(logs);
  const result = {
    date: date.toISOString(),
    mode: opts.quick ? 'quick' : 'full',
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    machine: machine(tools),
    settings: { rounds: opts.rounds, duration: opts.duration, warmup: opts.warmup, connections: opts.connections, idleConnections: opts.idleConnections, serverCpus: '0', wrkCpus: '1', maxForeignPct: opts.maxForeign },
    git: spawnSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout.trim(),
    runs: [],
    scenarios: [],
  };
  const names = opts.only ?? Object.keys(SCENARIOS).filter((name) => !SCENARIOS[name].optional);
  // The TLS scenarios' certificate (ECDSA P-256, localhost and 127.0.0.1), made for this run, in its temporary directory.
  const certificate = { cert: join(tmp, 'bench.crt'), key: join(tmp, 'bench.key') };
  if (names.some((name) => SCENARIOS[name].tls)) {
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', certificate.key, '-out', certificate.cert, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { encoding: 'utf8' });
    if (made.status !== 0) throw new Error(`openssl could not make the bench certificate: ${made.stderr}`);
  }
  const profiles = join(opts.out, 'profiles', stamp);
  let stopping = false;
  process.on('SIGINT', () => {
    stopping = true;
    say('interrupted: finishing the current run, then writing what was measured');
  });
  try {
    for (const scenarioName of names) {
      if (stopping) break;
      const scenario = { name: scenarioName, ...SCENARIOS[scenarioName] };
      const port = await freePort();
      const ctx = { root: ROOT, tmp, docroot, logs, tools, port, origin: `127.0.0.1:${port + 1}`, appSocket: join(tmp, `${scenarioName}.sock`), ...certificate };
      let entries = Object.entries(scenario.servers).filter(([name]) => !opts.servers || opts.servers.includes(name) || name === scenario.reference);
      if (opts.compare) {
        // The baseline right after this checkout's Portico, so both meet the same moment of the machine.
        const baseline = opts.compare;
        entries = entries.flatMap(([name, make]) => (name.startsWith('portico') ? [[name, make], [`${name} (baseline)`, (c) => make({ ...c, root: baseline, tmp: join(c.tmp, 'baseline') })]] : [[name, make]]));
        mkdirSync(join(tmp, 'baseline'), { recursive: true });
      }
      const defs = entries.map(([name, make]) => {
        const def = make(ctx);
        if (!def.unavailable && opts.profile && name.startsWith('portico')) {
          // One folder per server and scenario; workers inherit the flags through execArgv.
          const dir = join(profiles, `${scenarioName}.${name.replace(/[^\w.-]+/g, '_')}`);
          def.argv = [def.argv[0], '--cpu-prof', `--cpu-prof-dir=${dir}`, ...def.argv.slice(1)];
        }
        return [name, def.unavailable ? def : (packageProblem(def.argv, missing) ? { unavailable: packageProblem(def.argv, missing) } : def)];
      });
      say(`scenario ${scenarioName}: ${scenario.title}; servers: ${defs.map(([n]) => n).join(', ')}`);
      for (const [name, def] of defs) if (def.unavailable) result.runs.push({ scenario: scenarioName, server: name, unavailable: def.unavailable });
      let origin = null;
      if (scenario.origin) {
        const o = originServer(ctx, scenario.origin);
        if (o.unavailable) {
          for (const [name] of defs) result.runs.push({ scenario: scenarioName, server: name, unavailable: `no origin: ${o.unavailable}` });
          continue;
        }
        origin = await startServer({ argv: o.argv, cpus: '1', port: port + 1, logFile: join(logs, `${scenarioName}.origin.log`), cwd: ROOT });
      }
      if (scenario.app) {
        // The app server behind the fronts: on the server's CPU, for the whole scenario.
        const a = appServer(ctx, scenario.app, `unix:${ctx.appSocket}`);
        if (a.unavailable) {
          for (const [name] of defs) result.runs.push({ scenario: scenarioName, server: name, unavailable: `no app server: ${a.unavailable}` });
          continue;
        }
        origin = await startServer({ argv: a.argv, cpus: '0', port: ctx.appSocket, logFile: join(logs, `${scenarioName}.app.log`), cwd: ROOT });
      }
      try {
        const rounds = scenario.kind === 'idle' ? Math.min(opts.rounds, 2) : opts.rounds;
        for (let round = 1; round <= rounds && !stopping; round++) {
          for (const [name, def] of defs) {
            if (def.unavailable || stopping) continue;
            try {
              const row = scenario.kind === 'idle' ? await measureIdle(ctx, scenario, name, def, round, opts) : await measure(ctx, scenario, name, def, round, opts, origin?.pid);
              result.runs.push(row);
              say(scenario.kind === 'idle' ? `${scenarioName} r${round} ${name}: ${row.conns_ok} connections, ${row.kib_per_conn.toFixed(2)} KiB each` : `${scenarioName} r${round} ${name}: ${Math.round(row.rps)} req/s, p99 ${row.p99_ms} ms, RSS ${(row.rss_kb / 1024).toFixed(1)} MiB, other load ${row.foreign_pct}%`);
            } catch (error) {
              say(`${scenarioName} r${round} ${name}: FAILED: ${error.message}`);
              result.runs.push({ scenario: scenarioName, round, server: name, error: error.message });
            }
          }
        }
      } finally {
        if (origin) await stopServer(origin, scenario.app ? ctx.appSocket : port + 1);
      }
    }
  } finally {
    // Everything of this run lives in its own directory: nothing is left for the next one.
    rmSync(tmp, { recursive: true, force: true });
  }

  const lines = [`## Portico benchmark, ${result.date} (${result.mode})`, '', `\`${result.command}\` at ${result.git}`, ''];
  const m = result.machine;
  lines.push(`Machine: ${m.cpu}, ${m.cores} cores, Linux ${m.kernel}; Node ${m.node}, nginx ${m.nginx}, Caddy ${m.caddy}, HAProxy ${m.haproxy}, wrk ${m.wrk}.`);
  lines.push(`Server pinned to CPU 0, wrk to CPU 1, ${opts.connections} keep-alive connections, ${opts.rounds} interleaved round(s) of ${opts.duration} s after ${opts.warmup} s of warm-up; ratios are medians of per-round ratios.`, '');
  const goalLines = [];
  for (const name of names) {
    const scenario = { name, ...SCENARIOS[name] };
    const rows = summarise(scenario, result.runs);
    if (rows.length === 0) continue;
    result.scenarios.push({ name, title: scenario.title, kind: scenario.kind ?? 'wrk', reference: scenario.reference, goal: scenario.goal, path: scenario.path, bytes: scenario.bytes, rows });
    lines.push(`### ${scenario.title}${scenario.bytes ? ` (GET ${scenario.path}, ${scenario.bytes.toLocaleString('en-US')} B)` : ''}`, '', table(scenario, rows), '');
    goalLines.push(...goals(scenario, rows));
  }
  lines.push('### Goals (issues #8, #14, #19)', '', ...goalLines.map((g) => `- ${g}`), '');
  const foreign = result.runs.filter((r) => Number.isFinite(r.foreign_pct)).map((r) => r.foreign_pct);
  if (foreign.length) lines.push(`Other processes during the runs: at most ${Math.max(...foreign)}% of a CPU${Number.isFinite(opts.maxForeign) ? ` (runs above ${opts.maxForeign}% were repeated, twice at most)` : ' (no run repeated for it)'}.`, '');
  const markdown = lines.join('\n');
  process.stdout.write(`\n${markdown}\n`);

  mkdirSync(opts.out, { recursive: true });
  const base = join(opts.out, stamp);
  writeFileSync(`${base}.json`, `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(`${base}.md`, `${markdown}\n`);
  writeFileSync(`${base}.svg`, chart(result));
  for (const ext of ['json', 'md', 'svg']) copyFileSync(`${base}.${ext}`, join(opts.out, `latest.${ext}`));
  say(`results: ${base}.json, .md, .svg (and ${join(dirname(base), 'latest.*')})`);
  if (opts.profile && existsSync(profiles)) {
    for (const dir of readdirSync(profiles)) {
      for (const file of readdirSync(join(profiles, dir)).filter((f) => f.endsWith('.cpuprofile'))) {
        process.stdout.write(`\n#### profile ${dir} ${file}\n`);
        spawnSync(process.execPath, [join(ROOT, 'bench', 'profile-summary.mjs'), join(profiles, dir, file), '20'], { stdio: 'inherit' });
      }
    }
  }
}

main().catch((error) => {
  say(`bench failed: ${error.message}`);
  process.exit(1);
});
