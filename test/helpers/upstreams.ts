/**
 * Real upstream servers for the proxy tests, on loopback only: node:http servers in the test
 * process, a TCP server that accepts and never answers, gunicorn (a real WSGI server) as a child
 * process stopped by PID, and the RSS of a process read from /proc. Nothing here mocks anything.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { connect, createServer as createNetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { join } from 'node:path';
import { freePort, ROOT } from './portico.js';

export const APPS_DIR = join(ROOT, 'test', 'fixtures', 'apps');

export interface NodeUpstream {
  readonly server: Server;
  readonly port: number;
  /** "http://127.0.0.1:PORT" */
  readonly url: string;
  /** Distinct TCP connections accepted so far. */
  connections(): number;
  /** Closes the server and every connection it has (in-flight ones included). */
  close(): Promise<void>;
}

/** Tracks sockets of a server so that close() never waits on a keep-alive connection. */
function trackSockets(server: Server | ReturnType<typeof createNetServer>): { count(): number; destroyAll(): void } {
  const open = new Set<Socket>();
  let count = 0;
  server.on('connection', (socket: Socket) => {
    count++;
    open.add(socket);
    socket.on('close', () => open.delete(socket));
  });
  return {
    count: () => count,
    destroyAll: () => {
      for (const socket of open) socket.destroy();
    },
  };
}

/**
 * A node:http upstream on 127.0.0.1 (a free port). `onUpgrade` takes `Upgrade` requests; without
 * it node answers them by closing the socket.
 */
/** `host`: the address to listen on (127.0.0.1; a test network's gateway for hosts in namespaces). */
export async function startNodeUpstream(handler: RequestListener, options: { onUpgrade?: (req: IncomingMessage, socket: Duplex, head: Buffer) => void; host?: string } = {}): Promise<NodeUpstream> {
  const host = options.host ?? '127.0.0.1';
  const server = createHttpServer({ keepAliveTimeout: 30_000, requestTimeout: 0 }, handler);
  if (options.onUpgrade) server.on('upgrade', options.onUpgrade);
  const sockets = trackSockets(server);
  server.listen(0, host);
  await once(server, 'listening');
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('upstream has no port');
  return {
    server,
    port: address.port,
    url: `http://${host}:${address.port}`,
    connections: sockets.count,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      sockets.destroyAll();
      server.closeAllConnections();
      await closed;
    },
  };
}

/** What the echo upstream answers: the request as it arrived. */
export interface EchoedRequest {
  method: string;
  url: string;
  /** Raw header lines as received: [[name, value], …] in order. */
  rawHeaders: [string, string][];
  headers: Record<string, string | string[] | undefined>;
  remoteAddress: string;
  bodyLength: number;
  body: string;
}

/** An upstream that answers every request with a JSON description of it (and the body it read). */
export function echoHandler(extraHeaders: Record<string, string | string[]> = {}): RequestListener {
  return (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const raw: [string, string][] = [];
      for (let i = 0; i < req.rawHeaders.length; i += 2) raw.push([req.rawHeaders[i] as string, req.rawHeaders[i + 1] as string]);
      const echoed: EchoedRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        rawHeaders: raw,
        headers: req.headers,
        remoteAddress: req.socket.remoteAddress ?? '',
        bodyLength: body.length,
        body: body.toString('latin1'),
      };
      const json = JSON.stringify(echoed);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json), ...extraHeaders });
      res.end(json);
    });
  };
}

/** Header lookup in an echoed raw header list: every value of `name` (case-insensitive). */
export function headerValues(echoed: EchoedRequest, name: string): string[] {
  const lower = name.toLowerCase();
  return echoed.rawHeaders.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v);
}

export interface HungUpstream {
  readonly port: number;
  readonly url: string;
  /** Connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

/** A TCP server that accepts connections, reads what comes and never answers. */
export async function startHungUpstream(): Promise<HungUpstream> {
  const server = createNetServer((socket) => {
    socket.on('error', () => socket.destroy());
    socket.resume();
  });
  const sockets = trackSockets(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    url: `http://127.0.0.1:${address.port}`,
    connections: sockets.count,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      sockets.destroyAll();
      await closed;
    },
  };
}

