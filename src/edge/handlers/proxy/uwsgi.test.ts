/**
 * The uwsgi wire format, in-process: the request packet byte for byte, the strict response-head
 * parser, and the config rules for uwsgi servers (test/integration/proxy-uwsgi.test.ts runs the
 * transport against a real uWSGI).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../../config/errors.js';
import { validateConfig } from '../../../config/load.js';
import { encodeUwsgiRequest, parseResponseHead, parseUwsgiUrl } from './uwsgi.js';

describe('uwsgi request packet', () => {
  it('is modifier1 0, the vars size as u16 LE, modifier2 0, then (u16 LE size, bytes) pairs', () => {
    const packet = encodeUwsgiRequest([
      ['REQUEST_METHOD', 'GET'],
      ['PATH_INFO', Buffer.from('/é', 'utf8')],
    ]);
    const vars = Buffer.concat([
      Buffer.from([14, 0]), Buffer.from('REQUEST_METHOD'), Buffer.from([3, 0]), Buffer.from('GET'),
      Buffer.from([9, 0]), Buffer.from('PATH_INFO'), Buffer.from([3, 0]), Buffer.from('/é', 'utf8'),
    ]);
    assert.deepEqual(packet, Buffer.concat([Buffer.from([0, vars.length & 0xff, vars.length >> 8, 0]), vars]));
  });
  it('refuses vars over 64 KiB instead of wrapping the 16-bit size', () => {
    assert.throws(() => encodeUwsgiRequest([['HTTP_X', 'x'.repeat(70_000)]]), RangeError);
    assert.throws(() => encodeUwsgiRequest([['HTTP_A', 'a'.repeat(40_000)], ['HTTP_B', 'b'.repeat(40_000)]]), RangeError);
  });
});

describe('uwsgi response head', () => {
  it('parses a status line and fields, repeated fields as arrays, Content-Length', () => {
    assert.deepEqual(parseResponseHead('HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 5'), {
      status: 201,
      headers: { 'content-type': 'text/plain', 'set-cookie': ['a=1', 'b=2'], 'content-length': '5' },
      length: 5,
    });
    assert.deepEqual(parseResponseHead('HTTP/1.0 200 OK'), { status: 200, headers: {}, length: null });
  });
  it('refuses what is not a clean HTTP/1.x head', () => {
    for (const bad of [
      'HTTP/2 200 OK',
      'HTTP/1.1 2000 OK',
      'ICY 200 OK',
      'HTTP/1.1 100 Continue',
      'HTTP/1.1 200 OK\r\n folded: x',
      'HTTP/1.1 200 OK\r\nbad name: x',
      'HTTP/1.1 200 OK\r\nno-colon',
      'HTTP/1.1 200 OK\r\nX: a\0b',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked',
      'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6',
      'HTTP/1.1 200 OK\r\nContent-Length: -1',
    ]) {
      assert.equal(typeof parseResponseHead(bad), 'string', JSON.stringify(bad));
    }
  });
});

describe('uwsgi upstream config', () => {
  const problems = (input: unknown): string[] => {
    try {
      validateConfig(input, '/srv', null);
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      return [...error.problems];
    }
    return [];
  };
  const site = (upstreams: unknown, to = 'py') => ({ upstreams, servers: [{ listen: '127.0.0.1:8080', routes: [{ prefix: '/', proxy: { to } }] }] });

  it('accepts uwsgi://host:port and uwsgi+unix:/path, in groups and as proxy.to', () => {
    assert.deepEqual(problems(site({ py: { servers: ['uwsgi://127.0.0.1:3031', 'uwsgi+unix:/run/app.sock'] } })), []);
    assert.deepEqual(problems(site({}, 'uwsgi://[::1]:3031')), []);
    assert.deepEqual(problems(site({}, 'uwsgi+unix:/run/app.sock')), []);
    const config = validateConfig(site({ py: { servers: ['uwsgi://127.0.0.1:3031'] } }), '/srv', null);
    assert.equal(config.upstreams.py?.protocol, 'uwsgi');
    assert.deepEqual(parseUwsgiUrl('uwsgi://[::1]:3031'), { kind: 'tcp', host: '::1', port: 3031 });
    assert.deepEqual(parseUwsgiUrl('uwsgi+unix:/run/app.sock'), { kind: 'unix', path: '/run/app.sock' });
  });
  it('refuses a group mixing protocols, a health check on uwsgi, a uwsgi URL without port or with a path', () => {
    assert.deepEqual(problems(site({ py: { servers: ['uwsgi://127.0.0.1:3031', 'http://127.0.0.1:8000'] } })), [
      'upstreams.py.servers: expected servers of one protocol (all "uwsgi://"/"uwsgi+unix:" or all HTTP), got 1 uwsgi and 1 HTTP',
    ]);
    assert.match(problems(site({ py: { servers: ['uwsgi://127.0.0.1:3031'], healthCheck: { path: '/' } } })).join('\n'), /^upstreams\.py\.healthCheck: expected no active health check on uwsgi servers/);
    assert.match(problems(site({ py: { servers: ['uwsgi://127.0.0.1'] } })).join('\n'), /^upstreams\.py\.servers\[0\]: expected a server address like/);
    assert.match(problems(site({ py: { servers: ['uwsgi://127.0.0.1:3031/app'] } })).join('\n'), /^upstreams\.py\.servers\[0\]: expected a server address like/);
    assert.match(problems(site({}, 'uwsgi://127.0.0.1:3031/v2/')).join('\n'), /^servers\[0\]\.routes\[0\]\.proxy\.to: expected an upstream name/);
  });
});
