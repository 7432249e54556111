/**
 * Request deadlines of one fixed duration on one timer (the worker's `--timeout`).
 *
 * Why not a `setTimeout` per request: each one allocates a Timeout, reads the loop clock and
 * links it into Node's timer lists, and `clearTimeout` unlinks it again: about 3% of a worker's
 * CPU on the hello-world benchmark (`node --cpu-prof`: `insert`, `unenroll`, `getLibuvNow`), for
 * a timer that almost never fires. All deadlines here have the same duration and are added in
 * time order, so a list is already sorted: adding and removing are O(1), and the one timer is
 * armed for the oldest deadline only (re-armed when it fires), so a flood of quick requests costs
 * about one timer per timeout period.
 */

/** What the queue links; the fields belong to the queue. */
export interface DeadlineEntry {
  _deadline: number;
  _prev: DeadlineEntry | null;
  _next: DeadlineEntry | null;
  /** In the queue (added, not removed or expired yet). */
  _queued: boolean;
}

export class DeadlineQueue<T extends DeadlineEntry> {
  readonly #ms: number;
  readonly #expire: (entry: T) => void;
  #head: T | null = null;
  #tail: T | null = null;
  #timer: NodeJS.Timeout | null = null;
  /** When the armed timer fires (ms since the epoch). */
  #armedFor = 0;
  readonly #onTimer = () => this.#fire();

  /** `expire` is called once for each entry still queued `ms` after it was added. */
  constructor(ms: number, expire: (entry: T) => void) {
    this.#ms = ms;
    this.#expire = expire;
  }

  add(entry: T): void {
    const deadline = Date.now() + this.#ms;
    entry._deadline = deadline;
    entry._next = null;
    entry._prev = this.#tail;
    entry._queued = true;
    if (this.#tail) this.#tail._next = entry;
    else this.#head = entry;
    this.#tail = entry;
    // An armed timer fires at or before this deadline (it was armed for an older one) and re-arms.
    if (!this.#timer) this.#arm(deadline);
  }

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
    // The timer stays armed: it finds nothing due when it fires (at most once per period).
  }

  #arm(deadline: number): void {
    this.#armedFor = deadline;
    this.#timer = setTimeout(this.#onTimer, Math.max(1, deadline - Date.now()));
    // The server's sockets keep the process alive, not a pending deadline.
    this.#timer.unref();
  }

  #fire(): void {
    this.#timer = null;
    const now = Date.now();
    try {
      for (let entry = this.#head; entry && entry._deadline <= now; entry = this.#head) {
        this.remove(entry);
        this.#expire(entry);
      }
    } finally {
      // Even if `expire` threw: the later deadlines still fire.
      const head = this.#head;
      if (head && !this.#timer) this.#arm(head._deadline);
    }
  }

  /** The deadline the timer is armed for, 0 when none (for tests). */
  get armedFor(): number {
    return this.#timer ? this.#armedFor : 0;
  }

  /** How many entries are queued (for tests; walks the list). */
  get size(): number {
    let n = 0;
    for (let entry = this.#head; entry; entry = entry._next as T | null) n++;
    return n;
  }
}
