/**
 * Logs an operator reads and rotates: SIGUSR1 reopens the error and access logs in every process
 * (tested by renaming the files, as logrotate does), access log formats with nginx variables
 * (upstream fields included), the parser's own answers in the access log, the error log as text,
 * arbiter lines that name their app, and process titles.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { APPS } from '../helpers/app.js';
import { eventually } from '../helpers/forward.js';
import { freePort, request, startWithConfig, tempDir, type RunningPortico } from '../helpers/portico.js';
import { startNodeUpstream } from '../helpers/upstreams.js';

const running: { stop(): Promise<unknown> }[] = [];
after(async () => {
  for (const one of running.reverse()) await one.stop().catch(() => undefined);
});

async function start(dir: string, config: unknown): Promise<RunningPortico> {
  const portico = await startWithConfig(dir, config);
  running.push(portico);
  return portico;
}

const read = (path: string): string => (existsSync(path) ? readFileSync(path, 'utf8') : '');

/** Sends raw bytes and resolves with the answer's status line (the server closes after it). */
function raw(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (answer += chunk));
    socket.on('close', () => resolve(answer.split('\r\n')[0] ?? ''));
    socket.on('error', reject);
    socket.end(bytes);
  });
}

/** The title a process has set (/proc/PID/cmdline, which process.title rewrites on Linux). */
const title = (pid: number): string => readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+$/, '').replace(/\0/g, ' ');

