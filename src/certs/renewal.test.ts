/** When certificates are renewed: the lifetime rule, RFC 9773's window, the retry backoff. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fallbackRenewAt, renewAtInWindow, retryDelay } from './renewal.js';

const DAY = 24 * 3600 * 1000;

describe('renewal timing', () => {
  it('renews at 2/3 of the lifetime, or 1/2 under 10 days', () => {
    assert.equal(fallbackRenewAt(0, 90 * DAY), 60 * DAY);
    assert.equal(fallbackRenewAt(1000, 1000 + 7 * DAY), 1000 + 3.5 * DAY);
    assert.equal(fallbackRenewAt(0, 20_000), 10_000);
  });

  it('picks a time inside the suggested window, or now once it has begun (RFC 9773 §4.2)', () => {
    const window = { start: 10_000, end: 20_000, retryAfter: null };
    assert.equal(renewAtInWindow(window, 0, () => 0), 10_000);
    assert.equal(renewAtInWindow(window, 0, () => 0.5), 15_000);
    assert.equal(renewAtInWindow(window, 12_000, () => 0.9), 12_000);
    for (let i = 0; i < 100; i++) {
      const at = renewAtInWindow(window, 0);
      assert.ok(at >= 10_000 && at <= 20_000, String(at));
    }
  });

  it('backs off by doubling, up to an hour', () => {
    assert.deepEqual([1, 2, 3, 4].map((n) => retryDelay(1000, n)), [1000, 2000, 4000, 8000]);
    assert.equal(retryDelay(60_000, 20), 3600_000);
    assert.equal(retryDelay(2 * 3600_000, 3), 2 * 3600_000, 'a first delay over an hour is its own cap');
  });
});
