/**
 * A slow-client attack with the real tool: slowhttptest (Debian package) in slowloris mode (-H:
 * heads trickled a header line at a time), slow-body mode (-B: a POST body trickled) and
 * slow-read mode (-X: a 4 MiB static file read 32 bytes at a time, 3 requests pipelined), 1,000
 * connections each for a bounded 30 s against a Portico process on 127.0.0.1, through a proxy
 * route to a real upstream (its own process), with the default limits (so the slow connections are held for the
 * whole attack: the 60 s head and body timeouts do not end them). Meanwhile a normal client opens a
 * new connection and makes a request every 100 ms through the same proxy route: every one of its
 * requests must succeed. Their latency (p50/p99/max) and Portico's memory per held connection are
 * printed; no speed is asserted (that is `npm run bench`'s job).
 *
 * Load-bound: listed in ALONE in scripts/test.mjs, so it runs after the rest, one file at a time.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, startWithConfig, tempDir, type RunningPortico } from '../helpers/portico.js';
import { MiB, rssBytes } from '../helpers/upstreams.js';

const CONNECTIONS = 1000;
const ATTACK_SECONDS = 30;
/** File descriptors each side needs: the attack's sockets, Portico's to the upstream, and room to spare. */
const FD_NEEDED = 3 * CONNECTIONS + 1024;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function openFds(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

function softFdLimit(pid: number): { soft: number; hard: number } {
  const line = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  const value = (text: string | undefined) => (text === 'unlimited' || text === undefined ? Infinity : Number(text));
  return { soft: value(line?.[1]), hard: value(line?.[2]) };
}

/**
 * Raises a running process's open-file limit (util-linux prlimit) when it is below `needed`:
 * Portico holds one descriptor per client connection plus one per upstream connection.
 */
function raiseFdLimit(pid: number, needed: number): void {
  const { soft, hard } = softFdLimit(pid);
  if (soft >= needed) return;
  const result = spawnSync('prlimit', ['--pid', String(pid), `--nofile=${needed}:${Math.max(hard, needed)}`], { encoding: 'utf8' });
  assert.equal(result.status, 0, `cannot raise the open-file limit of ${pid} to ${needed} (prlimit: ${result.stderr}); run as root or raise \`ulimit -Hn\``);
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

/** One request on a new connection; resolves with its status and latency, never rejects. */
function probe(port: number, path: string): Promise<{ status: number; ms: number; error?: string }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent: false, headers: { connection: 'close' }, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }));
      res.on('error', (error) => resolve({ status: 0, ms: performance.now() - started, error: error.message }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', (error: NodeJS.ErrnoException) => resolve({ status: 0, ms: performance.now() - started, error: error.code ?? error.message }));
    req.end();
  });
}

/**
 * The upstream, in its own process: it holds the slow-body attack's 1,000 proxied requests, and
 * in the test process its work would delay the normal client's measured requests. It reads whole
 * bodies, then answers "ok".
 */
