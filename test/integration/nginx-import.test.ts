/**
 * `portico import` against real nginx (issue #22): for each configuration of
 * test/fixtures/nginx/<name>/ (a real-world shape: a static site, a SPA, Flask on gunicorn and on
 * uWSGI, a load-balanced API with limits, a cache…), the import runs, reports exactly the
 * directives the fixture expects it to report (file:line), and `portico check` accepts its result;
 * then Debian's nginx runs the original and Portico the imported config, on the same port and in
 * front of the same upstreams (reset between the two), the fixture's requests are replayed to
 * each, and the answers are compared: status, Location, the media type and body of 2xx answers
 * (decoded; upstream echoes reduced to the fields both must pass on), and the headers the fixture
 * names. A difference fails unless the fixture lists it with why.
 *
 * Differences allowed everywhere, because they are not differences of meaning:
 * - an error answer's body (nginx's HTML error pages, Portico's short text) and a redirect's body;
 * - the charset parameter of Content-Type (Portico adds "; charset=utf-8" to text types);
 * - the media type of .js and .xml files: Portico's table says text/javascript (RFC 9239) and
 *   application/xml (RFC 7303), nginx's mime.types application/javascript and text/xml;
 * - "public" in the Cache-Control of a static file with a lifetime (Portico's static maxAge adds
 *   it, nginx's expires does not): for a request without Authorization, as all of these are,
 *   a shared cache may store the answer either way (RFC 9111 §3);
 * - a redirect to this same host: nginx makes a relative Location absolute with its port
 *   (absolute_redirect, port_in_redirect), Portico sends it as written; both resolve to the same
 *   URL, so the port of a same-host Location is not compared.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, cpSync, existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { startNginxMain } from '../helpers/nginx.js';
import { ROOT, freePort, runCli, spawnCli, tempDir, waitForOutput } from '../helpers/portico.js';
import { startGunicorn, startNodeUpstream, type Gunicorn, type NodeUpstream } from '../helpers/upstreams.js';
import { startUwsgi, type Uwsgi } from '../helpers/uwsgi.js';

const FIXTURES = join(ROOT, 'test', 'fixtures', 'nginx');
const WWW = join(FIXTURES, 'www');

interface FixtureRequest {
  path: string;
  method?: string;
  host?: string;
  headers?: Record<string, string>;
  body?: string;
  /** A body of this many bytes ("x" repeated). */
  bodySize?: number;
  /** Response headers compared besides status, Location, media type and body. */
  compare?: string[];
}

interface Fixture {
  note: string;
  requests: FixtureRequest[];
  needs?: ('gunicorn' | 'uwsgi' | 'up1' | 'up2')[];
  /** "file:line" of every directive the import must report as not translated, in order. */
  expectNotTranslated?: string[];
  /** Differences accepted for one request, with why. */
  allowed?: { request: number; field: string; why: string }[];
}

/** What is compared of one answer. */
type Observed = Record<string, string>;

/** The upstream of the fixtures: it says which server answered, what it was sent, and counts. */
function fixtureUpstream(name: string): { handler: (req: IncomingMessage, res: ServerResponse) => void; reset(): void } {
  let count = 0;
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://upstream');
      const status = /\/status\/(\d{3})/.exec(url.pathname);
      if (status || url.pathname.includes('/count')) {
        count++;
        const headers: Record<string, string> = { 'content-type': 'text/plain' };
        if (url.pathname.includes('private')) headers['cache-control'] = 'private';
        res.writeHead(status ? Number(status[1]) : 200, headers);
        res.end(`${url.pathname}${url.search}: request ${count} to ${name}\n`);
        return;
      }
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (url.pathname.endsWith('/hdr')) Object.assign(headers, { 'x-internal': 'secret', 'x-powered-by': 'upstream-framework' });
      res.writeHead(200, headers);
      res.end(
        JSON.stringify({
          server: name,
          method: req.method,
          uri: req.url,
          host: req.headers.host,
          xRealIp: req.headers['x-real-ip'] ?? null,
          xForwardedFor: req.headers['x-forwarded-for'] ?? null,
          xForwardedProto: req.headers['x-forwarded-proto'] ?? null,
          xCustom: req.headers['x-custom'] ?? null,
          xRequestSource: req.headers['x-request-source'] ?? null,
          bodyLength: Buffer.concat(chunks).length,
        }),
      );
    });
  };
  return { handler, reset: () => (count = 0) };
}

