#!/usr/bin/env node
// What the test suite runs besides Node itself, checked before any test (`npm test` calls this
// first; `node scripts/prerequisites.mjs` runs it alone). Tests start the real peers, so a missing
// one would fail its tests for a reason that has nothing to do with Portico.
//
// - Everything present: silent, exit 0.
// - Something missing, running as root on a machine with apt-get: installs the Debian packages
//   (what a CI container or a fresh root shell wants), then checks again.
// - Otherwise: names what is missing and the one command that installs it, exit 1. Nothing is
//   skipped: a suite that ran without its peers would pass by not testing.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * command → Debian package, and what runs it. htpasswd makes the basic-auth test files; nginx is
 * the rate-limit reference; slowhttptest runs the slow-client attack (prlimit, from util-linux,
 * raises Portico's open-file limit there); curl, openssl and chromium are the forward proxy's
 * clients (curl -x, a self-signed certificate, headless Chromium through playwright-core) and
 * the HTTPS tests' (certificates made with openssl, s_client, curl --http2, Chromium over h2);
 * testssl.sh checks the TLS listener for known vulnerabilities; gunicorn and uwsgi run the Flask
 * app the proxy tests front; pebble (Let's Encrypt's test CA) with pebble-challtestsrv (its DNS) is
 * the CA the automatic HTTPS tests order certificates from; redis-server is the state a fleet of
 * nodes shares, and ip (iproute2) makes the network namespaces its nodes run in; systemd-analyze
 * verifies the systemd unit in deploy/.
 */
export const COMMANDS = [
  ['git', 'git'],
  ['gunicorn', 'gunicorn'],
  ['python3', 'python3'],
  ['uwsgi', 'uwsgi'],
  ['htpasswd', 'apache2-utils'],
  ['nginx', 'nginx'],
  ['slowhttptest', 'slowhttptest'],
  ['prlimit', 'util-linux'],
  ['curl', 'curl'],
  ['openssl', 'openssl'],
  ['chromium', 'chromium'],
  ['testssl', 'testssl.sh'],
  ['pebble', 'pebble'],
  ['pebble-challtestsrv', 'pebble'],
  ['redis-server', 'redis-server'],
  ['ip', 'iproute2'],
  ['systemd-analyze', 'systemd'],
  // The unit's ExecReload runs /bin/kill, which systemd-analyze verify checks exists.
  ['kill', 'procps'],
];

// Debian's gunicorn and uwsgi run Debian's python3 (/usr/bin/python3), which may not be the
// python3 on PATH (pyenv): Flask is checked where they will look for it.
const SYSTEM_PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
// uWSGI loads Python through a plugin packaged apart from the binary.
const UWSGI_PYTHON_PLUGIN = '/usr/lib/uwsgi/plugins/python3_plugin.so';

/** The first executable called `name` on `path` (a PATH value), or undefined. */
function onPath(name, path) {
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not here
    }
  }
  return undefined;
}

/** What is missing, as `{ what, pkg }` (a command, or a module or plugin, and its package). */
export function missingPrerequisites(path = process.env.PATH ?? '') {
  const missing = COMMANDS.filter(([command]) => onPath(command, path) === undefined).map(([command, pkg]) => ({ what: command, pkg }));
  const python = SYSTEM_PYTHON.startsWith('/') ? SYSTEM_PYTHON : onPath(SYSTEM_PYTHON, path);
  const flask = python === undefined ? { status: 1 } : spawnSync(python, ['-c', 'import flask'], { stdio: 'ignore' });
  if (flask.status !== 0) missing.push({ what: 'Flask (python3 -c "import flask")', pkg: 'python3-flask' });
  // The WSGI workers' tests run a Django site too (issue #18).
  const django = python === undefined ? { status: 1 } : spawnSync(python, ['-c', 'import django'], { stdio: 'ignore' });
  if (django.status !== 0) missing.push({ what: 'Django (python3 -c "import django")', pkg: 'python3-django' });
  if (!existsSync(UWSGI_PYTHON_PLUGIN)) missing.push({ what: `uWSGI's Python plugin (${UWSGI_PYTHON_PLUGIN})`, pkg: 'uwsgi-plugin-python3' });
  return missing;
}

const packagesOf = (missing) => [...new Set(missing.map((m) => m.pkg))];

function aptInstall(packages, env) {
  const run = (args) => spawnSync('apt-get', args, { stdio: 'inherit', env: { ...env, DEBIAN_FRONTEND: 'noninteractive' } }).status === 0;
  // Packages with a service (nginx) must not start it on install: it would take port 80, and a
  // failed start would fail the install. policy-rc.d exit 101 is Debian's "do not start" answer.
  const policy = '/usr/sbin/policy-rc.d';
  const ownPolicy = !existsSync(policy);
  if (ownPolicy) writeFileSync(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  try {
    return run(['update']) && run(['install', '-y', '--no-install-recommends', ...packages]);
  } finally {
    if (ownPolicy) rmSync(policy, { force: true });
  }
}

/** Checks, installs when it can, and returns true when everything is there. */
export function ensurePrerequisites({ env = process.env, write = (text) => process.stderr.write(text) } = {}) {
  const path = env.PATH ?? '';
  let missing = missingPrerequisites(path);
  if (missing.length === 0) return true;
  const packages = packagesOf(missing);
  const canInstall = process.getuid?.() === 0 && onPath('apt-get', path) !== undefined;
  if (canInstall) {
    write(`test prerequisites missing: ${missing.map((m) => m.what).join(', ')}; installing ${packages.join(' ')}\n`);
    aptInstall(packages, env);
    missing = missingPrerequisites(path);
    if (missing.length === 0) return true;
  }
  write(
    `The test suite runs real peers, and these are missing:\n` +
      missing.map((m) => `  ${m.what} (Debian package ${m.pkg})\n`).join('') +
      `Install them, then run npm test again:\n  sudo apt-get install -y --no-install-recommends ${packagesOf(missing).join(' ')}\n` +
      (canInstall ? 'apt-get could not install them (its output is above).\n' : '(As root on a machine with apt-get, npm test installs them itself.)\n'),
  );
  return false;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) process.exit(ensurePrerequisites() ? 0 : 1);
