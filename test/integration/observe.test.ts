/**
 * The observation seam (edge/observe.ts): a real EdgeServer in this process, a real upstream on
 * loopback, and subscribers on the `portico:*` diagnostics channels, as metrics will subscribe.
 * Also the edge's snapshot (listeners, upstreams, cache zones) after that traffic.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import type { RequestContext } from '../../src/edge/context.js';
import { createEdgeEnvironment } from '../../src/edge/environment.js';
import type { CacheStatusMessage, UpstreamAttemptMessage } from '../../src/edge/observe.js';
import { EdgeServer } from '../../src/edge/server.js';
import { refusedPort, startNodeUpstream, type NodeUpstream } from '../helpers/upstreams.js';

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('observation channels (node:diagnostics_channel)', () => {
  let upstream: NodeUpstream;
  let edge: EdgeServer;
  let base = '';
  const ended: { status: number; uri: string; route: string | null }[] = [];
  const attempts: Omit<UpstreamAttemptMessage, 'ctx'>[] = [];
  const cacheStatuses: Omit<CacheStatusMessage, 'ctx'>[] = [];
  const onEnd = (message: unknown) => {
    const ctx = message as RequestContext;
    ended.push({ status: ctx.status, uri: ctx.uri, route: ctx.route?.id ?? null });
  };
  const onAttempt = (message: unknown) => {
    const { ctx: _ctx, ...rest } = message as UpstreamAttemptMessage;
    attempts.push(rest);
  };
  const onCache = (message: unknown) => {
    const { ctx: _ctx, ...rest } = message as CacheStatusMessage;
    cacheStatuses.push(rest);
  };

  before(async () => {
    upstream = await startNodeUpstream((req, res) => {
      res.setHeader('Cache-Control', req.url?.startsWith('/cached') ? 'max-age=60' : 'no-store');
      res.end(`from upstream ${req.url}`);
    });
    const dead = await refusedPort();
    const config = validateConfig(
      {
        log: { access: false },
        upstreams: {
          pair: { servers: [`http://127.0.0.1:${dead}`, upstream.url], balance: 'round-robin', retry: { tries: 2 } },
        },
        servers: [
          {
            listen: '127.0.0.1:0',
            routes: [
              { exact: '/hello', respond: { body: 'hi' } },
              { prefix: '/cached', proxy: { to: upstream.url }, cache: {} },
              { prefix: '/pair', proxy: { to: 'pair' } },
            ],
          },
        ],
      },
      process.cwd(),
      null,
    );
    edge = new EdgeServer(config, createEdgeEnvironment());
    await edge.start();
    base = edge.addresses()[0]?.url ?? '';
    subscribe('portico:request:end', onEnd);
    subscribe('portico:upstream:attempt', onAttempt);
    subscribe('portico:cache:status', onCache);
  });
  after(async () => {
    unsubscribe('portico:request:end', onEnd);
    unsubscribe('portico:upstream:attempt', onAttempt);
    unsubscribe('portico:cache:status', onCache);
    await edge.stop(0);
    await upstream.close();
  });

  it('portico:request:end: once per request, after the response, with its final status and route', async () => {
    ended.length = 0;
    assert.equal((await get(`${base}/hello`)).status, 200);
    assert.equal((await get(`${base}/nowhere`)).status, 404);
    // 'close' on the response follows the client's end of the body by a tick.
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(ended, [
      { status: 200, uri: '/hello', route: ended[0]?.route ?? null },
      { status: 404, uri: '/nowhere', route: null },
    ]);
    assert.ok(ended[0]?.route, 'the route that served it');
  });

  it('portico:cache:status: the zone and the Cache-Status of a miss, then a hit', async () => {
    cacheStatuses.length = 0;
    assert.equal((await get(`${base}/cached/a`)).body, 'from upstream /cached/a');
    assert.equal((await get(`${base}/cached/a`)).body, 'from upstream /cached/a');
    assert.equal(cacheStatuses.length, 2);
    assert.equal(cacheStatuses[0]?.zone, 'default');
    assert.match(cacheStatuses[0]?.status ?? '', /^portico; fwd=miss; fwd-status=200; stored/);
    assert.match(cacheStatuses[1]?.status ?? '', /^portico; hit/);
  });

  it('portico:upstream:attempt: each attempt with its server, number, outcome and duration (a refused server, then the retry)', async () => {
    attempts.length = 0;
    // Round robin over [dead, live]: within two requests one starts on the dead server and is retried on the live one.
    for (let i = 0; i < 2; i++) assert.equal((await get(`${base}/pair/x`)).status, 200);
    const failed = attempts.filter((a) => !a.ok);
    const passed = attempts.filter((a) => a.ok);
    assert.equal(passed.length, 2);
    assert.ok(failed.length >= 1);
    assert.equal(failed[0]?.upstream, 'pair');
    assert.equal(failed[0]?.attempt, 1);
    assert.match(failed[0]?.code ?? '', /ECONNREFUSED/);
    assert.ok(passed.some((a) => a.attempt === 2), 'the retry is attempt 2');
    for (const a of attempts) assert.ok(a.durationMs >= 0 && a.durationMs < 10_000);
    assert.deepEqual(new Set(passed.map((a) => a.server)), new Set([new URL(upstream.url).host]));
  });

  it("snapshot(): the listener, the upstream servers' attempts and failures, the cache zone's entries", () => {
    const snapshot = edge.snapshot();
    assert.deepEqual(snapshot.listeners.map((l) => l.kind), ['site']);
    const pair = snapshot.upstreams.find((u) => u.name === 'pair');
    assert.ok(pair);
    assert.equal(pair.servers.length, 2);
    assert.equal(pair.servers.reduce((sum, s) => sum + s.attempts, 0), attempts.length);
    assert.ok((pair.servers[0]?.failures ?? 0) >= 1);
    assert.equal(pair.servers.every((s) => s.inFlight === 0), true);
    const zone = snapshot.cacheZones.find((z) => z.name === 'default');
    assert.ok(zone);
    assert.equal(zone.memory.entries, 1, 'the one response stored');
    assert.ok(zone.memory.bytes > 0 && zone.memory.bytes <= zone.memory.maxBytes);
  });
});