const MEDIA_TYPE_SYNONYMS: Record<string, string> = { 'application/javascript': 'text/javascript', 'text/xml': 'application/xml' };

/** Flask's echo lists every header in order; both servers must pass on these, in any order. */
const ECHOED_HEADERS = ['host', 'x-real-ip', 'x-forwarded-for', 'x-forwarded-proto', 'content-length', 'content-type'];

function bodyDigest(body: Buffer): string {
  let text = body.toString('utf8');
  try {
    const json = JSON.parse(text) as Record<string, unknown>;
    if (Array.isArray(json.headers)) {
      const kept: Record<string, string> = {};
      for (const [name, value] of json.headers as [string, string][]) if (ECHOED_HEADERS.includes(name.toLowerCase())) kept[name.toLowerCase()] = value;
      json.headers = kept;
      text = JSON.stringify(json);
    }
  } catch {
    /* not JSON: compared as it is */
  }
  return `${createHash('sha256').update(text).digest('hex').slice(0, 16)} (${text.length} bytes${text.length <= 400 ? `: ${JSON.stringify(text)}` : ''})`;
}

function send(port: number, r: FixtureRequest): Promise<{ status: number; headers: IncomingMessage['headers']; body: Buffer }> {
  const body = r.bodySize !== undefined ? Buffer.alloc(r.bodySize, 'x') : r.body !== undefined ? Buffer.from(r.body) : null;
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        path: r.path,
        method: r.method ?? 'GET',
        agent: false,
        headers: {
          host: r.host ?? `127.0.0.1:${port}`,
          ...(body ? { 'content-length': String(body.length), 'content-type': 'application/x-www-form-urlencoded' } : {}),
          ...r.headers,
        },
        timeout: 10_000,
      },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    // A server that answers 413 before reading the body may close while it is being sent.
    req.on('error', (error) => {
      if (!answered) reject(error);
    });
    req.on('timeout', () => req.destroy(new Error('no answer in 10 s')));
    req.end(body ?? undefined);
  });
}

