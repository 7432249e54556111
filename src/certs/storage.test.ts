/** FileStorage: atomic 0600 files inside the data folder only, and the lock that makes one process order a certificate. */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FileStorage } from './storage.js';

const root = mkdtempSync(join(tmpdir(), 'portico-storage-'));
after(() => rmSync(root, { recursive: true, force: true }));

describe('FileStorage', () => {
  it('writes files mode 0600 in folders mode 0700, with no temporary file left', async () => {
    const storage = new FileStorage(root);
    await storage.write('certificates/x/a.test/cert.pem', 'one');
    await storage.write('certificates/x/a.test/cert.pem', 'two');
    assert.equal(await storage.read('certificates/x/a.test/cert.pem'), 'two');
    assert.equal(statSync(join(root, 'certificates/x/a.test/cert.pem')).mode & 0o777, 0o600);
    assert.equal(statSync(join(root, 'certificates/x/a.test')).mode & 0o777, 0o700);
    assert.deepEqual(readdirSync(join(root, 'certificates/x/a.test')), ['cert.pem']);
    assert.equal(await storage.read('certificates/x/none.pem'), null);
    await storage.remove('certificates/x/a.test/cert.pem');
    assert.equal(await storage.read('certificates/x/a.test/cert.pem'), null);
  });

  it('refuses a key that would leave the data folder', async () => {
    const storage = new FileStorage(root);
    await assert.rejects(storage.read('../outside'), /outside the data folder/);
    await assert.rejects(storage.write('challenges/../../x', 'v'), /outside the data folder/);
  });

  it('lets one holder at a time take a lock; the next gets it on release', async () => {
    const storage = new FileStorage(root);
    const release = await storage.lock('name');
    let second = false;
    const waiting = storage.lock('name').then((releaseSecond) => {
      second = true;
      return releaseSecond;
    });
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.equal(second, false, 'the second waits while the first holds it');
    await release();
    await (await waiting)();
    assert.equal(second, true);
  });

  it('takes over a lock left by a process that stopped refreshing it', async () => {
    const storage = new FileStorage(root);
    mkdirSync(join(root, 'locks'), { recursive: true });
    const path = join(root, 'locks', 'stale.lock');
    writeFileSync(path, '{"pid":1}');
    const old = new Date(Date.now() - 120_000);
    utimesSync(path, old, old);
    const release = await storage.lock('stale');
    await release();
  });
});
