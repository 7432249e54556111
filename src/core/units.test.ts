import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDuration, parseSize } from './units.js';

describe('parseSize', () => {
  it('bare numbers are bytes', () => {
    assert.equal(parseSize(0), 0);
    assert.equal(parseSize(512), 512);
    assert.equal(parseSize('512'), 512);
    assert.equal(parseSize('0'), 0);
  });
  it('binary units, any case, optional b/ib, spaces around', () => {
    assert.equal(parseSize('10b'), 10);
    assert.equal(parseSize('1k'), 1024);
    assert.equal(parseSize('64kb'), 64 * 1024);
    assert.equal(parseSize('64KB'), 64 * 1024);
    assert.equal(parseSize('2KiB'), 2048);
    assert.equal(parseSize('10mb'), 10 * 1024 ** 2);
    assert.equal(parseSize('1m'), 1024 ** 2);
    assert.equal(parseSize('1mib'), 1024 ** 2);
    assert.equal(parseSize('2g'), 2 * 1024 ** 3);
    assert.equal(parseSize('1GB'), 1024 ** 3);
    assert.equal(parseSize(' 10 kb '), 10 * 1024);
  });
  it('fractions are rounded to whole bytes', () => {
    assert.equal(parseSize('1.5mb'), 1.5 * 1024 ** 2);
    assert.equal(parseSize('0.5k'), 512);
  });
  it('refuses what is not a size', () => {
    for (const bad of ['', ' ', 'kb', 'ten', '10 zb', '10tb', '-1', '-1kb', '1e3', '1,5mb', '10 k b', '0x10', 'Infinity']) assert.equal(parseSize(bad), undefined, JSON.stringify(bad));
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 60]) assert.equal(parseSize(bad), undefined, String(bad));
  });
  it('refuses a size beyond safe integers', () => {
    assert.equal(parseSize('99999999999999g'), undefined);
  });
});

describe('parseDuration', () => {
  it('numbers are milliseconds (rounded)', () => {
    assert.equal(parseDuration(0), 0);
    assert.equal(parseDuration(250), 250);
    assert.equal(parseDuration(1.4), 1);
  });
  it('a bare number string is seconds, as in nginx', () => {
    assert.equal(parseDuration('30'), 30_000);
    assert.equal(parseDuration('1.5'), 1500);
    assert.equal(parseDuration(' 2 '), 2000);
  });
  it('units ms s m h d w y', () => {
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('5m'), 300_000);
    assert.equal(parseDuration('1h'), 3_600_000);
    assert.equal(parseDuration('7d'), 7 * 86_400_000);
    assert.equal(parseDuration('2w'), 14 * 86_400_000);
    assert.equal(parseDuration('1y'), 365 * 86_400_000);
    assert.equal(parseDuration('1.5s'), 1500);
    assert.equal(parseDuration('1H'), 3_600_000, 'case-insensitive');
  });
  it('compound durations add up; "m" after "ms" is not confused', () => {
    assert.equal(parseDuration('1h30m'), 90 * 60_000);
    assert.equal(parseDuration('1m30s'), 90_000);
    assert.equal(parseDuration('1s500ms'), 1500);
    assert.equal(parseDuration('2d12h'), 60 * 3_600_000);
  });
  it('refuses what is not a duration', () => {
    for (const bad of ['', ' ', 'forever', 's', '1x', '1h30', 'h1', '-1s', '1 h', '1h 30m', '1e3s', '30sec', '1mss', '5 minutes'])
      assert.equal(parseDuration(bad), undefined, JSON.stringify(bad));
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) assert.equal(parseDuration(bad), undefined, String(bad));
  });
});
