/**
 * The admin API on a real `portico up` with two edge workers: one scrape for the whole node,
 * reload through the API (a bad config refused with its field paths while the running one
 * serves), drain and enable an upstream server under load, `portico status`, and the security
 * rules (Host, Origin, content type, token) on the wire.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, describe, it } from 'node:test';
import { runLoad } from '../helpers/load.js';
import { freePort, spawnCli, startWithConfig, tempDir, writeConfig, type RunningPortico } from '../helpers/portico.js';
import { startNodeUpstream, type NodeUpstream } from '../helpers/upstreams.js';

const running: { stop(): Promise<unknown> }[] = [];
after(async () => {
  for (const one of running.reverse()) await one.stop().catch(() => undefined);
});

interface Answer {
  readonly status: number;
  readonly body: string;
  readonly headers: Record<string, string | string[] | undefined>;
}

/** A request to the admin API, with full control of the headers (Host included). */
function admin(port: number, method: string, path: string, headers: Record<string, string> = {}, body = ''): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers: { host: `127.0.0.1:${port}`, ...headers }, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const JSON_TYPE = { 'content-type': 'application/json' };

/** The value of a metric line (labels as written by prom-client), summed over every line that matches. */
function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

async function node(config: Record<string, unknown>): Promise<{ portico: RunningPortico; adminPort: number; dir: string }> {
  const dir = tempDir('portico-admin-').path;
  const adminPort = await freePort();
  const portico = await startWithConfig(dir, { ...config, admin: { listen: `127.0.0.1:${adminPort}`, ...(config.admin as object | undefined) } });
  running.push(portico);
  return { portico, adminPort, dir };
}

