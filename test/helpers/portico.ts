/**
 * Test harness: starts the real `bin/portico` (the built CLI) on free loopback ports, talks to it
 * over real sockets, and stops it by PID. Nothing here mocks the server.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = join(ROOT, 'bin', 'portico');

/**
 * A port that was free a moment ago, taken below Linux's ephemeral range (32768-60999) for the
 * reason freePortPair gives: a port bind(0) chose is one the kernel may give next to another
 * process's bind(0) or to a client connection's local end, and the suite runs test files side by
 * side, some opening thousands of client connections (EADDRINUSE seen on Node 24 in the --watch
 * test while the TLS tests ran).
 */
/** Whether something accepts a TCP connection on 127.0.0.1:`port` now. */
export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function freePort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (claim(port) && (await isFree(port))) return port;
  }
  throw new Error('no free port below the ephemeral range');
}

const CLAIMS = join(tmpdir(), 'portico-test-ports');
/** A claim older than this is from an earlier run: the port may be handed out again. */
const CLAIM_MS = 30 * 60_000;

/**
 * Claims a port for this test run across the processes the suite runs side by side (a file
 * created with O_EXCL per port): two test files that both found a port free, before either bound
 * it, got the same one (a reload test found its "unused" second port answering).
 */
function claim(port: number): boolean {
  const file = join(CLAIMS, String(port));
  try {
    mkdirSync(CLAIMS, { recursive: true });
    writeFileSync(file, String(process.pid), { flag: 'wx' });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') return true;
    try {
      if (Date.now() - statSync(file).mtimeMs < CLAIM_MS) return false;
      writeFileSync(file, String(process.pid));
      return true;
    } catch {
      return false;
    }
  }
}

async function isFree(port: number): Promise<boolean> {
  const server = createServer();
  const ok = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (ok) {
    server.close();
    await once(server, 'close');
  }
  return ok;
}

/**
 * A port P with P and P+1 free, for the demo (its API listens on PORT+1), taken below Linux's
 * ephemeral range (32768-60999). Why: a port from freePort() is one bind(0) chose, and Linux
 * gives bind(0) odd ports and connect() even ones, so P+1 is exactly the kind of port a client
 * connection of a concurrent load test holds as its local port (EADDRINUSE on P+1, seen under
 * the app load tests). Below the range no client connection ever takes it.
 */
export async function freePortPair(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + 2 * Math.floor(Math.random() * 6000);
    if (claim(port) && claim(port + 1) && (await isFree(port)) && (await isFree(port + 1))) return port;
  }
  throw new Error('no free port pair');
}

export function tempDir(prefix = 'portico-test-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export interface RunningPortico {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Base URL of the first listener, e.g. "http://127.0.0.1:41234". */
  readonly url: string;
  readonly port: number;
  readonly urls: string[];
  stdout(): string;
  stderr(): string;
  /** SIGTERM (then SIGKILL after 5 s) by PID; resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** A running `bin/portico` child: its output so far, its exit, and a stop by PID. */
export interface CliProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  out(): string;
  err(): string;
  readonly exited: Promise<number | null>;
  /** `signal` (SIGTERM), then SIGKILL after `killAfterMs`, by PID; resolves with the exit code. */
  stop(signal: NodeJS.Signals, killAfterMs: number): Promise<number | null>;
}

/**
 * Spawns `bin/portico ...args` (the built CLI), collecting stdout and stderr. `PORTICO_WORKERS=1`
 * (the default edge worker count when neither the config nor `--workers` says): tests run in one
 * process unless they ask for edge workers (`workers: 2` in the config, or their own env).
 * `detached`: in a process group of its own, for tests that signal the whole group.
 */
