/**
 * A real browser through the forward proxy: Debian's headless Chromium, driven by
 * playwright-core (no browser download: `executablePath` is the Debian binary), configured with
 * the proxy, loads a page served by `portico serve` with a stylesheet, a script and an image,
 * and the script fetches from a local HTTPS site (a CONNECT tunnel). Chromium sends loopback
 * requests directly unless told `--proxy-bypass-list=<-loopback>`; the proxy is started with
 * loopback destinations allowed explicitly. The proxy's access log must show every request.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { freePort, startPortico, tempDir, type RunningPortico } from '../helpers/portico.js';
import { eventually, selfSignedCert, startForward, startHttpsSite, type RunningForward } from '../helpers/forward.js';

const CHROMIUM = '/usr/bin/chromium';
/** A 1×1 PNG. */
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=', 'base64');

describe('forward proxy: headless Chromium loads a page with sub-resources through it', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} not installed (Debian package chromium)` }, () => {
  const dir = tempDir();
  let site: RunningPortico;
  let https: Awaited<ReturnType<typeof startHttpsSite>>;
  let proxy: RunningForward;
  let browser: Browser | undefined;
  before(async () => {
    const root = join(dir.path, 'site');
    mkdirSync(join(root, 'assets'), { recursive: true });
    const tls = await selfSignedCert(dir.path);
    https = await startHttpsSite(tls, (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'access-control-allow-origin': '*' });
      res.end('over a CONNECT tunnel');
    });
    writeFileSync(
      join(root, 'index.html'),
      `<!doctype html><html><head><meta charset="utf-8"><title>forward test</title>
<link rel="stylesheet" href="/assets/style.css"><script src="/assets/app.js" defer></script></head>
<body><h1 id="title">Hello</h1><img id="logo" src="/assets/logo.png" alt="logo"><p id="secure">pending</p></body></html>`,
    );
    writeFileSync(join(root, 'assets', 'style.css'), '#title { color: rgb(1, 2, 3); }\n');
    writeFileSync(
      join(root, 'assets', 'app.js'),
      `document.getElementById('title').dataset.script = 'ran';
fetch('https://127.0.0.1:${https.port}/secure.txt').then((r) => r.text()).then((t) => { document.getElementById('secure').textContent = t; }, (e) => { document.getElementById('secure').textContent = 'failed: ' + e; });\n`,
    );
    writeFileSync(join(root, 'assets', 'logo.png'), PNG);
    site = await startPortico(['serve', root, '--port', String(await freePort()), '--no-access-log']);
    proxy = await startForward(['--port', '0', '--allow-dest', '127.0.0.1', '--connect-port', String(https.port)]);
  });
  after(async () => {
    await browser?.close();
    await proxy?.stop();
    await site?.stop();
    await https?.close();
    dir.remove();
  });

  it('the page, its CSS, JS and image, and an HTTPS fetch all go through the proxy', async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      timeout: 60_000,
      proxy: { server: proxy.url, bypass: '<-loopback>' },
      args: ['--proxy-bypass-list=<-loopback>'],
    });
    // The HTTPS site's certificate is self-signed: this test is about the tunnel, not trust.
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    const response = await page.goto(`${site.url}/index.html`, { timeout: 30_000 });
    assert.equal(response?.status(), 200);
    // Page code as strings: this project's TypeScript has no DOM types.
    await page.waitForFunction("document.getElementById('secure').textContent !== 'pending'", undefined, { timeout: 30_000 });
    const state = await page.evaluate(`(() => {
      const title = document.getElementById('title');
      const logo = document.getElementById('logo');
      return { color: getComputedStyle(title).color, script: title.dataset.script, logo: logo.complete ? logo.naturalWidth : -1, secure: document.getElementById('secure').textContent };
    })()`);
    assert.deepEqual(state, { color: 'rgb(1, 2, 3)', script: 'ran', logo: 1, secure: 'over a CONNECT tunnel' });
    await context.close();

    // The proxy's access log saw each one (the site itself logs nothing: --no-access-log).
    for (const path of ['/index.html', '/assets/style.css', '/assets/app.js', '/assets/logo.png']) {
      await eventually(() => proxy.logLines(`"GET ${site.url}${path} HTTP/1.1" 200`).length > 0, 10_000, `access-log line for ${path}:\n${proxy.out()}`);
    }
    await eventually(() => proxy.logLines(`"CONNECT 127.0.0.1:${https.port} HTTP/1.1" 200`).length > 0, 10_000, `CONNECT line:\n${proxy.out()}`);
    // And the browser's requests carried the browser's own User-Agent.
    assert.match(proxy.logLines('/assets/logo.png')[0] as string, /Chrome\//);
  });
});