/** A loopback port with nothing listening on it (connections are refused). */
export async function refusedPort(): Promise<number> {
  const port = await freePort();
  // Make sure: a refused connect proves nobody took the port in between.
  await new Promise<void>((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.on('connect', () => {
      socket.destroy();
      reject(new Error(`port ${port} unexpectedly accepted a connection`));
    });
    socket.on('error', () => resolve());
  });
  return port;
}

/** VmRSS of a process in bytes, from /proc/<pid>/status; null when the process is gone. */
export function rssBytes(pid: number): number | null {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return match ? Number(match[1]) * 1024 : null;
}

export interface RssSampler {
  /** Stops sampling; returns the highest RSS seen (bytes) and the number of samples. */
  stop(): { peak: number; samples: number };
}

/** Samples a process's RSS every `intervalMs` (the peak is what a buffering proxy would show). */
export function sampleRss(pid: number, intervalMs = 25): RssSampler {
  let peak = rssBytes(pid) ?? 0;
  let samples = 1;
  const timer = setInterval(() => {
    const rss = rssBytes(pid);
    if (rss === null) return;
    samples++;
    if (rss > peak) peak = rss;
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      const rss = rssBytes(pid);
      if (rss !== null && rss > peak) peak = rss;
      return { peak, samples: samples + 1 };
    },
  };
}

export const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// gunicorn

