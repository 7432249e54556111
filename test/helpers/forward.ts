/**
 * Forward-proxy test pieces: `portico forward` / `portico up` with a `forward` section as child
 * processes (stopped by PID), curl as the client, a self-signed certificate made by openssl for
 * a local HTTPS site, raw CONNECT tunnels, and TCP servers that count what reaches them. All on
 * loopback, on free ports.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { RequestListener } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { spawnCli, waitForOutput, writeConfig, type CliProcess } from './portico.js';

const run = promisify(execFile);

export interface RunningForward {
  readonly proc: CliProcess;
  /** "http://127.0.0.1:PORT", the first forward listener. */
  readonly url: string;
  readonly port: number;
  out(): string;
  err(): string;
  /** Access-log lines (stdout) that contain `text`. */
  logLines(text: string): string[];
  stop(): Promise<number | null>;
}

async function started(proc: CliProcess): Promise<RunningForward> {
  await waitForOutput(proc, /forward proxy on (\S+)/, Date.now() + 20_000);
  const url = /forward proxy on (\S+)/.exec(proc.out())?.[1] as string;
  return {
    proc,
    url,
    port: Number(new URL(url).port),
    out: proc.out,
    err: proc.err,
    logLines: (text) => proc.out().split('\n').filter((line) => line.includes(text)),
    stop: () => proc.stop('SIGTERM', 5000),
  };
}

/** `portico forward ...args` (add `--port 0` to get a free port). */
export function startForward(args: string[]): Promise<RunningForward> {
  return started(spawnCli(['forward', ...args]));
}

/** `portico up --config` on a config object written into `dir`. */
export function startForwardConfig(dir: string, config: unknown): Promise<RunningForward> {
  const path = writeConfig(dir, config);
  return started(spawnCli(['up', '--config', path], { cwd: dir }));
}

/** Waits (bounded) until `check` is true, polling. */
export async function eventually(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Runs Debian's curl; resolves its status code (from -w), body and stderr, whatever the exit code. */
export async function curl(args: string[]): Promise<{ status: number; body: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run('curl', ['-sS', '--max-time', '20', '-w', '\n%{http_code}', ...args], { maxBuffer: 64 * 1024 * 1024 });
    const cut = stdout.lastIndexOf('\n');
    return { status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut), stderr, code: 0 };
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; code?: number };
    const stdout = e.stdout ?? '';
    const cut = stdout.lastIndexOf('\n');
    return { status: Number(stdout.slice(cut + 1)) || 0, body: cut === -1 ? '' : stdout.slice(0, cut), stderr: e.stderr ?? '', code: e.code ?? -1 };
  }
}

/** A self-signed certificate for 127.0.0.1 and localhost, made with openssl in `dir`. */
export async function selfSignedCert(dir: string): Promise<{ cert: string; key: string; certPath: string }> {
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost']);
  return { cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8'), certPath };
}

/** A node:https site on 127.0.0.1 (a free port). */
export async function startHttpsSite(tls: { cert: string; key: string }, handler: RequestListener): Promise<{ server: HttpsServer; port: number; close(): Promise<void> }> {
  const server = createHttpsServer({ cert: tls.cert, key: tls.key }, handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  return {
    server,
    port,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface TcpServer {
  readonly server: Server;
  readonly port: number;
  /** Connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

/** A TCP server on `host` (a free port) running `onSocket` for each connection; counts them. */
export async function startTcpServer(onSocket: (socket: Socket) => void, host = '127.0.0.1'): Promise<TcpServer> {
  let count = 0;
  const open = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    count++;
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => socket.destroy());
    onSocket(socket);
  });
  server.listen(0, host);
  await once(server, 'listening');
  return {
    server,
    port: (server.address() as { port: number }).port,
    connections: () => count,
    close: async () => {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Reads everything until the peer's FIN, then answers "<bytes> <sha256>\n" and closes its side:
 * a tunnel passes the answer only if it passed the client's FIN on and kept the way back open
 * (half-close).
 */
export function digestAfterEnd(socket: Socket): void {
  const hash = createHash('sha256');
  let bytes = 0;
  socket.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    bytes += chunk.length;
  });
  socket.on('end', () => socket.end(`${bytes} ${hash.digest('hex')}\n`));
}

/** Echoes every byte back, and ends when the peer ends. */
export function echo(socket: Socket): void {
  socket.pipe(socket);
}

export interface Tunnel {
  readonly socket: Socket;
  /** The proxy's answer head ("HTTP/1.1 200 Connection established\r\n\r\n"). */
  readonly head: string;
  readonly status: number;
  /** Bytes after the head that arrived with it. */
  readonly rest: Buffer;
}

/** Opens a CONNECT tunnel to `target` through the proxy on `port`; resolves once the answer head arrived. */
export function openTunnel(port: number, target: string, options: { headers?: Record<string, string>; localAddress?: string } = {}): Promise<Tunnel> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true, ...(options.localAddress ? { localAddress: options.localAddress } : {}) });
    let buffered = Buffer.alloc(0);
    const extra = Object.entries(options.headers ?? {})
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join('');
    socket.once('connect', () => socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${extra}\r\n`));
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      socket.off('error', reject);
      socket.pause();
      const head = buffered.subarray(0, end + 4).toString('latin1');
      resolve({ socket, head, status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), rest: buffered.subarray(end + 4) });
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
}

/** Everything a socket sends until it ends (bounded by `ms`). */
export function readToEnd(socket: Socket, ms: number, first: Buffer = Buffer.alloc(0)): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [first];
    const timer = setTimeout(() => reject(new Error(`no end within ${ms} ms`)), ms);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.resume();
  });
}
