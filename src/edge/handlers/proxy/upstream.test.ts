/**
 * Dynamic membership of an upstream group (an app's workers): members added and removed at run
 * time, removal waiting for requests in flight, and an empty group making requests wait. No
 * server is contacted: pools are created lazily by undici and only closed here.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ResolvedUpstream } from '../../../config/resolved.js';
import type { RequestContext } from '../../context.js';
import { UpstreamGroup } from './upstream.js';

const config = (balance: ResolvedUpstream['balance'] = 'least-conn'): ResolvedUpstream => ({
  name: 'app:web',
  app: 'web',
  servers: [],
  protocol: 'http',
  balance,
  hashKey: '$request_uri',
  keepAlive: { connections: null, idleTimeout: 60_000 },
  connectTimeout: 5_000,
  headerTimeout: 60_000,
  idleTimeout: 60_000,
  timeout: 0,
  maxFails: 0,
  failTimeout: 10_000,
  slowStart: 0,
  healthCheck: null,
  retry: { tries: 2, timeout: 0, onError: true, onTimeout: false, statuses: [] },
});

const ctx = { clientAddress: '127.0.0.1' } as RequestContext;

describe('upstream group membership', () => {
  it('starts empty, picks members as they join, never a removed one', async () => {
    const group = new UpstreamGroup(config());
    assert.equal(group.dynamic, true);
    assert.equal(group.pick(ctx, null, Date.now()), null);
    const a = group.addServer('unix:/tmp/portico-test-a.sock');
    const b = group.addServer('unix:/tmp/portico-test-b.sock');
    assert.equal(group.addServer('unix:/tmp/portico-test-a.sock'), a, 'adding twice keeps one member');
    a.active = 1;
    assert.equal(group.pick(ctx, null, Date.now()), b, 'least outstanding requests');
    a.active = 0;
    await group.removeServer(b.url, 1000);
    for (let i = 0; i < 5; i++) assert.equal(group.pick(ctx, null, Date.now()), a);
    await group.close();
  });

  it('removeServer resolves once the member has no request in flight (bounded by the grace)', async () => {
    const group = new UpstreamGroup(config());
    const a = group.addServer('unix:/tmp/portico-test-a.sock');
    group.addServer('unix:/tmp/portico-test-b.sock');
    a.active = 1;
    const started = Date.now();
    let done = false;
    const removed = group.removeServer(a.url, 5000).then(() => (done = true));
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(done, false, 'waits while a request is in flight');
    assert.notEqual(group.pick(ctx, null, Date.now()), a, 'no new request meanwhile');
    a.active = 0;
    await removed;
    assert.ok(Date.now() - started < 1000);
    const b = group.servers[0];
    assert.ok(b);
    b.active = 1;
    const bounded = Date.now();
    await group.removeServer(b.url, 200);
    assert.ok(Date.now() - bounded < 1000, 'the grace bounds the wait');
    await group.close();
  });

  it('waitForServer: resolves when a member joins, false on timeout', async () => {
    const group = new UpstreamGroup(config());
    assert.equal(await group.waitForServer(50), false);
    const waiting = group.waitForServer(5000);
    setTimeout(() => group.addServer('unix:/tmp/portico-test-a.sock'), 50);
    assert.equal(await waiting, true);
    await group.close();
  });

  it('hash rings follow the members', async () => {
    const group = new UpstreamGroup(config('hash'));
    const urls = ['a', 'b', 'c'].map((n) => `unix:/tmp/portico-test-${n}.sock`);
    for (const url of urls) group.addServer(url);
    const keyed = (uri: string) => group.pick({ ...ctx, requestUri: uri } as unknown as RequestContext, null, Date.now());
    const before = new Map(Array.from({ length: 50 }, (_, i) => [`/k${i}`, keyed(`/k${i}`)?.url]));
    assert.equal(new Set(before.values()).size, 3);
    await group.removeServer(urls[2] as string, 100);
    for (const [key, url] of before) {
      const now = keyed(key)?.url;
      assert.notEqual(now, urls[2]);
      if (url !== urls[2]) assert.equal(now, url, `${key} moved although its server stayed`);
    }
    await group.close();
  });
});

describe('upstream group snapshot', () => {
  it('shows each server: in flight, attempts, failures, passive health, as plain data', async () => {
    const group = new UpstreamGroup({
      ...config('round-robin'),
      name: 'backend',
      app: null,
      maxFails: 2,
      servers: [
        { url: 'http://127.0.0.1:1', weight: 3, backup: false, maxConns: 0 },
        { url: 'http://127.0.0.1:2', weight: 1, backup: true, maxConns: 5 },
      ],
    });
    const [first] = group.servers;
    assert.ok(first);
    first.active = 2;
    first.attempts = 7;
    const now = Date.now();
    first.recordFailure(now);
    let snapshot = group.snapshot();
    assert.equal(snapshot.name, 'backend');
    assert.equal(snapshot.balance, 'round-robin');
    assert.equal(snapshot.dynamic, false);
    assert.deepEqual(snapshot.servers[0], { url: 'http://127.0.0.1:1', name: '127.0.0.1:1', weight: 3, backup: false, healthy: true, drained: false, down: false, inFlight: 2, maxConns: 0, attempts: 7, failures: 1, recentFailures: 1 });
    assert.equal(snapshot.servers[1]?.backup, true);
    assert.equal(snapshot.servers[1]?.maxConns, 5);
    first.recordFailure(now);
    snapshot = group.snapshot();
    assert.equal(snapshot.servers[0]?.down, true, 'maxFails reached: out for failTimeout');
    assert.equal(snapshot.servers[0]?.failures, 2);
    assert.equal(JSON.parse(JSON.stringify(snapshot)).servers.length, 2, 'serialisable as is');
    await group.close();
  });
});
