/**
 * The gateway interface, end to end: `portico app FILE` with real worker processes and sockets.
 */
import assert from 'node:assert/strict';
import { Agent, request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { APPS, get, sleep, startApp, type RunningApp } from '../helpers/app.js';
import { runCli } from '../helpers/portico.js';

const app = (name: string, ...flags: string[]) => startApp(['app', join(APPS, name), '--workers', '1', '--bind', '127.0.0.1:0', ...flags]);

describe('app gateway: detection', () => {
  const running: RunningApp[] = [];
  after(async () => {
    await Promise.all(running.map((r) => r.stop()));
  });

  it('serves a Fetch object from a TypeScript module (no build step)', async () => {
    const r = await app('fetch-object.ts');
    running.push(r);
    const res = await get(`${r.url}/hello`);
    assert.equal(res.status, 200);
    assert.equal(res.text, 'fetch object GET /hello');
    assert.equal(res.headers['x-app'], 'fetch-object');
    assert.match(r.stdout(), /workers 1 \(pids \d+\)/);
  });

  it('serves a one-parameter Fetch function', async () => {
    const r = await app('fetch-function.mjs');
    running.push(r);
    assert.equal((await get(`${r.url}/f`)).text, 'fetch function /f');
  });

  it('serves a two-parameter Fetch function when the module says gateway = "fetch"', async () => {
    const r = await app('fetch-context.mjs');
    running.push(r);
    assert.equal((await get(`${r.url}/`)).text, 'fetch with context from 127.0.0.1');
  });

  it('serves a Node request listener', async () => {
    const r = await app('node-listener.mjs');
    running.push(r);
    const res = await get(`${r.url}/n?x=1`);
    assert.equal(res.status, 200);
    assert.equal(res.text, 'node listener GET /n?x=1');
  });

  it('refuses a module that exports no app: exit 2, the message names the file', async () => {
    const result = await runCli(['app', join(APPS, 'neither.mjs'), '--workers', '2', '--bind', '127.0.0.1:0'], { timeoutMs: 20_000 });
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /portico: .*neither\.mjs: a default export of type number/);
  });

  it('refuses a missing file with exit 2 before forking', async () => {
    const result = await runCli(['app', join(APPS, 'no-such-app.ts')]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /app file not found: .*no-such-app\.ts/);
  });
});

describe('app gateway: failures become 500s', () => {
  let fetchApp: RunningApp;
  let nodeApp: RunningApp;
  before(async () => {
    [fetchApp, nodeApp] = await Promise.all([app('throws.mjs'), app('node-throws.mjs')]);
  });
  after(async () => {
    await Promise.all([fetchApp.stop(), nodeApp.stop()]);
  });

  it('a synchronous throw in a Fetch handler is a 500 and the worker survives', async () => {
    const before = (await get(`${fetchApp.url}/`)).text;
    const res = await get(`${fetchApp.url}/sync`);
    assert.equal(res.status, 500);
    assert.equal(res.text, 'Internal Server Error\n');
    assert.doesNotMatch(res.text, /boom/); // no detail leaks to the client
    assert.equal((await get(`${fetchApp.url}/`)).text, before, 'same worker pid after the error');
  });

  it('a rejected promise is a 500', async () => {
    assert.equal((await get(`${fetchApp.url}/reject`)).status, 500);
  });

  it('a handler returning something other than a Response is a 500', async () => {
    assert.equal((await get(`${fetchApp.url}/not-response`)).status, 500);
    await fetchApp.waitFor((out) => /returned Object, not a Response/.test(out));
  });

  it('a Node listener that throws or rejects is a 500 and the worker survives', async () => {
    const first = (await get(`${nodeApp.url}/`)).text;
    assert.equal((await get(`${nodeApp.url}/sync`)).status, 500);
    assert.equal((await get(`${nodeApp.url}/reject`)).status, 500);
    assert.equal((await get(`${nodeApp.url}/`)).text, first);
  });
});

