/**
 * The deployment files of deploy/ (issue #17): the systemd unit passes `systemd-analyze verify`;
 * the Kubernetes manifests parse and have what a rollout needs (probes on /health, resources, a
 * preStop, a PodDisruptionBudget, Redis), and their config validates; and Portico started the way
 * the unit and the image start it (the same command line, an unprivileged user, the same signals)
 * reloads on SIGHUP, refuses a bad config while serving the old one, follows a ConfigMap-style
 * update with `--watch`, and stops cleanly on SIGTERM with its workers.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { BIN, ROOT, freePort, processAlive as alive, request, spawnCli, tempDir, waitForOutput, type CliProcess } from '../helpers/portico.js';

const UNIT = join(ROOT, 'deploy', 'systemd', 'portico.service');
const UNPRIVILEGED = 65534; // nobody, as the unit's `portico` user and the image's `node` user: no privileges
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Manifest {
  kind: string;
  metadata: { name: string };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
}

function manifests(file: string): Manifest[] {
  const documents = parseAllDocuments(readFileSync(join(ROOT, 'deploy', 'kubernetes', file), 'utf8'));
  for (const document of documents) assert.deepEqual(document.errors, [], `${file}: ${document.errors.join('; ')}`);
  return documents.map((document) => document.toJS() as Manifest);
}

/** The unit's directives, as `systemd-analyze` reads them (the last of a name wins, except repeated ones). */
function unitDirectives(): Map<string, string[]> {
  const directives = new Map<string, string[]>();
  for (const line of readFileSync(UNIT, 'utf8').split('\n')) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (match) directives.set(match[1] as string, [...(directives.get(match[1] as string) ?? []), match[2] as string]);
  }
  return directives;
}

