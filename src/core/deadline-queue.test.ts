/**
 * The deadline queue (one timer for many deadlines of one length: the app gateway's request
 * timeout, the proxy's response-head timeout): entries expire in order, each no earlier than its
 * own deadline, removed ones never, and one timer serves them all (it re-arms itself for the next
 * entry after firing, also after the entry it was armed for was removed).
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { DeadlineQueue, type Deadline } from './deadline-queue.js';

class Entry implements Deadline {
  _deadline = 0;
  _prev: Deadline | null = null;
  _next: Deadline | null = null;
  _queued = false;
  expiredAt = -1;
  constructor(
    readonly name: string,
    readonly log: string[] = [],
  ) {}
}

const expire = (entry: Entry): void => {
  entry.expiredAt = performance.now();
  entry.log.push(entry.name);
};

describe('DeadlineQueue', () => {
  it('expires each entry still queued after the duration, oldest first, and only those', async () => {
    const expired: string[] = [];
    const queue = new DeadlineQueue<Entry>(150, (e) => expired.push(e.name));
    const a = new Entry('a');
    const b = new Entry('b');
    const c = new Entry('c');
    const started = Date.now();
    queue.add(a);
    queue.add(b);
    await sleep(60);
    queue.add(c);
    queue.remove(b);
    assert.equal(queue.size, 2);
    for (let i = 0; i < 100 && expired.length < 2; i++) await sleep(20);
    assert.deepEqual(expired, ['a', 'c']);
    // c was added 60 ms after a: it cannot have expired before its own 150 ms.
    assert.ok(Date.now() - started >= 60 + 150 - 5, `expired after ${Date.now() - started} ms`);
    assert.equal(queue.size, 0);
    assert.equal(queue.armedFor, 0, 'no timer left armed once the queue is empty');
    assert.equal(a._queued || b._queued || c._queued, false);
  });

  it('does not expire an entry removed before its deadline, and keeps the links consistent', async () => {
    const expired: string[] = [];
    const queue = new DeadlineQueue<Entry>(80, (e) => expired.push(e.name));
    const entries = ['a', 'b', 'c', 'd', 'e'].map((n) => new Entry(n));
    for (const e of entries) queue.add(e);
    // Head, middle and tail removals; removing twice is harmless.
    queue.remove(entries[0] as Entry);
    queue.remove(entries[2] as Entry);
    queue.remove(entries[4] as Entry);
    queue.remove(entries[4] as Entry);
    assert.equal(queue.size, 2);
    await sleep(80 + 150);
    assert.deepEqual(expired, ['b', 'd']);
    // Re-adding a removed entry works (a new deadline from now).
    queue.add(entries[0] as Entry);
    assert.equal(queue.size, 1);
    assert.ok(queue.armedFor > 0);
    for (let i = 0; i < 100 && expired.length < 3; i++) await sleep(20);
    assert.deepEqual(expired, ['b', 'd', 'a']);
  });

  it('expires entries in order, each at or after its own deadline, and skips removed ones', async () => {
    const log: string[] = [];
    const queue = new DeadlineQueue<Entry>(60, expire);
    const a = new Entry('a', log);
    const b = new Entry('b', log);
    const c = new Entry('c', log);
    queue.add(a);
    const aAddedAt = performance.now();
    await sleep(20);
    queue.add(b);
    const bAddedAt = performance.now();
    queue.add(c);
    assert.equal(queue.size, 3);
    queue.remove(c);
    assert.equal(queue.size, 2);
    assert.equal(c._queued, false);
    await sleep(250);
    assert.deepEqual(log, ['a', 'b']);
    assert.ok(a.expiredAt - aAddedAt >= 59, `a expired after ${(a.expiredAt - aAddedAt).toFixed(1)} ms`);
    assert.ok(b.expiredAt - bAddedAt >= 59, `b expired after ${(b.expiredAt - bAddedAt).toFixed(1)} ms`);
    assert.equal(queue.size, 0);
    assert.equal(c.expiredAt, -1);
  });

  it('re-arms for the next entry when the one its timer was armed for was removed', async () => {
    const log: string[] = [];
    const queue = new DeadlineQueue<Entry>(50, expire);
    const first = new Entry('first', log);
    queue.add(first);
    await sleep(25);
    const second = new Entry('second', log);
    queue.add(second);
    const secondAddedAt = performance.now();
    queue.remove(first);
    await sleep(200);
    assert.deepEqual(log, ['second']);
    assert.ok(second.expiredAt - secondAddedAt >= 49, `second expired after ${(second.expiredAt - secondAddedAt).toFixed(1)} ms`);
  });

  it('takes entries again after they expired or were removed (an emptied queue keeps working)', async () => {
    const log: string[] = [];
    const queue = new DeadlineQueue<Entry>(20, expire);
    const entry = new Entry('x', log);
    queue.add(entry);
    queue.remove(entry);
    queue.remove(entry);
    await sleep(80);
    assert.deepEqual(log, []);
    queue.add(entry);
    await sleep(150);
    assert.deepEqual(log, ['x']);
    queue.add(entry);
    queue.add(entry);
    assert.equal(queue.size, 1);
    await sleep(150);
    assert.deepEqual(log, ['x', 'x']);
  });
});
