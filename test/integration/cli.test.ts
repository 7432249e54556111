/**
 * The command line as a user meets it: help and usage errors, `portico serve` flags and their
 * environment twins, `portico up` with the embedded demo, signals (SIGTERM stops with 0, SIGHUP
 * reloads or refuses), and a busy port. Every process is the real bin/portico, stopped by PID.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT, freePort, freePortPair, request, runCli, startPortico, startWithConfig, tempDir, writeConfig, type RunningPortico } from '../helpers/portico.js';

const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const STACK_LINE = /^\s+at /m;

/** Polls `check` until it holds (or fails after `ms`). */
async function eventually(check: () => Promise<boolean> | boolean, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A small site: an index, a folder without index, a dotfile. */
function makeSite(dir: string): string {
  const site = join(dir, 'site');
  mkdirSync(join(site, 'sub'), { recursive: true });
  writeFileSync(join(site, 'index.html'), '<h1>home</h1>\n');
  writeFileSync(join(site, 'hello.txt'), 'hello file\n');
  writeFileSync(join(site, 'sub', 'file.txt'), 'in sub\n');
  writeFileSync(join(site, '.secret'), 'secret\n');
  return site;
}

describe('help, version and usage errors', { concurrency: 4 }, () => {
  for (const args of [['--help'], ['-h'], ['help'], []]) {
    it(`portico ${args.join(' ') || '(no arguments)'} prints the main usage, exit 0`, async () => {
      const result = await runCli(args);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /^Usage: portico <command> \[options\]$/m);
      for (const command of ['up', 'serve', 'check']) assert.match(result.stdout, new RegExp(`^ {2}${command} `, 'm'));
      assert.equal(result.stderr, '');
    });
  }

  for (const command of ['up', 'serve', 'check']) {
    for (const flag of ['--help', '-h']) {
      it(`portico ${command} ${flag} prints its usage, exit 0`, async () => {
        const result = await runCli([command, flag]);
        assert.equal(result.code, 0, result.stderr);
        assert.match(result.stdout, new RegExp(`^Usage: portico ${command}`));
        assert.equal(result.stderr, '');
      });
    }
    it(`portico ${command} with an unknown flag: exit 2, the flag named`, async () => {
      const result = await runCli([command, '--frobnicate'], { timeoutMs: 8000 });
      assert.equal(result.code, 2);
      assert.match(result.stderr, /^portico: .*'--frobnicate'/);
      assert.equal(result.stdout, '');
      assert.doesNotMatch(result.stderr, STACK_LINE);
    });
  }

  it('--version and -v print the package version', async () => {
    for (const flag of ['--version', '-v']) {
      const result = await runCli([flag]);
      assert.equal(result.code, 0);
      assert.equal(result.stdout.trim(), VERSION);
    }
  });

  it('an unknown command: exit 2, named, with the list of commands', async () => {
    const result = await runCli(['frob']);
    assert.equal(result.code, 2);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /^portico: unknown command "frob" \(commands: up, reload, serve, proxy, forward, check/);
  });

  it('check takes no positional argument (exit 2)', async () => {
    const result = await runCli(['check', 'portico.config.json']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /portico: .*positional/);
  });

  it('serve refuses a bad port, two directories and a missing directory (exit 2)', async () => {
    const dir = tempDir();
    try {
      const cases: [string[], RegExp, Record<string, string>?][] = [
        [['serve', '--port', '70000'], /expected a port number 0-65535, got "70000"/],
        [['serve', '--port', 'http'], /expected a port number 0-65535, got "http"/],
        [['serve'], /expected a port number 0-65535, got "eighty"/, { PORT: 'eighty' }],
        [['serve', 'a', 'b'], /expected at most one directory, got 2/],
        [['serve', join(dir.path, 'nowhere'), '--port', '0'], /serve: expected a directory, got ".*nowhere" \(no such file or directory\)/],
        [['serve', '--max-age', 'forever', '--port', '0'], /--max-age: expected a duration like "1h", got "forever"/],
        [['serve', '--dotfiles', 'show', '--port', '0'], /--dotfiles: expected ignore, deny or allow, got "show"/],
        [['serve', '--access-log', 'xml', '--port', '0'], /--access-log: expected combined or json, got "xml"/],
      ];
      for (const [args, message, env] of cases) {
        const result = await runCli(args, { cwd: dir.path, env, timeoutMs: 8000 });
        assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
        assert.match(result.stderr, message);
        assert.doesNotMatch(result.stderr, STACK_LINE);
      }
    } finally {
      dir.remove();
    }
  });
});

