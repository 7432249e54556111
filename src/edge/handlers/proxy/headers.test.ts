/**
 * The client's response head built from the upstream's raw head (as undici's parser gives it):
 * the same fields `clientResponseHeaders` keeps from the parsed object, names lower case, in the
 * order received, values byte for byte (latin1).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clientResponseHeaders, clientResponseHeadersRaw, responseDropSet } from './headers.js';

const raw = (...fields: string[]): Buffer[] => fields.map((field) => Buffer.from(field, 'latin1'));

describe('clientResponseHeadersRaw', () => {
  const drop = responseDropSet(['server', 'x-powered-by']);

  it('lower-cases names (common and other ones, any case), keeps order and latin1 values, drops hop-by-hop and hidden fields', () => {
    const head = raw('Server', 'nginx', 'DATE', 'Tue, 24 Nov 2026 17:00:00 GMT', 'Content-Type', 'text/plain', 'X-Custom-Thing', 'caf\u00e9', 'Content-Length', '5', 'Connection', 'keep-alive', 'Keep-Alive', 'timeout=5', 'x-powered-by', 'php', 'Set-Cookie', 'a=1', 'set-cookie', 'b=2', 'Transfer-Encoding', 'chunked');
    assert.deepEqual(clientResponseHeadersRaw(head, drop), ['date', 'Tue, 24 Nov 2026 17:00:00 GMT', 'content-type', 'text/plain', 'x-custom-thing', 'caf\u00e9', 'content-length', '5', 'set-cookie', 'a=1', 'set-cookie', 'b=2']);
  });

  it('drops the fields Connection lists, also those received before it (RFC 9110 §7.6.1)', () => {
    const head = raw('X-Secret', '1', 'Content-Length', '0', 'Connection', 'X-Secret, close', 'connection', 'x-other', 'X-Other', '2', 'X-Kept', '3');
    assert.deepEqual(clientResponseHeadersRaw(head, drop), ['content-length', '0', 'x-kept', '3']);
  });

  it('a name of a common name\'s length that is not it stays itself', () => {
    // "serves" has the length of "server"; "dat\u00c5" that of "date" with a byte whose low bits match.
    const head = raw('Serves', 'x', 'Dat\u00c5', 'y', 'ETAG', '"v1"');
    assert.deepEqual(clientResponseHeadersRaw(head, drop), ['serves', 'x', 'dat\u00e5', 'y', 'etag', '"v1"']);
  });

  it('keeps what clientResponseHeaders keeps from the parsed head', () => {
    const head = raw('Server', 'nginx', 'Content-Type', 'text/html', 'Vary', 'Accept-Encoding', 'Connection', 'keep-alive', 'ETag', '"x"');
    const parsed: Record<string, string> = {};
    for (let i = 0; i < head.length; i += 2) parsed[(head[i] as Buffer).toString('latin1').toLowerCase()] = (head[i + 1] as Buffer).toString('latin1');
    assert.deepEqual(clientResponseHeadersRaw(head, drop), clientResponseHeaders(parsed, new Set(['server', 'x-powered-by'])));
  });
});
