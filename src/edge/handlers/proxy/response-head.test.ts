import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChunkedDecoder, parseHttpResponseHead } from './response-head.js';

/** Feeds `wire` to a decoder in pieces of `step` bytes; the body, or the first error. */
function decode(wire: string, step: number): { body: string; done: boolean; error: string | null } {
  const decoder = new ChunkedDecoder();
  const bytes = Buffer.from(wire, 'latin1');
  let body = '';
  for (let at = 0; at < bytes.length; at += step) {
    const error = decoder.push(bytes.subarray(at, at + step), (data) => (body += data.toString('latin1')));
    if (error) return { body, done: decoder.done, error };
  }
  return { body, done: decoder.done, error: null };
}

describe('HTTP response head (one connection per request)', () => {
  it('reads chunked framing, Connection: close and HTTP/1.0', () => {
    const chunked = parseHttpResponseHead('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\nConnection: close');
    assert.ok(typeof chunked !== 'string');
    // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length, which is not relayed.
    assert.equal(chunked.chunked, true);
    assert.equal(chunked.length, null);
    assert.equal(chunked.headers['content-length'], undefined);
    assert.equal(chunked.close, true);
    const kept = parseHttpResponseHead('HTTP/1.1 200 OK\r\nContent-Length: 2');
    assert.ok(typeof kept !== 'string');
    assert.equal(kept.close, false);
    const old = parseHttpResponseHead('HTTP/1.0 200 OK');
    assert.ok(typeof old !== 'string');
    assert.equal(old.close, true);
    const oldKept = parseHttpResponseHead('HTTP/1.0 200 OK\r\nConnection: Keep-Alive');
    assert.ok(typeof oldKept !== 'string');
    assert.equal(oldKept.close, false);
    const early = parseHttpResponseHead('HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload');
    assert.ok(typeof early !== 'string');
    assert.equal(early.status, 103);
  });

  it('refuses other transfer codings and a second chunked', () => {
    for (const bad of ['HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: identity']) {
      assert.equal(typeof parseHttpResponseHead(bad), 'string', bad);
    }
  });
});

describe('ChunkedDecoder (RFC 9112 §7.1)', () => {
  const wire = '5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n';
  it('decodes whole, byte by byte and in odd pieces', () => {
    for (const step of [wire.length, 1, 2, 3, 7]) assert.deepEqual(decode(wire, step), { body: 'hello 0123456789', done: true, error: null }, `step ${step}`);
  });

  it('an incomplete body is not done', () => {
    assert.deepEqual(decode('5\r\nhel', 2), { body: 'hel', done: false, error: null });
    assert.deepEqual(decode('5\r\nhello\r\n0\r\n', 1), { body: 'hello', done: false, error: null });
  });

  it('refuses bad framing', () => {
    for (const bad of ['x\r\n', '5\nhello\r\n', '5\r\nhelloX\r\n', '-1\r\n', '12345678901234\r\n', '0\r\n\r\nmore', `${'1'.repeat(5000)}`, '0\r\nno colon\r\n\r\n']) {
      assert.ok(decode(bad, 3).error, JSON.stringify(bad));
    }
  });
});
