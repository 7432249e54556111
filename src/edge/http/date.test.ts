import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseHttpDate } from './date.js';

const NOV_1994 = Date.UTC(1994, 10, 6, 8, 49, 37);
const NOW = Date.UTC(2026, 11, 4, 12, 0, 0);

describe('parseHttpDate (RFC 9110 §5.6.7)', () => {
  it('reads the three forms the RFC allows', () => {
    assert.equal(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT', NOW), NOV_1994);
    assert.equal(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT', NOW), NOV_1994);
    assert.equal(parseHttpDate('Sun Nov  6 08:49:37 1994', NOW), NOV_1994);
    assert.equal(parseHttpDate('Sun Nov 06 08:49:37 1994', NOW), NOV_1994, 'asctime: a two-digit day');
    assert.equal(parseHttpDate('Thu, 01 Jan 1970 00:00:00 GMT', NOW), 0);
    assert.equal(parseHttpDate('Fri, 31 Dec 9999 23:59:59 GMT', NOW), Date.UTC(9999, 11, 31, 23, 59, 59));
    assert.equal(parseHttpDate('Sat, 29 Feb 2020 00:00:00 GMT', NOW), Date.UTC(2020, 1, 29));
  });

  it('refuses what Date.parse accepts but the grammar does not', () => {
    const invalid = [
      'Sun, 06 Nov 1994 08:49:37 UTC', // a zone other than GMT
      'Sun, 06 Nov 1994 08:49:37', // no zone
      'Sun 06 Nov 1994 08:49:37 GMT', // no comma
      'Sun,  06 Nov 1994 08:49:37 GMT', // two spaces
      'Sun, 06 Nov 1994  08:49:37 GMT',
      ' Sun, 06 Nov 1994 08:49:37 GMT', // leading space (the field value is already trimmed)
      'Sun, 6 Nov 1994 08:49:37 GMT', // a one-digit day
      'Sun, 06 Nov 1994 8:49:37 GMT', // a one-digit hour
      'Sun, 06-Nov-1994 08:49:37 GMT', // dashes in IMF-fixdate
      'Sun, 06 November 1994 08:49:37 GMT',
      'sun, 06 nov 1994 08:49:37 gmt', // HTTP-date is case-sensitive
      'Sun, 06 Nov 94 08:49:37 GMT', // a two-digit year outside RFC 850
      'Xyz, 06 Nov 1994 08:49:37 GMT', // no such day
      'Sun, 06 Foo 1994 08:49:37 GMT', // no such month
      'Sun, 31 Feb 1994 08:49:37 GMT', // no such date
      'Sun, 29 Feb 2021 08:49:37 GMT',
      'Sun, 06 Nov 1994 24:00:00 GMT', // no such hour
      'Sun, 06 Nov 1994 08:60:00 GMT',
      'Sun, 00 Nov 1994 08:49:37 GMT',
      'Sun, 06-Nov-94 08:49:37 GMT', // RFC 850 needs the long day name
      'Sunday, 06 Nov 1994 08:49:37 GMT',
      'Sun Nov 6 08:49:37 1994', // asctime's one-digit day is preceded by a space
      'Sun Nov  6 08:49:37 1994 GMT',
      '2026-12-04T12:00:00Z', // ISO 8601
      '0',
      '-1',
      '',
      'Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT', // a list
    ];
    for (const value of invalid) assert.ok(Number.isNaN(parseHttpDate(value, NOW)), `${JSON.stringify(value)} must be invalid`);
    assert.ok(Number.isNaN(parseHttpDate(undefined, NOW)));
  });

  it('RFC 850: a two-digit year more than 50 years ahead means the last century', () => {
    assert.equal(parseHttpDate('Friday, 18-Aug-50 00:00:00 GMT', NOW), Date.UTC(2050, 7, 18), '2050 is 24 years ahead');
    assert.equal(parseHttpDate('Monday, 18-Aug-76 00:00:00 GMT', NOW), Date.UTC(2076, 7, 18), '18 Aug 2076 is less than 50 years ahead');
    assert.equal(parseHttpDate('Saturday, 19-Dec-76 00:00:00 GMT', NOW), Date.UTC(1976, 11, 19), '19 Dec 2076 is more than 50 years ahead');
    assert.equal(parseHttpDate('Thursday, 18-Aug-99 00:00:00 GMT', NOW), Date.UTC(1999, 7, 18));
    assert.equal(parseHttpDate('Friday, 01-Jan-10 00:00:00 GMT', NOW), Date.UTC(2010, 0, 1));
    // Judged against the time given: in 1990, 2050 was 60 years ahead, so "50" meant 1950.
    assert.equal(parseHttpDate('Friday, 18-Aug-50 00:00:00 GMT', Date.UTC(1990, 0, 1)), Date.UTC(1950, 7, 18));
  });

  it('takes a leap second as the second before', () => {
    assert.equal(parseHttpDate('Sat, 31 Dec 2016 23:59:60 GMT', NOW), Date.UTC(2016, 11, 31, 23, 59, 59));
    assert.ok(Number.isNaN(parseHttpDate('Sat, 31 Dec 2016 23:59:61 GMT', NOW)));
  });
});
