/**
 * Preconditions in RFC 9110 §13.2.2 order: If-Match → If-Unmodified-Since (412), then
 * If-None-Match → If-Modified-Since (304 for GET/HEAD; 412 for other methods on If-None-Match),
 * and If-Range (§13.1.5).
 */
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { describe, it } from 'node:test';
import { evaluatePreconditions, ifRangeAllows, PROCEED } from './conditional.js';

const ETAG = '"5f3a-1c"';
const OTHER = '"0000-00"';
// Last-Modified with sub-second precision: comparisons are at whole seconds.
const MTIME = Date.parse('2024-05-01T12:00:00.750Z');
const LAST_MODIFIED = new Date(MTIME).toUTCString(); // "Wed, 01 May 2024 12:00:00 GMT"
const BEFORE = 'Wed, 01 May 2024 11:59:59 GMT';
const AFTER = 'Wed, 01 May 2024 12:00:01 GMT';

const pre = (headers: IncomingHttpHeaders, method = 'GET', etag: string | null = ETAG, mtime: number | null = MTIME) => evaluatePreconditions(method, headers, etag, mtime);

describe('evaluatePreconditions', () => {
  it('no conditional headers: proceed', () => {
    assert.equal(PROCEED, 0);
    assert.equal(pre({}), PROCEED);
    assert.equal(pre({}, 'PUT'), PROCEED);
  });

  describe('step 1: If-Match (strong comparison)', () => {
    it('a matching tag, a list containing it, or "*": proceed', () => {
      assert.equal(pre({ 'if-match': ETAG }), PROCEED);
      assert.equal(pre({ 'if-match': `${OTHER}, ${ETAG}` }), PROCEED);
      assert.equal(pre({ 'if-match': '*' }), PROCEED);
    });
    it('no match: 412, for every method', () => {
      assert.equal(pre({ 'if-match': OTHER }), 412);
      assert.equal(pre({ 'if-match': OTHER }, 'PUT'), 412);
      assert.equal(pre({ 'if-match': OTHER }, 'HEAD'), 412);
    });
    it('a weak tag never matches strongly', () => {
      assert.equal(pre({ 'if-match': `W/${ETAG}` }), 412);
      assert.equal(pre({ 'if-match': ETAG }, 'GET', `W/${ETAG}`), 412);
      assert.equal(pre({ 'if-match': '*' }, 'GET', `W/${ETAG}`), PROCEED);
    });
    it('without an entity tag, only "*" matches', () => {
      assert.equal(pre({ 'if-match': ETAG }, 'GET', null), 412);
      assert.equal(pre({ 'if-match': '*' }, 'GET', null), PROCEED);
    });
    it('when present, If-Unmodified-Since is not evaluated (§13.2.2 step 2 only without If-Match)', () => {
      assert.equal(pre({ 'if-match': ETAG, 'if-unmodified-since': BEFORE }), PROCEED);
    });
  });

  describe('step 2: If-Unmodified-Since', () => {
    it('modified after the date: 412; not modified since: proceed', () => {
      assert.equal(pre({ 'if-unmodified-since': BEFORE }), 412);
      assert.equal(pre({ 'if-unmodified-since': LAST_MODIFIED }), PROCEED, 'same second (the mtime fraction is ignored)');
      assert.equal(pre({ 'if-unmodified-since': AFTER }), PROCEED);
    });
    it('an invalid date, or no Last-Modified, ignores it', () => {
      assert.equal(pre({ 'if-unmodified-since': 'yesterday' }), PROCEED);
      assert.equal(pre({ 'if-unmodified-since': BEFORE }, 'GET', ETAG, null), PROCEED);
    });
  });

  describe('step 3: If-None-Match (weak comparison)', () => {
    it('a match: 304 for GET/HEAD, 412 for other methods', () => {
      assert.equal(pre({ 'if-none-match': ETAG }), 304);
      assert.equal(pre({ 'if-none-match': ETAG }, 'HEAD'), 304);
      assert.equal(pre({ 'if-none-match': ETAG }, 'POST'), 412);
      assert.equal(pre({ 'if-none-match': ETAG }, 'DELETE'), 412);
    });
    it('weak comparison: W/"x" matches "x" and the other way round; lists and "*"', () => {
      assert.equal(pre({ 'if-none-match': `W/${ETAG}` }), 304);
      assert.equal(pre({ 'if-none-match': ETAG }, 'GET', `W/${ETAG}`), 304);
      assert.equal(pre({ 'if-none-match': `${OTHER},W/${ETAG}` }), 304);
      assert.equal(pre({ 'if-none-match': '*' }), 304);
      assert.equal(pre({ 'if-none-match': '*' }, 'GET', null), 304);
    });
    it('no match: proceed', () => {
      assert.equal(pre({ 'if-none-match': OTHER }), PROCEED);
      assert.equal(pre({ 'if-none-match': ETAG }, 'GET', null), PROCEED);
    });
    it('when present, If-Modified-Since is not evaluated', () => {
      assert.equal(pre({ 'if-none-match': OTHER, 'if-modified-since': AFTER }), PROCEED);
    });
    it('a failed If-Match wins over a matching If-None-Match (412 before 304)', () => {
      assert.equal(pre({ 'if-match': OTHER, 'if-none-match': ETAG }), 412);
      assert.equal(pre({ 'if-unmodified-since': BEFORE, 'if-none-match': ETAG }), 412);
      assert.equal(pre({ 'if-unmodified-since': 'Wed, 01 May 2024 11:59:59 UTC' }), PROCEED, 'not an HTTP-date: ignored');
    });
  });

  describe('step 4: If-Modified-Since (GET and HEAD only)', () => {
    it('not modified since the date: 304; modified: proceed', () => {
      assert.equal(pre({ 'if-modified-since': LAST_MODIFIED }), 304);
      assert.equal(pre({ 'if-modified-since': AFTER }, 'HEAD'), 304);
      assert.equal(pre({ 'if-modified-since': BEFORE }), PROCEED);
    });
    it('ignored for other methods, for an invalid date and without Last-Modified', () => {
      assert.equal(pre({ 'if-modified-since': LAST_MODIFIED }, 'POST'), PROCEED);
      assert.equal(pre({ 'if-modified-since': 'not a date' }), PROCEED);
      // Not an HTTP-date (RFC 9110 §5.6.7), though Date.parse reads both as after the mtime.
      assert.equal(pre({ 'if-modified-since': 'Wed, 01 May 2024 12:00:01 UTC' }), PROCEED);
      assert.equal(pre({ 'if-modified-since': '2024-05-01T12:00:01Z' }), PROCEED);
      assert.equal(pre({ 'if-modified-since': 'Wednesday, 01-May-24 12:00:01 GMT' }), 304, 'RFC 850 form');
      assert.equal(pre({ 'if-modified-since': 'Wed May  1 12:00:01 2024' }), 304, 'asctime form');
      assert.equal(pre({ 'if-modified-since': LAST_MODIFIED }, 'GET', ETAG, null), PROCEED);
    });
    it('evaluated after a passing If-Match', () => {
      assert.equal(pre({ 'if-match': ETAG, 'if-modified-since': AFTER }), 304);
    });
  });
});

