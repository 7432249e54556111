import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryLimitStore, type RateCheck } from './limit-store.js';

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let time = start;
  return { now: () => time, advance: (ms) => void (time += ms) };
}

const check = (over: Partial<RateCheck> = {}): RateCheck => ({ zone: 'z', key: 'k', rate: 10_000, burst: 5_000, delay: 0, ...over });

describe('MemoryLimitStore.take (nginx limit_req)', () => {
  it('10r/s burst=5: the first passes, five wait 100..500 ms, the rest are rejected', () => {
    const time = clock();
    const store = new MemoryLimitStore({ now: time.now });
    const outcomes = Array.from({ length: 10 }, () => store.take([check()]));
    assert.deepEqual(
      outcomes.map((o) => `${o.action}${o.action === 'delay' ? o.delayMs : ''}`),
      ['pass', 'delay100', 'delay200', 'delay300', 'delay400', 'delay500', 'reject', 'reject', 'reject', 'reject'],
    );
    // Rejections changed nothing: 100 ms later exactly one more fits, delayed 500 ms.
    time.advance(100);
    assert.deepEqual(store.take([check()]), { action: 'delay', delayMs: 500, retryAfterMs: 0, index: 0 });
    assert.equal(store.take([check()]).action, 'reject');
  });

  it('a rejected request is told when it would fit (Retry-After)', () => {
    const time = clock();
    const store = new MemoryLimitStore({ now: time.now });
    for (let i = 0; i < 6; i++) store.take([check()]);
    const rejected = store.take([check()]);
    assert.equal(rejected.action, 'reject');
    // excess would be 6000 against burst 5000: 1000 milli-requests drain in 100 ms at 10 r/s.
    assert.equal(rejected.retryAfterMs, 100);
    time.advance(99);
    assert.equal(store.take([check()]).action, 'reject');
    time.advance(1);
    assert.equal(store.take([check()]).action, 'delay');
  });

  it('nodelay passes the burst at once; delay=N is two-stage', () => {
    const store = new MemoryLimitStore({ now: clock().now });
    const nodelay = Array.from({ length: 7 }, () => store.take([check({ key: 'a', delay: Infinity })]).action);
    assert.deepEqual(nodelay, ['pass', 'pass', 'pass', 'pass', 'pass', 'pass', 'reject']);
    // delay=3: excess up to 3000 passes, above it waits (excess - 3000) / rate.
    const twoStage = Array.from({ length: 8 }, () => store.take([check({ key: 'b', burst: 6_000, delay: 3_000 })]));
    assert.deepEqual(
      twoStage.map((o) => `${o.action}${o.action === 'delay' ? o.delayMs : ''}`),
      ['pass', 'pass', 'pass', 'pass', 'delay100', 'delay200', 'delay300', 'reject'],
    );
  });

  it('drains at the rate, in integer milli-requests like nginx', () => {
    const time = clock();
    const store = new MemoryLimitStore({ now: time.now });
    const slow = check({ rate: Math.trunc((300 * 1000) / 60), burst: 0 }); // 300r/m = 5 r/s
    assert.equal(store.take([slow]).action, 'pass');
    time.advance(199);
    assert.equal(store.take([slow]).action, 'reject', '199 ms drain 995 milli-requests: excess 5 > burst 0');
    time.advance(1);
    assert.equal(store.take([slow]).action, 'pass');
    // Without burst every request must be 200 ms apart, forever.
    for (let i = 0; i < 5; i++) {
      time.advance(200);
      assert.equal(store.take([slow]).action, 'pass');
    }
  });

  it('several limits: all are checked before any is counted; the longest delay wins', () => {
    const store = new MemoryLimitStore({ now: clock().now });
    const perIp = check({ zone: 'ip', burst: 10_000 });
    const tight = check({ zone: 'route', burst: 1_000, rate: 2_000 });
    assert.equal(store.take([perIp, tight]).action, 'pass');
    const second = store.take([perIp, tight]);
    assert.deepEqual(second, { action: 'delay', delayMs: 500, retryAfterMs: 0, index: 1 }, '1000 / 2 r/s = 500 ms beats 1000 / 10 r/s');
    const third = store.take([perIp, tight]);
    assert.equal(third.action, 'reject');
    assert.equal(third.index, 1);
    // The per-IP zone was not charged for the rejected request: alone it still has room for 8 more.
    const alone = Array.from({ length: 10 }, () => store.take([perIp]).action);
    assert.deepEqual(alone.slice(0, 8), Array(8).fill('delay'));
    assert.equal(alone[8], 'delay');
    assert.equal(alone[9], 'reject');
  });

  it('keys are independent; a long-idle drained key is forgotten', () => {
    const time = clock();
    const store = new MemoryLimitStore({ now: time.now });
    store.take([check({ key: 'x', burst: 0 })]);
    assert.equal(store.take([check({ key: 'x', burst: 0 })]).action, 'reject');
    assert.equal(store.take([check({ key: 'y', burst: 0 })]).action, 'pass');
    time.advance(61_000);
    store.take([check({ key: 'new1', burst: 0 })]);
    assert.equal(store.rateKeys('z'), 1, 'x and y expired on the insertion of a new key');
  });

  it('bounds the keys of a zone, dropping the least recently used', () => {
    const store = new MemoryLimitStore({ now: clock().now, maxKeys: 3 });
    for (const key of ['a', 'b', 'c']) store.take([check({ key, burst: 0 })]);
    store.take([check({ key: 'a', burst: 0 })]); // a is used again (rejected, but looked up)
    store.take([check({ key: 'd', burst: 0 })]);
    assert.equal(store.rateKeys('z'), 3);
    assert.equal(store.take([check({ key: 'a', burst: 0 })]).action, 'reject', 'a was kept');
    assert.equal(store.take([check({ key: 'b', burst: 0 })]).action, 'pass', 'b was dropped, so it starts afresh');
  });
});

describe('MemoryLimitStore.acquire/release (nginx limit_conn)', () => {
  it('holds at most max slots per key and gives them back', () => {
    const store = new MemoryLimitStore();
    assert.equal(store.acquire('c', 'ip1', 2), true);
    assert.equal(store.acquire('c', 'ip1', 2), true);
    assert.equal(store.acquire('c', 'ip1', 2), false);
    assert.equal(store.acquire('c', 'ip2', 2), true);
    assert.equal(store.acquire('other', 'ip1', 2), true);
    store.release('c', 'ip1');
    assert.equal(store.held('c', 'ip1'), 1);
    assert.equal(store.acquire('c', 'ip1', 2), true);
    store.release('c', 'ip1');
    store.release('c', 'ip1');
    store.release('c', 'ip1'); // one too many: ignored
    assert.equal(store.held('c', 'ip1'), 0);
    assert.equal(store.acquire('c', 'ip1', 1), true);
  });
});
