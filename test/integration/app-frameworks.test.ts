/**
 * Unchanged apps of real frameworks (installed from npm as devDependencies) under `portico app`:
 * Hono (Fetch), Express (Node listener), Koa (app.callback()) and Fastify (the instance).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { APPS, get, startApp, type RunningApp } from '../helpers/app.js';

const FRAMEWORKS = [
  { name: 'hono', file: 'hono-app.ts', gateway: 'fetch', post: true },
  { name: 'express', file: 'express-app.ts', gateway: 'node', post: true },
  { name: 'koa', file: 'koa-app.ts', gateway: 'node', post: false },
  { name: 'fastify', file: 'fastify-app.ts', gateway: 'node', post: true },
] as const;

for (const fw of FRAMEWORKS) {
  describe(`framework: ${fw.name}`, () => {
    let r: RunningApp;
    before(async () => {
      r = await startApp(['app', join(APPS, fw.file), '--workers', '1', '--bind', '127.0.0.1:0']);
    });
    after(async () => {
      assert.equal(await r.stop(), 0);
    });

    it(`is detected as a ${fw.gateway} app`, async () => {
      await r.waitFor((out) => out.includes(`"gateway":"${fw.gateway}"`));
    });

    it('serves its root and a route with a parameter', async () => {
      const root = await get(`${r.url}/`);
      assert.equal(root.status, 200);
      assert.equal(root.text, `${fw.name} root`);
      const user = await get(`${r.url}/users/42`);
      assert.equal(user.status, 200);
      assert.match(String(user.headers['content-type']), /application\/json/);
      assert.deepEqual(JSON.parse(user.text), { framework: fw.name, id: '42' });
    });

    if (fw.post) {
      it('reads a JSON request body', async () => {
        const res = await get(`${r.url}/echo`, { method: 'POST', body: JSON.stringify({ a: [1, 2] }), headers: { 'content-type': 'application/json' } });
        assert.equal(res.status, 200);
        assert.deepEqual(JSON.parse(res.text), { framework: fw.name, body: { a: [1, 2] } });
      });
    }

    it('answers 404 for an unknown path with its own handler', async () => {
      assert.equal((await get(`${r.url}/no/such/path`)).status, 404);
    });
  });
}

describe('framework: express error handling', () => {
  it('a throwing route is answered by Express (500) and the worker keeps serving', async () => {
    const r = await startApp(['app', join(APPS, 'express-app.ts'), '--workers', '1', '--bind', '127.0.0.1:0']);
    try {
      assert.equal((await get(`${r.url}/fail`)).status, 500);
      assert.equal((await get(`${r.url}/`)).text, 'express root');
    } finally {
      await r.stop();
    }
  });
});
