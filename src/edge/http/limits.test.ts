/**
 * The pure parts of the protocol limits: node's parser options derived from the config, the
 * 414/431 decision on a parsed head, and the 414-or-431 guess on a parser overflow. The limits on
 * real sockets are in test/integration/limits.test.ts.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { validateConfig } from '../../config/load.js';
import { headRefusal, overflowStatus, parserOptions } from './limits.js';

const http = (settings: Record<string, unknown> = {}) => validateConfig({ http: settings, servers: [{ listen: '127.0.0.1:8080' }] }, '/', null).http;
const head = (url: string, rawHeaders: string[]) => ({ url, rawHeaders }) as unknown as IncomingMessage;
const overflow = (bytes: string) => Object.assign(new Error('Header overflow'), { code: 'HPE_HEADER_OVERFLOW', rawPacket: Buffer.from(bytes, 'latin1') });

describe('parserOptions', () => {
  it("lets node's parser take a URI and a header section both at their limits", () => {
    const options = parserOptions(http({ maxUriLength: '8kb', maxHeaderSize: '16kb' }));
    assert.ok((options.maxHeaderSize ?? 0) >= 24 * 1024);
  });
  it('sweeps for expired heads every tenth of the shortest deadline, at most every second', () => {
    assert.equal(parserOptions(http()).connectionsCheckingInterval, 1000);
    assert.equal(parserOptions(http({ headersTimeout: '2s' })).connectionsCheckingInterval, 200);
    assert.equal(parserOptions(http({ headersTimeout: 100 })).connectionsCheckingInterval, 50);
    assert.equal(parserOptions(http({ headersTimeout: 0, requestTimeout: 0 })).connectionsCheckingInterval, 1000);
  });
});

describe('headRefusal', () => {
  const limits = http({ maxUriLength: 100, maxHeaderSize: 200, maxHeaders: 3 });
  it('passes a head within every limit', () => {
    assert.equal(headRefusal(head('/'.padEnd(100, 'a'), ['Host', 'a.test', 'X-A', 'x'.repeat(100)]), limits), null);
  });
  it('414 for a target one byte over maxUriLength', () => {
    assert.equal(headRefusal(head('/'.padEnd(101, 'a'), ['Host', 'a.test']), limits)?.status, 414);
  });
  it('431 for more fields than maxHeaders, counted as received (repeats included)', () => {
    assert.equal(headRefusal(head('/', ['Host', 'a', 'X', '1', 'X', '2']), limits), null);
    assert.equal(headRefusal(head('/', ['Host', 'a', 'X', '1', 'X', '2', 'X', '3']), limits)?.status, 431);
  });
  it('431 for a header section over maxHeaderSize ("name: value\\r\\n" per field)', () => {
    // "Host: a\r\n" = 9, "X-Big: …\r\n" = 9 + n: 200 allows n = 182.
    assert.equal(headRefusal(head('/', ['Host', 'a', 'X-Big', 'x'.repeat(182)]), limits), null);
    assert.equal(headRefusal(head('/', ['Host', 'a', 'X-Big', 'x'.repeat(183)]), limits)?.status, 431);
  });
});

describe('overflowStatus', () => {
  const limits = http({ maxUriLength: 100 });
  it('414 when the bytes start a request line that has no end within the URI limit', () => {
    assert.equal(overflowStatus(overflow(`GET /${'a'.repeat(500)}`), limits), 414);
    assert.equal(overflowStatus(overflow(`GET /${'a'.repeat(500)} HTTP/1.1\r\nHost: a\r\n`), limits), 414);
  });
  it('431 when the request line ended within the limit, or the bytes are a later part of the head', () => {
    assert.equal(overflowStatus(overflow(`GET / HTTP/1.1\r\nX-Big: ${'a'.repeat(500)}`), limits), 431);
    assert.equal(overflowStatus(overflow('a'.repeat(500)), limits), 431);
    assert.equal(overflowStatus(new Error('no packet'), limits), 431);
  });
});
