// Processes and measurements for bench/run.mjs: start a server pinned to a CPU in its own process
// group, wait for its port, stop it by PID (SIGTERM, then SIGKILL to what is left of its tree),
// process-tree RSS and CPU from /proc, wrk runs and their parsing. Linux only (/proc, taskset).
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
export const HZ = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** Every pid → ppid on the machine. */
function parents() {
  const map = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      map.set(Number(name), Number(fields[1]));
    } catch {
      // gone meanwhile
    }
  }
  return map;
}

/** The pids of the tree rooted at `root` (inclusive), alive now. */
export function treePids(root) {
  const map = parents();
  if (!map.has(root)) return [];
  const out = [root];
  for (let i = 0; i < out.length; i++) for (const [pid, ppid] of map) if (ppid === out[i]) out.push(pid);
  return out;
}

/** Summed VmRSS of a process tree, KiB. */
export function treeRssKb(root) {
  let sum = 0;
  for (const pid of treePids(root)) {
    try {
      const match = /^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (match) sum += Number(match[1]);
    } catch {
      // gone meanwhile
    }
  }
  return sum;
}

/** Summed utime+stime (clock ticks) of a process tree. */
export function treeTicks(root) {
  let sum = 0;
  for (const pid of treePids(root)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      sum += Number(fields[11]) + Number(fields[12]);
    } catch {
      // gone meanwhile
    }
  }
  return sum;
}

/** Busy jiffies of all CPUs (user+nice+system+irq+softirq). */
export function busyTicks() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
  return Number(line[1]) + Number(line[2]) + Number(line[3]) + Number(line[6]) + Number(line[7]);
}

/**
 * Waits (at most `maxSeconds`) until the machine's other processes use less than `pct` % of one
 * CPU over a 1 s sample. Returns the seconds waited.
 */
export async function quietWait(maxSeconds, pct = 10) {
  let waited = 0;
  while (waited < maxSeconds) {
    const a = busyTicks();
    await sleep(1000);
    if (((busyTicks() - a) * 100) / HZ < pct) return waited;
    waited++;
  }
  return waited;
}

