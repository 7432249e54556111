import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { DeadlineQueue, type DeadlineEntry } from './deadlines.js';

class Entry implements DeadlineEntry {
  _deadline = 0;
  _prev: DeadlineEntry | null = null;
  _next: DeadlineEntry | null = null;
  _queued = false;
  constructor(readonly name: string) {}
}

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

});
