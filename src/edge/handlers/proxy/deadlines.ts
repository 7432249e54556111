/**
 * One timer for many deadlines of the same length (the proxy's response-head timeout): entries
 * are kept in the order they were added, which for a fixed length is the order they expire, in
 * an intrusive doubly linked list (the entry is its own node: adding and removing allocate
 * nothing). A single node timer is armed for the earliest deadline; when it fires, every entry
 * due is expired and the timer is armed again for the next one. So a deadline still fires on
 * time (no coarse tick), yet a request that is answered costs two pointer updates instead of a
 * `setTimeout` and a `clearTimeout` (a Timeout object, an async id and a read of the loop clock
 * each: measured in the proxy's profile, README Performance). nginx keeps its timers in one
 * red-black tree for the same reason.
 *
 * The timer is not cleared when the list empties: it fires once more for nothing, which is
 * cheaper than re-arming it for every request on a lightly loaded proxy. It is unref'd: pending
 * deadlines never keep a process alive (the sockets of their requests do).
 */

/** A deadline entry: the object whose deadline it is (a proxy attempt) carries the links. */
export interface Deadline {
  /** When it expires, on the `performance.now()` clock; set by `add`. */
  deadlineAt: number;
  prevDeadline: Deadline | null;
  nextDeadline: Deadline | null;
  /** Whether it is in a queue now. */
  queued: boolean;
  /** Called once when the deadline passes while it is still queued (it is dequeued first). */
  expire(): void;
}

export class DeadlineQueue {
  readonly #ms: number;
  #head: Deadline | null = null;
  #tail: Deadline | null = null;
  #timer: NodeJS.Timeout | null = null;
  readonly #fire = (): void => this.#expireDue();

  /** `ms` > 0: the length of every deadline of this queue. */
  constructor(ms: number) {
    this.#ms = ms;
  }

  /** Starts `entry`'s deadline: it expires `ms` from now unless removed before. */
  add(entry: Deadline): void {
    if (entry.queued) this.remove(entry);
    const now = performance.now();
    entry.deadlineAt = now + this.#ms;
    entry.queued = true;
    entry.nextDeadline = null;
    entry.prevDeadline = this.#tail;
    if (this.#tail) this.#tail.nextDeadline = entry;
    else this.#head = entry;
    this.#tail = entry;
    // An armed timer is due at or before this deadline: every earlier entry had an earlier one.
    if (this.#timer === null) this.#arm(now);
  }

  /** Cancels `entry`'s deadline (nothing when it is not queued). */
  remove(entry: Deadline): void {
    if (!entry.queued) return;
    entry.queued = false;
    const prev = entry.prevDeadline;
    const next = entry.nextDeadline;
    if (prev) prev.nextDeadline = next;
    else this.#head = next;
    if (next) next.prevDeadline = prev;
    else this.#tail = prev;
    entry.prevDeadline = null;
    entry.nextDeadline = null;
  }

  /** Entries queued now (for tests). */
  get size(): number {
    let n = 0;
    for (let entry = this.#head; entry; entry = entry.nextDeadline) n++;
    return n;
  }

  #arm(now: number): void {
    const head = this.#head;
    if (!head) return;
    this.#timer = setTimeout(this.#fire, Math.max(1, Math.ceil(head.deadlineAt - now)));
    this.#timer.unref();
  }

  #expireDue(): void {
    this.#timer = null;
    const now = performance.now();
    for (let head = this.#head; head !== null && head.deadlineAt <= now; head = this.#head) {
      this.remove(head);
      head.expire();
    }
    this.#arm(performance.now());
  }
}
