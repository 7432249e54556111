/**
 * `npm test` checks the peers the suite runs before any test (scripts/prerequisites.mjs). On a
 * machine where they are missing and it cannot install them, it names each one and the command
 * that installs them, and fails before type-check or any test. Simulated with a PATH that hides
 * the tools (and apt-get, so nothing is installed).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

const root = new URL('..', import.meta.url).pathname;
const emptyDir = mkdtempSync(join(tmpdir(), 'portico-empty-path-'));
after(() => rmSync(emptyDir, { recursive: true, force: true }));

function run(script: string, path: string) {
  return spawnSync(process.execPath, [join(root, 'scripts', script)], { cwd: root, env: { ...process.env, PATH: path }, encoding: 'utf8', timeout: 60_000 });
}

describe('test prerequisites', () => {
  it('with the tools hidden: each is named with its package and the install command, exit 1', () => {
    const result = run('prerequisites.mjs', emptyDir);
    assert.equal(result.status, 1, result.stderr);
    for (const [tool, pkg] of [['gunicorn', 'gunicorn'], ['nginx', 'nginx'], ['htpasswd', 'apache2-utils'], ['chromium', 'chromium'], ['slowhttptest', 'slowhttptest']]) {
      assert.match(result.stderr, new RegExp(`^  ${tool} \\(Debian package ${pkg}\\)$`, 'm'));
    }
    assert.match(result.stderr, /^ {2}sudo apt-get install -y --no-install-recommends .*\bgunicorn\b.*\bchromium\b/m);
  });

  it('npm test with the tools hidden fails before type-check and before any test', () => {
    const result = run('test.mjs', emptyDir);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /these are missing/);
    assert.doesNotMatch(result.stdout, /=== (type-check|lint|build|tests)/);
    assert.match(result.stdout, /FAIL {2}prerequisites/);
  });

  it('on this machine (the suite is running, so they are installed): silent, exit 0', () => {
    const result = run('prerequisites.mjs', process.env.PATH ?? '');
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stderr, '');
  });
});
