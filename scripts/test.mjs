#!/usr/bin/env node
// The whole test command (`npm test`): type-check, lint, build, then every test file under
// test/ and src/ (unit tests live next to the code), with pass/fail counts at the end.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { ensurePrerequisites } from './prerequisites.mjs';

const root = new URL('..', import.meta.url).pathname;
const only = process.argv.slice(2);
const steps = [];

function run(name, command, args, report) {
  const started = Date.now();
  process.stdout.write(`\n=== ${name}: ${command} ${args.join(' ')}\n`);
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', env: process.env });
  const ok = result.status === 0;
  steps.push({ name, ok, seconds: ((Date.now() - started) / 1000).toFixed(1), report });
  return ok;
}

// Each test step's spec report is also written to a file, so the summary at the very end can
// repeat the failing tests with their errors: a CI log that keeps only its tail then still says why.
const reports = mkdtempSync(join(tmpdir(), 'portico-test-reports-'));
const reporterArgs = (file) => ['--test-reporter=spec', '--test-reporter-destination=stdout', '--test-reporter=spec', `--test-reporter-destination=${join(reports, file)}`];

function failures(report) {
  let text;
  try {
    text = readFileSync(join(reports, report), 'utf8');
  } catch {
    return '';
  }
  const start = text.lastIndexOf('failing tests:');
  const lines = (start === -1 ? text.split('\n').slice(-60) : text.slice(start).split('\n')).slice(0, 200);
  return lines.join('\n');
}

function findTests(dir, out = []) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'fixtures' || name.startsWith('.')) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) findTests(path, out);
    else if (name.endsWith('.test.ts')) out.push(relative(root, path));
  }
  return out;
}

// The peers the tests run (gunicorn, nginx, Chromium…) first: installed when root with apt-get,
// else named with the command that installs them, before any test runs.
if (!ensurePrerequisites()) {
  process.stdout.write('\n=== summary\nFAIL  prerequisites (see above)\n0 passed, 1 failed\n');
  process.exit(1);
}

const npx = (bin) => join(root, 'node_modules', '.bin', bin);
if (only.length === 0) {
  run('type-check', npx('tsc'), ['-p', 'tsconfig.json', '--noEmit']);
  run('lint', npx('eslint'), ['.']);
}
run('build', process.execPath, [join(root, 'scripts', 'build.mjs')]);
const files = only.length > 0 ? only : [...findTests(join(root, 'src')), ...findTests(join(root, 'test'))].sort();
// Tests that assert a time bound on process boot (a replacement worker answers within 1 s) run
// alone afterwards: beside another load test on a 2-core machine a boot can take longer than
// the bound, and that would measure the neighbour, not Portico.
// slow-clients runs a 1,000-connection slowhttptest attack and measures a client's latency meanwhile.
// The forward proxy's 200-tunnel test (400 MiB through the proxy) loads both cores likewise.
// h2spec gives each of its 146 cases 2 s: beside testssl.sh's handshakes one case missed it once.
// The fleet test counts admitted requests over 10 s and times a lease's expiry, on nine node processes.
const ALONE = ['test/integration/app-crash.test.ts', 'test/integration/app-load.test.ts', 'test/integration/edge-load.test.ts', 'test/integration/slow-clients.test.ts', 'test/integration/rate-limit.test.ts', 'test/integration/forward-load.test.ts', 'test/integration/h2spec.test.ts', 'test/integration/fleet.test.ts'];
const together = files.filter((file) => !ALONE.includes(file));
const alone = files.filter((file) => ALONE.includes(file));
const testArgs = ['--import', 'tsx', '--test'];
if (together.length > 0) run(`tests (${together.length} files)`, process.execPath, [...testArgs, ...reporterArgs('together.txt'), '--test-concurrency=2', ...together], 'together.txt');
if (alone.length > 0) run(`timing-bound tests, one at a time (${alone.length} files)`, process.execPath, [...testArgs, ...reporterArgs('alone.txt'), '--test-concurrency=1', ...alone], 'alone.txt');

for (const step of steps.filter((s) => !s.ok && s.report)) process.stdout.write(`\n=== what failed in ${step.name}\n${failures(step.report)}\n`);
rmSync(reports, { recursive: true, force: true });
process.stdout.write('\n=== summary\n');
for (const step of steps) process.stdout.write(`${step.ok ? 'PASS' : 'FAIL'}  ${step.name} (${step.seconds}s)\n`);
const failed = steps.filter((s) => !s.ok).length;
process.stdout.write(`${steps.length - failed} passed, ${failed} failed\n`);
process.exit(failed === 0 ? 0 : 1);