export interface Gunicorn {
  readonly pid: number;
  readonly child: ChildProcess;
  readonly port: number;
  readonly url: string;
  output(): string;
  /** SIGTERM to the master by PID, then SIGKILL to its process group after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/** The gunicorn command, or an Error that says how to install it (the tests fail on it, never skip). */
export function gunicornCommand(): { command: string; args: string[] } {
  for (const path of ['/usr/bin/gunicorn', '/usr/local/bin/gunicorn']) if (existsSync(path)) return { command: path, args: [] };
  const probe = spawnSync('python3', ['-c', 'import gunicorn, flask'], { stdio: 'ignore' });
  if (probe.status === 0) return { command: 'python3', args: ['-m', 'gunicorn'] };
  throw new Error('gunicorn is not installed (needed by the proxy tests against a real WSGI server): `apt-get install gunicorn python3-flask` (CI: .ci/run installs it)');
}

/** Fails with an install hint when Flask cannot be imported by python3. */
export function assertFlaskInstalled(): void {
  const probe = spawnSync('python3', ['-c', 'import flask'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    throw new Error(`python3 cannot import flask (needed by the gunicorn proxy tests): \`apt-get install python3-flask\` (CI: .ci/run installs it)\n${probe.stderr ?? String(probe.error)}`);
  }
}

function getStatus(url: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

/**
 * Starts `gunicorn --bind 127.0.0.1:PORT --workers N --chdir test/fixtures/apps MODULE:app` and
 * resolves once `readyPath` answers 200 (within `timeoutMs`).
 */
export async function startGunicorn(options: { app?: string; workers?: number; readyPath?: string; timeoutMs?: number } = {}): Promise<Gunicorn> {
  assertFlaskInstalled();
  const { command, args } = gunicornCommand();
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    command,
    [...args, '--bind', `127.0.0.1:${port}`, '--workers', String(options.workers ?? 2), '--graceful-timeout', '2', '--timeout', '60', '--chdir', APPS_DIR, options.app ?? 'flask_app:app'],
    // Its own process group, so that a last-resort SIGKILL reaches the workers too.
    { cwd: APPS_DIR, stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1' } },
  );
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  const exited = once(child, 'exit');
  const pid = child.pid;
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  const stop = async (graceMs = 5_000) => {
    if (pid !== undefined) await stopProcessGroup(pid, gone, exited, graceMs);
  };
  if (pid === undefined) throw new Error(`gunicorn did not start: ${(await spawnError).message}`);
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  for (;;) {
    if (gone()) throw new Error(`gunicorn exited (${child.exitCode ?? child.signalCode}) before answering:\n${out}`);
    if ((await getStatus(`${url}${options.readyPath ?? '/health'}`, 1_000)) === 200) break;
    if (Date.now() > deadline) {
      await stop(0);
      throw new Error(`gunicorn did not answer on ${url} within ${options.timeoutMs ?? 20_000} ms:\n${out}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { pid, child, port, url, output: () => out, stop };
}

// ---------------------------------------------------------------------------------------------
// raw HTTP/1.1 exchanges (exact request bytes, every response header line as sent)

export interface RawResponse {
  status: number;
  /** Interim (1xx) statuses received before the final response. */
  interim: number[];
  /** Header lines in order, names as sent. */
  headers: [string, string][];
  body: Buffer;
}

/** Every value of a header in a raw response (case-insensitive name). */
export function rawHeader(response: RawResponse, name: string): string[] {
  const lower = name.toLowerCase();
  return response.headers.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v);
}

/**
 * Sends `head` (+ `body`) on a new connection to 127.0.0.1:port and resolves with the first
 * response once its Content-Length body is complete (or the connection ends), within `timeoutMs`.
 */
export function rawHttp(port: number, head: string, body: Buffer | string = '', timeoutMs = 5_000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let buffer = Buffer.alloc(0);
    let parsed: { status: number; headers: [string, string][]; bodyStart: number; length: number | null } | null = null;
    const interim: number[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete response within ${timeoutMs} ms; got: ${JSON.stringify(buffer.toString('latin1').slice(0, 500))}`));
    }, timeoutMs);
    const done = () => {
      if (!parsed) return false;
      const available = buffer.length - parsed.bodyStart;
      if (parsed.length !== null && available < parsed.length) return false;
      clearTimeout(timer);
      socket.destroy();
      resolve({ status: parsed.status, interim, headers: parsed.headers, body: buffer.subarray(parsed.bodyStart, parsed.length === null ? undefined : parsed.bodyStart + parsed.length) });
      return true;
    };
    socket.on('connect', () => socket.write(Buffer.concat([Buffer.from(head, 'latin1'), Buffer.isBuffer(body) ? body : Buffer.from(body, 'latin1')])));
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      while (!parsed) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end === -1) return;
        const lines = buffer.subarray(0, end).toString('latin1').split('\r\n');
        const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
        if (status >= 100 && status < 200) {
          // An interim response (100 Continue): skip it, the final one follows.
          interim.push(status);
          buffer = buffer.subarray(end + 4);
          continue;
        }
        const headers = lines.slice(1).map((line): [string, string] => {
          const colon = line.indexOf(':');
          return [line.slice(0, colon), line.slice(colon + 1).trim()];
        });
        const length = headers.find(([n]) => n.toLowerCase() === 'content-length');
        parsed = { status, headers, bodyStart: end + 4, length: length ? Number(length[1]) : null };
      }
      done();
    });
    const ended = () => {
      if (parsed && done()) return;
      clearTimeout(timer);
      if (parsed) resolve({ status: parsed.status, interim, headers: parsed.headers, body: buffer.subarray(parsed.bodyStart) });
      else reject(new Error(`connection closed before a response head: ${JSON.stringify(buffer.toString('latin1'))}`));
    };
    socket.on('end', ended);
    socket.on('error', (error) => {
      clearTimeout(timer);
      if (parsed) ended();
      else reject(error);
    });
  });
}

/**
 * Stops a server started in its own process group (gunicorn, uWSGI): SIGTERM to the master by
 * PID, SIGKILL to the group after `graceMs`, and SIGKILL to any worker that outlived the master.
 */
export async function stopProcessGroup(pid: number, gone: () => boolean, exited: Promise<unknown>, graceMs: number): Promise<void> {
  if (!gone()) {
    process.kill(pid, 'SIGTERM');
    const timer = setTimeout(() => {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, graceMs);
    await exited;
    clearTimeout(timer);
  }
  try {
    process.kill(-pid, 'SIGKILL'); // workers that outlived the master (they should not)
  } catch {
    // none left
  }
}
