/**
 * Installable: `npm pack` makes a tarball with dist inside that installs into a fresh project and
 * runs with no build step and no install script (npm 11 does not run dependencies' install scripts
 * by default). The install prefers npm's cache, which `npm ci` filled with every tarball; npm
 * still asks the registry for the packages' metadata (the version ranges to resolve), as any
 * `npm install` of a package does, and the test needs that. The pack does not rebuild (--ignore-scripts): npm test built dist, and a
 * rebuild would rewrite files that the tests running beside this one are loading.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ROOT, tempDir } from '../helpers/portico.js';

const run = (command: string, args: string[], cwd: string) => spawnSync(command, args, { cwd, encoding: 'utf8', timeout: 180_000, env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' } });

describe('the npm package', () => {
  const dir = tempDir('portico-pack-');
  after(() => dir.remove());

  it('packs with dist inside, installs into a new project (type commonjs), and runs there', () => {
    const pack = run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir.path], ROOT);
    assert.equal(pack.status, 0, pack.stderr);
    const [info] = JSON.parse(pack.stdout) as [{ filename: string; files: { path: string }[]; entryCount: number }];
    const paths = info.files.map((file) => file.path);
    for (const needed of ['bin/portico', 'dist/cli/main.js', 'dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'package.json']) assert.ok(paths.includes(needed), `${needed} is in the tarball`);
    assert.ok(!paths.some((path) => path.startsWith('src/') || path.startsWith('test/')), 'no sources or tests in the tarball');
    const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    for (const hook of ['preinstall', 'install', 'postinstall']) assert.equal(manifest.scripts[hook], undefined, `no ${hook} script`);

    const project = join(dir.path, 'project');
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'site', version: '1.0.0', type: 'commonjs' }));
    const install = run('npm', ['install', '--prefer-offline', '--no-package-lock', join(dir.path, info.filename)], project);
    assert.equal(install.status, 0, `npm install: ${install.stderr}`);
    assert.ok(existsSync(join(project, 'node_modules', 'portico', 'dist', 'cli', 'main.js')));

    const version = run('npx', ['--no-install', 'portico', '--version'], project);
    assert.equal(version.status, 0, version.stderr);
    assert.equal(version.stdout.trim(), (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);

    writeFileSync(join(project, 'portico.config.ts'), "import { defineConfig } from 'portico';\nexport default defineConfig({ servers: [{ listen: '127.0.0.1:0', routes: [{ respond: { body: 'installed' } }] }] });\n");
    const check = run('npx', ['--no-install', 'portico', 'check'], project);
    assert.equal(check.status, 0, check.stderr);
    assert.match(check.stdout, /"body": "installed"/);

    // portico/testing from the installed package: a config's edge in the process, no port.
    writeFileSync(
      join(project, 'edge-test.mjs'),
      "import { createTestServer } from 'portico/testing';\nconst edge = await createTestServer({ servers: [{ listen: '127.0.0.1:8080', routes: [{ exact: '/old', redirect: { to: '/new', status: 301 } }, { respond: { body: 'in-process' } }] }] });\nconst a = await edge.fetch('http://site.test/old');\nconst b = await edge.fetch('http://site.test/x');\nprocess.stdout.write(`${a.status} ${a.headers.get('location')} ${b.status} ${await b.text()}`);\nawait edge.close();\n",
    );
    const inProcess = run(process.execPath, ['edge-test.mjs'], project);
    assert.equal(inProcess.status, 0, inProcess.stderr);
    assert.equal(inProcess.stdout, '301 /new 200 in-process');
  });
});
