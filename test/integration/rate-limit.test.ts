/**
 * Rate limiting side by side with real nginx (Debian's): the same limit_req settings, the same
 * request pattern sent to both at the same time, each request classified PASSED / DELAYED /
 * REJECTED by the server itself (nginx's `$limit_req_status` in a header, Portico's in the body),
 * and both compared with nginx's leaky bucket computed on the moments the requests were sent.
 *
 * The one tolerance, and why: the model is evaluated on the client's send times, the servers
 * decide on their receive times, a few ms later and not always by the same amount. At 10 r/s a
 * bucket drains one request per 100 ms, so a request sent within 20 ms of a boundary (its excess
 * within 200 milli-requests of burst or delay) may land on either side; for such a batch any
 * outcome the model gives for the batch shifted by -20..+20 ms is accepted. Every other request
 * must match exactly. A delayed request must not be answered before its computed delay (less 25 ms
 * for the same client/server offset).
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, startWithConfig, tempDir, type RunningPortico } from '../helpers/portico.js';
import { startNginx, type RunningNginx } from '../helpers/nginx.js';

type Label = 'PASSED' | 'DELAYED' | 'REJECTED';
interface Result {
  readonly batch: number;
  readonly sentAt: number;
  readonly label: Label;
  readonly status: number;
  readonly latency: number;
  readonly retryAfter: string | undefined;
}

/** Batches: [offset ms from the start, number of requests sent at once]. */
const PATTERN: readonly (readonly [number, number])[] = [
  [0, 10], // a burst from an idle key
  [1300, 1], // drained: spaced at 150 ms, each passes
  [1450, 1],
  [1600, 1],
  [1750, 4], // a small burst on an empty bucket
  [1800, 3], // 50 ms later: the bucket is near burst
  [2600, 2], // partly drained
];

interface Limit {
  readonly name: string;
  readonly burst: number;
  /** nginx `delay=`; `Infinity` = nodelay. */
  readonly delay: number;
  readonly nginx: string;
}

const LIMITS: readonly Limit[] = [
  { name: 'delay', burst: 5, delay: 0, nginx: 'burst=5' },
  { name: 'nodelay', burst: 5, delay: Infinity, nginx: 'burst=5 nodelay' },
  { name: 'two-stage', burst: 5, delay: 3, nginx: 'burst=5 delay=3' },
];
const RATE = 10_000; // 10r/s in milli-requests per second

/** nginx's limit_req on send times; returns label and delay for each request. */
function model(times: readonly number[], limit: Limit): { label: Label; delay: number }[] {
  let excess = 0;
  let last: number | null = null;
  return times.map((now) => {
    let next = 0;
    if (last !== null) {
      const ms = Math.max(0, Math.floor(now) - last);
      next = Math.max(0, excess - Math.trunc((RATE * ms) / 1000) + 1000);
      if (next > limit.burst * 1000) return { label: 'REJECTED', delay: 0 };
    }
    if (last === null || Math.floor(now) !== last) last = Math.floor(now);
    excess = next;
    const over = excess - limit.delay * 1000;
    if (over <= 0) return { label: 'PASSED', delay: 0 };
    return { label: 'DELAYED', delay: Math.trunc((over * 1000) / RATE) };
  });
}

const count = (labels: readonly Label[]): string => {
  const n = (label: Label): number => labels.filter((l) => l === label).length;
  return `P${n('PASSED')} D${n('DELAYED')} R${n('REJECTED')}`;
};