export function portOpen(port) {
  return new Promise((resolve) => {
    // A string is a unix socket's path (the app servers of the Flask stacks).
    const socket = connect(typeof port === 'string' ? { path: port } : { host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A free TCP port on 127.0.0.1 in 20000-29999 (below the ephemeral range wrk's connections use). */
export async function freePort() {
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 10000);
    if (!(await portOpen(port)) && !(await portOpen(port + 1))) return port;
  }
  throw new Error('no free port');
}

const NOFILE = 65536;

/**
 * Starts `argv` pinned to `cpus` ("0", "1", or "all"), in its own process group, with the fd
 * limit raised for 10,000 connections, output appended to `logFile`. Resolves once `port`
 * accepts connections; rejects (after stopping it) if it exits or takes longer than 20 s.
 */
export async function startServer({ argv, env, cwd, cpus, port, logFile }) {
  if (await portOpen(port)) throw new Error(`port ${port} is already in use`);
  const log = openSync(logFile, 'a');
  const pinned = cpus === 'all' ? argv : ['taskset', '-c', cpus, ...argv];
  const child = spawn('bash', ['-c', `ulimit -n ${NOFILE} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`, 'bash', ...pinned], {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', log, log],
    detached: true,
  });
  closeSync(log);
  let exited = false;
  const done = new Promise((resolve) => child.once('exit', (code, signal) => {
    exited = true;
    resolve({ code, signal });
  }));
  const proc = { pid: child.pid, child, done, get exited() { return exited; } };
  const deadline = Date.now() + 20_000;
  while (!(await portOpen(port))) {
    if (exited) throw new Error(`exited before listening (log: ${logFile})`);
    if (Date.now() > deadline) {
      await stopServer(proc, port);
      throw new Error(`did not listen on ${port} within 20 s (log: ${logFile})`);
    }
    await sleep(50);
  }
  return proc;
}

/** SIGTERM to the server's process group, SIGKILL to anything of its tree left after 5 s; waits for the port to close. */
export async function stopServer(proc, port) {
  const pids = treePids(proc.pid);
  try {
    process.kill(-proc.pid, 'SIGTERM');
  } catch {
    // already gone
  }
  await Promise.race([proc.done, sleep(5000)]);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone, as it should be
    }
  }
  await Promise.race([proc.done, sleep(2000)]);
  for (let i = 0; i < 100 && port && (await portOpen(port)); i++) await sleep(50);
}

/** One GET; resolves { status, bytes } or rejects (5 s bound). */
export function probe(port, path, tls = false) {
  return new Promise((resolve, reject) => {
    // Over TLS the bench's own certificate is not in any trust store: the check is about the answer.
    const req = (tls ? httpsRequest : request)({ host: '127.0.0.1', port, path, agent: false, timeout: 5000, ...(tls ? { rejectUnauthorized: false, servername: 'localhost' } : {}) }, (res) => {
      let bytes = 0;
      res.on('data', (chunk) => (bytes += chunk.length));
      res.on('end', () => resolve({ status: res.statusCode, bytes, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('probe timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** "1.23ms" → 1.23; "850.00us" → 0.85; "1.2s" → 1200. */
export function toMs(value) {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(value ?? '');
  if (!match) return null;
  const n = Number(match[1]);
  return match[2] === 'us' ? n / 1000 : match[2] === 'ms' ? n : match[2] === 's' ? n * 1000 : n * 60_000;
}

/**
 * Runs h2load pinned to `cpus`: `clients` connections with `streams` concurrent streams each, for
 * `seconds`; resolves like runWrk. h2load reports the mean and spread of request times, not
 * percentiles: p50 is left empty and the mean is given as `mean_ms`.
 */
export async function runH2load({ url, seconds, clients = 16, streams = 8, cpus, warmup = 0 }) {
  const args = ['-c', String(clients), '-m', String(streams), '-t', '1', '-D', String(seconds), ...(warmup > 0 ? ['--warm-up-time', String(warmup)] : []), url];
  const { report, ticks } = await runPinned('h2load', args, seconds + warmup, cpus);
  return { ...parseH2load(report), ticks, text: report };
}

/** Parses h2load's summary: "finished in 8.00s, 12345.67 req/s", the request counts, "time for request: min max mean". */
export function parseH2load(text) {
  const rps = Number(/finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(text)?.[1] ?? NaN);
  const counts = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(text);
  const status = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(text);
  const request = /time for request:\s+(\S+)\s+(\S+)\s+(\S+)/.exec(text);
  return {
    rps,
    p50_ms: null,
    p99_ms: null,
    mean_ms: toMs(request?.[3]),
    requests: Number(counts?.[4] ?? NaN),
    errors: counts ? Number(counts[5]) + Number(counts[6]) + Number(counts[7]) : 0,
    non2xx: status ? Number(status[2]) + Number(status[3]) + Number(status[4]) : 0,
  };
}

/** Parses wrk --latency output. */
export function parseWrk(text) {
  const rps = Number(/^Requests\/sec:\s+([\d.]+)/m.exec(text)?.[1] ?? NaN);
  const p50 = toMs(/^\s+50%\s+(\S+)/m.exec(text)?.[1]);
  const p99 = toMs(/^\s+99%\s+(\S+)/m.exec(text)?.[1]);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const errors = socket ? socket.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(text)?.[1] ?? 0);
  const requests = Number(/(\d+) requests in/.exec(text)?.[1] ?? NaN);
  return { rps, p50_ms: p50, p99_ms: p99, errors, non2xx, requests };
}

/**
 * Runs wrk pinned to `cpus` with `connections` keep-alive connections for `seconds`; resolves
 * with its parsed report and the CPU ticks wrk used (from bash's `times`).
 */
export async function runWrk({ url, seconds, connections, threads = 1, cpus, latency = true }) {
  const args = [`-t${threads}`, `-c${connections}`, `-d${seconds}s`, '--timeout', '10s', ...(latency ? ['--latency'] : []), url];
  const { report, ticks } = await runPinned('wrk', args, seconds, cpus);
  return { ...parseWrk(report), ticks, text: report };
}

/** Runs a load generator pinned to `cpus` (bounded: killed 30 s after `seconds`); its output and the CPU ticks it used (from bash's `times`). */
function runPinned(command, args, seconds, cpus) {
  const pinned = cpus === 'all' ? [command, ...args] : ['taskset', '-c', cpus, command, ...args];
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', 'timeout $(( ${LOAD_SECONDS} + 30 )) "$@"; echo "::times"; times', 'bash', ...pinned], {
      env: { ...process.env, LOAD_SECONDS: String(seconds) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.stderr.on('data', (chunk) => (out += chunk));
    child.on('error', reject);
    child.on('exit', () => {
      const [report, times = ''] = out.split('::times');
      // `times`: shell user/sys, then children user/sys ("0m1.234s 0m0.567s").
      const line = times.trim().split('\n')[1] ?? '';
      const ticks = line.split(/\s+/).reduce((sum, part) => {
        const m = /^(\d+)m([\d.]+)s$/.exec(part);
        return m ? sum + (Number(m[1]) * 60 + Number(m[2])) * HZ : sum;
      }, 0);
      resolve({ report, ticks });
    });
  });
}
