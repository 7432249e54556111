/**
 * Path traversal: every request-target of test/fixtures/requests/traversal.txt is sent as raw
 * bytes on its own TCP connection to the real server. None may leak the marker kept outside the
 * root, and each must be refused (400, 403, 404) or redirected (301).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, rawRequest, ROOT, startWithConfig, statusOf, tempDir, type RunningPortico } from '../helpers/portico.js';

const CORPUS = join(ROOT, 'test', 'fixtures', 'requests', 'traversal.txt');
const targets = readFileSync(CORPUS, 'utf8')
  .split('\n')
  .map((line) => line.replace(/\r$/, ''))
  .filter((line) => line !== '' && !line.startsWith('#'));

const ALLOWED = new Set([400, 403, 404, 301]);

const get = (port: number, target: string): Promise<Buffer> => rawRequest(port, `GET ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);

describe('path traversal', () => {
  const dir = tempDir('portico-traversal-');
  const marker = `MARKER-${randomBytes(16).toString('hex')}`;
  let portico: RunningPortico;

  before(async () => {
    const base = dir.path;
    writeFileSync(join(base, 'secret.txt'), `${marker}\n`);
    mkdirSync(join(base, 'www', 'sub'), { recursive: true });
    writeFileSync(join(base, 'www', 'index.html'), '<h1>public index</h1>\n');
    writeFileSync(join(base, 'www', 'sub', 'page.html'), '<p>public page</p>\n');
    mkdirSync(join(base, 'www-secret'));
    writeFileSync(join(base, 'www-secret', 'secret.txt'), `${marker}\n`);
    symlinkSync('../', join(base, 'www', 'link'));
    symlinkSync('../secret.txt', join(base, 'www', 'leak.txt'));
    mkdirSync(join(base, 'www-alias'));
    writeFileSync(join(base, 'www-alias', 'ok.txt'), 'alias ok\n');
    portico = await startWithConfig(base, {
      log: { access: false },
      servers: [
        {
          listen: `127.0.0.1:${await freePort()}`,
          static: { root: 'www' },
          routes: [
            { prefix: '/' },
            // The weakest configuration: an alias prefix without a trailing slash, dotfiles shown
            // and symlinks followed anywhere. Still nothing above its root may be reachable.
            { prefix: '/static', static: { root: 'www-alias', alias: true, dotfiles: 'allow', symlinks: 'follow', listing: true } },
          ],
        },
      ],
    });
  });
  after(async () => {
    await portico?.stop();
    dir.remove();
  });

  it('the corpus has at least 70 targets', () => {
    assert.ok(targets.length >= 70, `only ${targets.length} targets in ${CORPUS}`);
  });

  it('a normal request to /index.html is 200', async () => {
    const raw = await get(portico.port, '/index.html');
    assert.equal(statusOf(raw), 200);
    assert.match(raw.toString('utf8'), /<h1>public index<\/h1>/);
  });

  it('the subdirectory and the alias route serve their files', async () => {
    assert.equal(statusOf(await get(portico.port, '/sub/page.html')), 200);
    assert.equal(statusOf(await get(portico.port, '/sub')), 301);
    const alias = await get(portico.port, '/static/ok.txt');
    assert.equal(statusOf(alias), 200);
    assert.match(alias.toString('utf8'), /alias ok/);
  });

  it('the marker is reachable on disk (so its absence below means something)', () => {
    assert.equal(readFileSync(join(dir.path, 'www', 'leak.txt'), 'utf8'), `${marker}\n`);
    assert.equal(readFileSync(join(dir.path, 'www', 'link', 'www-secret', 'secret.txt'), 'utf8'), `${marker}\n`);
  });

  describe('corpus', () => {
    for (const target of targets) {
      it(`GET ${target.length > 120 ? `${target.slice(0, 120)}… (${target.length} chars)` : target}`, async () => {
        const raw = await get(portico.port, target);
        const text = raw.toString('latin1');
        const status = statusOf(raw);
        assert.ok(!text.includes(marker), `target ${JSON.stringify(target)} leaked the marker:\n${text}`);
        assert.ok(ALLOWED.has(status), `target ${JSON.stringify(target)} answered ${status} (expected 400/403/404/301):\n${text.slice(0, 500)}`);
      });
    }
  });
});
