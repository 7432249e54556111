import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { freePortPair, request, startPortico, tempDir, type RunningPortico } from '../helpers/portico.js';

// The README's main command: `portico up` with no config file runs the embedded demo site.
describe('demo stack (portico up without a config)', () => {
  let portico: RunningPortico;
  const dir = tempDir();
  before(async () => {
    portico = await startPortico(['up'], { cwd: dir.path, env: { PORT: String(await freePortPair()) } });
  });
  after(async () => {
    await portico.stop();
    dir.remove();
  });

  it('says what it serves', () => {
    assert.match(portico.stdout(), /embedded demo/);
    assert.match(portico.stdout(), /redirect 301/);
  });
  it('serves the index page', async () => {
    const res = await request(`${portico.url}/`);
    assert.equal(res.status, 200);
    assert.match(res.text, /Portico is serving this page/);
  });
  it('redirects /old-docs/ to /docs/', async () => {
    const res = await request(`${portico.url}/old-docs/guide.html`);
    assert.equal(res.status, 301);
    assert.equal(res.headers.location, '/docs/guide.html');
  });
  it('serves the demo app at /app/ from its worker processes', async () => {
    assert.match(portico.stdout(), /app demo: .*2 workers \(pids \d+, \d+\)/);
    const pids = new Set<number>();
    for (let i = 0; i < 6; i++) {
      const res = await request(`${portico.url}/app/hello`);
      assert.equal(res.status, 200);
      const body = JSON.parse(res.text) as { service: string; path: string; worker: number };
      assert.equal(body.service, 'demo app');
      assert.equal(body.path, '/app/hello');
      pids.add(body.worker);
    }
    assert.equal(pids.size, 2, 'both workers answer');
  });
  it('rewrites /blog/hello-world internally', async () => {
    const res = await request(`${portico.url}/blog/hello-world`);
    assert.equal(res.status, 200);
    assert.match(res.text, /served for <code>\/blog\/hello-world<\/code> by an internal rewrite/);
  });
});