describe('admin API', () => {
  it('one scrape covers both edge workers: request counts equal the load generator\'s', async () => {
    const port = await freePort();
    const slow = await startNodeUpstream((_req, res) => setTimeout(() => res.end('slow'), 1500));
    running.push({ stop: () => slow.close() });
    const { adminPort } = await node({ workers: 2, servers: [{ listen: `127.0.0.1:${port}`, routes: [{ prefix: '/slow', proxy: { to: slow.url } }, { respond: { body: 'ok\n' } }] }] });
    // A new connection per request: the kernel spreads them over both workers.
    const load = await runLoad({ port, paths: ['/'], clients: 8, durationMs: 3000, keepAlive: false });
    assert.equal(load.ok, load.requests, JSON.stringify(load));
    const scrape = await admin(adminPort, 'GET', '/metrics');
    assert.equal(scrape.status, 200);
    assert.match(String(scrape.headers['content-type']), /^text\/plain/);
    assert.equal(metricSum(scrape.body, 'portico_http_requests_total', { status_class: '2xx' }), load.requests);
    const perProcess = scrape.body.split('\n').filter((line) => line.startsWith('portico_edge_process_requests_total{'));
    assert.equal(perProcess.length, 2, `one series per edge worker:\n${perProcess.join('\n')}`);
    assert.equal(metricSum(scrape.body, 'portico_edge_process_requests_total'), load.requests);
    assert.equal(metricSum(scrape.body, 'portico_http_request_duration_seconds_count', { status_class: '2xx' }), load.requests);
    assert.equal(metricSum(scrape.body, 'portico_edge_workers'), 2);
    assert.match(scrape.body, /^process_resident_memory_bytes \d+/m);
    assert.equal(metricSum(scrape.body, 'portico_http_requests_in_flight'), 0, 'nothing in flight after the load');
    const { request } = await import('../helpers/portico.js');
    const slowRequest = request(`http://127.0.0.1:${port}/slow`);
    await new Promise((resolve) => setTimeout(resolve, 400));
    const during = (await admin(adminPort, 'GET', '/metrics')).body;
    assert.equal(metricSum(during, 'portico_http_requests_in_flight'), 1, 'the slow request is in flight');
    assert.equal(metricSum(during, 'portico_upstream_in_flight'), 1, 'one upstream request in flight');
    assert.equal((await slowRequest).body.toString(), 'slow');
    // No raw path or client address in any label.
    assert.doesNotMatch(scrape.body, /127\.0\.0\.1:\d+"?\}?.*portico_http_requests_total|path="|remote/);
  });

  it('reloads through the API: a bad config gets 400 with its field paths and the running one keeps serving; a good one swaps in', async () => {
    const port = await freePort();
    const adminPort = await freePort();
    const dir = tempDir('portico-admin-reload-').path;
    const config = (body: string, extra: Record<string, unknown> = {}) => ({ workers: 2, admin: { listen: `127.0.0.1:${adminPort}` }, servers: [{ listen: `127.0.0.1:${port}`, routes: [{ respond: { body } }], ...extra }] });
    const portico = await startWithConfig(dir, config('one\n'));
    running.push(portico);
    writeConfig(dir, config('two\n', { lsiten: 'typo' }));
    const refused = await admin(adminPort, 'POST', '/reload', JSON_TYPE, '{}');
    assert.equal(refused.status, 400);
    const result = JSON.parse(refused.body) as { ok: boolean; problems: string[]; generation: number };
    assert.equal(result.ok, false);
    assert.deepEqual(result.problems, ['servers[0].lsiten: unknown key (not a Portico setting here); did you mean `listen`?']);
    assert.equal(result.generation, 0);
    const { request } = await import('../helpers/portico.js');
    assert.equal((await request(`http://127.0.0.1:${port}/`)).body.toString(), 'one\n');
    writeConfig(dir, config('two\n'));
    const swapped = await admin(adminPort, 'POST', '/reload', JSON_TYPE, '{}');
    assert.equal(swapped.status, 200, swapped.body);
    assert.equal((JSON.parse(swapped.body) as { generation: number }).generation, 1);
    assert.equal((await request(`http://127.0.0.1:${port}/`)).body.toString(), 'two\n');
    const status = JSON.parse((await admin(adminPort, 'GET', '/status')).body) as { generation: number; lastReload: { ok: boolean; trigger: string }; edgeWorkers: unknown[]; listeners: { url: string }[] };
    assert.equal(status.generation, 1);
    assert.deepEqual([status.lastReload.ok, status.lastReload.trigger], [true, 'admin API']);
    assert.equal(status.edgeWorkers.length, 2);
    assert.deepEqual(status.listeners.map((l) => l.url), [`http://127.0.0.1:${port}`]);
    const metrics = (await admin(adminPort, 'GET', '/metrics')).body;
    assert.equal(metricSum(metrics, 'portico_config_reloads_total', { result: 'ok' }), 1);
    assert.equal(metricSum(metrics, 'portico_config_reloads_total', { result: 'refused' }), 1);
    assert.match(portico.stderr(), /"admin":"POST \/reload".*"msg":"admin: action"/);
  });

  it('drains an upstream server in every worker with 0 failed requests meanwhile, then enables it again; portico status shows it', async () => {
    const hits = { a: 0, b: 0 };
    const upstreams: NodeUpstream[] = [];
    for (const name of ['a', 'b'] as const) {
      const upstream = await startNodeUpstream((_req, res) => {
        hits[name]++;
        res.end(name);
      });
      upstreams.push(upstream);
      running.push({ stop: () => upstream.close() });
    }
    const [a, b] = upstreams as [NodeUpstream, NodeUpstream];
    const port = await freePort();
    const { adminPort, dir } = await node({ workers: 2, upstreams: { api: { servers: [a.url, b.url] } }, servers: [{ listen: `127.0.0.1:${port}`, routes: [{ proxy: { to: 'api' } }] }] });
    const loading = runLoad({ port, paths: ['/'], clients: 4, durationMs: 3000, keepAlive: true });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const drained = await admin(adminPort, 'POST', `/upstreams/api/${encodeURIComponent(b.url)}/drain`, JSON_TYPE, '{}');
    assert.equal(drained.status, 200, drained.body);
    assert.deepEqual(JSON.parse(drained.body), { upstream: 'api', server: b.url, state: 'drained', found: 2, processes: 2 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const bBefore = hits.b;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal(hits.b, bBefore, 'a drained server takes no new requests');
    const upstreamsView = JSON.parse((await admin(adminPort, 'GET', '/upstreams')).body) as { upstreams: { name: string; servers: { url: string; drained: boolean }[] }[] };
    assert.deepEqual(upstreamsView.upstreams.find((g) => g.name === 'api')?.servers.map((s) => [s.url, s.drained]), [[a.url, false], [b.url, true]]);
    const status = spawnCli(['status', '--config', `${dir}/portico.config.json`]);
    assert.equal(await status.exited, 0, status.err());
    assert.match(status.out(), new RegExp(`${b.url.replace(/[.:/]/g, '\\$&')} +drained`));
    assert.match(status.out(), /edge workers: 2 serving of 2/);
    const load = await loading;
    assert.deepEqual([load.errors, load.statuses], [{}, {}], 'no failed request while draining');
    const enabled = await admin(adminPort, 'POST', `/upstreams/api/${encodeURIComponent(b.url)}/enable`, JSON_TYPE, '{}');
    assert.equal(enabled.status, 200);
    const after = await runLoad({ port, paths: ['/'], clients: 2, durationMs: 500, keepAlive: true });
    assert.equal(after.ok, after.requests);
    assert.ok(hits.b > bBefore, 'an enabled server takes requests again');
    assert.equal((await admin(adminPort, 'POST', '/upstreams/api/nope/drain', JSON_TYPE, '{}')).status, 404);
    assert.equal((await admin(adminPort, 'POST', '/upstreams/api/%E0%A4%A/drain', JSON_TYPE, '{}')).status, 400, 'a malformed escape is the client\'s error');
  });

  it('weighs a server, purges the cache, lists, reloads and scales apps', async () => {
    let upstreamHits = 0;
    const upstream = await startNodeUpstream((_req, res) => {
      upstreamHits++;
      res.setHeader('cache-control', 'max-age=60');
      res.end(`n${upstreamHits}`);
    });
    running.push({ stop: () => upstream.close() });
    const port = await freePort();
    const { APPS } = await import('../helpers/app.js');
    const { adminPort } = await node({
      workers: 2,
      apps: { web: { module: `${APPS}/fetch-function.mjs`, workers: 1 } },
      // On disk too: both edge workers serve the one copy (memory tiers are per process).
      cache: { dir: 'cache' },
      upstreams: { api: { servers: [upstream.url] } },
      servers: [{ listen: `127.0.0.1:${port}`, routes: [{ prefix: '/app', app: 'web' }, { prefix: '/', proxy: { to: 'api' }, cache: true }] }],
    });
    const weighed = await admin(adminPort, 'POST', `/upstreams/api/${encodeURIComponent(upstream.url)}/weight`, JSON_TYPE, '{"weight": 5}');
    assert.equal(weighed.status, 200, weighed.body);
    assert.deepEqual(JSON.parse(weighed.body), { upstream: 'api', server: upstream.url, weight: 5, found: 2, processes: 2 });
    const view = JSON.parse((await admin(adminPort, 'GET', '/upstreams')).body) as { upstreams: { name: string; servers: { weight: number }[] }[] };
    assert.equal(view.upstreams.find((g) => g.name === 'api')?.servers[0]?.weight, 5);
    assert.equal((await admin(adminPort, 'POST', `/upstreams/api/${encodeURIComponent(upstream.url)}/weight`, JSON_TYPE, '{"weight": 0}')).status, 400);
    // The cache (key "$scheme://$host$request_uri", $host without the port, as nginx's): a miss stores, a hit serves it, the purge (one worker: memory + disk, relayed to the other) makes the next a miss.
    const { request } = await import('../helpers/portico.js');
    const get = () => request(`http://127.0.0.1:${port}/cached`, { headers: { connection: 'close' } });
    assert.equal((await get()).body.toString(), 'n1');
    for (let i = 0; i < 6; i++) assert.equal((await get()).body.toString(), 'n1', 'served from the cache by either worker');
    const purged = await admin(adminPort, 'POST', '/cache/purge', JSON_TYPE, JSON.stringify({ key: 'http://127.0.0.1/cached' }));
    assert.equal(purged.status, 200, purged.body);
    assert.equal((JSON.parse(purged.body) as { purged: number }).purged >= 1, true, purged.body);
    await new Promise((resolve) => setTimeout(resolve, 100));
    for (let i = 0; i < 6; i++) assert.notEqual((await get()).body.toString(), 'n1', 'no worker serves the purged copy');
    assert.equal((await admin(adminPort, 'POST', '/cache/purge', JSON_TYPE, JSON.stringify({ zone: 'nope', key: 'x' }))).status, 404);
    assert.equal((await admin(adminPort, 'POST', '/cache/purge', JSON_TYPE, '{"key": 1}')).status, 400);
    assert.equal((await admin(adminPort, 'POST', '/cache/purge', JSON_TYPE, 'not json')).status, 400);
    // Apps: listed with their workers; a rolling reload; scaled to two workers.
    const apps = JSON.parse((await admin(adminPort, 'GET', '/apps')).body) as { apps: Record<string, { workers: { pid: number }[] }> };
    const firstPid = apps.apps.web?.workers[0]?.pid;
    assert.ok(firstPid);
    assert.equal((await admin(adminPort, 'POST', '/apps/web/reload', JSON_TYPE, '{}')).status, 200);
    const { eventually } = await import('../helpers/forward.js');
    const workersNow = async () => (JSON.parse((await admin(adminPort, 'GET', '/apps')).body) as { apps: Record<string, { workers: { pid: number; state: string }[] }> }).apps.web?.workers ?? [];
    let latest: { pid: number; state: string }[] = [];
    const poll = setInterval(() => void workersNow().then((w) => (latest = w)), 100);
    try {
      await eventually(() => latest.length === 1 && latest[0]?.pid !== firstPid && latest[0]?.state === 'ready', 15_000, 'a new worker after the rolling reload');
      assert.equal((await admin(adminPort, 'POST', '/apps/web/scale', JSON_TYPE, '{"workers": 2}')).status, 200);
      await eventually(() => latest.filter((w) => w.state === 'ready').length === 2, 15_000, 'two workers after the scale');
    } finally {
      clearInterval(poll);
    }
    assert.equal((await request(`http://127.0.0.1:${port}/app`)).status, 200);
    assert.equal((await admin(adminPort, 'POST', '/apps/nope/reload', JSON_TYPE, '{}')).status, 404);
    // App workers' memory, from their heartbeats: in GET /apps and in the metrics.
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const withMemory = (JSON.parse((await admin(adminPort, 'GET', '/apps')).body) as { apps: Record<string, { workers: { rssBytes: number }[] }> }).apps.web?.workers ?? [];
    assert.ok(withMemory.length === 2 && withMemory.every((w) => w.rssBytes > 10 * 1024 * 1024), JSON.stringify(withMemory));
    assert.ok(metricSum((await admin(adminPort, 'GET', '/metrics')).body, 'portico_app_memory_bytes', { app: 'web' }) > 20 * 1024 * 1024);
  });

  it('security: Host, cross-origin and form posts are refused; the token is required where set', async () => {
    const port = await freePort();
    const { adminPort, portico } = await node({ workers: 1, servers: [{ listen: `127.0.0.1:${port}` }] });
    // DNS rebinding: a page that reached the port by another name.
    assert.equal((await admin(adminPort, 'GET', '/status', { host: 'evil.example:80' })).status, 403);
    // A cross-origin browser request, even with a JSON body.
    assert.equal((await admin(adminPort, 'POST', '/reload', { ...JSON_TYPE, origin: 'http://evil.example' }, '{}')).status, 403);
    assert.equal((await admin(adminPort, 'POST', '/reload', { ...JSON_TYPE, 'sec-fetch-site': 'cross-site' }, '{}')).status, 403);
    // A form post (what a cross-site page can send without CORS), and a POST with no type.
    const form = await admin(adminPort, 'POST', '/reload', { 'content-type': 'application/x-www-form-urlencoded' }, 'a=1');
    assert.equal(form.status, 415);
    assert.match(form.body, /application\/json/);
    assert.equal((await admin(adminPort, 'POST', '/reload', { 'content-type': 'text/plain' }, '{}')).status, 415);
    // The same origin is fine.
    assert.equal((await admin(adminPort, 'GET', '/status', { origin: `http://127.0.0.1:${adminPort}` })).status, 200);
    assert.equal((await admin(adminPort, 'GET', '/nope')).status, 404);
    assert.equal((await admin(adminPort, 'DELETE', '/status')).status, 405);
    assert.match(portico.stderr(), /admin: request refused/);

    const token = 'a-long-enough-admin-token';
    const port2 = await freePort();
    const guarded = await node({ workers: 1, admin: { token }, servers: [{ listen: `127.0.0.1:${port2}` }] });
    assert.equal((await admin(guarded.adminPort, 'GET', '/status')).status, 401);
    assert.equal((await admin(guarded.adminPort, 'GET', '/status', { authorization: 'Bearer wrong-token-wrong-token' })).status, 401);
    assert.equal((await admin(guarded.adminPort, 'GET', '/status', { authorization: `Bearer ${token}` })).status, 200);
    assert.equal((await admin(guarded.adminPort, 'GET', '/health')).status, 200, 'health needs no token (load balancer probes)');
    // With the token, a state change needs no JSON type.
    assert.equal((await admin(guarded.adminPort, 'POST', '/reload', { authorization: `Bearer ${token}` })).status, 200);
    const config = JSON.parse((await admin(guarded.adminPort, 'GET', '/config', { authorization: `Bearer ${token}` })).body) as { admin: { token: string } };
    assert.equal(config.admin.token, '(set)', 'the token is not shown');
  });

  it('a TCP admin address that is not loopback without a token is a config error', async () => {
    const dir = tempDir('portico-admin-check-').path;
    const file = writeConfig(dir, { admin: { listen: '0.0.0.0:2019' }, servers: [{ listen: '127.0.0.1:0' }] });
    const check = spawnCli(['check', '--config', file]);
    assert.equal(await check.exited, 2);
    assert.match(check.err(), /admin\.token: expected a token when admin\.listen is not loopback \("0\.0\.0\.0:2019"\)/);
    const clash = writeConfig(dir, { admin: { listen: '127.0.0.1:8080' }, servers: [{ listen: '127.0.0.1:8080' }] }, 'clash.json');
    const refused = spawnCli(['check', '--config', clash]);
    assert.equal(await refused.exited, 2);
    assert.match(refused.err(), /admin\.listen: expected an address of its own, got "127\.0\.0\.1:8080"/);
  });
});
