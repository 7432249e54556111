/**
 * The access log of the real server, written to a file: nginx `combined` lines and JSON lines.
 * The log is written asynchronously (sonic-boom), so each test polls the file for its line.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, rawRequest, request, startWithConfig, statusOf, tempDir, type RunningPortico } from '../helpers/portico.js';

/** The log's lines once one satisfies `found` (polled for up to 5 s). */
async function waitForLine(path: string, found: (line: string) => boolean): Promise<{ line: string; lines: string[] }> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const lines = existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter((l) => l !== '') : [];
    const line = lines.find(found);
    if (line !== undefined) return { line, lines };
    if (Date.now() > deadline) assert.fail(`no matching access-log line in ${path}:\n${lines.join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** nginx `$time_local` ("24/Nov/2026:08:29:45 +0100") → epoch ms. */
function parseTimeLocal(text: string): number {
  const m = /^(\d{2})\/([A-Z][a-z]{2})\/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$/.exec(text);
  assert.ok(m, `not a $time_local: ${text}`);
  const [, dd, mon, yyyy, hh, mi, ss, sign, oh, om] = m;
  const month = MONTHS.indexOf(mon as string);
  assert.notEqual(month, -1, `month ${mon}`);
  const utc = Date.UTC(Number(yyyy), month, Number(dd), Number(hh), Number(mi), Number(ss));
  const offset = (Number(oh) * 60 + Number(om)) * 60_000 * (sign === '-' ? -1 : 1);
  return utc - offset;
}

// $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
const COMBINED = /^(\S+) - (\S+) \[([^\]]+)\] "((?:[^"\\]|\\.)*)" (\d{3}) (\d+) "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)"$/;

describe('access log, combined format', () => {
  const dir = tempDir();
  let portico: RunningPortico;
  let port = 0;
  let logPath = '';
  before(async () => {
    port = await freePort();
    logPath = join(dir.path, 'logs', 'access.log');
    portico = await startWithConfig(dir.path, {
      log: { access: { format: 'combined', path: logPath } },
      servers: [
        {
          listen: `127.0.0.1:${port}`,
          routes: [
            { exact: '/quiet', accessLog: false, respond: { body: 'not logged' } },
            { exact: '/missing', respond: { status: 404, body: 'nope' } },
            { prefix: '/', respond: { body: 'hello' } },
          ],
        },
      ],
    });
  });
  after(async () => {
    await portico.stop();
    dir.remove();
  });

  it('writes an nginx combined line', async () => {
    const before = Date.now();
    const res = await request(`${portico.url}/path?q=1`, { headers: { Referer: 'http://ref.test/page', 'User-Agent': 'agent/1.0' } });
    assert.equal(res.status, 200);
    const { line } = await waitForLine(logPath, (l) => l.includes('/path?q=1'));
    const m = COMBINED.exec(line);
    assert.ok(m, `not a combined line: ${line}`);
    const [, addr, user, time, requestLine, status, bytes, referer, agent] = m;
    assert.equal(addr, '127.0.0.1');
    assert.equal(user, '-');
    const when = parseTimeLocal(time as string);
    assert.ok(Math.abs(when - before) < 60_000, `time ${time} is not now`);
    assert.equal(requestLine, 'GET /path?q=1 HTTP/1.1');
    assert.equal(status, '200');
    assert.equal(bytes, '5');
    assert.equal(referer, 'http://ref.test/page');
    assert.equal(agent, 'agent/1.0');
  });
  it('logs the status sent and "-" for missing Referer and User-Agent', async () => {
    await rawRequest(port, 'GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const { line } = await waitForLine(logPath, (l) => l.includes('"GET /missing '));
    assert.match(line, /" 404 4 "-" "-"$/);
  });
  it('HEAD logs 0 body bytes', async () => {
    await request(`${portico.url}/head-check`, { method: 'HEAD' });
    const { line } = await waitForLine(logPath, (l) => l.includes('"HEAD /head-check '));
    assert.match(line, /" 200 0 /);
  });
  it('a 400 answered by the pipeline (no Host) is logged too', async () => {
    const raw = await rawRequest(port, 'GET /no-host-here HTTP/1.1\r\nConnection: close\r\n\r\n');
    assert.equal(statusOf(raw), 400);
    const { line } = await waitForLine(logPath, (l) => l.includes('/no-host-here'));
    assert.match(line, /" 400 \d+ /);
  });
  it('quotes, backslashes and non-printable bytes are escaped as \\xHH (nginx)', async () => {
    const agent = Buffer.concat([Buffer.from('evil "quoted" \\ agent '), Buffer.from([0xe9])]);
    await rawRequest(port, Buffer.concat([Buffer.from('GET /escape HTTP/1.1\r\nHost: x\r\nUser-Agent: '), agent, Buffer.from('\r\nConnection: close\r\n\r\n')]));
    const { line } = await waitForLine(logPath, (l) => l.includes('/escape'));
    assert.ok(line.endsWith(' "evil \\x22quoted\\x22 \\x5C agent \\xE9"'), line);
    assert.ok(COMBINED.test(line), `the escaped line must still parse: ${line}`);
  });
  it('a route with accessLog: false writes nothing', async () => {
    assert.equal((await request(`${portico.url}/quiet`)).text, 'not logged');
    await request(`${portico.url}/after-quiet`);
    // Lines are written in order: once the later request is there, the quiet one would be too.
    const { lines } = await waitForLine(logPath, (l) => l.includes('/after-quiet'));
    assert.equal(lines.filter((l) => l.includes('/quiet ')).length, 0, lines.join('\n'));
  });
});

describe('access log, json format', () => {
  const dir = tempDir();
  let portico: RunningPortico;
  let logPath = '';
  before(async () => {
    logPath = join(dir.path, 'access.jsonl');
    portico = await startWithConfig(dir.path, {
      log: { access: { format: 'json', path: 'access.jsonl' } },
      servers: [
        {
          listen: `127.0.0.1:${await freePort()}`,
          accessLog: false,
          // Paths below carry an extension, so only "/redirected" gets the slash redirect.
          canonical: { trailingSlash: 'add' },
          routes: [
            { prefix: '/docs/', accessLog: true, respond: { status: 201, body: 'json body' } },
            { prefix: '/', respond: { body: 'server accessLog is off' } },
          ],
        },
      ],
    });
  });
  after(async () => {
    await portico.stop();
    dir.remove();
  });

  it('writes one JSON object per line (a relative path is resolved against the config folder)', async () => {
    await request(`${portico.url}/docs/j.txt?x=1`, { method: 'POST', headers: { 'User-Agent': 'json-agent' }, body: 'data' });
    await request(`${portico.url}/docs/second.txt`);
    const { line, lines } = await waitForLine(logPath, (l) => l.includes('/docs/second.txt'));
    for (const l of lines) assert.doesNotThrow(() => JSON.parse(l), `not JSON: ${l}`);
    const first = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((entry) => entry.uri === '/docs/j.txt?x=1');
    assert.ok(first, lines.join('\n'));
    assert.equal(first.status, 201);
    assert.equal(first.method, 'POST');
    assert.equal(first.body_bytes_sent, 'json body'.length);
    assert.equal(first.user_agent, 'json-agent');
    assert.equal(first.remote_addr, '127.0.0.1');
    assert.equal(first.route, 'servers[0].routes[0]');
    assert.equal(typeof first.duration_ms, 'number');
    assert.ok(!Number.isNaN(Date.parse(first.time as string)));
    assert.equal((JSON.parse(line) as { method: string }).method, 'GET');
  });
  it('routes inheriting the server-level accessLog: false write nothing', async () => {
    assert.equal((await request(`${portico.url}/other.txt`)).text, 'server accessLog is off');
    await request(`${portico.url}/docs/marker-1.txt`);
    const { lines } = await waitForLine(logPath, (l) => l.includes('/docs/marker-1.txt'));
    assert.equal(lines.filter((l) => l.includes('"/other.txt"')).length, 0, lines.join('\n'));
  });
  // Answers made before a route is chosen (canonical redirect, 404 without route) ask the server.
  it('a server with accessLog: false logs no canonical redirects either', async () => {
    const res = await request(`${portico.url}/redirected`);
    assert.equal(res.status, 301);
    await request(`${portico.url}/docs/marker-2.txt`);
    const { lines } = await waitForLine(logPath, (l) => l.includes('/docs/marker-2.txt'));
    assert.equal(lines.filter((l) => l.includes('"/redirected"')).length, 0, lines.join('\n'));
  });
});