async function startUpstreamProcess(): Promise<{ child: ChildProcess; url: string }> {
  const script = `
    const server = require('node:http').createServer({ keepAliveTimeout: 30000, requestTimeout: 0, headersTimeout: 0 }, (req, res) => {
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    server.listen(0, '127.0.0.1', () => process.stdout.write('port ' + server.address().port + '\\n'));`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const deadline = Date.now() + 10_000;
  while (!/port \d+/.test(out)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the upstream process did not start: ${out}`);
    await sleep(20);
  }
  return { child, url: `http://127.0.0.1:${/port (\d+)/.exec(out)?.[1]}` };
}

interface AttackResult {
  /** The exact command run (for the closing note). */
  command: string;
  exitCode: number | null;
  output: string;
  /** Most connections slowhttptest reported connected at once (its CSV). */
  maxConnected: number;
}

/**
 * Runs slowhttptest in a bash wrapper that raises its own open-file limit first, for a bounded
 * time; killed by PID if it outlives the bound.
 */
async function attack(mode: '-H' | '-B' | '-X', url: string, dir: string): Promise<AttackResult> {
  const prefix = join(dir, mode === '-H' ? 'slowloris' : mode === '-B' ? 'slowbody' : 'slowread');
  // -X (slow read): a receive window of 512-1024 bytes, 32 bytes read every 5 s, 3 requests pipelined per connection.
  const modeArgs = mode === '-X' ? ['-w', '512', '-y', '1024', '-n', '5', '-z', '32', '-k', '3'] : ['-i', '10', ...(mode === '-B' ? ['-s', '8192'] : [])];
  const args = [mode, '-c', String(CONNECTIONS), '-r', '250', ...modeArgs, '-l', String(ATTACK_SECONDS), '-p', '5', '-g', '-o', prefix, '-u', url];
  const script = `ulimit -n ${FD_NEEDED} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec slowhttptest "$@"`;
  const child = spawn('bash', ['-c', script, 'slowhttptest', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const killer = setTimeout(() => child.pid !== undefined && process.kill(child.pid, 'SIGKILL'), (ATTACK_SECONDS + 20) * 1000);
  const exitCode = await exited;
  clearTimeout(killer);
  let maxConnected = 0;
  try {
    // seconds,closed,pending,connected,service available
    for (const line of readFileSync(`${prefix}.csv`, 'utf8').split('\n').slice(1)) {
      const connected = Number(line.split(',')[3]);
      if (connected > maxConnected) maxConnected = connected;
    }
  } catch {
    maxConnected = -1;
  }
  return { command: `ulimit -n ${FD_NEEDED}; slowhttptest ${args.join(' ')}`, exitCode, output, maxConnected };
}

describe('slow-client attack (slowhttptest, 1,000 connections, 30 s each)', { timeout: 120_000 }, () => {
  const dir = tempDir();
  const files = join(dir.path, 'files');
  let portico: RunningPortico;
  let upstream: { child: ChildProcess; url: string };
  let port = 0;

  before(async () => {
    const available = spawnSync('slowhttptest', ['-h'], { encoding: 'utf8' });
    assert.ok(available.status !== null && !available.error, 'slowhttptest is not installed (Debian package slowhttptest; .ci/run installs it)');
    // A 4 MiB file for the slow-read attack: larger than the in-memory file cache takes, so it streams from disk.
    mkdirSync(files);
    writeFileSync(join(files, 'big.bin'), Buffer.alloc(4 * MiB, 7));
    upstream = await startUpstreamProcess();
    raiseFdLimit(upstream.child.pid as number, FD_NEEDED);
    port = await freePort();
    portico = await startWithConfig(dir.path, {
      // One process: the connections, descriptors and memory measured are all in portico.pid.
      workers: 1,
      log: { access: false, level: 'warn' },
      servers: [{ listen: `127.0.0.1:${port}`, routes: [{ prefix: '/files/', static: { root: dir.path } }, { prefix: '/', proxy: { to: upstream.url } }] }],
    });
    raiseFdLimit(portico.pid, FD_NEEDED);
  });
  after(async () => {
    await portico?.stop();
    if (upstream && upstream.child.exitCode === null) {
      const exited = once(upstream.child, 'exit');
      process.kill(upstream.child.pid as number, 'SIGKILL');
      await exited;
    }
    dir.remove();
  });

  for (const [name, mode, path] of [
    ['slowloris (-H)', '-H', '/attack'],
    ['slow body (-B)', '-B', '/upload'],
    ['slow read of a 4 MiB file (-X)', '-X', '/files/big.bin'],
  ] as const) {
    it(`${name}: a normal client's requests all succeed meanwhile`, async (t) => {
      if (mode === '-X') {
        // The attack must read the file, not a 404.
        const check = await probe(port, path);
        assert.equal(check.status, 200, 'the slow-read target is served');
      }
      const baseRss = rssBytes(portico.pid) ?? 0;
      const running = attack(mode, `http://127.0.0.1:${port}${path}`, dir.path);
      let done = false;
      void running.then(() => (done = true));
      const attackStart = performance.now();
      const results: { status: number; ms: number; at: number; error?: string }[] = [];
      let peakFds = 0;
      let peakRss = baseRss;
      while (!done) {
        const at = performance.now() - attackStart;
        results.push({ ...(await probe(port, `/normal?i=${results.length}`)), at });
        peakFds = Math.max(peakFds, openFds(portico.pid));
        peakRss = Math.max(peakRss, rssBytes(portico.pid) ?? 0);
        await sleep(100);
      }
      const result = await running;
      const failed = results.filter((r) => r.status !== 200);
      const latencies = results.map((r) => r.ms).sort((a, b) => a - b);
      const held = Math.max(result.maxConnected, 0);
      const perConnection = held > 0 ? (peakRss - baseRss) / held : NaN;
      const summary =
        `${name}: ${results.length} normal requests during the attack, ${failed.length} failed; ` +
        `latency p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${percentile(latencies, 100).toFixed(1)} ms; ` +
        `slowhttptest held up to ${result.maxConnected} connections; Portico peak ${peakFds} open fds, RSS ${(baseRss / MiB).toFixed(1)} → ${(peakRss / MiB).toFixed(1)} MiB ` +
        `(~${(perConnection / 1024).toFixed(1)} KiB per held connection, proxied upstream connection included for -B)`;
      t.diagnostic(summary);
      t.diagnostic(`command: ${result.command}`);
      const slowest = results.filter((r) => r.ms > 100 || r.status !== 200).slice(0, 20);
      if (slowest.length) t.diagnostic(`normal requests over 100 ms or failed (started at, took): ${slowest.map((r) => `${(r.at / 1000).toFixed(1)} s ${r.ms.toFixed(0)} ms${r.status === 200 ? '' : ` ${r.status} ${r.error ?? ''}`}`).join('; ')}`);
      assert.equal(result.exitCode, 0, `slowhttptest failed:\n${result.output.slice(-2000)}`);
      // The attack must really have held its connections, or the test proves nothing.
      assert.ok(result.maxConnected >= CONNECTIONS * 0.95, `slowhttptest held only ${result.maxConnected} connections:\n${result.output.slice(-2000)}`);
      assert.ok(peakFds >= CONNECTIONS, `Portico held only ${peakFds} descriptors during the attack`);
      assert.ok(results.length >= 100, `only ${results.length} normal requests were made`);
      assert.deepEqual(failed.slice(0, 5), [], `${failed.length} of ${results.length} normal requests failed`);
      // #20: a slow reader holds one 16 KiB file buffer (handlers/static/send-file.ts), not the
      // read-ahead of every pipelined response (~450 KiB per connection before). The RSS growth
      // also counts V8's young generation growing once under the attack's allocations (~30 MiB,
      // not per connection). Twice the goal of 64 KiB, as a regression guard: the figure itself
      // is printed above and judged in the closing note.
      if (mode === '-X') assert.ok(perConnection <= 128 * 1024, `RSS grew ${(perConnection / 1024).toFixed(1)} KiB per slow-reading connection`);
    });
  }
});
