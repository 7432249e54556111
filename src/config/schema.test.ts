/**
 * The schema, its error lines and the resolver, in-process (the CLI tests run the same through
 * bin/portico). Each error assertion is on the exact line a user reads.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError, formatPath } from './errors.js';
import { validateConfig } from './load.js';
import { parseListen } from './schema.js';

/** The config's folder, with the static roots the configs below name (a root must exist). */
const BASE = mkdtempSync(join(tmpdir(), 'portico-schema-'));
for (const folder of ['public', 'www', 'other']) mkdirSync(join(BASE, folder));
/** An absolute root, outside BASE. */
const ABSOLUTE_ROOT = mkdtempSync(join(tmpdir(), 'portico-schema-root-'));
after(() => {
  rmSync(BASE, { recursive: true, force: true });
  rmSync(ABSOLUTE_ROOT, { recursive: true, force: true });
});

/** The problem lines of an invalid config (fails if it is valid). */
function problems(input: unknown): string[] {
  try {
    validateConfig(input, BASE, null);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return [...error.problems];
  }
  assert.fail('expected the config to be refused');
}

const one = (server: Record<string, unknown>, top: Record<string, unknown> = {}) => ({ ...top, servers: [{ listen: '127.0.0.1:8080', ...server }] });

describe('parseListen', () => {
  it('accepts the documented forms', () => {
    assert.deepEqual(parseListen(':8080'), { kind: 'tcp', host: '', port: 8080 });
    assert.deepEqual(parseListen('8080'), { kind: 'tcp', host: '', port: 8080 });
    assert.deepEqual(parseListen('127.0.0.1:80'), { kind: 'tcp', host: '127.0.0.1', port: 80 });
    assert.deepEqual(parseListen('[::1]:8443'), { kind: 'tcp', host: '::1', port: 8443 });
    assert.deepEqual(parseListen('localhost:3000'), { kind: 'tcp', host: 'localhost', port: 3000 });
    assert.deepEqual(parseListen('unix:/run/portico.sock'), { kind: 'unix', path: '/run/portico.sock' });
    assert.deepEqual(parseListen(':0'), { kind: 'tcp', host: '', port: 0 });
    assert.deepEqual(parseListen('65535'), { kind: 'tcp', host: '', port: 65535 });
  });
  it('refuses the rest', () => {
    for (const bad of ['', 'unix:', 'localhost', ':65536', '99999', 'host:port', '::1:80', '[::1]', '[zz]:80', '127.0.0.1:', ':123456', 'a b:80', 'http://x:80'])
      assert.equal(parseListen(bad), undefined, bad);
  });
});

describe('formatPath', () => {
  it('joins keys with dots and indexes with brackets', () => {
    assert.equal(formatPath(['servers', 0, 'routes', 2, 'static', 'maxAge']), 'servers[0].routes[2].static.maxAge');
    assert.equal(formatPath([]), '(root)');
    assert.equal(formatPath([0]), '[0]');
  });
  it('quotes keys that are not identifiers', () => {
    assert.equal(formatPath(['servers', 0, 'headers', 'set', 'X-Frame-Options']), 'servers[0].headers.set["X-Frame-Options"]');
  });
});