function send(url: string, batch: number, label: (status: number, headers: Record<string, string | string[] | undefined>, body: string) => Label): Promise<Result> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const sentAt = performance.now();
    const req = httpRequest({ host: target.hostname, port: target.port, path: target.pathname, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        resolve({ batch, sentAt, label: label(status, res.headers, body), status, latency: performance.now() - sentAt, retryAfter: res.headers['retry-after'] as string | undefined });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** Sends PATTERN to `url` (requests of a batch at once, batches at their offsets). */
async function run(url: string, label: Parameters<typeof send>[2]): Promise<Result[]> {
  const start = performance.now();
  const pending: Promise<Result>[] = [];
  for (const [batch, [offset, n]] of PATTERN.entries()) {
    const wait = start + offset - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    for (let i = 0; i < n; i++) pending.push(send(url, batch, label));
  }
  return (await Promise.all(pending)).sort((a, b) => a.sentAt - b.sentAt);
}

/** Checks one server's results against the model (with the boundary tolerance); returns a table row per batch. */
function check(server: string, results: readonly Result[], limit: Limit): string[] {
  const times = results.map((r) => r.sentAt);
  const exact = model(times, limit);
  const rows: string[] = [];
  for (let batch = 0; batch < PATTERN.length; batch++) {
    const indexes = results.map((r, i) => (r.batch === batch ? i : -1)).filter((i) => i >= 0);
    const actual = count(indexes.map((i) => (results[i] as Result).label));
    // The batch shifted by -20..+20 ms relative to the earlier ones (see the file comment).
    const accepted = new Set<string>();
    for (let shift = -20; shift <= 20; shift += 5) {
      const shifted = times.map((t, i) => (results[i] as Result).batch >= batch ? t + shift : t);
      accepted.add(count(indexes.map((i) => (model(shifted, limit)[i] as { label: Label }).label)));
    }
    assert.ok(accepted.has(actual), `${server} ${limit.name} batch ${batch} (t=${PATTERN[batch]?.[0]} ms): got ${actual}, nginx's model says ${[...accepted].join(' or ')}`);
    rows.push(actual);
    for (const i of indexes) {
      const result = results[i] as Result;
      const expected = exact[i] as { label: Label; delay: number };
      if (result.label === 'REJECTED') assert.equal(result.status, 429, `${server}: a rejected request is a 429`);
      else assert.equal(result.status, 200);
      if (result.label === 'DELAYED' && expected.label === 'DELAYED' && accepted.size === 1) {
        assert.ok(result.latency >= expected.delay - 25, `${server} ${limit.name}: a request delayed ${expected.delay} ms was answered after ${result.latency.toFixed(0)} ms`);
      }
    }
  }
  return rows;
}

describe('rate limit 10r/s burst 5 (nodelay, delay=3) side by side with nginx limit_req', () => {
  const dir = tempDir('portico-rate-');
  let portico: RunningPortico;
  let nginx: RunningNginx;

  before(async () => {
    const root = join(dir.path, 'www');
    for (const limit of LIMITS) {
      mkdirSync(join(root, limit.name), { recursive: true });
      writeFileSync(join(root, limit.name, 'x'), 'ok\n');
    }
    const nginxPort = await freePort();
    mkdirSync(join(dir.path, 'nginx'));
    nginx = await startNginx(
      join(dir.path, 'nginx'),
      nginxPort,
      `${LIMITS.map((l) => `  limit_req_zone $binary_remote_addr zone=${l.name}:1m rate=10r/s;`).join('\n')}
  limit_req_status 429;
  server {
    listen 127.0.0.1:$PORT;
    root ${root};
${LIMITS.map((l) => `    location /${l.name}/ { limit_req zone=${l.name} ${l.nginx}; add_header X-Limit-Req $limit_req_status always; }`).join('\n')}
  }`,
    );
    const port = await freePort();
    portico = await startWithConfig(dir.path, {
      log: { access: false },
      limits: { rateZones: Object.fromEntries(LIMITS.map((l) => [l.name, { key: '$remote_addr', rate: '10r/s' }])) },
      servers: [
        {
          listen: `127.0.0.1:${port}`,
          routes: LIMITS.map((l) => ({
            prefix: `/${l.name}/`,
            rateLimit: { zone: l.name, burst: l.burst, ...(l.delay === Infinity ? { nodelay: true } : l.delay > 0 ? { delay: l.delay } : {}) },
            respond: { body: '$limit_req_status' },
          })),
        },
      ],
    });
  });
  after(async () => {
    await Promise.all([portico?.stop(), nginx?.stop()]);
    dir.remove();
  });

  for (const limit of LIMITS) {
    it(`${limit.name}: the same requests pass, wait and are rejected as in nginx`, async () => {
      const [ours, theirs] = await Promise.all([
        run(`${portico.url}/${limit.name}/x`, (status, _headers, body) => (status === 429 ? 'REJECTED' : (body as Label))),
        run(`${nginx.url}/${limit.name}/x`, (status, headers) => (status === 429 ? 'REJECTED' : (headers['x-limit-req'] as Label))),
      ]);
      const rowsOurs = check('portico', ours, limit);
      const rowsNginx = check('nginx', theirs, limit);
      const table = PATTERN.map(([offset, n], i) => `  t=${String(offset).padStart(4)} ms ×${n}: portico ${rowsOurs[i]}  nginx ${rowsNginx[i]}`).join('\n');
      process.stdout.write(`# ${limit.name} (10r/s burst=5${limit.delay === Infinity ? ' nodelay' : limit.delay ? ` delay=${limit.delay}` : ''}):\n${table.replace(/^/gm, '# ')}\n`);
      const rejected = ours.filter((r) => r.label === 'REJECTED');
      assert.ok(rejected.length > 0, 'the pattern makes rejections');
      for (const r of rejected) assert.ok(Number(r.retryAfter) >= 1, 'a 429 carries Retry-After in whole seconds');
      if (limit.delay !== Infinity) assert.ok(ours.some((r) => r.label === 'DELAYED'), 'the pattern makes delays');
    });
  }
});
