/**
 * Python WSGI apps on Portico's own workers (issue #18): real Flask and Django from Debian's
 * python3-flask and python3-django, run by python/portico_wsgi.py under the arbiter, fed by the
 * edge over uwsgi. What a gunicorn user relies on: JSON, a 3 MiB upload whose SHA-256 matches, a
 * chunked upload, a streamed answer, a file through wsgi.file_wrapper, a 500 with its traceback
 * in the error log, REMOTE_ADDR = the real client; a worker that exits mid-request or hangs past
 * `timeout` is replaced (504 for the hung request); recycling (`maxRequests`) and SIGHUP reloads
 * with new code under a bounded load lose no request. Real processes on loopback, stopped by PID.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runLoad, summary, type LoadResult } from '../helpers/load.js';
import { freePort, processAlive as alive, ROOT, runCli, startPortico, startWithConfig, tempDir, type RunningPortico } from '../helpers/portico.js';

const PYTHON = '/usr/bin/python3';
const FIXTURES = join(ROOT, 'test', 'fixtures', 'wsgi');
const MiB = 1024 * 1024;
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** When each body chunk arrived (performance.now()). */
  arrivals: number[];
}

/** One request; `chunked` sends the body in pieces with Transfer-Encoding: chunked; `from` picks the client's own address. */
function send(url: string, options: { method?: string; body?: Buffer; chunked?: boolean; from?: string } = {}): Promise<Answer> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = options.chunked ? { 'transfer-encoding': 'chunked' } : options.body ? { 'content-length': String(options.body.length) } : {};
    const req = httpRequest({ host: target.hostname, port: target.port, path: target.pathname + target.search, method: options.method ?? 'GET', headers, agent: false, ...(options.from ? { localAddress: options.from } : {}) }, (res) => {
      const parts: Buffer[] = [];
      const arrivals: number[] = [];
      res.on('data', (part: Buffer) => {
        parts.push(part);
        arrivals.push(performance.now());
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts), arrivals }));
      res.on('error', reject);
    });
    req.setTimeout(20_000, () => req.destroy(new Error('no answer within 20 s')));
    req.on('error', reject);
    if (options.body && options.chunked) {
      for (let at = 0; at < options.body.length; at += 65_537) req.write(options.body.subarray(at, at + 65_537));
    } else if (options.body) req.write(options.body);
    req.end();
  });
}

const json = (answer: Answer) => JSON.parse(answer.body.toString()) as Record<string, unknown>;

async function until(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(50);
  }
}

function assertNoFailures(result: LoadResult): void {
  assert.deepEqual(result.statuses, {}, summary('load', result));
  assert.deepEqual(result.errors, {}, summary('load', result));
  assert.equal(result.ok, result.requests);
}