describe('schema error lines', () => {
  it('a bad duration', () => {
    assert.deepEqual(problems(one({ routes: [{}, {}, { static: { root: '.', maxAge: 'forever' } }] })), ['servers[0].routes[2].static.maxAge: expected a duration like "1h", got "forever"']);
  });
  it('an unknown key, nested and at the top', () => {
    assert.deepEqual(problems({ ...one({ lsiten: ':80' }), servers2: [] }), ['servers[0].lsiten: unknown key (not a Portico setting here); did you mean `listen`?', 'servers2: unknown key (not a Portico setting here); did you mean `servers`?']);
  });
  it('a wrong type says what was found', () => {
    assert.deepEqual(problems(one({}, { http: { maxHeaderSize: true } })), ['http.maxHeaderSize: expected a size like "10mb", got true']);
    assert.deepEqual(problems(one({ names: 'example.com' })), ['servers[0].names: expected an array, got "example.com"']);
    assert.deepEqual(problems(one({ default: 'yes' })), ['servers[0].default: expected a boolean, got "yes"']);
    assert.deepEqual(problems(one({}, { http: { maxRequestsPerConnection: 1.5 } })), ['http.maxRequestsPerConnection: expected an integer, got number 1.5']);
    assert.deepEqual(problems(one({}, { http: { maxBodySize: '1 lightyear' } })), ['http.maxBodySize: expected a size like "10mb", got "1 lightyear"']);
    assert.deepEqual(problems(one({ routes: [{ maxBodySize: -1 }] })), ['servers[0].routes[0].maxBodySize: expected a size like "10mb", got -1']);
    assert.deepEqual(problems(one({}, { http: { maxHeaders: 0 } })), ['http.maxHeaders: expected a number >= 1, got number 0']);
  });
  it('a literal union lists every allowed value', () => {
    assert.deepEqual(problems(one({ routes: [{ redirect: { to: '/', status: 305 } }] })), ['servers[0].routes[0].redirect.status: expected a redirect status 301, 302, 303, 307 or 308, got 305']);
    assert.deepEqual(problems(one({}, { http: { unknownHost: 500 } })), ['http.unknownHost: expected "default" or 404 or 421, got number 500']);
    assert.deepEqual(problems(one({ static: { root: '.', index: true } })), ['servers[0].static.index: expected an array or false, got boolean true']);
  });
  it('a union reports the branch the user meant (the deepest)', () => {
    assert.deepEqual(problems(one({ static: { root: '.', precompressed: ['br', 'lzma'] } })), ['servers[0].static.precompressed[1]: expected one of "br", "gzip", "zstd", got "lzma"']);
    assert.deepEqual(problems(one({}, { log: { access: { format: 'xml' } } })), ['log.access.format: expected "combined", "json" or a format with $variables, got "xml"']);
    assert.deepEqual(problems({ servers: [{ listen: [':80', 'nope'] }] }), ['servers[0].listen[1]: expected a listen address like ":8080", "127.0.0.1:8080", "[::1]:8080" or "unix:/path", got "nope"']);
  });
  it('sizes, lengths and bounds in plain words', () => {
    assert.deepEqual(problems({ servers: [] }), ['servers: expected at least 1 item, got an empty array']);
    assert.deepEqual(problems(one({ static: { root: '.', tryFiles: ['$uri'] } })), ['servers[0].static.tryFiles: expected at least 2 items, got 1 item']);
    assert.deepEqual(problems(one({ static: { root: '' } })), ['servers[0].static.root: expected at least 1 character, got ""']);
    assert.deepEqual(problems(one({ routes: [{ respond: { status: 600 } }] })), ['servers[0].routes[0].respond.status: expected a number <= 599, got number 600']);
    assert.deepEqual(problems(one({ routes: [{ prefix: 'docs' }] })), ['servers[0].routes[0].prefix: expected a string starting with "/", got "docs"']);
    assert.deepEqual(problems(one({ names: ['bad name'] })), ['servers[0].names[0]: expected a host name like "example.com" or "*.example.com", got "bad name"']);
  });
  it('a missing required field and a non-object config', () => {
    assert.deepEqual(problems({}), ['servers: is required (unless "forward" is given): expected an array, got nothing']);
    assert.deepEqual(problems([]), ['(root): expected an object, got an array']);
    assert.deepEqual(problems(null), ['(root): expected an object, got null']);
  });
  it('regexes and templates are checked at load', () => {
    const [regex] = problems(one({ routes: [{ regex: '(', respond: {} }] }));
    assert.match(regex ?? '', /^servers\[0\]\.routes\[0\]\.regex: expected a valid regular expression, got "\(" \(Invalid regular expression/);
    const [rewrite] = problems(one({ rewrite: [{ from: '^/(.*)$', to: '/$nope/$1' }] }));
    assert.match(rewrite ?? '', /^servers\[0\]\.rewrite\[0\]\.to: expected a template with known variables, got "\/\$nope\/\$1": unknown variable "\$nope"/);
  });
  it('route shape: one matcher, one handler, modifiers only with their matcher', () => {
    assert.deepEqual(problems(one({ routes: [{ exact: '/', prefix: '/' }] })), ['servers[0].routes[0]: expected at most one of "exact", "prefix", "regex", got "exact" and "prefix"']);
    assert.deepEqual(problems(one({ routes: [{ respond: {}, redirect: { to: '/' } }] })), ['servers[0].routes[0]: expected at most one handler (static, redirect, respond, proxy, app), got redirect and respond']);
    assert.deepEqual(problems(one({ routes: [{ prefix: '/', caseInsensitive: true }] })), ['servers[0].routes[0].caseInsensitive: expected only with "regex", got boolean true']);
    assert.deepEqual(problems(one({ routes: [{ regex: '^/', skipRegex: true }] })), ['servers[0].routes[0].skipRegex: expected only with "prefix", got boolean true']);
  });
  it('timeouts Node cannot hold are refused', () => {
    assert.deepEqual(problems(one({}, { http: { keepAliveTimeout: '30d' } })), ['http.keepAliveTimeout: expected a duration of at most "24d" (a Node timer limit), got "30d"']);
    assert.deepEqual(problems(one({}, { http: { requestTimeout: 'never' } })), ['http.requestTimeout: expected a duration like "1h", got "never"']);
    assert.equal(validateConfig(one({}, { http: { keepAliveTimeout: '24d' } }), BASE, null).http.keepAliveTimeout, 24 * 86_400_000);
  });
  it('every problem is reported, not only the first', () => {
    assert.equal(problems({ http: { keepAliveTimeout: 'x', maxHeaderSize: 'y' }, servers: [{ listen: 'z', lsiten: 1 }] }).length, 4);
  });
});

describe('unknown keys: what was meant', () => {
  it('a key a typo away from a known one names it, at every depth', () => {
    assert.deepEqual(
      problems(one({ routes: [{ prefx: '/a', respond: { stauts: 200 } }, { static: { root: 'www', maxage: '1h' } }] }, { http: { maxbodysize: '1m' } })),
      [
        'http.maxbodysize: unknown key (not a Portico setting here); did you mean `maxBodySize`?',
        'servers[0].routes[0].respond.stauts: unknown key (not a Portico setting here); did you mean `status`?',
        'servers[0].routes[0].prefx: unknown key (not a Portico setting here); did you mean `prefix`?',
        'servers[0].routes[1].static.maxage: unknown key (not a Portico setting here); did you mean `maxAge`?',
      ],
    );
  });
  it('inside a record (a cache zone) and a route action (proxy)', () => {
    assert.deepEqual(problems(one({}, { cache: { zones: { main: { diskSise: '10mb' } } } })), ['cache.zones.main.diskSise: unknown key (not a Portico setting here); did you mean `diskSize`?']);
    assert.deepEqual(problems(one({ routes: [{ proxy: { to: 'http://127.0.0.1:9', hideHeader: ['X-Powered-By'] } }] })), ['servers[0].routes[0].proxy.hideHeader: unknown key (not a Portico setting here); did you mean `hideHeaders`?']);
  });
  it('a key like none says nothing more', () => {
    assert.deepEqual(problems(one({ colour: 'blue' })), ['servers[0].colour: unknown key (not a Portico setting here)']);
  });
});

describe('static roots exist', () => {
  it('a root that is not there is refused at the field that set it, once', () => {
    assert.deepEqual(problems(one({ static: { root: './pubic' }, routes: [{ prefix: '/a/' }, { prefix: '/b/' }] })), [`servers[0].static.root: folder not found: ./pubic (${BASE}/pubic)`]);
    assert.deepEqual(problems(one({ static: { root: 'www' }, routes: [{ prefix: '/a/', static: { root: 'nowhere' } }] })), [`servers[0].routes[0].static.root: folder not found: nowhere (${BASE}/nowhere)`]);
  });
  it('a file is not a root', () => {
    writeFileSync(join(BASE, 'page.html'), 'x');
    assert.deepEqual(problems(one({ static: { root: 'page.html' } })), [`servers[0].static.root: expected a folder, got a file: page.html (${BASE}/page.html)`]);
  });
});

describe('resolver checks and results', () => {
  it('a static route needs a root somewhere', () => {
    assert.deepEqual(problems(one({ routes: [{ static: { maxAge: '1h' } }] })), [
      "servers[0].routes[0].static.root: is required: expected a directory (on the route's static or the server's static), got nothing",
    ]);
  });
  it('one default server per address, each name once per address', () => {
    assert.deepEqual(problems({ servers: [{ listen: ':80', default: true }, { listen: ':80', default: true }] }), ['servers[1].default: expected one default server for ":80", but servers[0] is the default already']);
    assert.deepEqual(problems({ servers: [{ listen: ':80', names: ['a.test'] }, { listen: ':80', names: ['A.test'] }] }), [
      'servers[1].names: expected each name once per address, but "a.test" on ":80" is also in servers[0].names',
    ]);
    // Different addresses do not conflict.
    assert.doesNotThrow(() => validateConfig({ servers: [{ listen: ':80', default: true }, { listen: ':81', default: true }] }, BASE, null));
  });
  it('the head deadline lies within the request deadline (node:http would refuse to listen)', () => {
    const shorter = validateConfig({ http: { requestTimeout: '30s' }, servers: [{}] }, BASE, null).http;
    assert.equal(shorter.headersTimeout, 30_000, 'the default head deadline follows a shorter request deadline');
    assert.equal(validateConfig({ http: { requestTimeout: 0 }, servers: [{}] }, BASE, null).http.headersTimeout, 60_000);
    assert.deepEqual(problems({ http: { headersTimeout: '2m', requestTimeout: '1m' }, servers: [{}] }), ['http.headersTimeout: expected at most http.requestTimeout (60000 ms), got 120000 ms']);
  });
  it('fills defaults and parses units', () => {
    const config = validateConfig({ servers: [{ static: { root: 'public', maxAge: '1h', hotFileMaxSize: '1mb' } }] }, BASE, null);
    assert.equal(config.source, null);
    assert.deepEqual(config.http, {
      serverHeader: 'Portico',
      unknownHost: 'default',
      keepAliveTimeout: 75_000,
      headersTimeout: 60_000,
      requestTimeout: 300_000,
      bodyTimeout: 60_000,
      maxUriLength: 8192,
      maxHeaderSize: 16_384,
      maxHeaders: 100,
      maxBodySize: 1024 * 1024,
      sendTimeout: 60_000,
      underscoresInHeaders: false,
      ignoreInvalidHeaders: true,
      maxRequestsPerConnection: 1000,
      trustedProxies: [],
      maxConnections: 0,
    });
    assert.deepEqual(config.log, { level: 'info', error: 'stderr', format: 'auto', access: { format: 'combined', path: 'stdout' } });
    const server = config.servers[0];
    assert.deepEqual(server?.listen, [{ kind: 'tcp', host: '', port: 8080 }]);
    assert.equal(server?.routes.length, 1, 'a server without routes gets one route "/"');
    const route = server?.routes[0];
    assert.deepEqual(route?.match, { kind: 'prefix', path: '/', skipRegex: false });
    assert.equal(route?.handler.type, 'static');
    if (route?.handler.type !== 'static') return;
    assert.equal(route.handler.static.root, `${BASE}/public`);
    assert.equal(route.handler.static.maxAge, 3_600_000);
    assert.equal(route.handler.static.hotFileMaxSize, 1024 * 1024);
    assert.deepEqual(route.handler.static.precompressed, ['br', 'gzip']);
    assert.deepEqual(route.handler.static.index, ['index.html']);
  });
  it('an absolute root stays as it is; relative log paths are resolved', () => {
    const config = validateConfig({ log: { error: 'logs/error.log', access: { path: 'stderr' } }, servers: [{ static: { root: ABSOLUTE_ROOT } }] }, BASE, null);
    const handler = config.servers[0]?.routes[0]?.handler;
    assert.equal(handler?.type === 'static' ? handler.static.root : '', ABSOLUTE_ROOT);
    assert.equal(config.log.error, `${BASE}/logs/error.log`);
    assert.equal(config.log.access?.path, 'stderr');
  });
  it('routes inherit server static fields and override them', () => {
    const config = validateConfig(one({ static: { root: 'www', listing: true, maxAge: 60 }, routes: [{ prefix: '/a/', static: { maxAge: '1d', root: 'other' } }, { prefix: '/b/', static: {} }] }), BASE, null);
    const [a, b] = config.servers[0]?.routes ?? [];
    assert.ok(a?.handler.type === 'static' && b?.handler.type === 'static');
    assert.deepEqual([a.handler.static.root, a.handler.static.maxAge, a.handler.static.listing], [`${BASE}/other`, 86_400_000, true]);
    assert.deepEqual([b.handler.static.root, b.handler.static.maxAge, b.handler.static.listing], [`${BASE}/www`, 60, true]);
  });
  it('a route without a handler and without a server root has none (404)', () => {
    const config = validateConfig(one({ routes: [{ prefix: '/' }] }), BASE, null);
    assert.deepEqual(config.servers[0]?.routes[0]?.handler, { type: 'none' });
  });
  it('respond gets a Content-Type only with a body, unless one is given', () => {
    const config = validateConfig(
      one({ routes: [{ exact: '/a', respond: { body: 'x' } }, { exact: '/b', respond: { status: 204 } }, { exact: '/c', respond: { body: '{}', headers: { 'content-type': 'application/json' } } }, { exact: '/d', respond: { body: 'x', contentType: 'text/html' } }] }),
      BASE,
      null,
    );
    const [a, b, c, d] = (config.servers[0]?.routes ?? []).map((r) => r.handler);
    assert.deepEqual(a, { type: 'respond', status: 200, body: 'x', headers: [['Content-Type', 'text/plain; charset=utf-8']] });
    assert.deepEqual(b, { type: 'respond', status: 204, body: null, headers: [] });
    assert.deepEqual(c, { type: 'respond', status: 200, body: '{}', headers: [['content-type', 'application/json']] });
    assert.deepEqual(d, { type: 'respond', status: 200, body: 'x', headers: [['Content-Type', 'text/html']] });
  });
  it('header ops: route over server', () => {
    const config = validateConfig(
      one({
        headers: { set: { 'X-A': '1', 'X-B': '1' }, add: { 'X-C': '1', 'X-D': '1' }, remove: ['X-Powered-By'] },
        routes: [{ prefix: '/', headers: { set: { 'x-a': '2', 'X-D': '2' }, add: { 'X-C': '2' }, remove: ['x-powered-by', 'X-B'] } }],
      }),
      BASE,
      null,
    );
    assert.deepEqual(config.servers[0]?.routes[0]?.headers, {
      remove: ['x-powered-by', 'x-b'],
      set: [['x-a', '2'], ['X-D', '2']],
      add: [['X-C', '1'], ['X-C', '2']],
    });
  });
  it('canonical, names and rewrite defaults', () => {
    const config = validateConfig(one({ names: ['WWW.Example.com'], canonical: { www: 'remove' }, rewrite: [{ from: '^/a$', to: '/b' }] }), BASE, null);
    const server = config.servers[0];
    assert.deepEqual(server?.names, ['www.example.com']);
    assert.deepEqual(server?.canonical, { https: false, www: 'remove', trailingSlash: null, status: 301 });
    assert.deepEqual(server?.rewrite, [{ from: '^/a$', caseInsensitive: false, to: '/b', flag: null }]);
  });
  it('the result is deeply frozen plain JSON', () => {
    const config = validateConfig(one({ static: { root: 'www' } }), BASE, null);
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.servers[0]?.routes[0]?.handler));
    assert.deepEqual(JSON.parse(JSON.stringify(config)), config);
  });
});

