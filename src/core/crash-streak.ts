/**
 * Crash-loop accounting shared by the supervisors of processes (the app arbiter, the edge worker
 * supervisor): a process that dies is restarted at once, then after 250 ms, 500 ms, 1 s … (at most
 * 8 s) while they keep dying in a row, and the supervisor gives up at a bound. A process that lived
 * `STABLE_MS` or more before dying starts a new count, and so does a quiet spell of 3 × that.
 */

/**
 * A worker that stops on a SIGTERM portico did not send is not a crash: systemd's default
 * `KillMode=control-group`, `timeout` and `npm start` followed by SIGTERM signal the whole process
 * group, so the workers hear it beside their supervisor, sometimes first. The supervisor replaces
 * such a worker only after this window, within which its own SIGTERM, when it is one, arrives.
 */
export const GROUP_SIGNAL_WINDOW_MS = 1000;

/** A process that lived this long before dying does not extend a crash streak. */
export const STABLE_MS = 10_000;

/** Backoff before restarting after the n-th consecutive crash: 0, 250 ms, 500 ms, … up to 8 s. */
export function restartDelay(streak: number): number {
  return streak <= 1 ? 0 : Math.min(250 * 2 ** (streak - 2), 8000);
}

export class CrashStreak {
  #streak = 0;
  #lastCrashAt = 0;

  /** Consecutive crashes so far (a long quiet spell resets it). */
  count(now = Date.now()): number {
    if (this.#streak > 0 && now - this.#lastCrashAt > 3 * STABLE_MS) this.#streak = 0;
    return this.#streak;
  }

  /**
   * Records a crash of a process that lived `livedMs` (`failedBoot`: it never became ready, which
   * always extends the streak); returns the new count and the delay before the next start.
   */
  crashed(livedMs: number, failedBoot = false, now = Date.now()): { streak: number; delayMs: number } {
    this.#streak = livedMs >= STABLE_MS && !failedBoot ? 1 : this.count(now) + 1;
    this.#lastCrashAt = now;
    return { streak: this.#streak, delayMs: restartDelay(this.#streak) };
  }
}