describe('portico serve DIR', () => {
  const dir = tempDir();
  let site: string;
  before(() => {
    site = makeSite(dir.path);
  });
  after(() => dir.remove());

  it('serves files on --port/--host; a folder without index is 403 without --listing', async () => {
    const port = await freePort();
    const portico = await startPortico(['serve', site, '--port', String(port), '--host', '127.0.0.1']);
    try {
      assert.equal(portico.url, `http://127.0.0.1:${port}`);
      assert.match(portico.stdout(), new RegExp(`serving ${site}`));
      const file = await request(`${portico.url}/hello.txt`);
      assert.equal(file.status, 200);
      assert.equal(file.text, 'hello file\n');
      assert.match(String(file.headers['content-type']), /^text\/plain/);
      const index = await request(`${portico.url}/`);
      assert.equal(index.status, 200);
      assert.equal(index.text, '<h1>home</h1>\n');
      assert.equal((await request(`${portico.url}/sub/`)).status, 403);
      assert.equal((await request(`${portico.url}/.secret`)).status, 404, 'dotfiles ignored by default');
      assert.equal((await request(`${portico.url}/app/route`)).status, 404, 'no SPA fallback without --spa');
      assert.equal(file.headers['cache-control'], undefined, 'no max-age by default');
    } finally {
      assert.equal(await portico.stop(), 0);
    }
  });

  it('--listing lists a folder without index', async () => {
    const portico = await startPortico(['serve', site, '--port', String(await freePort()), '--host', '127.0.0.1', '--listing']);
    try {
      const res = await request(`${portico.url}/sub/`);
      assert.equal(res.status, 200);
      assert.match(String(res.headers['content-type']), /^text\/html/);
      assert.match(res.text, /file\.txt/);
    } finally {
      await portico.stop();
    }
  });

  it('--spa serves /index.html for paths that are not files; files still win', async () => {
    const portico = await startPortico(['serve', site, '--port', String(await freePort()), '--host', '127.0.0.1', '--spa']);
    try {
      const res = await request(`${portico.url}/app/some/route`);
      assert.equal(res.status, 200);
      assert.equal(res.text, '<h1>home</h1>\n');
      assert.equal((await request(`${portico.url}/hello.txt`)).text, 'hello file\n');
    } finally {
      await portico.stop();
    }
  });

  it('--max-age, --dotfiles deny, --no-access-log', async () => {
    const portico = await startPortico(['serve', site, '--port', String(await freePort()), '--host', '127.0.0.1', '--max-age', '1h', '--dotfiles', 'deny', '--no-access-log']);
    try {
      const res = await request(`${portico.url}/hello.txt`);
      assert.match(String(res.headers['cache-control']), /max-age=3600\b/);
      assert.equal((await request(`${portico.url}/.secret`)).status, 403);
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.doesNotMatch(portico.stdout(), /GET \/hello\.txt/, 'no access log line');
    } finally {
      await portico.stop();
    }
  });

  it('writes a combined access log line to stdout by default, JSON with --access-log json', async () => {
    const combined = await startPortico(['serve', site, '--port', String(await freePort()), '--host', '127.0.0.1']);
    try {
      await request(`${combined.url}/hello.txt`);
      await eventually(() => /"GET \/hello\.txt HTTP\/1\.1" 200 /.test(combined.stdout()), 3000, 'a combined log line');
    } finally {
      await combined.stop();
    }
    const json = await startPortico(['serve', site, '--port', String(await freePort()), '--host', '127.0.0.1', '--access-log', 'json']);
    try {
      await request(`${json.url}/hello.txt`);
      await eventually(() => json.stdout().split('\n').some((line) => line.startsWith('{') && line.includes('/hello.txt')), 3000, 'a JSON log line');
    } finally {
      await json.stop();
    }
  });

  it('PORT and HOST set the address when the flags are absent; --port wins over PORT', async () => {
    const port = await freePort();
    // 127.0.0.2 is loopback on Linux: it shows HOST is used, not the 127.0.0.1 default.
    const portico = await startPortico(['serve', site], { env: { PORT: String(port), HOST: '127.0.0.2' } });
    try {
      assert.equal(portico.url, `http://127.0.0.2:${port}`);
      assert.equal((await request(`${portico.url}/hello.txt`)).status, 200);
    } finally {
      await portico.stop();
    }
    const flagPort = await freePort();
    const flagged = await startPortico(['serve', site, '--port', String(flagPort)], { env: { PORT: String(await freePort()), HOST: '' } });
    try {
      assert.equal(flagged.url, `http://127.0.0.1:${flagPort}`, 'an empty HOST means the default 127.0.0.1');
    } finally {
      await flagged.stop();
    }
  });

  it('serves the current directory when DIR is omitted', async () => {
    const portico = await startPortico(['serve', '--port', String(await freePort())], { cwd: site });
    try {
      assert.equal((await request(`${portico.url}/hello.txt`)).text, 'hello file\n');
    } finally {
      await portico.stop();
    }
  });
});

