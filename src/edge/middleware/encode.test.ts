/**
 * The pure parts of the compression filter: Accept-Encoding negotiation (RFC 9110 §12.5.3),
 * Vary merging (§12.5.5), the compressed head (ETag weakened, length dropped), the decision rules
 * and the type patterns. The filter on real sockets is tested in test/integration/compression.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gunzipSync, brotliDecompressSync } from 'node:zlib';
import { ENCODE_DEFAULTS } from '../../config/resolve.js';
import { addVary, chooseEncoding, compileTypeMatcher, COMPRESSIBLE, createEncoder, encodeHead, NOT_COMPRESSIBLE, parseAcceptEncoding, RouteEncoder, ZSTD_AVAILABLE } from './encode.js';

const BR_GZIP = ['br', 'gzip'] as const;

describe('chooseEncoding (RFC 9110 §12.5.3)', () => {
  const cases: [string | undefined, string | null, string][] = [
    [undefined, null, 'no Accept-Encoding: identity'],
    ['', null, 'empty: the client wants no coding'],
    ['gzip', 'gzip', 'the one offered'],
    ['gzip, deflate, br', 'br', 'a tie goes to the server preference (br before gzip)'],
    ['gzip, br', 'br', 'order in the header is no preference'],
    ['br;q=0.5, gzip', 'gzip', 'a higher q wins over server preference'],
    ['br;q=0, gzip;q=0.1', 'gzip', 'q=0 refuses'],
    ['br;q=0, gzip;q=0', null, 'all refused: identity'],
    ['deflate', null, 'nothing we offer'],
    ['*', 'br', '"*" covers every coding not named'],
    ['*;q=0.5, br;q=0', 'gzip', '"*" applies to gzip, br is refused by name'],
    ['*;q=0', null, '"*;q=0" refuses all codings'],
    ['x-gzip', 'gzip', 'x-gzip is gzip (RFC 9110 §8.4.1.3)'],
    ['gzip;q=0.4, identity;q=0.5', null, 'identity rated higher wins'],
    ['gzip;q=0.5, identity;q=0.5', 'gzip', 'identity tied: compress'],
    ['gzip, identity;q=0', 'gzip', 'identity refused, gzip fine'],
    ['GZIP;Q=1', 'gzip', 'tokens and parameters are case-insensitive'],
    ['gzip;q=2', null, 'an invalid qvalue drops the member'],
    ['gzip;q=0.001', 'gzip', 'three decimals are a valid qvalue'],
    [' br ; q=1.0 , gzip', 'br', 'whitespace around members and parameters'],
  ];
  for (const [header, expected, why] of cases) {
    it(`${JSON.stringify(header)} → ${expected ?? 'identity'} (${why})`, () => {
      assert.equal(chooseEncoding(header, BR_GZIP), expected);
    });
  }

  it('gzip preferred by the server wins a tie when configured first', () => {
    assert.equal(chooseEncoding('br, gzip', ['gzip', 'br']), 'gzip');
  });

  it('parses q-values into a map, explicit gzip beating x-gzip', () => {
    assert.deepEqual([...parseAcceptEncoding('gzip;q=0.2, x-gzip;q=0.9, br')], [
      ['gzip', 0.2],
      ['br', 1],
    ]);
  });
});

describe('addVary (RFC 9110 §12.5.5)', () => {
  it('adds Vary when there is none', () => {
    const headers = ['Content-Type', 'text/html'];
    addVary(headers);
    assert.deepEqual(headers, ['Content-Type', 'text/html', 'Vary', 'Accept-Encoding']);
  });
  it('merges into an existing Vary', () => {
    const headers = ['vary', 'Origin'];
    addVary(headers);
    assert.deepEqual(headers, ['vary', 'Origin, Accept-Encoding']);
  });
  it('leaves a Vary that lists it (any case, any line) or is "*"', () => {
    for (const existing of [['Vary', 'accept-encoding'], ['Vary', 'Origin', 'Vary', 'Accept-Encoding'], ['Vary', '*']]) {
      const headers = [...existing];
      addVary(headers);
      assert.deepEqual(headers, existing);
    }
  });
});

describe('encodeHead', () => {
  it('drops Content-Length and Accept-Ranges, weakens a strong ETag, adds Content-Encoding', () => {
    const headers = ['Content-Type', 'text/css', 'Content-Length', '5000', 'Accept-Ranges', 'bytes', 'ETag', '"abc-1"'];
    encodeHead(headers, 'br');
    assert.deepEqual(headers, ['Content-Type', 'text/css', 'ETag', 'W/"abc-1"', 'Content-Encoding', 'br']);
  });
  it('leaves a weak ETag as it is', () => {
    const headers = ['etag', 'W/"x"'];
    encodeHead(headers, 'gzip');
    assert.deepEqual(headers, ['etag', 'W/"x"', 'Content-Encoding', 'gzip']);
  });
});

describe('type patterns', () => {
  const matches = compileTypeMatcher(ENCODE_DEFAULTS.types);
  for (const type of ['text/html', 'text/event-stream', 'application/json', 'application/ld+json', 'application/javascript', 'image/svg+xml', 'application/atom+xml', 'application/wasm']) {
    it(`${type} is compressible by default`, () => assert.equal(matches(type), true));
  }
  for (const type of ['image/png', 'image/jpeg', 'application/octet-stream', 'font/woff2', 'application/zip', 'video/mp4', 'application/jsonx']) {
    it(`${type} is not`, () => assert.equal(matches(type), false));
  }
  it('"*/*" matches everything, dots in patterns are literal', () => {
    assert.equal(compileTypeMatcher(['*/*'])('image/png'), true);
    assert.equal(compileTypeMatcher(['application/vnd.a+json'])('application/vndXa+json'), false);
  });
});

