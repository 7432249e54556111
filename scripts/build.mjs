#!/usr/bin/env node
// The build (`npm run build`, and the build step of `npm test`): tsc emits dist/ as ESM, then
// esbuild makes dist/index.cjs, the package's `require` entry. A `portico.config.ts` in a project
// whose package.json says "type": "commonjs" (what `npm init -y` writes), or that has none, is
// compiled to CommonJS by tsx, so its `import { defineConfig } from 'portico'` becomes a
// require(), which Node 20.18 cannot do on an ESM file. The public API has no state, so the two
// copies cannot disagree.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

const root = new URL('..', import.meta.url).pathname;
const tsc = spawnSync(join(root, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
if (tsc.status !== 0) process.exit(tsc.status ?? 1);
await build({
  entryPoints: [join(root, 'src', 'index.ts')],
  outfile: join(root, 'dist', 'index.cjs'),
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
});

// The admin dashboard's page, script and style, and uPlot (npm `uplot`, a dev dependency: the
// package ships this copy, so no CDN and no runtime dependency), beside dist/supervisor/admin.js.
const dashboard = join(root, 'dist', 'supervisor', 'dashboard');
mkdirSync(dashboard, { recursive: true });
for (const name of readdirSync(join(root, 'src', 'supervisor', 'dashboard'))) copyFileSync(join(root, 'src', 'supervisor', 'dashboard', name), join(dashboard, name));
for (const name of ['uPlot.iife.min.js', 'uPlot.min.css']) copyFileSync(join(root, 'node_modules', 'uplot', 'dist', name), join(dashboard, name));