describe('logs', () => {
  it('SIGUSR1 reopens the error and access logs of every process after they are renamed', async () => {
    const dir = tempDir('portico-logs-').path;
    const port = await freePort();
    const accessLog = join(dir, 'access.log');
    const errorLog = join(dir, 'error.log');
    const portico = await start(dir, { workers: 2, log: { level: 'info', error: errorLog, access: { path: accessLog } }, servers: [{ listen: `127.0.0.1:${port}`, routes: [{ respond: { body: 'ok\n' } }] }] });
    for (let i = 0; i < 10; i++) await request(`http://127.0.0.1:${port}/before-${i}`);
    await eventually(() => read(accessLog).split('\n').filter(Boolean).length === 10, 5000, 'ten lines before the rotation');
    renameSync(accessLog, `${accessLog}.1`);
    renameSync(errorLog, `${errorLog}.1`);
    process.kill(portico.pid, 'SIGUSR1');
    await eventually(() => read(errorLog).includes('log files reopened'), 5000, 'a new error log');
    // Every worker reopened: new connections land on either, and all their lines go to the new file.
    for (let i = 0; i < 20; i++) await request(`http://127.0.0.1:${port}/after-${i}`, { headers: { connection: 'close' } });
    await eventually(() => read(accessLog).split('\n').filter(Boolean).length === 20, 5000, 'twenty lines after the rotation');
    assert.doesNotMatch(read(accessLog), /before-/);
    assert.doesNotMatch(read(`${accessLog}.1`), /after-/);
    assert.equal(read(`${accessLog}.1`).split('\n').filter(Boolean).length, 10);
    assert.match(read(`${errorLog}.1`), /edge worker started/);
    assert.equal(portico.child.exitCode, null, 'still running');
  });

  it('an access log format with nginx variables: request time, upstream address, status and time, cache status', async () => {
    const upstream = await startNodeUpstream((_req, res) => res.end('up'));
    running.push({ stop: () => upstream.close() });
    const dir = tempDir('portico-logs-format-').path;
    const port = await freePort();
    const accessLog = join(dir, 'access.log');
    const format = '$remote_addr "$request" $status $body_bytes_sent rt=$request_time ua="$upstream_addr" us=$upstream_status ut=$upstream_response_time cs=$cache_status h="$http_x_test"';
    await start(dir, { workers: 1, log: { access: { path: accessLog, format } }, servers: [{ listen: `127.0.0.1:${port}`, routes: [{ prefix: '/static', respond: { body: 'local' } }, { prefix: '/', proxy: { to: upstream.url }, cache: true }] }] });
    await request(`http://127.0.0.1:${port}/api?q=1`, { headers: { 'x-test': 'a"b' } });
    await request(`http://127.0.0.1:${port}/static`);
    await eventually(() => read(accessLog).split('\n').filter(Boolean).length === 2, 5000, 'two lines');
    const [proxied, local] = read(accessLog).split('\n');
    assert.match(proxied as string, new RegExp(`^127\\.0\\.0\\.1 "GET /api\\?q=1 HTTP/1\\.1" 200 2 rt=\\d+\\.\\d{3} ua="127\\.0\\.0\\.1:${upstream.port}" us=200 ut=\\d+\\.\\d{3} cs=miss h="a\\\\x22b"$`));
    // Empty variables are "-", as nginx writes them.
    assert.match(local as string, /^127\.0\.0\.1 "GET \/static HTTP\/1\.1" 200 5 rt=\d+\.\d{3} ua="-" us=- ut=- cs=- h="-"$/);
  });

  it('an unknown variable in a log format is refused with the field path', async () => {
    const dir = tempDir('portico-logs-bad-').path;
    const { spawnCli, writeConfig } = await import('../helpers/portico.js');
    const file = writeConfig(dir, { log: { access: { format: '$remote_addr $nope' } }, servers: [{ listen: '127.0.0.1:0' }] });
    const check = spawnCli(['check', '--config', file]);
    assert.equal(await check.exited, 2);
    assert.match(check.err(), /log\.access\.format: unknown variable "\$nope"/);
  });

  it('answers the HTTP parser makes (400, 414, 431) get access log lines', async () => {
    const dir = tempDir('portico-logs-parser-').path;
    const port = await freePort();
    const accessLog = join(dir, 'access.log');
    await start(dir, { workers: 1, http: { maxUriLength: 1024, maxHeaderSize: '4kb' }, log: { access: { path: accessLog } }, servers: [{ listen: `127.0.0.1:${port}` }] });
    assert.match(await raw(port, 'GARBAGE\r\n\r\n'), /^HTTP\/1\.1 400 /);
    assert.match(await raw(port, `GET /${'a'.repeat(5000)} HTTP/1.1\r\nHost: x\r\n\r\n`), /^HTTP\/1\.1 414 /);
    assert.match(await raw(port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(6000)}\r\n\r\n`), /^HTTP\/1\.1 431 /);
    await eventually(() => read(accessLog).split('\n').filter(Boolean).length === 3, 5000, 'three lines');
    const lines = read(accessLog).split('\n').filter(Boolean);
    // What the parser could not read has no request line ("-", as nginx logs it); the 414 is the
    // edge's own answer to a head it did read, logged with its request.
    assert.match(lines[0] as string, /^127\.0\.0\.1 - - \[[^\]]+\] "-" 400 \d+ "-" "-"$/);
    assert.match(lines[1] as string, /^127\.0\.0\.1 - - \[[^\]]+\] "GET \/a+ HTTP\/1\.1" 414 \d+ /);
    assert.match(lines[2] as string, /^127\.0\.0\.1 - - \[[^\]]+\] "-" 431 \d+ "-" "-"$/);
  });

  it('the error log as text, arbiter lines naming their app, and process titles', async () => {
    const dir = tempDir('portico-logs-text-').path;
    const port = await freePort();
    const portico = await start(dir, { workers: 2, log: { level: 'info', format: 'text' }, apps: { web: { module: join(APPS, 'fetch-function.mjs'), workers: 2 } }, servers: [{ listen: `127.0.0.1:${port}`, routes: [{ app: 'web' }] }] });
    assert.equal((await request(`http://127.0.0.1:${port}/`)).status, 200);
    // Text: "[2026-12-05 07:22:32.735] INFO (pid): message", fields indented below it.
    assert.match(portico.stderr(), /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] INFO \(\d+\): arbiter: worker started$/m);
    assert.match(portico.stderr(), /^ {4}app: "web"$/m);
    assert.doesNotMatch(portico.stderr(), /^\{"level"/m);
    assert.equal(title(portico.pid), 'portico: supervisor');
    const edgePids = /edge workers 2 \(pids (\d+), (\d+)\)/.exec(portico.stdout());
    assert.ok(edgePids, portico.stdout());
    for (const pid of edgePids.slice(1)) assert.equal(title(Number(pid)), 'portico: edge worker');
    const appPids = [...portico.stdout().matchAll(/app web:[^\n]*pids ([\d, ]+)/g)].flatMap((m) => (m[1] as string).split(', ').map(Number));
    assert.equal(appPids.length, 2, portico.stdout());
    for (const pid of appPids) assert.match(title(pid), /^portico: app web worker \d+$/);
  });
});
