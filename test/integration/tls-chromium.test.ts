/**
 * A browser over HTTPS: headless Chromium (Debian `chromium`, driven by playwright-core) loads a
 * page and its sub-resources from `portico up` with a certificate the test made, trusted by its
 * public key (`--ignore-certificate-errors-spki-list`: Chromium accepts that key and still
 * rejects any other certificate, unlike `ignoreHTTPSErrors`), and the page reports `h2`.
 */
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { freePort, startWithConfig, tempDir, type RunningPortico } from '../helpers/portico.js';
import { makeCa, makeCert } from '../helpers/tls.js';

const CHROMIUM = '/usr/bin/chromium';

describe('HTTPS in a browser: headless Chromium over HTTP/2', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} not installed (Debian package chromium)` }, () => {
  const dir = tempDir();
  let browser: Browser | undefined;
  let portico: RunningPortico | undefined;

  after(async () => {
    await browser?.close();
    await portico?.stop();
    dir.remove();
  });

  it('loads the page, its stylesheet and script over h2 with the certificate trusted; a wrong certificate is refused', async () => {
    const ca = makeCa(dir.path);
    const site = makeCert(dir.path, ca, 'site', ['localhost']);
    const public_ = join(dir.path, 'public');
    mkdirSync(public_);
    writeFileSync(join(public_, 'index.html'), '<!doctype html><html><head><link rel="stylesheet" href="/style.css"><script src="/app.js" defer></script></head><body><p id="out">pending</p></body></html>\n');
    writeFileSync(join(public_, 'style.css'), 'p { color: rgb(1, 2, 3); }\n');
    writeFileSync(join(public_, 'app.js'), "document.getElementById('out').textContent = performance.getEntriesByType('navigation')[0].nextHopProtocol;\n");
    const port = await freePort();
    portico = await startWithConfig(dir.path, { workers: 1, servers: [{ listen: `127.0.0.1:${port}`, names: ['localhost'], tls: { cert: site.cert, key: site.key }, static: { root: public_ } }] });
    // The leaf's SubjectPublicKeyInfo, SHA-256, base64: what Chromium's flag pins.
    const leaf = new X509Certificate(readFileSync(site.cert));
    const spki = createHash('sha256').update(leaf.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, timeout: 60_000, args: [`--ignore-certificate-errors-spki-list=${spki}`] });
    const context = await browser.newContext();
    const page = await context.newPage();
    const response = await page.goto(`https://localhost:${port}/`, { timeout: 30_000 });
    assert.equal(response?.status(), 200);
    await page.waitForFunction("document.getElementById('out').textContent !== 'pending'", undefined, { timeout: 30_000 });
    // Page code as strings: this project's TypeScript has no DOM types.
    const state = (await page.evaluate(`({
      protocol: document.getElementById('out').textContent,
      color: getComputedStyle(document.getElementById('out')).color,
      resources: performance.getEntriesByType('resource').map((entry) => entry.nextHopProtocol),
    })`)) as { protocol: string; color: string; resources: string[] };
    assert.equal(state.protocol, 'h2');
    assert.equal(state.color, 'rgb(1, 2, 3)');
    // The stylesheet and the script (and whatever else the browser fetched, a favicon), all over h2.
    assert.ok(state.resources.length >= 2 && state.resources.every((protocol) => protocol === 'h2'), `resources over ${state.resources.join(', ')}`);

    // Another certificate for the same name (its key is not pinned, its CA not trusted): refused.
    const other = makeCert(dir.path, makeCa(dir.path, 'other-ca'), 'other', ['localhost']);
    const otherPort = await freePort();
    const secondDir = join(dir.path, 'second');
    mkdirSync(secondDir);
    const second = await startWithConfig(secondDir, { workers: 1, servers: [{ listen: `127.0.0.1:${otherPort}`, names: ['localhost'], tls: { cert: other.cert, key: other.key }, static: { root: public_ } }] });
    try {
      await assert.rejects(page.goto(`https://localhost:${otherPort}/`, { timeout: 30_000 }), /ERR_CERT_AUTHORITY_INVALID|ERR_CERT/);
    } finally {
      await second.stop();
    }
  });
});
