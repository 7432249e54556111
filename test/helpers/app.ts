/**
 * Harness for the app server: starts `bin/portico app|dev FILE ...` (the built CLI), waits for its
 * banner, and stops it by PID. Like helpers/portico.ts, but the app commands print
 * "listening on URL" followed by "  workers N" (app) or the dev notice (dev), not a server list.
 */
import type { ChildProcess } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { ROOT, spawnCli, waitForOutput, type SimpleResponse } from './portico.js';

export const APPS = join(ROOT, 'test', 'fixtures', 'apps');

export interface RunningApp {
  readonly pid: number;
  readonly child: ChildProcess;
  readonly url: string;
  readonly port: number;
  stdout(): string;
  stderr(): string;
  /** Waits (bounded) until `predicate` holds on stdout+stderr. */
  waitFor(predicate: (output: string) => boolean, timeoutMs?: number): Promise<void>;
  /** Resolves with the exit code once the process exits (no signal sent). */
  exited(): Promise<number | null>;
  /** SIGTERM (then SIGKILL after 10 s) by PID; resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs `bin/portico <command> ...args` and resolves once it has printed its listening line. */
export async function startApp(args: string[], options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<RunningApp> {
  const proc = spawnCli(args, options);
  const ready = /listening on (\S+)\n {2}(workers|development)/;
  await waitForOutput(proc, ready, Date.now() + (options.timeoutMs ?? 20_000));
  const url = (ready.exec(proc.out()) as RegExpExecArray)[1] as string;
  return {
    pid: proc.pid,
    child: proc.child,
    url,
    port: url.startsWith('http') ? Number(new URL(url).port) : 0,
    stdout: proc.out,
    stderr: proc.err,
    async waitFor(predicate, timeoutMs = 10_000) {
      const end = Date.now() + timeoutMs;
      while (!predicate(proc.out() + proc.err())) {
        if (Date.now() > end) throw new Error(`condition not met in ${timeoutMs} ms:\n${proc.out()}\n${proc.err()}`);
        await sleep(25);
      }
    },
    exited: () => proc.exited,
    stop: (signal: NodeJS.Signals = 'SIGTERM') => proc.stop(signal, 10_000),
  };
}

/** One request with node:http over TCP or a unix socket (no keep-alive), with an optional timeout. */
export function get(url: string, options: { method?: string; path?: string; headers?: Record<string, string>; body?: string | Buffer; socketPath?: string; timeoutMs?: number } = {}): Promise<SimpleResponse> {
  const target = new URL(url.startsWith('unix:') ? 'http://localhost/' : url);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        ...(options.socketPath ? { socketPath: options.socketPath } : { host: target.hostname, port: target.port }),
        method: options.method ?? 'GET',
        path: options.path ?? `${target.pathname}${target.search}`,
        headers: options.headers,
        agent: false,
        timeout: options.timeoutMs ?? 10_000,
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
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Sends requests from `concurrency` loops for `durationMs`; counts successes and failures. */
export async function load(url: string, options: { durationMs: number; concurrency: number; path?: string }): Promise<{ ok: number; failed: number; errors: string[]; bodies: Set<string> }> {
  const end = Date.now() + options.durationMs;
  let ok = 0;
  let failed = 0;
  const errors: string[] = [];
  const bodies = new Set<string>();
  await Promise.all(
    Array.from({ length: options.concurrency }, async () => {
      while (Date.now() < end) {
        try {
          const res = await get(url, { path: options.path ?? '/', timeoutMs: 5000 });
          if (res.status === 200) {
            ok += 1;
            bodies.add(res.text);
          } else {
            failed += 1;
            errors.push(`status ${res.status}: ${res.text.slice(0, 100)}`);
          }
        } catch (error) {
          failed += 1;
          errors.push((error as Error).message);
        }
      }
    }),
  );
  return { ok, failed, errors, bodies };
}