describe('portico up', () => {
  it('in an empty folder runs the embedded demo on PORT/HOST; SIGTERM stops it with 0', async () => {
    const dir = tempDir();
    const port = await freePortPair();
    const portico = await startPortico(['up'], { cwd: dir.path, env: { PORT: String(port), HOST: '127.0.0.2' } });
    try {
      assert.match(portico.stdout(), /embedded demo/);
      assert.equal(portico.url, `http://127.0.0.2:${port}`);
      const health = await request(`${portico.url}/healthz`);
      assert.equal(health.status, 200);
      assert.equal(health.text, 'ok\n');
      assert.equal(await portico.stop('SIGTERM'), 0);
      assert.match(portico.stderr(), /"signal":"SIGTERM"/);
    } finally {
      await portico.stop('SIGKILL');
      dir.remove();
    }
  });

  it('SIGINT stops it with 0 too', async () => {
    const dir = tempDir();
    const portico = await startPortico(['up'], { cwd: dir.path, env: { PORT: String(await freePortPair()) } });
    try {
      assert.equal(await portico.stop('SIGINT'), 0);
    } finally {
      dir.remove();
    }
  });

  it('the demo ignores SIGHUP (nothing to reload) and keeps serving', async () => {
    const dir = tempDir();
    const portico = await startPortico(['up'], { cwd: dir.path, env: { PORT: String(await freePortPair()) } });
    try {
      process.kill(portico.pid, 'SIGHUP');
      await eventually(() => portico.stderr().includes('nothing to reload'), 10_000, 'the SIGHUP warning').catch((error: Error) => {
        throw new Error(`${error.message}\nstdout:\n${portico.stdout()}\nstderr:\n${portico.stderr()}`);
      });
      assert.equal((await request(`${portico.url}/healthz`)).status, 200);
    } finally {
      await portico.stop();
      dir.remove();
    }
  });

  it('an invalid PORT for the demo is a usage error (exit 2)', async () => {
    const dir = tempDir();
    try {
      const result = await runCli(['up'], { cwd: dir.path, env: { PORT: '99999' }, timeoutMs: 8000 });
      assert.equal(result.code, 2);
      assert.match(result.stderr, /expected a port number 0-65535, got "99999"/);
    } finally {
      dir.remove();
    }
  });

  describe('SIGHUP reload', () => {
    const dir = tempDir();
    let portico: RunningPortico;
    let listen: string;
    const config = (body: string, extra: Record<string, unknown> = {}) => ({
      log: { access: false },
      ...extra,
      servers: [{ listen, routes: [{ exact: '/', respond: { body } }] }],
    });
    before(async () => {
      listen = `127.0.0.1:${await freePort()}`;
      portico = await startWithConfig(dir.path, config('one'));
    });
    after(async () => {
      await portico.stop();
      dir.remove();
    });

    it('applies an edited valid config', async () => {
      assert.equal((await request(`${portico.url}/`)).text, 'one');
      writeConfig(dir.path, config('two'));
      process.kill(portico.pid, 'SIGHUP');
      await eventually(async () => (await request(`${portico.url}/`)).text === 'two', 5000, 'the new body');
      await eventually(() => portico.stderr().includes('reloaded: new config serving'), 3000, 'the reload log line');
    });

    it('refuses an invalid config, logs "reload refused" with the problem, and keeps serving the old one', async () => {
      writeConfig(dir.path, { servers: [{ listen, lsiten: ':1', routes: [{ respond: { body: 'bad' } }] }] });
      process.kill(portico.pid, 'SIGHUP');
      await eventually(() => portico.stderr().includes('reload refused'), 5000, '"reload refused" on stderr');
      assert.match(portico.stderr(), /servers\[0\]\.lsiten: unknown key/);
      const res = await request(`${portico.url}/`);
      assert.equal(res.status, 200);
      assert.equal(res.text, 'two');
      assert.equal(portico.child.exitCode, null, 'still running');
    });

    it('refuses a config that no longer loads (syntax error) and keeps serving', async () => {
      writeConfig(dir.path, '{ "servers": [');
      const before = portico.stderr().split('reload refused').length;
      process.kill(portico.pid, 'SIGHUP');
      await eventually(() => portico.stderr().split('reload refused').length > before, 5000, 'a second "reload refused"');
      assert.equal((await request(`${portico.url}/`)).text, 'two');
    });

    it('a reload applies the new log level too', async () => {
      const reloadsBefore = portico.stderr().split('reloaded: new config serving').length;
      writeConfig(dir.path, config('three', { log: { access: false, level: 'error' } }));
      process.kill(portico.pid, 'SIGHUP');
      await eventually(async () => (await request(`${portico.url}/`)).text === 'three', 5000, 'body three');
      writeConfig(dir.path, config('four', { log: { access: false, level: 'error' } }));
      process.kill(portico.pid, 'SIGHUP');
      await eventually(async () => (await request(`${portico.url}/`)).text === 'four', 5000, 'body four');
      await new Promise((resolve) => setTimeout(resolve, 200));
      // "reloaded" is an info line: with level "error" neither reload may log it.
      assert.equal(portico.stderr().split('reloaded: new config serving').length, reloadsBefore, portico.stderr());
    });
  });

  it('a port already in use: exit 1 and the address named', async () => {
    const blocker = createServer();
    blocker.listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    const port = (blocker.address() as { port: number }).port;
    const dir = tempDir();
    try {
      const path = writeConfig(dir.path, { servers: [{ listen: `127.0.0.1:${port}` }] });
      const up = await runCli(['up', '--config', path], { timeoutMs: 8000 });
      assert.equal(up.code, 1, up.stderr);
      assert.ok(up.stderr.includes(`127.0.0.1:${port}`), up.stderr);
      assert.doesNotMatch(up.stderr, STACK_LINE);
      const serve = await runCli(['serve', dir.path, '--port', String(port)], { timeoutMs: 8000 });
      assert.equal(serve.code, 1, serve.stderr);
      assert.ok(serve.stderr.includes(`127.0.0.1:${port}`), serve.stderr);
    } finally {
      blocker.close();
      dir.remove();
    }
  });
});