describe('RouteEncoder.inspect (shouldCompress)', () => {
  const encoder = new RouteEncoder(ENCODE_DEFAULTS);
  const html = (extra: string[] = []) => ['Content-Type', 'text/html; charset=utf-8', 'Content-Length', '4096', ...extra];
  const accept = { 'accept-encoding': 'gzip, br' };
  it('compresses a large text response for a client that accepts it', () => {
    assert.equal(encoder.inspect(accept, 200, html()), 'br');
    assert.equal(encoder.inspect({ 'accept-encoding': 'gzip' }, 404, html()), 'gzip');
  });
  it('streamed (no length): compressed', () => {
    assert.equal(encoder.inspect(accept, 200, ['Content-Type', 'text/plain']), 'br');
  });
  it('compressible, but the client accepts no coding: Vary only', () => {
    assert.equal(encoder.inspect({}, 200, html()), COMPRESSIBLE);
  });
  const never: [string, Parameters<RouteEncoder['inspect']>][] = [
    ['206', [accept, 206, html()]],
    ['204', [accept, 204, html()]],
    ['304', [accept, 304, html()]],
    ['a Range request', [{ ...accept, range: 'bytes=0-1' }, 200, html()]],
    ['already encoded', [accept, 200, html(['Content-Encoding', 'gzip'])]],
    ['no-transform (response)', [accept, 200, html(['Cache-Control', 'public, no-transform'])]],
    ['no-transform (request)', [{ ...accept, 'cache-control': 'no-transform' }, 200, html()]],
    ['below minLength', [accept, 200, ['Content-Type', 'text/html', 'Content-Length', '511']]],
    ['a non-compressible type', [accept, 200, ['Content-Type', 'image/png', 'Content-Length', '99999']]],
    ['no Content-Type', [accept, 200, ['Content-Length', '99999']]],
  ];
  for (const [why, args] of never) it(`never: ${why}`, () => assert.equal(encoder.inspect(...args), NOT_COMPRESSIBLE));
  it('"Content-Encoding: identity" is no coding', () => {
    assert.equal(encoder.inspect(accept, 200, html(['Content-Encoding', 'identity'])), 'br');
  });
});

describe('createEncoder', () => {
  it('gzip and br round-trip', async () => {
    const input = Buffer.from('hello compression '.repeat(500));
    for (const [coding, decode] of [
      ['gzip', gunzipSync],
      ['br', brotliDecompressSync],
    ] as const) {
      const encoder = createEncoder(coding, ENCODE_DEFAULTS);
      const chunks: Buffer[] = [];
      encoder.on('data', (chunk: Buffer) => chunks.push(chunk));
      const ended = new Promise((resolve) => encoder.on('end', resolve));
      encoder.end(input);
      await ended;
      const output = Buffer.concat(chunks);
      assert.ok(output.length < input.length / 10, `${coding} compresses repetitive text`);
      assert.deepEqual(decode(output), input);
    }
  });
  it(`zstd is ${ZSTD_AVAILABLE ? 'available' : 'not available on this runtime'} (${process.version}), and the defaults say so`, () => {
    assert.equal(ENCODE_DEFAULTS.encodings.includes('zstd'), ZSTD_AVAILABLE);
    if (!ZSTD_AVAILABLE) assert.throws(() => createEncoder('zstd', ENCODE_DEFAULTS), /zstd compression needs/);
  });
});