describe('ifRangeAllows', () => {
  it('without If-Range the Range applies', () => {
    assert.equal(ifRangeAllows({}, ETAG, LAST_MODIFIED), true);
  });
  it('an entity tag must match strongly', () => {
    assert.equal(ifRangeAllows({ 'if-range': ETAG }, ETAG, LAST_MODIFIED), true);
    assert.equal(ifRangeAllows({ 'if-range': ` ${ETAG} ` }, ETAG, LAST_MODIFIED), true);
    assert.equal(ifRangeAllows({ 'if-range': OTHER }, ETAG, LAST_MODIFIED), false);
    assert.equal(ifRangeAllows({ 'if-range': `W/${ETAG}` }, `W/${ETAG}`, LAST_MODIFIED), false, 'a weak tag never allows a range');
    assert.equal(ifRangeAllows({ 'if-range': ETAG }, null, LAST_MODIFIED), false);
  });
  it('a date must equal Last-Modified exactly', () => {
    assert.equal(ifRangeAllows({ 'if-range': LAST_MODIFIED }, ETAG, LAST_MODIFIED), true);
    assert.equal(ifRangeAllows({ 'if-range': AFTER }, ETAG, LAST_MODIFIED), false, 'a later date is not a match');
    assert.equal(ifRangeAllows({ 'if-range': LAST_MODIFIED }, ETAG, null), false);
  });
});
