import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { describe, it } from 'node:test';
import { AppError } from '../errors.js';
import { detectApp } from './load-app.js';

const FILE = '/srv/app.ts';
const detect = (mod: Record<string, unknown>) => detectApp(mod, FILE);

describe('detectApp', () => {
  it('an object with fetch is a Fetch app, with `this` bound', async () => {
    const app = {
      name: 'bound',
      fetch(this: { name: string }) {
        return new Response(this.name);
      },
    };
    const loaded = await detect({ default: app });
    assert.equal(loaded.kind, 'fetch');
    assert.equal(loaded.kind === 'fetch' && (await (await loaded.fetch(new Request('http://x/'), {} as never)).text()), 'bound');
  });

  it('a function with 0 or 1 parameter is a Fetch handler', async () => {
    assert.equal((await detect({ default: () => new Response() })).kind, 'fetch');
    assert.equal((await detect({ default: (_r: Request) => new Response() })).kind, 'fetch');
  });

  it('a function with 2 parameters is a Node listener unless gateway = "fetch"', async () => {
    const two = (_a: unknown, _b: unknown) => undefined;
    assert.equal((await detect({ default: two })).kind, 'node');
    assert.equal((await detect({ default: two, gateway: 'fetch' })).kind, 'fetch');
  });

  it('a function with 3 parameters, or Express/Connect markers, is a Node listener', async () => {
    assert.equal((await detect({ default: (_a: unknown, _b: unknown, _c: unknown) => undefined })).kind, 'node');
    const express = Object.assign((_req: unknown) => undefined, { handle() {}, use() {} });
    assert.equal((await detect({ default: express })).kind, 'node');
  });

  it('gateway = "node" forces a one-parameter function to Node', async () => {
    assert.equal((await detect({ default: (_r: unknown) => undefined, gateway: 'node' })).kind, 'node');
  });

  it('a Koa app uses callback()', async () => {
    const listener = (_req: unknown, _res: unknown) => undefined;
    const loaded = await detect({ default: { callback: () => listener, listen() {} } });
    assert.equal(loaded.kind === 'node' && loaded.listener, listener);
  });

  it('a Fastify instance is made ready, then routed', async () => {
    let ready = false;
    const routed: unknown[] = [];
    const fastify = {
      server: {},
      async ready() {
        ready = true;
      },
      routing(req: unknown) {
        routed.push(req);
      },
    };
    const loaded = await detect({ default: fastify });
    assert.equal(ready, true);
    assert.equal(loaded.kind, 'node');
    if (loaded.kind === 'node') loaded.listener('req' as never, 'res' as never);
    assert.deepEqual(routed, ['req']);
  });

  it('an http.Server contributes its request listener', async () => {
    const listener = () => undefined;
    const loaded = await detect({ default: createServer(listener) });
    assert.equal(loaded.kind === 'node' && loaded.listener, listener);
  });

  it('a named fetch export with no default is a Fetch app; CommonJS double default is unwrapped', async () => {
    assert.equal((await detect({ fetch: () => new Response() })).kind, 'fetch');
    assert.equal((await detect({ default: { default: { fetch: () => new Response() } } })).kind, 'fetch');
  });

  it('a module exporting no app is ERR_APP_EXPORT naming the file', async () => {
    for (const mod of [{}, { default: 42 }, { default: { routes: [] } }, { default: null }]) {
      await assert.rejects(detect(mod), (error: unknown) => error instanceof AppError && error.code === 'ERR_APP_EXPORT' && error.message.startsWith(`${FILE}: `));
    }
  });

  it('an invalid gateway value is an error', async () => {
    await assert.rejects(detect({ default: () => new Response(), gateway: 'wsgi' }), /must be "fetch" or "node", got "wsgi"/);
  });
});