describe('deployment files', () => {
  const work = tempDir();
  after(() => work.remove());

  it('the systemd unit passes systemd-analyze verify and has the settings a service needs', () => {
    let unit = UNIT;
    // verify checks that ExecStart's program exists; the unit names Debian's /usr/bin/node. On a
    // machine whose node lives elsewhere, the same unit with this node's path is verified.
    if (!existsSync('/usr/bin/node')) {
      unit = join(work.path, 'portico.service');
      writeFileSync(unit, readFileSync(UNIT, 'utf8').replaceAll('/usr/bin/node', process.execPath));
    }
    const verify = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
    assert.equal(verify.status, 0, `systemd-analyze verify: ${verify.stdout}${verify.stderr}`);
    assert.equal(verify.stderr.trim(), '', `no warnings: ${verify.stderr}`);
    const directives = unitDirectives();
    const one = (name: string) => directives.get(name)?.at(-1);
    assert.equal(one('KillMode'), 'mixed');
    assert.equal(one('ExecReload'), '/bin/kill -HUP $MAINPID');
    assert.match(one('LimitNOFILE') ?? '', /^\d{5,}$/);
    assert.equal(one('AmbientCapabilities'), 'CAP_NET_BIND_SERVICE');
    assert.equal(one('ProtectSystem'), 'strict');
    assert.equal(one('PrivateTmp'), 'true');
    assert.equal(one('NoNewPrivileges'), 'true');
    assert.match(one('User') ?? '', /^portico$/);
    assert.match(one('ExecStart') ?? '', /\/bin\/portico up --config \S+ --pid \S+$/);
  });

  it('the Kubernetes manifests parse and have their probes, resources, preStop, disruption budget and Redis', async () => {
    const all = [...manifests('portico.yaml'), ...manifests('redis.yaml')];
    const byKind = (kind: string, name: string) => all.find((m) => m.kind === kind && m.metadata.name === name);
    const deployment = byKind('Deployment', 'portico') as Manifest & { spec: { replicas: number; template: { spec: { containers: Record<string, unknown>[]; terminationGracePeriodSeconds: number } } } };
    assert.ok(deployment, 'a Deployment "portico"');
    assert.ok(deployment.spec.replicas >= 2, 'several replicas');
    const container = deployment.spec.template.spec.containers[0] as {
      args: string[];
      readinessProbe: { httpGet: { path: string } };
      livenessProbe: { httpGet: { path: string } };
      resources: { requests: Record<string, string>; limits: Record<string, string> };
      lifecycle: { preStop: { exec: { command: string[] } } };
      env: { name: string }[];
    };
    assert.equal(container.readinessProbe.httpGet.path, '/health');
    assert.equal(container.livenessProbe.httpGet.path, '/health');
    for (const part of ['requests', 'limits'] as const) assert.ok(container.resources[part]?.cpu && container.resources[part]?.memory, `resources.${part} has cpu and memory`);
    assert.ok(container.lifecycle.preStop.exec.command.length > 0, 'a preStop');
    assert.ok(container.args.includes('--watch'), 'the config reloads on change');
    assert.ok(deployment.spec.template.spec.terminationGracePeriodSeconds > 35, 'the grace period covers the preStop and the graceful timeout');
    const pdb = byKind('PodDisruptionBudget', 'portico');
    assert.ok(pdb?.spec && ('maxUnavailable' in pdb.spec || 'minAvailable' in pdb.spec), 'a PodDisruptionBudget');
    assert.ok(byKind('Deployment', 'portico-redis') && byKind('Service', 'portico-redis'), 'Redis as the shared state');
    assert.ok(container.env.some((e) => e.name === 'REDIS_URL'));
    // The ConfigMap's config is one `portico check` accepts.
    const config = byKind('ConfigMap', 'portico-config')?.data?.['portico.config.mjs'];
    assert.ok(config, 'the ConfigMap holds portico.config.mjs');
    const file = join(work.path, 'k8s', 'portico.config.mjs');
    mkdirSync(join(work.path, 'k8s'));
    writeFileSync(file, config);
    const check = spawnSync(process.execPath, [BIN, 'check', '--config', file], { encoding: 'utf8', env: { ...process.env, REDIS_URL: 'redis://127.0.0.1:6379', PORTICO_ADMIN_TOKEN: 'a-token-of-enough-length' } });
    assert.equal(check.status, 0, check.stderr);
  });

  it('the container image file is multi-stage, runs as a user without privileges, and checks /health', () => {
    const file = readFileSync(join(ROOT, 'deploy', 'Containerfile'), 'utf8');
    assert.ok((file.match(/^FROM /gm) ?? []).length >= 2, 'multi-stage');
    assert.match(file, /^USER (?!root)\S+/m);
    assert.match(file, /^HEALTHCHECK .*\n?.*\/health/m);
    assert.match(file, /ENTRYPOINT \["node", "\/opt\/portico\/bin\/portico", "up", "--config", "\S+", "--pid", "\S+"\]/);
    const check = spawnSync(process.execPath, [BIN, 'check', '--config', join(ROOT, 'deploy', 'portico.config.json')], { encoding: 'utf8' });
    assert.equal(check.status, 0, check.stderr);
  });

  it('started as the unit and the image start it (same command line, an unprivileged user): SIGHUP reloads, a bad config is refused, a ConfigMap update is followed, SIGTERM stops', async () => {
    // The install as the image and the unit have it: the package somewhere only root writes, the
    // config folder readable, the pid file in a folder the user owns.
    // The folders and files made here are readable by that user whatever the caller's umask (a
    // CI shell may have 077), as an installer's are.
    process.umask(0o022);
    const { install, node: nodeBinary } = runnableBy(UNPRIVILEGED) ? { install: ROOT, node: process.execPath } : copyInstall(join(work.path, 'opt'));
    const etc = join(work.path, 'etc');
    const run = join(work.path, 'run');
    mkdirSync(etc);
    mkdirSync(run);
    chmodSync(work.path, 0o755);
    execFileSync('chown', [`${UNPRIVILEGED}:${UNPRIVILEGED}`, run]);
    // The ConfigMap volume layout: the file is a symlink through `..data`, which the kubelet swaps.
    const port = await freePort();
    const adminPort = await freePort();
    const configFor = (body: string) => JSON.stringify({ workers: 2, admin: { listen: `127.0.0.1:${adminPort}` }, servers: [{ listen: `127.0.0.1:${port}`, routes: [{ respond: { status: 200, body } }] }] });
    let version = 0;
    const publish = (text: string) => {
      const dir = join(etc, `..v${++version}`);
      mkdirSync(dir);
      writeFileSync(join(dir, 'portico.config.json'), text);
      chmodSync(dir, 0o755);
      symlinkSync(`..v${version}`, join(etc, '..data_tmp'));
      renameSync(join(etc, '..data_tmp'), join(etc, '..data'));
    };
    publish(configFor('first\n'));
    symlinkSync('..data/portico.config.json', join(etc, 'portico.config.json'));
    const node: CliProcess = spawnCli(['up', '--config', join(etc, 'portico.config.json'), '--pid', join(run, 'portico.pid'), '--watch'], { cwd: etc, uid: UNPRIVILEGED, gid: UNPRIVILEGED, bin: join(install, 'bin', 'portico'), node: nodeBinary });
    try {
      await waitForOutput(node, /edge workers 2 \(pids (\d+), (\d+)\)/, Date.now() + 20_000);
      const workers = /edge workers 2 \(pids (\d+), (\d+)\)/.exec(node.out())?.slice(1).map(Number) ?? [];
      assert.equal(readFileSync(join(run, 'portico.pid'), 'utf8').trim(), String(node.pid));
      assert.equal(processOwner(node.pid), UNPRIVILEGED, 'runs as the unprivileged user');
      assert.equal((await request(`http://127.0.0.1:${port}/`)).text, 'first\n');
      assert.equal((await request(`http://127.0.0.1:${adminPort}/health`)).status, 200, 'the health check answers');

      // ExecReload: SIGHUP to the main pid.
      writeFileSync(join(etc, `..v${version}`, 'portico.config.json'), configFor('second\n'));
      process.kill(node.pid, 'SIGHUP');
      const output = () => `\n--- portico's output:\n${node.out()}\n${node.err()}`;
      await until(async () => (await request(`http://127.0.0.1:${port}/`)).text === 'second\n', 10_000, 'the SIGHUP reload', output);

      // A ConfigMap update (the ..data swap): --watch reloads it; a bad one is refused, the old one serves.
      publish(configFor('third\n'));
      await until(async () => (await request(`http://127.0.0.1:${port}/`)).text === 'third\n', 10_000, 'the ConfigMap update', output);
      publish('{ "servers": [{ "listen": 8080, "routes": [{ "respond": { "status": 999 } }] }] }');
      await until(async () => /servers\[0\]\.routes\[0\]\.respond\.status/.test(node.out() + node.err()), 10_000, 'the refusal naming the field', output);
      assert.equal((await request(`http://127.0.0.1:${port}/`)).text, 'third\n', 'the running config keeps serving');

      // KillMode=mixed: SIGTERM to the main process only; it stops its workers itself.
      const code = await node.stop('SIGTERM', 15_000);
      assert.equal(code, 0, `a clean stop${output()}`);
      for (const pid of workers) assert.equal(alive(pid), false, `edge worker ${pid} is gone`);
    } finally {
      await node.stop('SIGKILL', 1_000);
    }
  });
});

function processOwner(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
}

/**
 * Whether `uid` can run Portico from this checkout with this Node: every folder above both
 * searchable and the files readable. Not so when the clone was made with umask 077, or lies under
 * a 0700 folder, or Node does (a runtime unpacked in a `mktemp -d` folder).
 */
function runnableBy(uid: number): boolean {
  return spawnSync(process.execPath, [BIN, '--version'], { uid, gid: uid }).status === 0;
}

/**
 * Copies what the image holds (package.json, bin, dist, node_modules, and Node itself) and makes it
 * readable by everyone, as a package install under /opt is, whatever the modes of the clone.
 */
function copyInstall(target: string): { install: string; node: string } {
  for (const part of ['package.json', 'bin', 'dist', 'node_modules']) cpSync(join(ROOT, part), join(target, part), { recursive: true });
  const node = join(target, 'node');
  cpSync(process.execPath, node);
  execFileSync('chmod', ['-R', 'a+rX', target]);
  return { install: target, node };
}

async function until(check: () => Promise<boolean>, ms: number, what: string, context: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms${context()}`);
    await sleep(100);
  }
}