describe('Flask and Django on Portico WSGI workers', () => {
  const dir = tempDir('portico-wsgi-');
  const file = join(dir.path, 'download.bin');
  const fileBytes = randomBytes(2 * MiB + 123);
  let portico: RunningPortico;
  const base: Record<'flask' | 'django', string> = { flask: '', django: '' };

  before(async () => {
    writeFileSync(file, fileBytes);
    const [flaskPort, djangoPort] = [await freePort(), await freePort()];
    const app = (wsgi: string) => ({ wsgi, python: PYTHON, cwd: FIXTURES, workers: 2, timeout: '3s', env: { WSGI_TEST_FILE: file } });
    portico = await startWithConfig(dir.path, {
      log: { access: false },
      http: { maxBodySize: '8mb' },
      apps: { flask: app('flask_wsgi:app'), django: app('django_wsgi:application') },
      servers: [
        { listen: `127.0.0.1:${flaskPort}`, routes: [{ app: 'flask' }] },
        { listen: `127.0.0.1:${djangoPort}`, routes: [{ app: 'django' }] },
      ],
    });
    base.flask = `http://127.0.0.1:${flaskPort}`;
    base.django = `http://127.0.0.1:${djangoPort}`;
  });
  after(async () => {
    await portico?.stop();
    dir.remove();
  });

  for (const framework of ['flask', 'django'] as const) {
    describe(framework, () => {
      it('answers JSON', async () => {
        const answer = await send(`${base[framework]}/json`);
        assert.equal(answer.status, 200);
        assert.match(String(answer.headers['content-type']), /application\/json/);
        assert.equal(json(answer).framework, framework);
      });

      it('reads a 3 MiB POST whole (length and SHA-256 match)', async () => {
        const body = randomBytes(3 * MiB + 7);
        const answer = await send(`${base[framework]}/upload`, { method: 'POST', body });
        assert.equal(answer.status, 200, answer.body.toString().slice(0, 300));
        assert.deepEqual(json(answer), { length: body.length, sha256: sha256(body), content_length: String(body.length) });
      });

      it('reads a chunked POST (dechunked by the edge, sent with its length)', async () => {
        const body = randomBytes(MiB + MiB / 2 + 3);
        const answer = await send(`${base[framework]}/upload`, { method: 'POST', body, chunked: true });
        assert.equal(answer.status, 200, answer.body.toString().slice(0, 300));
        assert.deepEqual(json(answer), { length: body.length, sha256: sha256(body), content_length: String(body.length) });
      });

      it('streams a response as the app yields it', async () => {
        const answer = await send(`${base[framework]}/stream?n=4&delay=0.3`);
        assert.equal(answer.status, 200);
        assert.equal(answer.body.toString(), 'line 0\nline 1\nline 2\nline 3\n');
        // The lines come 300 ms apart: the first one long before the last (not buffered whole).
        assert.ok(answer.arrivals.length >= 3, `the body came in ${answer.arrivals.length} pieces`);
        assert.ok((answer.arrivals.at(-1) as number) - (answer.arrivals[0] as number) >= 500, 'the lines arrived spread over the app\'s delays');
      });

      it('sends a file through wsgi.file_wrapper, byte for byte', async () => {
        const answer = await send(`${base[framework]}/file`);
        assert.equal(answer.status, 200);
        assert.equal(answer.headers['content-length'], String(fileBytes.length));
        assert.equal(sha256(answer.body), sha256(fileBytes));
      });

      it('answers 500 to an exception, with the traceback in the error log, and the worker lives on', async () => {
        const pidsBefore = await workerPids(framework);
        const answer = await send(`${base[framework]}/error`);
        assert.equal(answer.status, 500);
        await until(() => portico.stderr().includes(`${framework}-boom-marker`), 5_000, 'the traceback in the error log');
        const line = portico.stderr().split('\n').find((l) => l.includes(`${framework}-boom-marker`) && l.includes('Traceback')) ?? '';
        assert.match(line, /"app":"(flask|django)"/, 'the log line names the app');
        assert.equal((await send(`${base[framework]}/json`)).status, 200);
        assert.deepEqual(await workerPids(framework), pidsBefore, 'no worker was replaced');
      });

      it('sees the real client in REMOTE_ADDR', async () => {
        const answer = await send(`${base[framework]}/remote`, { from: '127.0.0.2' });
        assert.equal(answer.status, 200);
        assert.equal(json(answer).remote_addr, '127.0.0.2');
        assert.equal(json(answer).scheme, 'http');
      });
    });
  }

  it('wsgi.errors writes to the error log', async () => {
    assert.equal((await send(`${base.flask}/log`)).status, 200);
    await until(() => portico.stderr().includes('wsgi-errors-marker from the app'), 5_000, 'the wsgi.errors line');
  });

  it('a worker that exits mid-request (os._exit) is replaced; other requests succeed', async () => {
    const before = await workerPids('flask');
    const others = Promise.all(Array.from({ length: 20 }, (_, i) => sleep(i * 20).then(() => send(`${base.flask}/json`))));
    const killer = await send(`${base.flask}/exit`);
    assert.ok(killer.status === 502, `the request that killed its worker: ${killer.status}`);
    const failures = (): string => portico.stderr().split('\n').filter((line) => /"level":[4-6]0/.test(line)).join('\n');
    for (const answer of await others) assert.equal(answer.status, 200, failures());
    await until(async () => (await workerPids('flask')).length === 2 && (await workerPids('flask')).some((pid) => !before.includes(pid)), 10_000, 'a replacement worker');
    assert.match(portico.stderr(), /arbiter: worker \d+ died \(exit 1\)/);
  });

  it('a request that kills its worker on a kept connection is not sent on to kill another', async () => {
    // One at a time: each worker's connection from the edge is kept and taken again, so the
    // killing request goes on a pooled connection, which closes without an answer. The edge tries
    // such a connection once more, new; the worker's socket is gone by then, and that refusal
    // must not send the request on to the other worker (it was read, and may be what killed).
    for (let i = 0; i < 6; i++) assert.equal((await send(`${base.flask}/json`)).status, 200);
    const before = await workerPids('flask');
    assert.equal(before.length, 2);
    const killer = await send(`${base.flask}/exit`);
    assert.equal(killer.status, 502, `the request that killed its worker: ${killer.status}`);
    await until(async () => (await workerPids('flask')).filter((pid) => !before.includes(pid)).length >= 1, 10_000, 'a replacement worker');
    await sleep(300);
    const gone = before.filter((pid) => !alive(pid));
    assert.equal(gone.length, 1, `workers gone: ${gone.join(', ')}`);
    await until(async () => (await workerPids('flask')).length === 2, 10_000, 'two workers again');
  });

  it('a request past the timeout gets 504; its hung worker is killed and replaced', async () => {
    const before = await workerPids('flask');
    const started = Date.now();
    const hanging = send(`${base.flask}/hang`);
    // Meanwhile, one after another (a sync worker serves one request at a time: the edge sends
    // each to the worker with the fewest in progress, which is the other one), answered.
    await sleep(300);
    for (let i = 0; i < 5; i++) assert.equal((await send(`${base.flask}/json`)).status, 200);
    const hung = await hanging;
    assert.equal(hung.status, 504);
    assert.ok(Date.now() - started < 10_000);
    await until(() => /worker (\d+) timed out \(a request running for \d+ s\), killing it/.test(portico.stderr()), 5_000, 'the timeout kill');
    const killed = Number(/worker (\d+) timed out \(a request running/.exec(portico.stderr())?.[1]);
    assert.ok(before.includes(killed));
    await until(() => !alive(killed), 5_000, 'the hung worker gone');
    await until(async () => (await workerPids('flask')).length === 2, 10_000, 'two workers again');
  });

  /** The app's live worker pids, from the arbiter's "worker ready" lines. */
  async function workerPids(app: string): Promise<number[]> {
    const pids = new Set<number>();
    for (const line of portico.stderr().split('\n')) {
      if (!line.includes(`"app":"${app}"`) || !line.includes('arbiter: worker ready')) continue;
      const pid = /"worker":(\d+)/.exec(line)?.[1];
      if (pid) pids.add(Number(pid));
    }
    return [...pids].filter(alive).sort();
  }
});

describe('WSGI workers under a bounded load (10 s, 8 keep-alive clients)', () => {
  it('maxRequests 50 recycles workers with zero failed requests', async (t) => {
    const dir = tempDir('portico-wsgi-');
    const port = await freePort();
    const portico = await startWithConfig(dir.path, {
      log: { access: false },
      apps: { flask: { wsgi: 'flask_wsgi:app', python: PYTHON, cwd: FIXTURES, workers: 2, maxRequests: 50, maxRequestsJitter: 10 } },
      servers: [{ listen: `127.0.0.1:${port}`, routes: [{ app: 'flask' }] }],
    });
    try {
      const result = await runLoad({ port, paths: ['/pid'], clients: 8, durationMs: 10_000, keepAlive: true });
      const recycles = (portico.stderr().match(/reached max requests/g) ?? []).length;
      t.diagnostic(`${summary('maxRequests 50', result)}; ${Object.keys(result.bodies).length} worker pids answered; ${recycles} recycles`);
      assertNoFailures(result);
      assert.ok(result.requests >= 500, `only ${result.requests} requests`);
      assert.ok(recycles >= 5, `only ${recycles} recycles`);
      assert.ok(Object.keys(result.bodies).length >= 6, 'workers were replaced');
    } finally {
      assert.equal(await portico.stop(), 0);
      dir.remove();
    }
  });

  it('SIGHUP rolling reloads with a code change: zero failed requests, the new code answers afterwards', async (t) => {
    const dir = tempDir('portico-wsgi-');
    const app = join(dir.path, 'flask_wsgi.py');
    copyFileSync(join(FIXTURES, 'flask_wsgi.py'), app);
    const port = await freePort();
    const portico = await startWithConfig(dir.path, {
      log: { access: false },
      apps: { flask: { wsgi: 'flask_wsgi:app', python: PYTHON, workers: 2 } },
      servers: [{ listen: `127.0.0.1:${port}`, routes: [{ app: 'flask' }] }],
    });
    const timers: NodeJS.Timeout[] = [];
    try {
      assert.equal(json(await send(`http://127.0.0.1:${port}/json`)).version, 'v1');
      for (const [at, version] of [
        [2500, 'v2'],
        [6000, 'v3'],
      ] as const) {
        timers.push(
          setTimeout(() => {
            writeFileSync(app, readFileSync(app, 'utf8').replace(/^VERSION = '.*'$/m, `VERSION = '${version}'`));
            process.kill(portico.pid, 'SIGHUP');
          }, at),
        );
      }
      const result = await runLoad({ port, paths: ['/json'], clients: 8, durationMs: 10_000, keepAlive: true });
      await until(() => (portico.stderr().match(/reload done/g) ?? []).length >= 2, 15_000, 'both reloads done');
      const versions = new Set(Object.keys(result.bodies).map((body) => /"version":"(v\d)"/.exec(body)?.[1] ?? body));
      t.diagnostic(`${summary('SIGHUP reloads', result)}; versions answered: ${[...versions].join(', ')}`);
      assertNoFailures(result);
      assert.ok(result.requests >= 500, `only ${result.requests} requests`);
      assert.equal(json(await send(`http://127.0.0.1:${port}/json`)).version, 'v3', 'the new code answers');
    } finally {
      timers.forEach(clearTimeout);
      assert.equal(await portico.stop(), 0);
      dir.remove();
    }
  });
});

describe('threads and the standalone command', () => {
  it('threads: 4 serves four slow requests of one worker at once', async () => {
    const dir = tempDir('portico-wsgi-');
    const port = await freePort();
    const portico = await startWithConfig(dir.path, {
      log: { access: false },
      apps: { flask: { wsgi: 'flask_wsgi:app', python: PYTHON, cwd: FIXTURES, workers: 1, threads: 4 } },
      servers: [{ listen: `127.0.0.1:${port}`, routes: [{ app: 'flask' }] }],
    });
    try {
      assert.equal(json(await send(`http://127.0.0.1:${port}/json`)).multithread, true);
      const started = Date.now();
      const answers = await Promise.all(Array.from({ length: 4 }, () => send(`http://127.0.0.1:${port}/sleep?s=1`)));
      const took = Date.now() - started;
      for (const answer of answers) assert.equal(answer.status, 200);
      assert.equal(new Set(answers.map((a) => json(a).pid)).size, 1, 'one worker served them all');
      // One after another they take 4 s; together about 1 s.
      assert.ok(took < 3000, `four 1 s requests took ${took} ms: not served at once`);
    } finally {
      assert.equal(await portico.stop(), 0);
      dir.remove();
    }
  });

  it('portico app --wsgi runs the app like gunicorn -w 2 app:app, answering HTTP on --bind; SIGTERM stops it', async () => {
    const port = await freePort();
    const portico = await startPortico(['app', '--wsgi', 'flask_wsgi:app', '--chdir', FIXTURES, '--python', PYTHON, '--workers', '2', '--bind', `127.0.0.1:${port}`]);
    try {
      assert.match(portico.stdout(), /WSGI app flask_wsgi:app/);
      assert.match(portico.stdout(), /2 workers \(pids \d+, \d+\)/);
      const answer = await send(`http://127.0.0.1:${port}/json`);
      assert.equal(answer.status, 200);
      assert.equal(json(answer).framework, 'flask');
    } finally {
      assert.equal(await portico.stop('SIGTERM'), 0);
    }
  });

  it('a bad WSGI config is refused with the field path', async () => {
    const dir = tempDir('portico-wsgi-');
    try {
      const write = (apps: unknown) => {
        writeFileSync(join(dir.path, 'portico.config.json'), JSON.stringify({ apps, servers: [{ listen: '127.0.0.1:8080', routes: [{ app: 'py' }] }] }));
        return runCli(['check', '--config', join(dir.path, 'portico.config.json')]);
      };
      const spec = await write({ py: { wsgi: 'not a module!' } });
      assert.equal(spec.code, 2);
      assert.match(spec.stderr, /apps\.py\.wsgi: expected "module:callable"/);
      const python = await write({ py: { wsgi: 'app:app', python: './no-such-venv/' } });
      assert.match(python.stderr, /apps\.py\.python: expected an interpreter or a virtualenv folder/);
      const threads = await write({ py: { module: './app.mjs', threads: 2 } });
      assert.match(threads.stderr, /apps\.py\.threads: expected only with "wsgi"/);
      const app = await runCli(['app', '--wsgi', 'bad spec', '--bind', '127.0.0.1:1']);
      assert.equal(app.code, 2);
      assert.match(app.stderr, /--wsgi: expected "module:callable"/);
    } finally {
      dir.remove();
    }
  });
});
