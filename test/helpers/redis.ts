/**
 * Runs Debian's real redis-server for the shared-state tests: no config file, no persistence,
 * its folder a temp one, bound to one address on a free port, stopped by PID. `restart` stops it
 * and starts it again on the same address (the "Redis killed mid-test" case).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';

export interface RunningRedis {
  readonly host: string;
  readonly port: number;
  readonly url: string;
  readonly pid: number;
  /** Kills it (SIGKILL: as a crash would); `start` brings it back, empty, on the same address. */
  kill(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Runs one command with redis-cli-like semantics over a raw socket (RESP), for assertions. */
  command(...args: string[]): Promise<string>;
}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** `netns`: run it in that network namespace (test/helpers/netns.ts), bound to `host` there. */
export async function startRedis(dir: string, port: number, host = '127.0.0.1', netns?: string): Promise<RunningRedis> {
  let child: ChildProcess | null = null;
  const start = async (): Promise<void> => {
    // `ip netns exec` execs redis-server: the pid is the server's.
    const [command, prefix] = netns ? ['ip', ['netns', 'exec', netns, 'redis-server']] : ['redis-server', []];
    child = spawn(command, [...prefix, '--bind', host, '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no'], { stdio: 'ignore' });
    const deadline = Date.now() + 10_000;
    while (!(await accepts(host, port))) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`redis-server did not start on ${host}:${port}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const halt = async (signal: NodeJS.Signals): Promise<void> => {
    const running = child;
    child = null;
    if (!running || running.exitCode !== null) return;
    const exited = once(running, 'exit');
    running.kill(signal);
    await exited;
  };
  await start();
  const hostInUrl = host.includes(':') ? `[${host}]` : host;
  return {
    host,
    port,
    url: `redis://${hostInUrl}:${port}`,
    get pid() {
      return (child as ChildProcess | null)?.pid ?? 0;
    },
    kill: () => halt('SIGKILL'),
    start,
    stop: () => halt('SIGTERM'),
    command: (...args) => rawCommand(host, port, args),
  };
}

/** One RESP command and its reply as text (integers and bulk strings; arrays joined by newlines). */
function rawCommand(host: string, port: number, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      data += chunk;
      const parsed = parseReply(data);
      if (parsed !== undefined) {
        socket.destroy();
        resolve(parsed);
      }
    });
    socket.on('error', reject);
    socket.write(`*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`);
  });
}

function parseReply(data: string): string | undefined {
  const lines = data.split('\r\n');
  const first = lines[0] ?? '';
  if (!data.includes('\r\n')) return undefined;
  if (first[0] === ':' || first[0] === '+' || first[0] === '-') return first.slice(1);
  if (first === '$-1' || first === '*-1') return '';
  if (first[0] === '$') {
    // A bulk string is complete once its declared length and the CRLF after it have arrived (it may hold line breaks).
    const length = Number(first.slice(1));
    const rest = Buffer.from(data.slice(first.length + 2));
    return rest.length >= length + 2 ? rest.subarray(0, length).toString() : undefined;
  }
  if (first[0] === '*') {
    const count = Number(first.slice(1));
    const items: string[] = [];
    let i = 1;
    while (items.length < count) {
      const head = lines[i];
      if (head === undefined || lines[i + 1] === undefined) return undefined;
      if (head[0] === ':') {
        items.push(head.slice(1));
        i += 1;
      } else {
        items.push(lines[i + 1] as string);
        i += 2;
      }
    }
    return items.join('\n');
  }
  return undefined;
}