export function spawnCli(args: string[], options: { cwd?: string; env?: Record<string, string>; detached?: boolean; netns?: string; uid?: number; gid?: number; bin?: string; node?: string } = {}): CliProcess {
  const bin = options.bin ?? BIN;
  const node = options.node ?? process.execPath;
  // In a network namespace the test made (test/helpers/netns.ts): `ip netns exec` execs node, so the pid is portico's.
  const [command, commandArgs] = options.netns ? ['ip', ['netns', 'exec', options.netns, node, bin, ...args]] : [node, [bin, ...args]];
  const child = spawn(command, commandArgs, {
    // As another user (the deployment files' unprivileged one); root's test runner may do that.
    uid: options.uid,
    gid: options.gid,
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, PORTICO_WORKERS: '1', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // A process group of its own (its pid is the group id), as a service manager starts it.
    detached: options.detached ?? false,
  });
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  // Resolves once the output has been read too (see outputClosed), so a test may assert on it.
  const exited = once(child, 'exit').then(async ([code]) => {
    await outputClosed(child, 2000);
    return code as number | null;
  });
  const pid = child.pid as number;
  return {
    child,
    pid,
    out: () => out,
    err: () => err,
    exited,
    async stop(signal, killAfterMs) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      process.kill(pid, signal);
      const timer = setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL');
      }, killAfterMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Resolves once the child's stdio pipes have closed ('close'), or after `graceMs`. */
async function outputClosed(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.stdout?.readableEnded !== false && child.stderr?.readableEnded !== false) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([once(child, 'close'), new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
  clearTimeout(timer);
}

/** Waits until stdout matches `ready`; throws (killing the child) if it exits first or time runs out. */
export async function waitForOutput(proc: CliProcess, ready: RegExp, deadline: number): Promise<void> {
  while (!ready.test(proc.out())) {
    const { child } = proc;
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`portico exited (${child.exitCode ?? child.signalCode}) before listening:\n${proc.out()}\n${proc.err()}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`portico did not start in time:\n${proc.out()}\n${proc.err()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Runs `bin/portico ...args` and resolves once it prints its listening addresses. */
export async function startPortico(args: string[], options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number; netns?: string } = {}): Promise<RunningPortico> {
  const proc = spawnCli(args, options);
  const deadline = Date.now() + (options.timeoutMs ?? 15_000);
  await waitForOutput(proc, /listening on \S+[\s\S]*\n {2}server/, deadline);
  // The banner is several writes: the "  server" line can arrive in one pipe read and its routes
  // in the next (seen under load). Wait until the output is quiet for a moment (bounded).
  for (let length = -1; length !== proc.out().length && Date.now() < deadline; ) {
    length = proc.out().length;
    await new Promise((resolve) => setTimeout(resolve, 30));
  }
  const urls = [...proc.out().matchAll(/listening on (\S+)/g)].map((m) => m[1] as string);
  const url = urls[0] as string;
  return {
    pid: proc.pid,
    child: proc.child,
    url,
    urls,
    port: Number(new URL(url).port),
    stdout: proc.out,
    stderr: proc.err,
    stop: (signal: NodeJS.Signals = 'SIGTERM') => proc.stop(signal, 5000),
  };
}

/** Writes `config` as portico.config.json (or another name) into `dir`; returns the path. */
export function writeConfig(dir: string, config: unknown, name = 'portico.config.json'): string {
  const path = join(dir, name);
  writeFileSync(path, typeof config === 'string' ? config : JSON.stringify(config, null, 2));
  return path;
}

/** Starts portico on a config object (written to a temp dir); listen addresses default to a free port. */
export async function startWithConfig(dir: string, config: unknown, options: { env?: Record<string, string>; netns?: string; name?: string } = {}): Promise<RunningPortico> {
  const path = writeConfig(dir, config, options.name);
  return startPortico(['up', '--config', path], { cwd: dir, env: options.env, netns: options.netns });
}

export interface SimpleResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
}

/** One request with node:http (no keep-alive, no URL normalisation beyond node's). */
export function request(url: string, options: { method?: string; headers?: Record<string, string>; path?: string; body?: string | Buffer } = {}): Promise<SimpleResponse> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        // "[::1]" in a URL is the host "::1".
        host: target.hostname.replace(/^\[|\]$/g, ''),
        port: target.port,
        method: options.method ?? 'GET',
        path: options.path ?? `${target.pathname}${target.search}`,
        headers: options.headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString('utf8') });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/**
 * Sends raw bytes on a fresh TCP connection and returns everything received until the server
 * closes or `idleMs` passes without data. For parser, limit and traversal tests.
 */
export function rawRequest(port: number, data: string | Buffer, options: { host?: string; idleMs?: number } = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: options.host ?? '127.0.0.1' });
    const chunks: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks));
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(finish, options.idleMs ?? 1000);
    };
    socket.on('connect', () => {
      socket.write(data);
      arm();
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      arm();
    });
    socket.on('end', finish);
    socket.on('close', finish);
    socket.on('error', (error) => (chunks.length > 0 ? finish() : reject(error)));
  });
}

/** The status code of the first response in raw bytes ("HTTP/1.1 404 ..." → 404), or 0. */
export function statusOf(raw: Buffer | string): number {
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(raw.toString('latin1'));
  return match ? Number(match[1]) : 0;
}

/** Runs the CLI to completion (for check, help, bad configs). */
export async function runCli(args: string[], options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string; timedOut: boolean }> {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: options.cwd ?? ROOT, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, options.timeoutMs ?? 20_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  // 'exit' can come before the last of stdout/stderr has been read (the pipes close after the
  // process does): wait for them too, but boundedly, since a worker the child left behind could
  // hold them open.
  await outputClosed(child, 2000);
  return { code, stdout, stderr, timedOut };
}

/** Whether a process with this pid exists (signal 0: nothing is sent). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
