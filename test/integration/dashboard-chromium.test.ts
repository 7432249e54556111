/**
 * The admin dashboard in headless Chromium (Debian `chromium`, driven by playwright-core) while a
 * bounded load runs through two edge workers to a two-server upstream group: the charts update,
 * the drain button takes a server out with 0 failed client requests, and a screenshot is written
 * to docs/dashboard.png.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { runLoad } from '../helpers/load.js';
import { freePort, ROOT, startWithConfig, tempDir, type RunningPortico } from '../helpers/portico.js';
import { startNodeUpstream, type NodeUpstream } from '../helpers/upstreams.js';

const CHROMIUM = '/usr/bin/chromium';

describe('admin dashboard in Chromium', () => {
  let browser: Browser;
  let portico: RunningPortico;
  const upstreams: NodeUpstream[] = [];
  const hits = { a: 0, b: 0 };
  let port = 0;
  let adminPort = 0;

  before(async () => {
    for (const name of ['a', 'b'] as const) {
      upstreams.push(
        await startNodeUpstream((_req, res) => {
          hits[name]++;
          // A little latency, so the latency chart has something to show.
          setTimeout(() => res.end(name), name === 'a' ? 2 : 5);
        }),
      );
    }
    port = await freePort();
    adminPort = await freePort();
    const [a, b] = upstreams as [NodeUpstream, NodeUpstream];
    portico = await startWithConfig(tempDir('portico-dashboard-').path, {
      workers: 2,
      admin: { listen: `127.0.0.1:${adminPort}` },
      upstreams: { api: { servers: [a.url, b.url] } },
      servers: [{ listen: `127.0.0.1:${port}`, routes: [{ prefix: '/missing', respond: { status: 404 } }, { proxy: { to: 'api' } }] }],
    });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, timeout: 60_000 });
  });

  after(async () => {
    await browser?.close();
    await portico?.stop();
    for (const upstream of upstreams) await upstream.close();
  });

  it('updates its charts under load, drains a server from its button with 0 failed requests, and is screenshotted', async () => {
    const b = upstreams[1] as NodeUpstream;
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(error.message));
    page.on('console', (message) => message.type() === 'error' && problems.push(message.text()));
    await page.goto(`http://127.0.0.1:${adminPort}/`);
    const loading = runLoad({ port, paths: ['/', '/', '/', '/missing'], clients: 4, durationMs: 8000, keepAlive: true });
    // The charts take a point per poll (once a second): several points, and a rate above zero.
    // (Read from here: the page's Content-Security-Policy refuses the evaluated strings waitForFunction would inject.)
    const deadline = Date.now() + 15_000;
    while (Number((await page.getAttribute('body', 'data-polls')) ?? 0) < 3) {
      assert.ok(Date.now() < deadline, 'the dashboard polled three times within 15 s');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const rps = Number((await page.textContent('#rps'))?.replace(/,/g, ''));
    assert.ok(rps > 0, `requests/s shown: ${rps}`);
    assert.match((await page.textContent('#p99')) ?? '', /ms$/);
    assert.equal(await page.locator('#rate-chart canvas').count(), 1, 'the rate chart is drawn');
    const before = Number(await page.getAttribute('body', 'data-polls'));
    await new Promise((resolve) => setTimeout(resolve, 2200));
    assert.ok(Number(await page.getAttribute('body', 'data-polls')) > before, 'the charts took new points');
    // Drain server b from its row's button.
    const row = page.locator(`#upstreams tr[data-server="${b.url}"]`);
    await row.locator('button[data-action="drain"]').click();
    await page.waitForSelector(`#upstreams tr[data-server="${b.url}"] td.state-drained`, { timeout: 5000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const bAtDrain = hits.b;
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(hits.b, bAtDrain, 'the drained server takes no new requests');
    await page.screenshot({ path: join(ROOT, 'docs', 'dashboard.png') });
    const load = await loading;
    assert.deepEqual(load.errors, {}, 'no socket error during the drain');
    assert.deepEqual(Object.keys(load.statuses), ['404'], 'only the 404s the load asked for');
    assert.ok(load.requests > 100, `requests: ${load.requests}`);
    await row.locator('button[data-action="enable"]').click();
    await page.waitForSelector(`#upstreams tr[data-server="${b.url}"] td.state-up`, { timeout: 5000 });
    assert.deepEqual(problems, [], 'no script error on the page');
    // A phone: the grid folds to one column and nothing is wider than the screen.
    await page.setViewportSize({ width: 390, height: 844 });
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const widths = await page.evaluate(() => {
      const doc = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number } } }).document;
      return { scroll: doc.documentElement.scrollWidth, client: doc.documentElement.clientWidth };
    });
    assert.ok(widths.scroll <= widths.client, `no horizontal scrolling on a phone: ${JSON.stringify(widths)}`);
    const chart = await page.locator('#rate-chart').boundingBox();
    assert.ok(chart && chart.width <= 390, `the chart fits the screen: ${JSON.stringify(chart)}`);
    await page.screenshot({ path: join(ROOT, 'docs', 'dashboard-phone.png'), fullPage: true });
    await page.close();
  });
});