describe('app gateway: streaming and context', () => {
  let r: RunningApp;
  let s: RunningApp;
  before(async () => {
    [r, s] = await Promise.all([app('fetch-object.ts'), app('stream.mjs')]);
  });
  after(async () => {
    await Promise.all([r.stop(), s.stop()]);
  });

  it('context.clientAddress is the client address', async () => {
    const res = await get(`${r.url}/client`);
    assert.deepEqual(JSON.parse(res.text), { clientAddress: '127.0.0.1', remoteAddress: '127.0.0.1' });
  });

  it('a POST body reaches a Fetch app as a stream', async () => {
    const size = 3 * 1024 * 1024;
    const res = await get(`${r.url}/echo`, { method: 'POST', body: Buffer.alloc(size, 97), headers: { 'content-type': 'application/octet-stream' } });
    const body = JSON.parse(res.text) as { bytes: number; chunks: number; method: string; type: string };
    assert.equal(body.bytes, size);
    assert.equal(body.method, 'POST');
    assert.equal(body.type, 'application/octet-stream');
    assert.ok(body.chunks > 1, `expected several chunks, got ${body.chunks}`);
  });

  it('server-sent events arrive incrementally: the first event before the stream ends', async () => {
    const received: string[] = [];
    const done = new Promise<{ status: number; type: string | undefined }>((resolve, reject) => {
      const req = httpRequest(`${s.url}/events`, { agent: false }, (res) => {
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          received.push(chunk);
          // Only after the first event has arrived does the test let the app send the second.
          if (received.length === 1) void get(`${s.url}/release`);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'] }));
      });
      req.on('error', reject);
      req.setTimeout(5000, () => req.destroy(new Error('the first event never arrived (buffered?)')));
      req.end();
    });
    const result = await done;
    assert.equal(result.status, 200);
    assert.equal(result.type, 'text/event-stream');
    assert.equal(received[0], 'data: first\n\n');
    assert.equal(received.join(''), 'data: first\n\ndata: second\n\n');
  });

  it('request.signal is aborted when the client disconnects', async () => {
    const before = Number((await get(`${s.url}/aborted`)).text);
    const req = httpRequest(`${s.url}/hang`, { agent: false });
    req.on('error', () => undefined);
    req.end();
    await sleep(300);
    req.destroy();
    let now = before;
    for (let i = 0; i < 40 && now === before; i++) {
      await sleep(50);
      now = Number((await get(`${s.url}/aborted`)).text);
    }
    assert.equal(now, before + 1);
  });

  it('a request past --timeout gets 503 and its signal aborts', async () => {
    const t = await app('fetch-object.ts', '--timeout', '1s');
    try {
      const started = Date.now();
      const res = await get(`${t.url}/slow?ms=3000`);
      assert.equal(res.status, 503);
      assert.ok(Date.now() - started < 2500);
    } finally {
      await t.stop();
    }
  });

  it('a graceful stop answers the request in flight with Connection: close, and a keep-alive one first', async () => {
    const t = await app('fetch-object.ts', '--graceful-timeout', '10s');
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const keepAliveGet = (path: string) =>
      new Promise<{ status: number; text: string; connection: string | undefined }>((resolve, reject) => {
        const req = httpRequest(`${t.url}${path}`, { agent }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text, connection: res.headers.connection }));
        });
        req.on('error', reject);
        req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
        req.end();
      });
    try {
      // Before the stop, an answer keeps the connection (so the Connection: close below is the drain's).
      const first = await keepAliveGet('/hello');
      assert.equal(first.connection, 'keep-alive');
      const slow = keepAliveGet('/slow?ms=1500');
      await sleep(500);
      const stopped = t.stop();
      const res = await slow;
      assert.equal(res.status, 200);
      assert.equal(res.text, 'slow done');
      assert.equal(res.connection, 'close');
      assert.equal(await stopped, 0);
    } finally {
      agent.destroy();
      await t.stop();
    }
  });

  it('binds a unix socket', async () => {
    const path = join(APPS, '..', `app-${process.pid}.sock`);
    const u = await startApp(['app', join(APPS, 'fetch-function.mjs'), '--workers', '1', '--bind', `unix:${path}`]);
    try {
      assert.equal(u.url, `unix:${path}`);
      const res = await get('unix:', { socketPath: path, path: '/sock' });
      assert.equal(res.text, 'fetch function /sock');
    } finally {
      assert.equal(await u.stop(), 0);
    }
  });
});
