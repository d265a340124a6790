/** A key handed out by `take`, to give back with `done` once it has been dealt with. */
export interface TakenChange<K> {
  readonly key: K;
  /** Tells this hand-out from a later one of the same key after a `forget`. */
  readonly mark: object;
}

interface Entry {
  readonly mark: object;
  /** ready: waiting to be taken; taken: being dealt with; quiet: within its interval. */
  state: 'ready' | 'taken' | 'quiet';
  /** Changed again since it was taken. */
  dirty: boolean;
  timer: NodeJS.Timeout | null;
}

/**
 * Turns a stream of "key K changed" signals into a rate-limited stream of
 * keys to look at: a key that changes after a quiet spell is ready at once
 * (leading edge), then at most once per `intervalMs` while it keeps changing,
 * and once more after its last change (trailing edge), so whoever reads the
 * state behind a key when they take it always ends with its latest state.
 *
 * Memory is one entry per key that changed within its last interval, however
 * often it changes and however slowly the keys are taken: a slow taker only
 * gets fewer, fresher looks. One taker at a time.
 */
export class ChangeCoalescer<K> {
  private readonly entries = new Map<K, Entry>();
  // A Set keeps the keys in the order they became ready.
  private readonly ready = new Set<K>();
  private waiter: ((taken: TakenChange<K> | null) => void) | null = null;
  private closed = false;

  constructor(
    private readonly intervalMs = 250, // 4 looks a second per key at most
  ) {}

  /** Signals that `key` changed. Costs a map lookup. */
  changed(key: K): void {
    if (this.closed) return;
    const entry = this.entries.get(key);
    if (entry === undefined) {
      const fresh: Entry = { mark: {}, state: 'ready', dirty: false, timer: null };
      this.entries.set(key, fresh);
      this.makeReady(key, fresh);
    } else if (entry.state !== 'ready') {
      entry.dirty = true;
    }
  }

  /**
   * Drops whatever is pending for `key` (it is gone). A hand-out of it in
   * progress is no longer current (`isCurrent` says false) and its `done`
   * does nothing; a later change starts afresh.
   */
  forget(key: K): void {
    const entry = this.entries.get(key);
    if (entry === undefined) return;
    if (entry.timer !== null) clearTimeout(entry.timer);
    this.entries.delete(key);
    this.ready.delete(key);
  }

  /** The next ready key, waiting for one if none is; null once closed. */
  take(): Promise<TakenChange<K> | null> {
    if (this.closed) return Promise.resolve(null);
    if (this.waiter !== null) throw new Error('ChangeCoalescer has one taker at a time.');
    for (const key of this.ready) {
      this.ready.delete(key);
      return Promise.resolve(this.hand(key, this.entries.get(key) as Entry));
    }
    return new Promise((resolve) => {
      this.waiter = resolve;
    });
  }

  /** False once the taken key was forgotten (or closed) since it was taken. */
  isCurrent(taken: TakenChange<K>): boolean {
    return this.entries.get(taken.key)?.mark === taken.mark;
  }

  /**
   * The taken key has been dealt with: its interval starts now, and it is
   * ready again at the end of it if it changed meanwhile.
   */
  done(taken: TakenChange<K>): void {
    const entry = this.entries.get(taken.key);
    if (entry === undefined || entry.mark !== taken.mark || entry.state !== 'taken') return;
    entry.state = 'quiet';
    entry.timer = setTimeout(() => {
      entry.timer = null;
      if (!entry.dirty) {
        this.entries.delete(taken.key);
        return;
      }
      entry.dirty = false;
      this.makeReady(taken.key, entry);
    }, this.intervalMs);
    // A subscription's timer alone must not keep a process alive.
    entry.timer.unref();
  }

  /** Drops everything; a waiting `take` resolves null. */
  close(): void {
    this.closed = true;
    for (const entry of this.entries.values()) {
      if (entry.timer !== null) clearTimeout(entry.timer);
    }
    this.entries.clear();
    this.ready.clear();
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.(null);
  }

  /** Keys with something pending or within their interval (for tests: it returns to 0). */
  get size(): number {
    return this.entries.size;
  }

  private makeReady(key: K, entry: Entry): void {
    const waiter = this.waiter;
    if (waiter === null) {
      entry.state = 'ready';
      this.ready.add(key);
      return;
    }
    this.waiter = null;
    waiter(this.hand(key, entry));
  }

  private hand(key: K, entry: Entry): TakenChange<K> {
    entry.state = 'taken';
    return { key, mark: entry.mark };
  }
}
