/**
 * The deadline queue of the proxy's response-head timeout: entries expire in order, each no
 * earlier than its own deadline, removed ones never, and one timer serves them all (it re-arms
 * itself for the next entry after firing, also after the entry it was armed for was removed).
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { DeadlineQueue, type Deadline } from './deadlines.js';

class Entry implements Deadline {
  deadlineAt = 0;
  prevDeadline: Deadline | null = null;
  nextDeadline: Deadline | null = null;
  queued = false;
  expiredAt = -1;
  constructor(
    readonly name: string,
    readonly log: string[],
  ) {}
  expire(): void {
    this.expiredAt = performance.now();
    this.log.push(this.name);
  }
}

describe('DeadlineQueue', () => {
  it('expires entries in order, each at or after its own deadline, and skips removed ones', async () => {
    const log: string[] = [];
    const queue = new DeadlineQueue(60);
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
    assert.equal(c.queued, false);
    await sleep(250);
    assert.deepEqual(log, ['a', 'b']);
    assert.ok(a.expiredAt - aAddedAt >= 59, `a expired after ${(a.expiredAt - aAddedAt).toFixed(1)} ms`);
    assert.ok(b.expiredAt - bAddedAt >= 59, `b expired after ${(b.expiredAt - bAddedAt).toFixed(1)} ms`);
    assert.equal(queue.size, 0);
    assert.equal(c.expiredAt, -1);
  });

  it('re-arms for the next entry when the one its timer was armed for was removed', async () => {
    const log: string[] = [];
    const queue = new DeadlineQueue(50);
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
    const queue = new DeadlineQueue(20);
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