async function observe(port: number, r: FixtureRequest): Promise<Observed> {
  const answer = await send(port, r);
  const out: Observed = { status: String(answer.status) };
  const location = answer.headers.location;
  if (location !== undefined) {
    const host = r.host ?? `127.0.0.1:${port}`;
    const url = new URL(location, `http://${host}${r.path}`);
    // Same host: the port nginx adds (port_in_redirect) is not compared (see the header comment).
    out.location = url.hostname === new URL(`http://${host}`).hostname ? `${url.protocol}//${url.hostname}${url.pathname}${url.search}` : url.href;
  }
  if (answer.status >= 200 && answer.status < 300) {
    const type = (answer.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
    out['media type'] = MEDIA_TYPE_SYNONYMS[type] ?? type;
    const encoded = answer.headers['content-encoding'] === 'gzip';
    if ((r.method ?? 'GET') !== 'HEAD') out.body = bodyDigest(encoded ? gunzipSync(answer.body) : answer.body);
  }
  for (const name of r.compare ?? []) {
    const value = answer.headers[name.toLowerCase()];
    let text = value === undefined ? '(none)' : Array.isArray(value) ? value.join(' | ') : value;
    if (name.toLowerCase() === 'cache-control' && r.headers?.Authorization === undefined) text = text.replace(/^public, /, '');
    if (name.toLowerCase() === 'content-type') text = MEDIA_TYPE_SYNONYMS[text] ?? text;
    out[name.toLowerCase()] = text;
  }
  return out;
}

const fixtures = readdirSync(FIXTURES).filter((name) => existsSync(join(FIXTURES, name, 'nginx.conf'))).sort();

describe('portico import: each nginx fixture means the same under Portico as under real nginx', () => {
  const work = tempDir();
  const upstream1 = fixtureUpstream('up1');
  const upstream2 = fixtureUpstream('up2');
  let up1: NodeUpstream;
  let up2: NodeUpstream;
  let gunicorn: Gunicorn | null = null;
  let uwsgi: Uwsgi | null = null;

  before(async () => {
    up1 = await startNodeUpstream(upstream1.handler);
    up2 = await startNodeUpstream(upstream2.handler);
    const needs = new Set(fixtures.flatMap((name) => (JSON.parse(readFileSync(join(FIXTURES, name, 'requests.json'), 'utf8')) as Fixture).needs ?? []));
    if (needs.has('gunicorn')) gunicorn = await startGunicorn({ workers: 1, readyPath: '/health' });
    if (needs.has('uwsgi')) uwsgi = await startUwsgi({ processes: 1 });
  });
  after(async () => {
    await up1?.close();
    await up2?.close();
    await gunicorn?.stop();
    await uwsgi?.stop();
    work.remove();
  });

  it(`has at least 15 fixtures (${fixtures.length})`, () => {
    assert.ok(fixtures.length >= 15, fixtures.join(', '));
  });

  for (const name of fixtures) {
    it(name, async (t) => {
      const fixture = JSON.parse(readFileSync(join(FIXTURES, name, 'requests.json'), 'utf8')) as Fixture;
      const dir = join(work.path, name);
      const conf = join(dir, 'conf');
      cpSync(join(FIXTURES, name), conf, { recursive: true });
      copyFileSync('/etc/nginx/mime.types', join(conf, 'mime.types'));
      copyFileSync('/etc/nginx/uwsgi_params', join(conf, 'uwsgi_params'));
      const port = await freePort();
      const values: Record<string, string> = {
        __PORT__: String(port),
        __WWW__: WWW,
        __DIR__: conf,
        __UP1__: `127.0.0.1:${up1.port}`,
        __UP2__: `127.0.0.1:${up2.port}`,
        __GUNICORN__: gunicorn ? `127.0.0.1:${gunicorn.port}` : 'gunicorn-not-started',
        __UWSGI__: uwsgi ? uwsgi.socket : 'uwsgi-not-started',
      };
      const substitute = (folder: string) => {
        for (const entry of readdirSync(folder)) {
          const path = join(folder, entry);
          if (statSync(path).isDirectory()) substitute(path);
          else if (entry.endsWith('.conf')) writeFileSync(path, readFileSync(path, 'utf8').replace(/__[A-Z0-9]+__/g, (key) => values[key] ?? key));
        }
      };
      substitute(conf);

      // The import: its report, and a config `portico check` accepts.
      const imported = join(conf, 'portico.config.ts');
      const result = await runCli(['import', join(conf, 'nginx.conf'), '-o', imported]);
      t.diagnostic(`portico import ${name}/nginx.conf:\n${result.stderr.trim()}`);
      assert.equal(result.code, 0, result.stderr);
      const reported = [...result.stderr.matchAll(/^portico: import: (\S+:\d+): .*not translated/gm)].map((match) => match[1]);
      assert.deepEqual(reported, fixture.expectNotTranslated ?? [], `the directives reported as not translated:\n${result.stderr}`);
      assert.doesNotMatch(result.stderr, /would be refused/);
      const check = await runCli(['check', '--config', imported]);
      assert.equal(check.code, 0, check.stderr);

      // The same requests to nginx on the original, then to Portico on the import.
      const answers: { nginx: Observed[]; portico: Observed[] } = { nginx: [], portico: [] };
      upstream1.reset();
      upstream2.reset();
      // The test's own main file beside the fixture's, so relative includes resolve as in production.
      const nginx = await startNginxMain(conf, port, 'include nginx.conf;\n', 'test-main.conf');
      try {
        for (const r of fixture.requests) answers.nginx.push(await observe(port, r));
      } finally {
        await nginx.stop();
      }
      upstream1.reset();
      upstream2.reset();
      const portico = spawnCli(['up', '--config', imported], { cwd: conf });
      try {
        await waitForOutput(portico, /listening on/, Date.now() + 15_000);
        for (const r of fixture.requests) answers.portico.push(await observe(port, r));
      } finally {
        await portico.stop('SIGTERM', 5_000);
      }

      const differences: string[] = [];
      fixture.requests.forEach((r, i) => {
        const a = answers.nginx[i] as Observed;
        const b = answers.portico[i] as Observed;
        for (const field of new Set([...Object.keys(a), ...Object.keys(b)])) {
          if (a[field] === b[field]) continue;
          const allowed = fixture.allowed?.find((x) => x.request === i && x.field === field);
          const line = `#${i} ${r.method ?? 'GET'} ${r.host ? `${r.host} ` : ''}${r.path}: ${field}: nginx ${a[field] ?? '(none)'} · portico ${b[field] ?? '(none)'}`;
          if (allowed) t.diagnostic(`allowed: ${line} (${allowed.why})`);
          else differences.push(line);
        }
      });
      t.diagnostic(`${fixture.requests.length} requests replayed, ${fixture.requests.length - new Set(differences.map((d) => d.split(':')[0])).size} answered the same`);
      assert.deepEqual(differences, [], `answers that differ:\n${differences.join('\n')}`);
    });
  }
});

describe('portico import: the command', () => {
  const work = tempDir();
  after(() => work.remove());
  const write = (name: string, text: string) => {
    writeFileSync(join(work.path, name), text);
    return join(work.path, name);
  };

  it('prints the config on stdout without -o, and the report on stderr', async () => {
    const file = write('plain.conf', 'events {}\nhttp {\n  server {\n    listen 127.0.0.1:8081;\n    location / { return 200 "hi\\n"; }\n    error_page 404 /404.html;\n  }\n}\n');
    const result = await runCli(['import', file]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^\/\/ Imported from /);
    assert.match(result.stdout, /satisfies UserConfig;\n$/);
    assert.match(result.stdout, /\/\/ nginx: location \/ \{ … \} \(plain\.conf:5\)/);
    assert.match(result.stderr, /plain\.conf:6: error_page 404 \/404\.html: not translated: /);
  });

  it('--strict exits 2 when a directive was not translated; 0 when all were', async () => {
    const reported = write('strict.conf', 'http { server { listen 8082; ssi on; } }\n');
    assert.equal((await runCli(['import', reported, '--strict', '-o', join(work.path, 'strict.ts')])).code, 2);
    const clean = write('clean.conf', 'http { server { listen 8083; location / { return 204; } } }\n');
    assert.equal((await runCli(['import', clean, '--strict', '-o', join(work.path, 'clean.ts')])).code, 0);
  });

  it('writes JSON for a .json output, which portico check accepts', async () => {
    const file = write('json.conf', `http { server { listen 127.0.0.1:8084; root ${WWW}; location /api/ { proxy_pass http://127.0.0.1:9/v1/; } } }\n`);
    const output = join(work.path, 'portico.config.json');
    assert.equal((await runCli(['import', file, '-o', output])).code, 0);
    const config = JSON.parse(readFileSync(output, 'utf8')) as { servers: { routes: { proxy?: { to: string } }[] }[] };
    assert.equal(config.servers[0]?.routes[0]?.proxy?.to, 'http://127.0.0.1:9/v1/');
    assert.equal((await runCli(['check', '--config', output])).code, 0);
  });

  it('a syntax error exits 2 with the file and line, and writes nothing', async () => {
    const file = write('broken.conf', 'http {\n  server {\n    listen 80\n  }\n}\n');
    const output = join(work.path, 'broken.ts');
    const result = await runCli(['import', file, '-o', output]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /broken\.conf:4: unexpected "}" after "listen 80" \(a ";" is missing\)/);
    assert.equal(existsSync(output), false);
  });
});