describe('portico init', () => {
  const dir = tempDir('portico-init-');
  after(() => dir.remove());

  it('writes a starter that checks, runs and answers on each of its routes; a second init is refused', async () => {
    const init = await runCli(['init'], { cwd: dir.path });
    assert.equal(init.code, 0, init.stderr);
    for (const name of ['portico.config.ts', 'app.ts', join('public', 'index.html')]) assert.match(init.stdout, new RegExp(`wrote ${name.replace('.', '\\.')}`));
    const configPath = join(dir.path, 'portico.config.ts');
    const written = readFileSync(configPath, 'utf8');
    assert.match(written, /^\/\/ /m, 'the config is commented');
    const check = await runCli(['check'], { cwd: dir.path });
    assert.equal(check.code, 0, check.stderr);

    // The starter listens on 8080; the test moves it to a free port.
    const port = await freePort();
    writeFileSync(configPath, written.replace("listen: '127.0.0.1:8080'", `listen: '127.0.0.1:${port}'`));
    const portico = await startPortico(['up'], { cwd: dir.path });
    try {
      const home = await request(`http://127.0.0.1:${port}/`);
      assert.equal(home.status, 200);
      assert.match(home.text, /Portico is serving \.\/public/);
      const app = await request(`http://127.0.0.1:${port}/app/hello`);
      assert.equal(app.status, 200, app.text);
      assert.equal((JSON.parse(app.text) as { message: string; path: string }).message, 'hello from app.ts');
      assert.equal((await request(`http://127.0.0.1:${port}/healthz`)).text, 'ok\n');
      assert.equal((await request(`http://127.0.0.1:${port}/api/x`)).status, 502, 'nothing listens on the example API port');
    } finally {
      assert.equal(await portico.stop(), 0);
    }

    const again = await runCli(['init'], { cwd: dir.path });
    assert.equal(again.code, 2);
    assert.match(again.stderr, /portico\.config\.ts exists already \(--force replaces it\)/);
    assert.match(readFileSync(configPath, 'utf8'), new RegExp(`127\\.0\\.0\\.1:${port}`), 'the existing config is untouched');
    const forced = await runCli(['init', '--force'], { cwd: dir.path });
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, /kept app\.ts \(there already\)/);
  });
});
