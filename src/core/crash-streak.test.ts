/** The restart backoff shared by the app arbiter and the edge worker supervisor. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CrashStreak, restartDelay, STABLE_MS } from './crash-streak.js';

describe('CrashStreak', () => {
  it('restarts at once, then 250 ms, 500 ms, 1 s … at most 8 s', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8].map(restartDelay), [0, 250, 500, 1000, 2000, 4000, 8000, 8000]);
  });

  it('counts crashes in a row; a process that lived STABLE_MS starts a new count, unless it never booted', () => {
    const streak = new CrashStreak();
    const t = 1_000_000;
    assert.deepEqual(streak.crashed(100, false, t), { streak: 1, delayMs: 0 });
    assert.deepEqual(streak.crashed(100, false, t + 100), { streak: 2, delayMs: 250 });
    assert.deepEqual(streak.crashed(100, false, t + 400), { streak: 3, delayMs: 500 });
    assert.deepEqual(streak.crashed(STABLE_MS, false, t + 20_000), { streak: 1, delayMs: 0 }, 'lived long enough: a new count');
    assert.equal(streak.crashed(STABLE_MS, true, t + 21_000).streak, 2, 'a failed boot always extends the streak');
  });

  it('forgets the streak after a quiet spell of 3 × STABLE_MS', () => {
    const streak = new CrashStreak();
    streak.crashed(10, false, 0);
    streak.crashed(10, false, 10);
    assert.equal(streak.count(10 + 3 * STABLE_MS), 2);
    assert.equal(streak.count(11 + 3 * STABLE_MS), 0);
    assert.equal(streak.crashed(10, false, 20 + 3 * STABLE_MS).streak, 1);
  });
});
