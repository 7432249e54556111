/**
 * A bounded HTTP load for tests: N clients, each sending one request after another until a
 * deadline, over keep-alive connections (one per client) or a fresh connection per request.
 * Counts statuses and socket errors; never asserts speed.
 */
import { Agent, request as httpRequest } from 'node:http';

export interface LoadResult {
  requests: number;
  ok: number;
  /** Non-2xx answers by status. */
  statuses: Record<string, number>;
  /** Socket and protocol errors by code. */
  errors: Record<string, number>;
  /** Bodies seen (first 40 characters), with counts: which generations answered. */
  bodies: Record<string, number>;
  durationMs: number;
}

export interface LoadOptions {
  readonly port: number;
  readonly paths: readonly string[];
  readonly clients: number;
  readonly durationMs: number;
  /** One connection per client, reused (true), or a new connection per request (false). */
  readonly keepAlive: boolean;
  /** Per-request bound: a request still unanswered after this counts as an error (ETIMEDOUT). */
  readonly requestTimeoutMs?: number;
  /** Called after each answered request with its time (for "what failed when"). */
  readonly onResult?: (at: number, ok: boolean, what: string) => void;
}

function once(port: number, path: string, agent: Agent | false, timeoutMs: number): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent, headers: { host: 'localhost' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
    });
    req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
    req.end();
  });
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const result: LoadResult = { requests: 0, ok: 0, statuses: {}, errors: {}, bodies: {}, durationMs: 0 };
  const started = Date.now();
  const deadline = started + options.durationMs;
  const clients = Array.from({ length: options.clients }, async (_, i) => {
    const agent = options.keepAlive ? new Agent({ keepAlive: true, maxSockets: 1 }) : false;
    let n = i;
    while (Date.now() < deadline) {
      const path = options.paths[n++ % options.paths.length] as string;
      const answer = await once(options.port, path, agent, options.requestTimeoutMs ?? 10_000);
      result.requests++;
      if ('error' in answer) {
        result.errors[answer.error] = (result.errors[answer.error] ?? 0) + 1;
        options.onResult?.(Date.now(), false, answer.error);
      } else if (answer.status >= 200 && answer.status < 300) {
        result.ok++;
        const key = answer.body.slice(0, 40);
        result.bodies[key] = (result.bodies[key] ?? 0) + 1;
        options.onResult?.(Date.now(), true, String(answer.status));
      } else {
        result.statuses[answer.status] = (result.statuses[answer.status] ?? 0) + 1;
        options.onResult?.(Date.now(), false, String(answer.status));
      }
    }
    if (agent) agent.destroy();
  });
  await Promise.all(clients);
  result.durationMs = Date.now() - started;
  return result;
}

export function summary(name: string, r: LoadResult): string {
  return `${name}: ${r.requests} requests in ${(r.durationMs / 1000).toFixed(1)} s, ${r.ok} 2xx, non-2xx ${JSON.stringify(r.statuses)}, errors ${JSON.stringify(r.errors)}`;
}
