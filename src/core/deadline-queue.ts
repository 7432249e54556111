/**
 * One timer for many deadlines of the same length: the app gateway's request timeout and the
 * proxy's response-head timeout. Entries are kept in the order they were added, which for a
 * fixed length is the order they expire, in an intrusive doubly linked list (the entry is its own
 * node: adding and removing allocate nothing). A single node timer is armed for the earliest
 * deadline; when it fires, every entry due is expired and the timer is armed again for the next
 * one. So a deadline still fires on time (no coarse tick), yet a request that is answered costs
 * two pointer updates instead of a `setTimeout` and a `clearTimeout` (a Timeout object, an async
 * id and a read of the loop clock each: about 3 % of an app worker's CPU on the hello-world
 * benchmark by `node --cpu-prof`, and visible in the proxy's profile, docs/performance.md). nginx
 * keeps its timers in one red-black tree for the same reason.
 *
 * The timer is not cleared when the list empties: it fires once more for nothing, which is
 * cheaper than re-arming it for every request on a lightly loaded server. It is unref'd: pending
 * deadlines never keep a process alive (the sockets of their requests do). Times are on the
 * `performance.now()` clock, which a change of the wall clock does not move.
 */

/**
 * What the queue links. The fields belong to the queue; they are underscored because an entry
 * may be an object an app sees (the gateway's Request), where they must not look like API.
 */
export interface Deadline {
  /** When it expires (`performance.now()` clock); set by `add`. */
  _deadline: number;
  _prev: Deadline | null;
  _next: Deadline | null;
  /** In the queue now (added, not removed or expired yet). */
  _queued: boolean;
}

export class DeadlineQueue<T extends Deadline> {
  readonly #ms: number;
  readonly #expire: (entry: T) => void;
  #head: T | null = null;
  #tail: T | null = null;
  #timer: NodeJS.Timeout | null = null;
  /** When the armed timer fires. */
  #armedFor = 0;
  readonly #onTimer = (): void => this.#expireDue();

  /** `ms` > 0: the length of every deadline of this queue; `expire` is called once for each entry still queued `ms` after it was added (it is dequeued first). */
  constructor(ms: number, expire: (entry: T) => void) {
    this.#ms = ms;
    this.#expire = expire;
  }

  /** Starts `entry`'s deadline: it expires `ms` from now unless removed before (a queued entry starts again). */
  add(entry: T): void {
    if (entry._queued) this.remove(entry);
    const now = performance.now();
    entry._deadline = now + this.#ms;
    entry._queued = true;
    entry._next = null;
    entry._prev = this.#tail;
    if (this.#tail) this.#tail._next = entry;
    else this.#head = entry;
    this.#tail = entry;
    // An armed timer is due at or before this deadline: every earlier entry had an earlier one.
    if (this.#timer === null) this.#arm(now);
  }

  /** Cancels `entry`'s deadline (nothing when it is not queued). */
  remove(entry: T): void {
    if (!entry._queued) return;
    entry._queued = false;
    const prev = entry._prev as T | null;
    const next = entry._next as T | null;
    if (prev) prev._next = next;
    else this.#head = next;
    if (next) next._prev = prev;
    else this.#tail = prev;
    entry._prev = null;
    entry._next = null;
  }

  /** The deadline the timer is armed for, 0 when none (for tests). */
  get armedFor(): number {
    return this.#timer ? this.#armedFor : 0;
  }

  /** Entries queued now (for tests; walks the list). */
  get size(): number {
    let n = 0;
    for (let entry = this.#head; entry; entry = entry._next as T | null) n++;
    return n;
  }

  #arm(now: number): void {
    const head = this.#head;
    if (!head) return;
    this.#armedFor = head._deadline;
    this.#timer = setTimeout(this.#onTimer, Math.max(1, Math.ceil(head._deadline - now)));
    this.#timer.unref();
  }

  #expireDue(): void {
    this.#timer = null;
    const now = performance.now();
    try {
      for (let head = this.#head; head !== null && head._deadline <= now; head = this.#head) {
        this.remove(head);
        this.#expire(head);
      }
    } finally {
      // Even if `expire` threw: the later deadlines still fire.
      if (this.#timer === null) this.#arm(performance.now());
    }
  }
}
