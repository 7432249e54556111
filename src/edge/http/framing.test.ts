import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { framingRefusal, upgradeProtocols } from './framing.js';

/** The fields framingRefusal reads, as node:http would fill them from these raw header lines. */
function request(version: string, raw: [string, string][]): IncomingMessage {
  const headers: Record<string, string> = {};
  for (const [name, value] of raw) {
    const key = name.toLowerCase();
    // node joins repeated Transfer-Encoding with ", " and keeps the first Content-Length.
    if (headers[key] === undefined) headers[key] = value;
    else if (key !== 'content-length') headers[key] = `${headers[key]}, ${value}`;
  }
  const [major, minor] = version.split('.').map(Number);
  return { httpVersion: version, httpVersionMajor: major, httpVersionMinor: minor, headers, rawHeaders: raw.flat() } as unknown as IncomingMessage;
}

const status = (version: string, raw: [string, string][]): number => framingRefusal(request(version, raw))?.status ?? 0;

describe('framingRefusal (RFC 9112 §6.1, §6.3)', () => {
  it('accepts requests without a body, with one Content-Length, or with Transfer-Encoding: chunked', () => {
    assert.equal(status('1.1', [['Host', 'x']]), 0);
    assert.equal(status('1.0', []), 0);
    assert.equal(status('1.1', [['Content-Length', '0']]), 0);
    assert.equal(status('1.1', [['Content-Length', '00012']]), 0);
    assert.equal(status('1.0', [['Content-Length', '5']]), 0);
    assert.equal(status('1.1', [['Transfer-Encoding', 'chunked']]), 0);
    assert.equal(status('1.1', [['transfer-encoding', 'CHUNKED']]), 0);
  });

  it('refuses Content-Length with Transfer-Encoding, in either order', () => {
    assert.equal(status('1.1', [['Content-Length', '5'], ['Transfer-Encoding', 'chunked']]), 400);
    assert.equal(status('1.1', [['Transfer-Encoding', 'chunked'], ['Content-Length', '0']]), 400);
  });

  it('refuses Transfer-Encoding in HTTP/1.0', () => {
    assert.equal(status('1.0', [['Transfer-Encoding', 'chunked']]), 400);
  });

  it('refuses a repeated or non-decimal Content-Length', () => {
    assert.equal(status('1.1', [['Content-Length', '5'], ['Content-Length', '5']]), 400);
    for (const value of ['+5', '-1', '0x5', '5 5', '5,5', '', '1e3']) assert.equal(status('1.1', [['Content-Length', value]]), 400, value);
  });

  it('accepts only exactly "chunked": 501 for other codings before it, 400 for anything else', () => {
    assert.equal(status('1.1', [['Transfer-Encoding', 'gzip, chunked']]), 501);
    assert.equal(status('1.1', [['Transfer-Encoding', 'gzip'], ['Transfer-Encoding', 'chunked']]), 501);
    assert.equal(status('1.1', [['Transfer-Encoding', 'identity, chunked']]), 501);
    for (const value of ['chunked, identity', 'gzip', 'xchunked', ', chunked', 'chunked,', '"chunked"', 'chunked;q=1', 'chunked, chunked']) {
      assert.equal(status('1.1', [['Transfer-Encoding', value]]), 400, value);
    }
    assert.equal(status('1.1', [['Transfer-Encoding', 'chunked'], ['Transfer-Encoding', '']]), 400);
    assert.equal(status('1.1', [['Transfer-Encoding', 'chunked'], ['Transfer-Encoding', 'chunked']]), 400);
  });

  it('refuses versions other than 1.x with 505', () => {
    assert.equal(status('0.9', []), 505);
    assert.equal(status('2.0', [['Host', 'x']]), 505);
  });
});

describe('upgradeProtocols', () => {
  it('lists protocol names, lower-case, without versions', () => {
    assert.deepEqual(upgradeProtocols(undefined), []);
    assert.deepEqual(upgradeProtocols('websocket'), ['websocket']);
    assert.deepEqual(upgradeProtocols('foo/2, H2C , ,WebSocket'), ['foo', 'h2c', 'websocket']);
  });
});