describe('managed TLS and the acme section', () => {
  it('tls "auto" / "internal" resolve to managed certificates, with the acme defaults', () => {
    const config = validateConfig({ acme: { dataDir: 'data', email: 'ops@example.com' }, servers: [{ listen: ':443', names: ['example.com'], tls: 'auto' }, { listen: ':8443', names: ['localhost'], tls: 'internal' }] }, BASE, null);
    assert.deepEqual(config.servers[0]?.tls, { certs: [], managed: 'acme', onDemand: false, strictSni: false, hsts: null });
    assert.equal(config.servers[1]?.tls?.managed, 'internal');
    assert.deepEqual(config.acme, {
      email: 'ops@example.com',
      directory: 'https://acme-v02.api.letsencrypt.org/directory',
      ca: null,
      eab: null,
      challenges: ['http-01', 'tls-alpn-01'],
      dataDir: join(BASE, 'data'),
      retryDelay: 60_000,
      onDemand: null,
    });
    assert.equal(validateConfig({ acme: { directory: 'staging' }, servers: [{ listen: ':443', names: ['a.example'], tls: { mode: 'auto', hsts: true } }] }, BASE, null).acme.directory, 'https://acme-staging-v02.api.letsencrypt.org/directory');
  });

  it('refuses what cannot be obtained, with the field path', () => {
    assert.deepEqual(problems(one({ tls: 'auto' })), ['servers[0].tls.mode: expected the server to have "names" to order certificates for (or "onDemand": true), got none']);
    assert.deepEqual(problems(one({ names: ['*.example.com'], tls: 'auto' })), ['servers[0].tls.mode: expected names an ACME CA can validate by HTTP-01 or TLS-ALPN-01, got "*.example.com" (a wildcard needs DNS-01; use "onDemand": true for a certificate per name)']);
    assert.deepEqual(problems(one({ names: ['a.example'], tls: { mode: 'auto', onDemand: true } })), ['servers[0].tls.onDemand: expected "acme.onDemand.ask" to be set (the URL that allows each name), got none: without it anyone could make this server order certificates']);
    assert.deepEqual(problems(one({ names: ['a.example'], tls: { mode: 'internal', onDemand: true } })), ['servers[0].tls.onDemand: expected only with "mode": "auto" (on-demand certificates come from the ACME CA), got boolean true']);
    assert.deepEqual(problems(one({ names: ['a.example'], tls: { mode: 'auto', cert: 'x.crt', key: 'x.key' } })), ['servers[0].tls.mode: expected either "mode" or certificate files ("cert"/"key", "certs"), got both']);
    assert.match(problems(one({ names: ['a.example'], tls: 'automatic' }))[0] as string, /^servers\[0\]\.tls: expected "auto", "internal" or an object \(certificate files, or "mode"\), got "automatic"$/);
    assert.match(problems(one({ names: ['a.example'], tls: 'auto' }, { acme: { ca: 'missing.pem' } }))[0] as string, /^acme\.ca: expected a PEM certificate file, got "missing\.pem" \(.*missing\.pem: ENOENT\)$/);
    assert.match(problems(one({ names: ['a.example'], tls: 'auto' }, { acme: { directory: 'letsencrypt' } }))[0] as string, /^acme\.directory: /);
    assert.match(problems(one({ names: ['a.example'], tls: 'auto' }, { acme: { challenges: ['dns-01'] } }))[0] as string, /^acme\.challenges\[0\]: /);
  });

  it('warns about names a public CA will not validate and about missing ports 80/443', () => {
    const config = validateConfig(one({ names: ['localhost', '10.0.0.1', 'a.example'], tls: 'auto' }), BASE, null);
    assert.deepEqual(config.warnings, [
      'servers[0].tls: "localhost", "10.0.0.1" cannot get a certificate from a public ACME CA (an IP address or localhost); use "mode": "internal" for it',
      'servers[0].tls: "auto" with no listener a CA validates on (a cleartext one on port 80 for HTTP-01, this server on port 443 for TLS-ALPN-01): a public CA will not validate its names',
    ]);
    const served = validateConfig({ servers: [{ listen: ':80' }, { listen: ':443', names: ['a.example'], tls: 'auto' }] }, BASE, null);
    assert.deepEqual(served.warnings, []);
  });
});
